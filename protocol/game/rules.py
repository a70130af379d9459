"""The dispute game's rules: a pure state machine over `GameState`.

    create_game(setup)                          -> GameState   (SETUP: equal roots end it at once)
    process_move(state, message, now, referee)  -> GameState   (one signed message arrives at `now`)
    process_clock(state, now)                   -> GameState   (time passes with no message)

Each round asks both parties one query (evidence rounds: one party); each answers from its own
commitments, so answers are independent and may arrive in any order. A party's chess clock runs from the moment a query is asked
until its accepted answer arrives; its budget is the config's `clock_seconds` for the whole game.

Phase 1 (CHAIN). Descend the two chain trees from their roots: each round both parties reveal the
2**d descendants of the node they disagree on (d = log2 k, clamped at the leaves); each reveal must fold
back to the party's own node, and descendants lying wholly in padding must be the empty subtree. Go on
into the leftmost differing child. At the leaves, i is the first differing chain leaf; both reveal s_i
(and s_{i-1} with an inclusion proof). If i == 0 the referee names the true s_0. Otherwise t = i - 1.

Phase 2 (TRACE). Both sign a trace commitment for step t whose state_before is the agreed s_t, whose
state_after is their own s_{t+1}, and whose structure hint the referee finds proven against s_t (it
states s_t's layout, so the referee knows step t's structure without replaying from s_0). Different counts: the referee's structure decides. Different ops
roots: descend the ops trees to the first differing op leaf; equal ops roots: descend the state-after
trees to the first differing state leaf. Both reveal that leaf; the referee asks for evidence, the game
checks every item, and the referee names the correct leaf. Evidence is agreed data, so an evidence query
is addressed to one party: the challenger first, and the other party for whatever the asked one withholds
(which then goes first for the rest of the game); a fact both were asked for and neither supplied makes
both lose, and a party that withheld evidence until the evidence rounds ran out loses.

A party loses at once for a validly signed message that is malformed, fails a proof, contradicts its
chain, or contradicts an earlier answer to the same query (equivocation), and when its clock runs out.
A move signs the game id and the history digest at which its query was asked (`round_histories`), so
equivocation is proven only by two answers signed inside one game, in one course of it: an answer from
another game, or from another course of this one, does not verify. A message not signed by the role it
names (for this game and this history) is refused and recorded; it decides nothing.
Invalid *calls* (a decided game, time running backwards, a message delivered after a flag fell) raise
a `GameError` and leave the state as it was; `verify_*` style predicates here never raise.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from functools import lru_cache
from typing import Any

import blake3

from protocol.encoding import compute_digest_of_encoding
from protocol.game.codec import MAX_PROOF_LENGTH, ParseError, is_json_value
from protocol.game.commitments import is_valid_run_commitment, is_valid_trace_signature
from protocol.game.constants import get_config_problem
from protocol.game.enums import (
    ROLES,
    Outcome,
    Pair,
    Phase,
    Reason,
    Rejection,
    Role,
    TreeKind,
    get_opponent,
    get_role_index,
)
from protocol.game.evidence import (
    Evidence,
    EvidenceRequest,
    LeafDispute,
    MissingEvidence,
    OpLeafRequest,
    StateLeafRequest,
    TensorRequest,
)
from protocol.game.interfaces import Referee
from protocol.game.messages import (
    EvidenceItem,
    EvidenceQuery,
    EvidenceSupply,
    LeafQuery,
    LeafReveal,
    Move,
    NodesQuery,
    NodesReveal,
    OpLeafItem,
    Query,
    SignedMove,
    StateLeafItem,
    StatesQuery,
    StatesReveal,
    TraceQuery,
    TraceReveal,
    compute_message_json,
    compute_message_sizes,
    get_item_request,
    get_sender_role,
    is_valid_move_signature,
    parse_move,
)
from protocol.game.state import (
    Descent,
    GameSetup,
    GameState,
    LeafClaim,
    PartyRef,
    Position,
    RejectedMessage,
    Verdict,
    compute_setup_json,
)
from protocol.merkle import (
    EMPTY,
    compute_height,
    compute_root_from_proof,
    compute_subtree_root,
    hash_leaf,
    hash_node,
    verify_inclusion,
)
from protocol.signing import SIGNATURE_DOMAIN, compute_canonical_json
from protocol.types import DIGEST_SIZE, PublicKeyBytes, Root, Seconds, StepIndex

GAME_ID_DOMAIN = SIGNATURE_DOMAIN + b"game-id\n"
HISTORY_DOMAIN = SIGNATURE_DOMAIN + b"game-history\n"


class GameError(Exception):
    """A call the rules refuse; the state is unchanged."""


class GameSetupError(GameError, ValueError):
    """Run commitments or a config that cannot start a game."""


class GameOver(GameError):
    """The game is decided; nothing more can happen in it."""


class InvalidTime(GameError, ValueError):
    """A time that is not finite or earlier than the last event."""


class ClockExpired(GameError):
    """A message delivered at or after a party's flag fell: call `process_clock` first."""


class RefereeError(GameError):
    """The injected referee answered something the game cannot use (a referee bug, not a party's)."""


# Pure helpers ----------------------------------------------------------------------------------------


def compute_game_id(setup: GameSetup) -> bytes:
    """BLAKE3 over the setup's canonical JSON (the dispute id, both commitments, the config, the start time,
    the time source and the context); every message is signed under it."""
    return blake3.blake3(GAME_ID_DOMAIN + compute_canonical_json(compute_setup_json(setup))).digest()


def compute_history(previous: bytes, event: dict[str, Any]) -> Root:
    """The running digest of everything a game received: H(previous || canonical JSON of the event)."""
    return Root(blake3.blake3(HISTORY_DOMAIN + bytes(previous) + compute_canonical_json(event)).digest())


@lru_cache(maxsize=128)
def compute_empty_root(height: int) -> Root:
    """Root of a subtree of 2**height padding leaves."""
    node = EMPTY
    for _ in range(height):
        node = hash_node(node, node)
    return node


def is_included(root: bytes, index: int, leaf_hash: bytes, proof: Sequence[bytes]) -> bool:
    """Inclusion without knowing the tree's size: leaf, node and padding hashes are domain-separated,
    so a proof only folds to the root at the tree's true height. Never raises."""
    try:
        if len(proof) > MAX_PROOF_LENGTH or type(index) is not int:
            return False
        return compute_root_from_proof(index, leaf_hash, proof) == bytes(root)
    except (ValueError, TypeError):
        return False


def get_query_phase(query: Query) -> Phase:
    if isinstance(query, StatesQuery) or (isinstance(query, NodesQuery) and query.tree is TreeKind.CHAIN):
        return Phase.CHAIN
    return Phase.TRACE


def get_job_id(state: GameState) -> bytes:
    return state.setup.worker.commitment.job_id


def get_steps(state: GameState) -> int:
    return state.setup.worker.commitment.steps


def get_chain_roots(state: GameState) -> Pair[Root]:
    return (state.setup.worker.commitment.chain_root, state.setup.challenger.commitment.chain_root)


def get_owing_roles(state: GameState) -> tuple[Role, ...]:
    """The parties that still owe an answer to the current query."""
    if state.query is None:
        return ()
    if isinstance(state.query, EvidenceQuery):  # addressed to one party at a time
        supplier = state.position.supplier
        return (supplier,) if supplier is not None and state.answers[get_role_index(supplier)] is None else ()
    return tuple(role for role in ROLES if state.answers[get_role_index(role)] is None)


def get_deadline(state: GameState, role: Role) -> Seconds | None:
    """When `role`'s flag falls if it does not answer, or None if it owes nothing."""
    if role not in get_owing_roles(state):
        return None
    return Seconds(state.round_started_at + state.clocks[get_role_index(role)])


def get_next_deadline(state: GameState) -> Seconds | None:
    deadlines = [d for d in (get_deadline(state, role) for role in ROLES) if d is not None]
    return min(deadlines) if deadlines else None


def get_accepted_message(state: GameState, role: Role, seq: int) -> SignedMove | None:
    for message in state.accepted:
        if message.sender == role.value and message.seq == seq:
            return message
    return None


def get_rejection(state: GameState, message: SignedMove) -> Rejection | None:
    """Why an envelope cannot be attributed to a role of this game, or None. An answer signs the history
    at which its query was asked, so an answer to a query not yet asked cannot be checked: it is refused."""
    role = get_sender_role(message)
    if role is None:
        return Rejection.UNKNOWN_SENDER
    if message.seq > state.seq:
        return Rejection.FUTURE_QUERY
    prev = state.round_histories[message.seq]
    if not is_valid_move_signature(state.keys[get_role_index(role)], state.game_id, prev, message):
        return Rejection.BAD_SIGNATURE
    return None


def _pair_set(pair: Pair[Any], role: Role, value: Any) -> Pair[Any]:
    return (value, pair[1]) if role is Role.WORKER else (pair[0], value)


def _describe(request: EvidenceRequest) -> str:
    if isinstance(request, OpLeafRequest):
        return f"op leaf {request.index}"
    if isinstance(request, StateLeafRequest):
        return f"leaf {request.index} of s_t"
    return f"tensor {bytes(request.digest).hex()[:16]}"


# Setup and clock --------------------------------------------------------------------------------------


def create_game(setup: GameSetup) -> GameState:
    """The state before the first move: both run commitments checked, the first query asked."""
    problem = get_config_problem(setup.config)
    if problem is not None:
        raise GameSetupError(problem)
    if not isinstance(setup.started_at, float) or not math.isfinite(setup.started_at):
        raise GameSetupError("started_at must be a finite float")
    if not is_json_value(setup.context):
        raise GameSetupError("context must be a JSON value")
    if not isinstance(setup.dispute_id, bytes) or len(setup.dispute_id) != DIGEST_SIZE:
        raise GameSetupError(f"dispute_id must be {DIGEST_SIZE} bytes")
    if setup.time_source is not None and (not isinstance(setup.time_source, bytes) or len(setup.time_source) != 32):
        raise GameSetupError("time_source must be a 32-byte Ed25519 public key or None")
    for role, signed in zip(ROLES, (setup.worker, setup.challenger), strict=True):
        if not is_valid_run_commitment(signed):
            raise GameSetupError(f"the {role}'s run commitment is not validly signed by its worker_key")
    w, c = setup.worker.commitment, setup.challenger.commitment
    if w.job_id != c.job_id:
        raise GameSetupError("the run commitments are for different jobs")
    if w.steps != c.steps:
        raise GameSetupError(f"the run commitments have different step counts ({w.steps} and {c.steps})")
    if w.worker_key == c.worker_key:
        raise GameSetupError("worker and challenger must sign with different keys")
    game_id = compute_game_id(setup)
    budget = setup.config.clock_seconds
    state = GameState(
        setup=setup, game_id=game_id, keys=(PublicKeyBytes(w.worker_key), PublicKeyBytes(c.worker_key)),
        now=setup.started_at, round_started_at=setup.started_at, clocks=(budget, budget), seq=-1, query=None,
        round_histories=(),
        answers=(None, None), position=Position(), accepted=(), rejected=(), rounds_chain=0, rounds_trace=0,
        bytes_total=0, bytes_tensors=0, history=Root(game_id), verdict=None,
    )
    if w.chain_root == c.chain_root:
        return _process_verdict(state, Outcome.NO_DISPUTE, None, (), Reason.NOTHING_TO_DISPUTE,
                                "both parties commit to the same chain root")
    return _process_descent(state, state.position, TreeKind.CHAIN, w.steps + 1, (w.chain_root, c.chain_root))


def _check_time(state: GameState, now: float) -> Seconds:
    if state.verdict is not None:
        raise GameOver(f"the game is decided: {state.verdict.reason}")
    if isinstance(now, bool) or not isinstance(now, int | float) or not math.isfinite(now):
        raise InvalidTime(f"time must be a finite number of seconds, got {now!r}")
    if now < state.now:
        raise InvalidTime(f"time {now} is before the last event at {state.now}")
    return Seconds(float(now))


def _process_event(state: GameState, now: Seconds, event: dict[str, Any], sizes: tuple[int, int]) -> GameState:
    return replace(state, now=now, history=compute_history(state.history, event),
                   bytes_total=state.bytes_total + sizes[0], bytes_tensors=state.bytes_tensors + sizes[1])


def process_clock(state: GameState, now: float) -> GameState:
    """Let time pass to `now`; every party still owing an answer whose flag has fallen loses."""
    at = _check_time(state, now)
    state = _process_event(state, at, {"at": at, "clock": True}, (0, 0))
    deadlines = {role: get_deadline(state, role) for role in get_owing_roles(state)}
    flagged = [role for role, deadline in deadlines.items() if deadline is not None and at >= deadline]
    if not flagged:
        return state
    detail = f"no answer to query {state.seq} within the clock"
    if len(flagged) == 2:
        return _process_verdict(state, Outcome.BOTH_LOSE, None, ROLES, Reason.TIMEOUT, detail)
    return _process_loss(state, flagged[0], Reason.TIMEOUT, f"the {flagged[0]} gave {detail}")


# Moves ------------------------------------------------------------------------------------------------


def process_move(state: GameState, message: SignedMove, now: float, referee: Referee) -> GameState:
    """One signed message arrives at `now`. Refused messages are recorded; accepted ones may end the round
    (both answers in), which may call the referee and ask the next query or decide the game."""
    at = _check_time(state, now)
    deadline = get_next_deadline(state)
    if deadline is not None and at >= deadline:
        raise ClockExpired(f"a flag fell at {deadline}; process the clock before delivering at {at}")
    message_json = compute_message_json(message)
    state = _process_event(state, at, {"at": at, "message": message_json}, compute_message_sizes(message_json))
    rejection = get_rejection(state, message)
    if rejection is not None:
        return _process_rejection(state, message, rejection)
    role = get_sender_role(message)
    assert role is not None  # get_rejection refuses unknown senders
    prior = get_accepted_message(state, role, message.seq)
    if prior is not None:
        if compute_canonical_json(prior.move) == compute_canonical_json(message.move):
            return _process_rejection(state, message, Rejection.DUPLICATE)
        evidence = (compute_message_json(prior), message_json)
        return _process_loss(state, role, Reason.EQUIVOCATION,
                             f"the {role} signed two different answers to query {message.seq}", evidence)
    if message.seq < state.seq or state.query is None:
        return _process_rejection(state, message, Rejection.CLOSED_QUERY)
    if isinstance(state.query, EvidenceQuery) and role is not state.position.supplier:
        return _process_rejection(state, message, Rejection.NOT_ASKED)
    return _process_answer(state, role, message, referee)


def _process_rejection(state: GameState, message: SignedMove, reason: Rejection) -> GameState:
    record = RejectedMessage(state.now, message.sender, message.seq, reason.value)
    return replace(state, rejected=state.rejected + (record,))


def _process_answer(state: GameState, role: Role, message: SignedMove, referee: Referee) -> GameState:
    query = state.query
    assert query is not None
    index = get_role_index(role)
    clocks = _pair_set(state.clocks, role, Seconds(state.clocks[index] - (state.now - state.round_started_at)))
    state = replace(state, accepted=state.accepted + (message,), clocks=clocks)
    try:
        move = parse_move(query, message.move, state.setup.config)
    except ParseError as error:
        return _process_loss(state, role, Reason.MALFORMED_MESSAGE, f"the {role}'s answer to query {state.seq}: {error}")
    failure = get_move_failure(state, role, move, referee)
    if failure is not None:
        return _process_loss(state, role, failure[0], failure[1])
    state = replace(state, answers=_pair_set(state.answers, role, move))
    if get_owing_roles(state):
        return state
    return _process_round(state, referee)


def get_move_failure(state: GameState, role: Role, move: Move, referee: Referee) -> tuple[Reason, str] | None:
    """Why a well-formed answer is wrong on its own (without looking at the opponent's), or None."""
    if isinstance(move, NodesReveal):
        return _get_nodes_failure(state, role, move)
    if isinstance(move, StatesReveal):
        return _get_states_failure(state, role, move)
    if isinstance(move, TraceReveal):
        return _get_trace_failure(state, role, move, referee)
    if isinstance(move, LeafReveal):
        return _get_leaf_failure(state, role, move)
    return _get_evidence_failure(state, role, move)


def _get_nodes_failure(state: GameState, role: Role, move: NodesReveal) -> tuple[Reason, str] | None:
    descent, query = state.position.descent, state.query
    assert descent is not None and isinstance(query, NodesQuery)
    where = f"{descent.tree} node (height {descent.height}, index {descent.index})"
    if compute_subtree_root(move.hashes) != descent.nodes[get_role_index(role)]:
        return Reason.BAD_PROOF, f"the {role}'s descendants of {where} do not fold to its node"
    child_height = descent.height - query.depth
    for offset, node in enumerate(move.hashes):
        child = (descent.index << query.depth) + offset
        if child << child_height >= descent.size and node != compute_empty_root(child_height):
            return Reason.NON_CANONICAL_PADDING, (
                f"the {role}'s node (height {child_height}, index {child}) of the {descent.tree} tree lies "
                f"past its {descent.size} leaves but is not empty")
    return None


def _get_states_failure(state: GameState, role: Role, move: StatesReveal) -> tuple[Reason, str] | None:
    claim = state.position.chain_leaf
    assert claim is not None
    index = get_role_index(role)
    if hash_leaf(move.state) != claim.hashes[index]:
        return Reason.BAD_PROOF, f"the {role}'s s_{claim.index} does not hash to its chain leaf {claim.index}"
    if claim.index > 0:
        assert move.previous is not None and move.proof is not None
        root = get_chain_roots(state)[index]
        if not verify_inclusion(root, claim.size, claim.index - 1, hash_leaf(move.previous), move.proof):
            return Reason.BAD_PROOF, f"the {role}'s s_{claim.index - 1} is not proven in its chain"
    return None


def _get_trace_failure(state: GameState, role: Role, move: TraceReveal, referee: Referee) -> tuple[Reason, str] | None:
    position, index = state.position, get_role_index(role)
    assert position.step is not None and position.states_after is not None and position.state_before is not None
    commitment = move.commitment
    if not is_valid_trace_signature(state.keys[index], commitment, move.signature):
        return Reason.BAD_TRACE_SIGNATURE, f"the {role}'s trace commitment is not signed by its key"
    if commitment.job_id != get_job_id(state) or commitment.step != position.step:
        return Reason.INCONSISTENT_TRACE, f"the {role}'s trace commitment is not for step {position.step} of this job"
    if commitment.state_before != position.state_before:
        return Reason.INCONSISTENT_TRACE, f"the {role}'s trace commitment does not start from the agreed s_{position.step}"
    if commitment.state_after != position.states_after[index]:
        return Reason.INCONSISTENT_TRACE, (
            f"the {role}'s trace commitment does not end in its own s_{position.step + 1}")
    if not referee.is_valid_hint(get_job_id(state), position.state_before, commitment.hint):
        # the layout of the agreed s_t is provable by whoever holds it: an honest party's hint always is
        return Reason.BAD_PROOF, f"the {role}'s structure hint is not proven against the agreed s_{position.step}"
    return None


def _get_leaf_failure(state: GameState, role: Role, move: LeafReveal) -> tuple[Reason, str] | None:
    claim = state.position.leaf
    assert claim is not None
    if hash_leaf(move.leaf) != claim.hashes[get_role_index(role)]:
        return Reason.BAD_PROOF, f"the {role}'s {claim.tree} leaf {claim.index} does not hash to its committed leaf"
    return None


def is_valid_item(dispute: LeafDispute, item: EvidenceItem) -> bool:
    """True when an evidence item is proven against what both parties are bound to; never raises."""
    try:
        if isinstance(item, OpLeafItem):
            if not 0 <= item.index < dispute.agreed_ops:
                return False
            leaf_hash = hash_leaf(item.leaf)
            height = len(item.proof)
            if height < compute_height(dispute.num_ops):  # a proof up to a node both revealed alike
                node = compute_root_from_proof(item.index & ((1 << height) - 1), leaf_hash, item.proof)
                return (height, item.index >> height, node) in dispute.agreed_nodes
            return any(verify_inclusion(root, dispute.num_ops, item.index, leaf_hash, item.proof)
                       for root in dict.fromkeys(dispute.ops_roots))
        if isinstance(item, StateLeafItem):
            return is_included(dispute.state_before, item.index, hash_leaf(item.leaf), item.proof)
        return compute_digest_of_encoding(item.data) == item.digest
    except (TypeError, ValueError):
        return False


def _get_evidence_failure(state: GameState, role: Role, move: EvidenceSupply) -> tuple[Reason, str] | None:
    query, dispute = state.query, state.position.dispute
    assert isinstance(query, EvidenceQuery) and dispute is not None
    outstanding = set(query.requests)
    seen: set[EvidenceRequest] = set()
    for item in move.items:
        request = get_item_request(item)
        if request not in outstanding:
            return Reason.BAD_EVIDENCE, f"the {role} supplied {_describe(request)}, which was not requested"
        if request in seen:
            return Reason.BAD_EVIDENCE, f"the {role} supplied {_describe(request)} twice"
        seen.add(request)
        if not is_valid_item(dispute, item):
            return Reason.BAD_EVIDENCE, f"the {role}'s {_describe(request)} does not check"
    return None


# Rounds -----------------------------------------------------------------------------------------------


def _process_round(state: GameState, referee: Referee) -> GameState:
    query = state.query
    if isinstance(query, NodesQuery):
        return _process_nodes_round(state)
    if isinstance(query, StatesQuery):
        return _process_states_round(state, referee)
    if isinstance(query, TraceQuery):
        return _process_trace_round(state, referee)
    if isinstance(query, LeafQuery):
        return _process_leaf_round(state, referee)
    return _process_evidence_round(state, referee)


def _answers(state: GameState, kind: type) -> tuple[Any, Any]:
    first, second = state.answers
    assert isinstance(first, kind) and isinstance(second, kind)
    return first, second


def _process_nodes_round(state: GameState) -> GameState:
    descent, query = state.position.descent, state.query
    assert descent is not None and isinstance(query, NodesQuery)
    first, second = _answers(state, NodesReveal)
    differing = [i for i, (a, b) in enumerate(zip(first.hashes, second.hashes, strict=True)) if a != b]
    # Both reveals fold to their (different) nodes, so some descendant differs.
    offset = differing[0]
    height = descent.height - query.depth
    index = (descent.index << query.depth) + offset
    nodes = (first.hashes[offset], second.hashes[offset])
    position = state.position
    if descent.tree is TreeKind.OPS and offset:  # the siblings left of the difference are agreed
        first_child = descent.index << query.depth
        agreed = tuple((height, first_child + j, first.hashes[j]) for j in range(offset))
        position = replace(position, agreed_nodes=position.agreed_nodes + agreed)
    if height == 0:
        return _process_leaf_reached(state, position, LeafClaim(descent.tree, descent.size, index, nodes))
    child = Descent(descent.tree, descent.size, height, index, nodes)
    depth = min(state.setup.config.depth, height)
    return _process_new_query(state, NodesQuery(descent.tree, height, index, depth), replace(position, descent=child))


def _process_states_round(state: GameState, referee: Referee) -> GameState:
    claim = state.position.chain_leaf
    assert claim is not None
    first, second = _answers(state, StatesReveal)
    if claim.index == 0:
        truth = referee.compute_initial_state_root(get_job_id(state))
        correct = (first.state == truth, second.state == truth)
        return _process_judgement(state, correct, Reason.WRONG_INITIAL_STATE, "the referee computed s_0")
    if first.previous != second.previous:
        return _process_verdict(state, Outcome.BOTH_LOSE, None, ROLES, Reason.STATE_DISAGREEMENT,
                                f"two different preimages of the agreed chain leaf {claim.index - 1}")
    step = StepIndex(claim.index - 1)
    position = replace(state.position, step=step, state_before=first.previous, states_after=(first.state, second.state))
    return _process_new_query(state, TraceQuery(step), position)


def _process_trace_round(state: GameState, referee: Referee) -> GameState:
    first, second = _answers(state, TraceReveal)
    a, b = first.commitment, second.commitment
    position = replace(state.position, traces=(a, b))
    state = replace(state, position=position)
    if (a.num_ops, a.num_state_after) != (b.num_ops, b.num_state_after):
        assert position.step is not None
        assert position.state_before is not None
        truth = referee.compute_structure(get_job_id(state), position.step, position.state_before, (a.hint, b.hint))
        expected = (truth.num_ops, truth.num_state_after)
        correct = ((a.num_ops, a.num_state_after) == expected, (b.num_ops, b.num_state_after) == expected)
        return _process_judgement(state, correct, Reason.WRONG_STRUCTURE,
                                  f"step {position.step} has {truth.num_ops} ops and {truth.num_state_after} state leaves")
    if a.ops_root != b.ops_root:
        return _process_descent(state, position, TreeKind.OPS, a.num_ops, (a.ops_root, b.ops_root))
    return _process_descent(state, position, TreeKind.STATE_AFTER, a.num_state_after, (a.state_after, b.state_after))


def _process_leaf_round(state: GameState, referee: Referee) -> GameState:
    position = state.position
    claim, traces = position.leaf, position.traces
    assert claim is not None and traces is not None and position.step is not None
    assert position.state_before is not None
    first, second = _answers(state, LeafReveal)
    num_ops = traces[0].num_ops
    dispute = LeafDispute(
        job_id=get_job_id(state), step=position.step, tree=claim.tree, index=claim.index,
        leaves=(first.leaf, second.leaf), state_before=position.state_before,
        ops_roots=(traces[0].ops_root, traces[1].ops_root), num_ops=num_ops,
        num_state_after=traces[0].num_state_after, agreed_ops=claim.index if claim.tree is TreeKind.OPS else num_ops,
        hints=(traces[0].hint, traces[1].hint), agreed_nodes=position.agreed_nodes if claim.tree is TreeKind.OPS else (),
    )
    position = replace(position, dispute=dispute)
    requests = compute_checked_requests(referee.get_evidence_requests(dispute), dispute)
    if not requests:
        return _process_expected_leaf(replace(state, position=position), referee)
    return _process_evidence_query(state, position, requests, position.first_supplier)


def _process_evidence_query(state: GameState, position: Position, requests: tuple[EvidenceRequest, ...],
                            supplier: Role) -> GameState:
    """Ask `supplier` alone for `requests`. Evidence is agreed data, so one honest copy is enough; the other
    party is asked only for what the first withholds, which halves the bytes of honest evidence."""
    asked = position.asked + tuple((request, supplier) for request in requests)
    position = replace(position, requested=position.requested + tuple(r for r in requests if r not in position.requested),
                       evidence_rounds=position.evidence_rounds + 1, supplier=supplier, asked=asked)
    return _process_new_query(state, EvidenceQuery(requests), position)


def compute_checked_requests(requests: Sequence[EvidenceRequest], dispute: LeafDispute) -> tuple[EvidenceRequest, ...]:
    """The referee's requests without repeats; RefereeError for one no party could prove."""
    checked: list[EvidenceRequest] = []
    for request in requests:
        if isinstance(request, OpLeafRequest):
            ok = type(request.index) is int and 0 <= request.index < dispute.agreed_ops
        elif isinstance(request, StateLeafRequest):
            ok = type(request.index) is int and 0 <= request.index < 1 << MAX_PROOF_LENGTH
        elif isinstance(request, TensorRequest):
            ok = isinstance(request.digest, bytes) and len(request.digest) == 32
        else:
            ok = False
        if not ok:
            raise RefereeError(f"the referee asked for {request!r}, which no party can prove")
        if request not in checked:
            checked.append(request)
    return tuple(checked)


def _process_evidence_round(state: GameState, referee: Referee) -> GameState:
    position = state.position
    op_leaves = dict(position.evidence.op_leaves)
    state_leaves = dict(position.evidence.state_before_leaves)
    tensors = dict(position.evidence.tensors)
    for answer in state.answers:
        if answer is None:
            continue  # the party the query was not addressed to
        assert isinstance(answer, EvidenceSupply)
        for item in answer.items:
            if isinstance(item, OpLeafItem):
                op_leaves[item.index] = item.leaf
            elif isinstance(item, StateLeafItem):
                state_leaves[item.index] = item.leaf
            else:
                tensors[item.digest] = item.data
    evidence = Evidence(op_leaves, state_leaves, tensors)
    query, supplier = state.query, position.supplier
    assert isinstance(query, EvidenceQuery) and supplier is not None
    withholders = position.withholders
    if supplier not in withholders and not all(evidence.has(request) for request in query.requests):
        withholders += (supplier,)  # asked for agreed facts, which an honest party always holds
    position = replace(position, evidence=evidence, withholders=withholders)
    return _process_expected_leaf(replace(state, position=position), referee)


def _process_expected_leaf(state: GameState, referee: Referee) -> GameState:
    position = state.position
    dispute = position.dispute
    assert dispute is not None
    result = referee.compute_expected_leaf(dispute, position.evidence)
    if isinstance(result, MissingEvidence):
        requests = tuple(r for r in compute_checked_requests(result.requests, dispute) if not position.evidence.has(r))
        if not requests:
            raise RefereeError("the referee reported missing evidence but named nothing that was not supplied")
        exhausted = [request for request in requests if {role for r, role in position.asked if r == request} == set(ROLES)]
        if exhausted:
            # Every request names a fact both parties are bound to: an honest party always holds it.
            return _process_verdict(state, Outcome.BOTH_LOSE, None, ROLES, Reason.MISSING_EVIDENCE,
                                    f"neither party supplied {_describe(exhausted[0])}")
        if position.evidence_rounds >= state.setup.config.max_evidence_rounds:
            if not position.withholders:
                raise RefereeError(f"the referee wants more than {position.evidence_rounds} evidence rounds")
            # the budget ran out because evidence was withheld: that is the withholders' fault
            if len(position.withholders) == 2:
                return _process_verdict(state, Outcome.BOTH_LOSE, None, ROLES, Reason.MISSING_EVIDENCE,
                                        "both parties withheld evidence until the evidence rounds ran out")
            return _process_loss(state, position.withholders[0], Reason.MISSING_EVIDENCE,
                                 f"the {position.withholders[0]} withheld evidence until the evidence rounds ran out")
        last = position.supplier
        if last is not None and any((request, last) in position.asked for request in requests):
            # the last supplier withheld something it was asked for: from now on the other party goes first
            position = replace(position, first_supplier=get_opponent(last))
        return _process_evidence_query(state, position, requests, position.first_supplier)
    if not isinstance(result, bytes):
        raise RefereeError(f"the referee returned {type(result).__name__}, not leaf bytes")
    correct = (dispute.leaves[0] == result, dispute.leaves[1] == result)
    return _process_judgement(state, correct, Reason.WRONG_LEAF,
                              f"the referee recomputed {dispute.tree} leaf {dispute.index} of step {dispute.step}")


# Transitions between queries and into the verdict -----------------------------------------------------


def _process_new_query(state: GameState, query: Query, position: Position) -> GameState:
    phase = get_query_phase(query)
    return replace(
        state, query=query, position=position, seq=state.seq + 1, answers=(None, None),
        round_histories=state.round_histories + (state.history,), round_started_at=state.now, rounds_chain=state.rounds_chain + (phase is Phase.CHAIN),
        rounds_trace=state.rounds_trace + (phase is Phase.TRACE),
    )


def _process_descent(state: GameState, position: Position, tree: TreeKind, size: int, roots: Pair[Root]) -> GameState:
    height = compute_height(size)
    if height == 0:
        return _process_leaf_reached(state, position, LeafClaim(tree, size, 0, roots))
    query = NodesQuery(tree, height, 0, min(state.setup.config.depth, height))
    return _process_new_query(state, query, replace(position, descent=Descent(tree, size, height, 0, roots)))


def _process_leaf_reached(state: GameState, position: Position, claim: LeafClaim) -> GameState:
    position = replace(position, descent=None)
    if claim.tree is TreeKind.CHAIN:
        return _process_new_query(state, StatesQuery(claim.index), replace(position, chain_leaf=claim))
    return _process_new_query(state, LeafQuery(claim.tree, claim.index), replace(position, leaf=claim))


def _process_judgement(state: GameState, correct: Pair[bool], reason: Reason, detail: str) -> GameState:
    """The referee has named the truth: whoever does not match it loses."""
    if correct[0] and correct[1]:
        raise RefereeError("the referee accepted two different claims")
    if correct[0]:
        return _process_loss(state, Role.CHALLENGER, reason, detail)
    if correct[1]:
        return _process_loss(state, Role.WORKER, reason, detail)
    return _process_verdict(state, Outcome.BOTH_LOSE, None, ROLES, reason, detail + "; neither party matches")


def _process_loss(state: GameState, loser: Role, reason: Reason, detail: str, evidence: tuple[Any, ...] = ()) -> GameState:
    return _process_verdict(state, Outcome.DECIDED, get_opponent(loser), (loser,), reason, detail, evidence)


def get_focus(position: Position) -> tuple[TreeKind | None, int | None]:
    """The tree and leaf the game had narrowed down to, as far as it got."""
    if position.leaf is not None:
        return position.leaf.tree, position.leaf.index
    if position.descent is not None:
        return position.descent.tree, None
    if position.step is None and position.chain_leaf is not None:
        return TreeKind.CHAIN, position.chain_leaf.index
    return None, None


def _process_verdict(state: GameState, outcome: Outcome, winner: Role | None, losers: tuple[Role, ...],
                     reason: Reason, detail: str, evidence: tuple[Any, ...] = ()) -> GameState:
    tree, index = get_focus(state.position)

    def party(role: Role) -> PartyRef:
        return PartyRef(role, state.keys[get_role_index(role)])

    verdict = Verdict(
        outcome=outcome, winner=None if winner is None else party(winner), losers=tuple(party(r) for r in losers),
        reason=reason, detail=detail, phase=Phase.SETUP if state.query is None else get_query_phase(state.query),
        tree=tree, step=state.position.step, index=index, rounds_chain=state.rounds_chain,
        rounds_trace=state.rounds_trace, bytes_total=state.bytes_total,
        bytes_without_tensors=state.bytes_total - state.bytes_tensors, rejected_messages=len(state.rejected),
        decided_at=state.now, history=state.history, evidence=evidence,
    )
    return replace(state, verdict=verdict, query=None, answers=(None, None))
