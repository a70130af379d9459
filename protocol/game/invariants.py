"""Named game invariants, each with the reason it must hold (STYLE.md, item 8).

`check_game_invariants(state)` runs every state invariant; `check_transition_invariants(before, after)`
the ones about a single step. Tests and simulations run both after every event; a violation is a bug in
the rules, never a party's fault.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from protocol.game.enums import Outcome, TreeKind, get_role_index
from protocol.game.evidence import OpLeafRequest, StateLeafRequest, TensorRequest
from protocol.game.messages import EvidenceQuery, LeafQuery, NodesQuery, StatesQuery, TensorItem, TraceQuery
from protocol.game.rules import get_chain_roots, get_query_phase, get_steps, is_valid_item
from protocol.game.state import GameState
from protocol.merkle import compute_height
from protocol.signing import compute_canonical_json


class InvariantViolation(AssertionError):
    """A game state that breaks a named invariant."""


@dataclass(frozen=True)
class Invariant:
    name: str
    rationale: str
    holds: Callable[[GameState], bool]


@dataclass(frozen=True)
class TransitionInvariant:
    name: str
    rationale: str
    holds: Callable[[GameState, GameState], bool]


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _clocks_within_budget(state: GameState) -> bool:
    budget = state.setup.config.clock_seconds
    return all(0 < clock <= budget for clock in state.clocks)


def _time_ordered(state: GameState) -> bool:
    return state.setup.started_at <= state.round_started_at <= state.now


def _seq_counts_rounds(state: GameState) -> bool:
    return state.seq == state.rounds_chain + state.rounds_trace - 1


def _query_iff_live(state: GameState) -> bool:
    return (state.query is None) == (state.verdict is not None)


def _descent_on_a_disagreement(state: GameState) -> bool:
    query, descent = state.query, state.position.descent
    if not isinstance(query, NodesQuery):
        return True
    if descent is None or (descent.tree, descent.height, descent.index) != (query.tree, query.height, query.index):
        return False
    root_height = compute_height(descent.size)
    return (descent.nodes[0] != descent.nodes[1] and 1 <= query.depth == min(state.setup.config.depth, descent.height)
            and descent.height <= root_height and 0 <= descent.index < 1 << (root_height - descent.height))


def _padding_never_disputed(state: GameState) -> bool:
    descent = state.position.descent
    if descent is not None and descent.index << descent.height >= descent.size:
        return False
    for claim in (state.position.chain_leaf, state.position.leaf):
        if claim is not None and not (0 <= claim.index < claim.size and claim.hashes[0] != claim.hashes[1]):
            return False
    return True


def _phase_two_on_first_difference(state: GameState) -> bool:
    position = state.position
    if position.step is None:
        return position.state_before is None and position.states_after is None and position.traces is None
    claim = position.chain_leaf
    return (claim is not None and position.step == claim.index - 1 and position.states_after is not None
            and position.states_after[0] != position.states_after[1] and 0 <= position.step < get_steps(state))


def _traces_consistent_with_chain(state: GameState) -> bool:
    position = state.position
    if position.traces is None:
        return True
    assert position.states_after is not None
    return all(trace.step == position.step and trace.state_before == position.state_before
               and trace.state_after == position.states_after[i] for i, trace in enumerate(position.traces))


def _one_answer_per_query(state: GameState) -> bool:
    keys = [(message.sender, message.seq) for message in state.accepted]
    return len(keys) == len(set(keys)) and all(message.seq <= state.seq for message in state.accepted)


def _answers_fit_the_query(state: GameState) -> bool:
    query = state.query
    if query is None:
        return state.answers == (None, None)
    owed = {NodesQuery: "NodesReveal", StatesQuery: "StatesReveal", TraceQuery: "TraceReveal",
            LeafQuery: "LeafReveal", EvidenceQuery: "EvidenceSupply"}[type(query)]
    return all(answer is None or type(answer).__name__ == owed for answer in state.answers)


def _evidence_is_checked(state: GameState) -> bool:
    dispute = state.position.dispute
    evidence = state.position.evidence
    if dispute is None:
        return not (evidence.op_leaves or evidence.state_before_leaves or evidence.tensors)
    if any(not 0 <= index < dispute.agreed_ops for index in evidence.op_leaves):
        return False
    supplied = [*map(OpLeafRequest, evidence.op_leaves), *map(StateLeafRequest, evidence.state_before_leaves),
                *map(TensorRequest, evidence.tensors)]
    return all(request in state.position.requested for request in supplied) and all(
        is_valid_item(dispute, TensorItem(digest, data)) for digest, data in evidence.tensors.items())


def _verdict_is_coherent(state: GameState) -> bool:
    verdict = state.verdict
    if verdict is None:
        return True
    roles = [party.role for party in verdict.losers]
    if verdict.outcome is Outcome.NO_DISPUTE:
        return verdict.winner is None and not roles and get_chain_roots(state)[0] == get_chain_roots(state)[1]
    if verdict.outcome is Outcome.BOTH_LOSE:
        return verdict.winner is None and len(roles) == 2
    return (verdict.winner is not None and len(roles) == 1 and roles[0] != verdict.winner.role
            and all(party.key == state.keys[get_role_index(party.role)] for party in (verdict.winner, *verdict.losers)))


def _bytes_accounted(state: GameState) -> bool:
    return 0 <= state.bytes_tensors <= state.bytes_total


def _rounds_bounded(state: GameState) -> bool:
    depth = state.setup.config.depth
    chain_rounds = _ceil_div(compute_height(get_steps(state) + 1), depth) + 1
    if state.rounds_chain > chain_rounds:
        return False
    traces = state.position.traces
    tree_height = 0 if traces is None else compute_height(max(traces[0].num_ops, traces[0].num_state_after))
    trace_rounds = 1 + _ceil_div(tree_height, depth) + 1 + state.setup.config.max_evidence_rounds
    return state.rounds_trace <= trace_rounds


def _requests_are_outstanding(state: GameState) -> bool:
    query = state.query
    if not isinstance(query, EvidenceQuery):
        return True
    return all(request in state.position.requested and not state.position.evidence.has(request)
               for request in query.requests) and state.position.evidence_rounds <= state.setup.config.max_evidence_rounds


def _chain_phase_before_trace(state: GameState) -> bool:
    if state.rounds_trace == 0:
        return True
    return state.position.step is not None and (state.query is None or get_query_phase(state.query).value == "trace")


def _leaf_tree_matches_commitments(state: GameState) -> bool:
    claim, traces = state.position.leaf, state.position.traces
    if claim is None:
        return True
    if traces is None or claim.tree is TreeKind.CHAIN:
        return False
    expected = traces[0].num_ops if claim.tree is TreeKind.OPS else traces[0].num_state_after
    same_counts = (traces[0].num_ops, traces[0].num_state_after) == (traces[1].num_ops, traces[1].num_state_after)
    ops_differ = traces[0].ops_root != traces[1].ops_root
    return same_counts and claim.size == expected and ops_differ == (claim.tree is TreeKind.OPS)


def _evidence_asked_of_one_party(state: GameState) -> bool:
    position = state.position
    if not isinstance(state.query, EvidenceQuery):
        return True
    supplier = position.supplier
    if supplier is None:
        return False
    other = state.answers[1 - get_role_index(supplier)]
    asked_now = all((request, supplier) in position.asked for request in state.query.requests)
    return other is None and asked_now and len(set(position.asked)) == len(position.asked)


def _agreed_nodes_precede_the_difference(state: GameState) -> bool:
    position = state.position
    if not position.agreed_nodes:
        return True
    if position.leaf is not None:
        if position.leaf.tree is not TreeKind.OPS:
            return False
        first_difference = position.leaf.index
    elif position.descent is not None and position.descent.tree is TreeKind.OPS:
        first_difference = position.descent.index << position.descent.height
    else:
        return False
    return all((index + 1) << height <= first_difference for height, index, _ in position.agreed_nodes)


def _one_history_per_query(state: GameState) -> bool:
    return len(state.round_histories) == state.seq + 1 and (not state.round_histories
                                                           or state.round_histories[0] == state.game_id)


GAME_INVARIANTS: tuple[Invariant, ...] = (
    Invariant("one-history-per-query", "an answer signs the history at which its query was asked, the first "
              "query's being the game id: each query has exactly one", _one_history_per_query),
    Invariant("clocks-within-budget", "an answer is only accepted before its sender's flag falls, so no budget "
              "goes negative or grows", _clocks_within_budget),
    Invariant("time-ordered", "time is an input that never runs backwards; a round cannot start in the future",
              _time_ordered),
    Invariant("seq-counts-rounds", "each query is one round, numbered in order, so a sequence number names "
              "exactly one query", _seq_counts_rounds),
    Invariant("query-iff-live", "a live game always asks exactly one query; a decided game asks none",
              _query_iff_live),
    Invariant("descent-on-a-disagreement", "parties only descend into a node whose hashes differ, at the depth "
              "the arity fixes, so the first difference stays below the current node", _descent_on_a_disagreement),
    Invariant("padding-never-disputed", "non-empty padding is refused on receipt, so the game only ever narrows "
              "down to real leaves", _padding_never_disputed),
    Invariant("phase-two-on-first-difference", "step t is the one whose s_t is agreed and whose s_{t+1} "
              "differs: that is what makes a single step decisive", _phase_two_on_first_difference),
    Invariant("traces-consistent-with-chain", "a trace commitment binds the step to the chain only if it starts "
              "at the agreed s_t and ends at the party's own s_{t+1}", _traces_consistent_with_chain),
    Invariant("one-answer-per-query", "a second different answer is equivocation and ends the game, so at most "
              "one is ever accepted", _one_answer_per_query),
    Invariant("answers-fit-the-query", "a round resolves only over answers of the kind its query asked for",
              _answers_fit_the_query),
    Invariant("evidence-is-checked", "the referee only ever sees facts both parties are bound to",
              _evidence_is_checked),
    Invariant("verdict-is-coherent", "a decided game names one loser and the other party as winner, "
              "with their keys; no dispute names nobody", _verdict_is_coherent),
    Invariant("bytes-accounted", "tensor evidence is a part of all bytes received", _bytes_accounted),
    Invariant("rounds-bounded", "bounded cost: rounds <= ceil(log_k(T+1)) + ceil(log_k N) + a constant",
              _rounds_bounded),
    Invariant("requests-are-outstanding", "an evidence round asks only for requested facts not yet supplied, "
              "within the configured number of rounds", _requests_are_outstanding),
    Invariant("chain-phase-before-trace", "phase 2 starts only once phase 1 fixed the step",
              _chain_phase_before_trace),
    Invariant("evidence-asked-of-one-party", "agreed facts need one honest copy: an evidence query is addressed "
              "to one party, who is asked for each request at most once", _evidence_asked_of_one_party),
    Invariant("agreed-nodes-precede-the-difference", "a short proof may end at an ops-tree node only if every "
              "leaf below it lies before the first difference, where both trees agree",
              _agreed_nodes_precede_the_difference),
    Invariant("leaf-tree-matches-commitments", "the ops tree is descended iff the ops roots differ, and only "
              "between commitments with equal counts", _leaf_tree_matches_commitments),
)


def _verdict_final(before: GameState, after: GameState) -> bool:
    return before.verdict is None or after.verdict == before.verdict


def _history_advances(before: GameState, after: GameState) -> bool:
    return after.history != before.history and after.now >= before.now


def _clocks_never_grow(before: GameState, after: GameState) -> bool:
    return all(a <= b for a, b in zip(after.clocks, before.clocks, strict=True))


def _rounds_monotone(before: GameState, after: GameState) -> bool:
    return (after.rounds_chain >= before.rounds_chain and after.rounds_trace >= before.rounds_trace
            and after.seq - before.seq in (0, 1))


def _agreed_facts_persist(before: GameState, after: GameState) -> bool:
    a, b = before.position, after.position
    for name in ("chain_leaf", "step", "state_before", "states_after", "traces", "dispute"):
        if getattr(a, name) is not None and getattr(b, name) != getattr(a, name):
            return False
    return all(index in b.evidence.op_leaves for index in a.evidence.op_leaves)


def _accepted_messages_kept(before: GameState, after: GameState) -> bool:
    kept = after.accepted[: len(before.accepted)]
    return [compute_canonical_json(m.move) for m in kept] == [compute_canonical_json(m.move) for m in before.accepted]


def _round_histories_kept(before: GameState, after: GameState) -> bool:
    return after.round_histories[: len(before.round_histories)] == before.round_histories


TRANSITION_INVARIANTS: tuple[TransitionInvariant, ...] = (
    TransitionInvariant("round-histories-kept", "what an answer signed stays the history of its query, so "
                        "an equivocation is judged against the course the game took", _round_histories_kept),
    TransitionInvariant("verdict-is-final", "a verdict settles stakes; it can never be revised", _verdict_final),
    TransitionInvariant("history-advances", "every event is bound into the history digest, in time order",
                        _history_advances),
    TransitionInvariant("clocks-never-grow", "time spent is never given back", _clocks_never_grow),
    TransitionInvariant("rounds-monotone", "queries are asked one at a time and never taken back",
                        _rounds_monotone),
    TransitionInvariant("agreed-facts-persist", "what both parties were bound to stays fixed for the rest of "
                        "the game", _agreed_facts_persist),
    TransitionInvariant("accepted-messages-kept", "signed answers are the evidence of equivocation; none is "
                        "forgotten", _accepted_messages_kept),
)


def get_violated_invariants(state: GameState) -> tuple[str, ...]:
    return tuple(invariant.name for invariant in GAME_INVARIANTS if not invariant.holds(state))


def get_violated_transition_invariants(before: GameState, after: GameState) -> tuple[str, ...]:
    return tuple(invariant.name for invariant in TRANSITION_INVARIANTS if not invariant.holds(before, after))


def check_game_invariants(state: GameState, before: GameState | None = None) -> None:
    """Raise InvariantViolation naming every broken invariant (of the state, and of the step from `before`)."""
    broken = get_violated_invariants(state)
    if before is not None:
        broken += get_violated_transition_invariants(before, state)
    if broken:
        raise InvariantViolation("game invariants broken: " + ", ".join(broken))
