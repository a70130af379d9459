"""The pure rules, one rule at a time: setup checks, refused messages, clocks, equivocation, malformed
answers, evidence checks, referee misbehaviour, proofs without sizes, and the named invariants."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.game import (
    GAME_INVARIANTS,
    MINIMAL,
    TRANSITION_INVARIANTS,
    ClockExpired,
    Evidence,
    EvidenceQuery,
    EvidenceRequest,
    EvidenceSupply,
    GameOver,
    GameSetup,
    GameSetupError,
    GameState,
    InvalidTime,
    InvariantViolation,
    LeafDispute,
    MissingEvidence,
    NodesQuery,
    OpLeafRequest,
    Outcome,
    Reason,
    RefereeError,
    Rejection,
    Role,
    TensorItem,
    TensorRequest,
    check_game_invariants,
    create_game,
    get_deadline,
    get_opponent,
    get_owing_roles,
    process_clock,
    process_move,
    sign_move,
)
from protocol.game.commitments import SignedRunCommitment, sign_run_commitment
from protocol.game.enums import TreeKind
from protocol.game.messages import Move, OpLeafItem, SignedMove
from protocol.game.rules import compute_game_id, is_included, is_valid_item
from protocol.merkle import compute_tree, hash_leaf
from protocol.types import Root, Seconds, SignatureBytes
from verifier.game import HonestStrategy, play_game
from verifier.game.strategy import Send, get_round_history, shorten_proof
from verifier.game.toy import ToyConfig, ToyFault, ToyMachine, ToyProvider, ToyReferee

from .game_support import (
    KEYS,
    assert_honest_wins,
    check_every_event,
    game_settings,
    get_toy,
    play_honest_against,
)

CONFIG = ToyConfig(steps=6, num_ops=8)
FAULT = ToyFault("value", 2, 3)


def make_setup(fault: ToyFault | None = FAULT, **changes: object) -> GameSetup:
    machine, provider = get_toy(CONFIG)
    worker = HonestStrategy(provider, KEYS[Role.WORKER]).get_run_commitment()
    challenger = HonestStrategy(ToyProvider(machine, fault), KEYS[Role.CHALLENGER]).get_run_commitment()
    setup = GameSetup(worker, challenger, MINIMAL, Seconds(0.0), {"toy": True}, dispute_id=bytes(range(32)))
    return replace(setup, **changes)  # type: ignore[arg-type]


def answer(state: GameState, role: Role, move: Move | object, *, key: object = None, seq: int | None = None) -> SignedMove:
    seq = state.seq if seq is None else seq
    return sign_move(key or KEYS[role], state.game_id, seq, role, move,  # type: ignore[arg-type]
                     prev=get_round_history(state, seq))


def honest_move(state: GameState, role: Role) -> Move:
    machine, provider = get_toy(CONFIG)
    chosen = provider if role is Role.WORKER else ToyProvider(machine, ToyFault("value", 2, 3))
    move = HonestStrategy(chosen, KEYS[role]).compute_move(state, role)
    assert move is not None
    return move


REFEREE = ToyReferee(get_toy(CONFIG)[0])


# Setup ------------------------------------------------------------------------------------------------


def _resigned(signed: SignedRunCommitment, key_role: Role, **fields: object) -> SignedRunCommitment:
    return sign_run_commitment(KEYS[key_role], replace(signed.commitment, **fields))  # type: ignore[arg-type]


@pytest.mark.parametrize("change", [
    "other job", "other steps", "bad signature", "same keys", "arity 3", "arity 1", "arity 2048", "clock 0",
    "clock inf", "context", "started nan",
])
def test_create_game_refuses_bad_setups(change: str) -> None:
    setup = make_setup()
    worker, challenger = setup.worker, setup.challenger
    other_machine = ToyMachine(replace(CONFIG, seed=9))
    cases = {
        "other job": lambda: replace(setup, challenger=_resigned(challenger, Role.CHALLENGER, job_id=other_machine.job_id)),
        "other steps": lambda: replace(setup, challenger=_resigned(challenger, Role.CHALLENGER, steps=7)),
        "bad signature": lambda: replace(setup, worker=replace(worker, signature=SignatureBytes(bytes(64)))),
        "same keys": lambda: replace(setup, challenger=_resigned(challenger, Role.WORKER,
                                                                 worker_key=worker.commitment.worker_key)),
        "arity 3": lambda: replace(setup, config=replace(MINIMAL, arity=3)),
        "arity 1": lambda: replace(setup, config=replace(MINIMAL, arity=1)),
        "arity 2048": lambda: replace(setup, config=replace(MINIMAL, arity=2048)),
        "clock 0": lambda: replace(setup, config=replace(MINIMAL, clock_seconds=Seconds(0.0))),
        "clock inf": lambda: replace(setup, config=replace(MINIMAL, clock_seconds=Seconds(math.inf))),
        "context": lambda: replace(setup, context={"a": {1, 2}}),
        "started nan": lambda: replace(setup, started_at=Seconds(math.nan)),
    }
    with pytest.raises(GameSetupError):
        create_game(cases[change]())


def test_equal_roots_nothing_to_dispute() -> None:
    state = create_game(make_setup(fault=None))
    assert state.verdict is not None and state.verdict.outcome is Outcome.NO_DISPUTE and state.query is None
    check_game_invariants(state)
    with pytest.raises(GameOver):
        process_clock(state, 1.0)


def test_first_query_is_the_chain_root() -> None:
    state = create_game(make_setup())
    assert state.query == NodesQuery(state.query.tree, 3, 0, 1)  # type: ignore[union-attr]
    assert state.seq == 0 and state.rounds_chain == 1 and state.game_id == compute_game_id(state.setup)
    check_game_invariants(state)


# Refused messages and clocks --------------------------------------------------------------------------


def test_badly_signed_message_is_recorded_and_the_clock_keeps_running() -> None:
    state = create_game(make_setup())
    forged = answer(state, Role.WORKER, honest_move(state, Role.WORKER), key=KEYS[Role.CHALLENGER])
    after = process_move(state, forged, 5.0, REFEREE)
    check_game_invariants(after, state)
    assert after.verdict is None and after.answers == (None, None)
    after = process_move(after, answer(state, Role.CHALLENGER, honest_move(state, Role.CHALLENGER)), 6.0, REFEREE)
    assert [r.reason for r in after.rejected] == [Rejection.BAD_SIGNATURE.value]
    assert after.history != state.history and after.bytes_total > 0
    assert get_deadline(after, Role.WORKER) == get_deadline(state, Role.WORKER) == MINIMAL.clock_seconds
    timed_out = process_clock(after, MINIMAL.clock_seconds)
    assert timed_out.verdict is not None and timed_out.verdict.reason is Reason.TIMEOUT
    assert timed_out.verdict.loser is not None and timed_out.verdict.loser.role is Role.WORKER  # type: ignore[union-attr]


def test_other_games_unknown_senders_duplicates_and_future_queries_are_refused() -> None:
    state = create_game(make_setup())
    move = honest_move(state, Role.WORKER)
    other_game = sign_move(KEYS[Role.WORKER], bytes(32), state.seq, Role.WORKER, move,
                           prev=get_round_history(state, state.seq))
    stranger = replace(answer(state, Role.WORKER, move), sender="referee")
    future = answer(state, Role.WORKER, move, seq=state.seq + 1)
    real = answer(state, Role.WORKER, move)
    for message in (other_game, stranger, future):
        state = process_move(state, message, 1.0, REFEREE)
    state = process_move(state, real, 1.0, REFEREE)
    state = process_move(state, real, 2.0, REFEREE)
    assert [r.reason for r in state.rejected] == [Rejection.BAD_SIGNATURE, Rejection.UNKNOWN_SENDER,
                                                   Rejection.FUTURE_QUERY, Rejection.DUPLICATE]
    assert state.verdict is None and state.answers[0] is not None and state.answers[1] is None
    assert state.clocks[0] == MINIMAL.clock_seconds - 1.0  # the worker's clock stopped at its accepted answer


def test_time_checks() -> None:
    state = create_game(make_setup())
    later = process_clock(state, 10.0)
    with pytest.raises(InvalidTime):
        process_clock(later, 9.0)
    with pytest.raises(InvalidTime):
        process_clock(later, math.nan)
    with pytest.raises(ClockExpired):
        process_move(state, answer(state, Role.WORKER, honest_move(state, Role.WORKER)), MINIMAL.clock_seconds,
                     REFEREE)


def test_both_silent_both_lose() -> None:
    state = process_clock(create_game(make_setup()), MINIMAL.clock_seconds + 1.0)
    assert state.verdict is not None and state.verdict.outcome is Outcome.BOTH_LOSE
    assert state.verdict.reason is Reason.TIMEOUT and len(state.verdict.losers) == 2
    check_game_invariants(state)


def test_malformed_and_equivocating_answers_lose() -> None:
    state = create_game(make_setup())
    malformed = process_move(state, answer(state, Role.CHALLENGER, {"type": "nodes", "hashes": ["00"]}), 1.0, REFEREE)
    assert malformed.verdict is not None and malformed.verdict.reason is Reason.MALFORMED_MESSAGE
    assert malformed.verdict.loser.role is Role.CHALLENGER  # type: ignore[union-attr]
    move = honest_move(state, Role.WORKER)
    first = process_move(state, answer(state, Role.WORKER, move), 1.0, REFEREE)
    other = {"type": "nodes", "hashes": [h[::-1] for h in answer(state, Role.WORKER, move).move["hashes"]]}
    second = process_move(first, answer(state, Role.WORKER, other), 2.0, REFEREE)
    assert second.verdict is not None and second.verdict.reason is Reason.EQUIVOCATION
    assert second.verdict.loser.role is Role.WORKER and len(second.verdict.evidence) == 2  # type: ignore[union-attr]
    with pytest.raises(GameOver):
        process_move(second, answer(state, Role.CHALLENGER, honest_move(state, Role.CHALLENGER)), 3.0, REFEREE)


# Evidence and the referee -----------------------------------------------------------------------------


class ExtraEvidence(HonestStrategy):
    """Supplies an item nobody asked for (in place of one that was)."""

    def answer_evidence(self, state: GameState, role: Role, query: EvidenceQuery) -> Move | None:
        move = super().answer_evidence(state, role, query)
        assert isinstance(move, EvidenceSupply)
        return EvidenceSupply((*move.items[1:], TensorItem(Root(bytes(32)), b"")))


class DoubleEvidence(HonestStrategy):
    """Supplies its first item in place of every other."""

    def answer_evidence(self, state: GameState, role: Role, query: EvidenceQuery) -> Move | None:
        move = super().answer_evidence(state, role, query)
        assert isinstance(move, EvidenceSupply)
        return EvidenceSupply(move.items[:1] * len(move.items))


@pytest.mark.parametrize("cls", [ExtraEvidence, DoubleEvidence])
def test_evidence_must_be_requested_once(cls: type[HonestStrategy]) -> None:
    machine, provider = get_toy(CONFIG)
    binary = next(j for j, op in enumerate(machine.program) if len(set(op.inputs)) == 2)  # two requests
    liar = cls(ToyProvider(machine, ToyFault("value", 4, binary)), KEYS[Role.CHALLENGER])
    result = play_honest_against(liar, Role.WORKER, machine, provider)
    assert_honest_wins(result, Role.WORKER)
    assert result.verdict.reason is Reason.BAD_EVIDENCE


class GreedyReferee(ToyReferee):
    """Also wants a tensor that does not exist: evidence nobody can supply."""

    GHOST = TensorRequest(Root(bytes(range(32))))

    def get_evidence_requests(self, dispute: LeafDispute) -> list[EvidenceRequest]:
        return [*super().get_evidence_requests(dispute), self.GHOST]

    def compute_expected_leaf(self, dispute: LeafDispute, evidence: Evidence) -> bytes | MissingEvidence:
        if not evidence.has(self.GHOST):
            return MissingEvidence((self.GHOST,))
        return super().compute_expected_leaf(dispute, evidence)


class OverreachingReferee(ToyReferee):
    """Asks for an op leaf past the first difference, which no party can prove."""

    def get_evidence_requests(self, dispute: LeafDispute) -> list[EvidenceRequest]:
        return [OpLeafRequest(dispute.agreed_ops)]


class VagueReferee(ToyReferee):
    def compute_expected_leaf(self, dispute: LeafDispute, evidence: Evidence) -> bytes | MissingEvidence:
        return "a string"  # type: ignore[return-value]


def _play_with(referee: ToyReferee) -> object:
    machine, provider = get_toy(CONFIG)
    return play_game(HonestStrategy(provider, KEYS[Role.WORKER]),
                     HonestStrategy(ToyProvider(machine, ToyFault("value", 1, 5)), KEYS[Role.CHALLENGER]),
                     referee, MINIMAL, observer=check_every_event)


def test_evidence_nobody_supplies_makes_both_lose() -> None:
    result = _play_with(GreedyReferee(get_toy(CONFIG)[0]))
    assert result.verdict.outcome is Outcome.BOTH_LOSE  # type: ignore[attr-defined]
    assert result.verdict.reason is Reason.MISSING_EVIDENCE  # type: ignore[attr-defined]


@pytest.mark.parametrize("cls", [OverreachingReferee, VagueReferee])
def test_referee_misbehaviour_is_an_error_not_a_verdict(cls: type[ToyReferee]) -> None:
    with pytest.raises(RefereeError):
        _play_with(cls(get_toy(CONFIG)[0]))


class SlowHonest(HonestStrategy):
    def compute_actions(self, state: GameState, role: Role) -> Sequence[Send]:
        return [replace(send, delay=Seconds(100.0)) for send in super().compute_actions(state, role)]


def test_chess_clock_accumulates_over_rounds() -> None:
    """Each answer may take long, but the budget is for the whole game: the slow party flags eventually."""
    machine, provider = get_toy(CONFIG)
    slow = SlowHonest(provider, KEYS[Role.WORKER])
    liar = HonestStrategy(ToyProvider(machine, ToyFault("value", 5, 7)), KEYS[Role.CHALLENGER])
    result = play_game(slow, liar, ToyReferee(machine), MINIMAL, observer=check_every_event)
    assert result.verdict.reason is Reason.TIMEOUT and result.verdict.loser.role is Role.WORKER  # type: ignore[union-attr]
    assert result.verdict.rounds == math.ceil(MINIMAL.clock_seconds / 100.0)


# Proofs without sizes ---------------------------------------------------------------------------------


@game_settings(60)
@given(st.lists(st.binary(max_size=8), min_size=1, max_size=40), st.data())
def test_is_included_only_at_the_true_height(leaves: list[bytes], data: st.DataObject) -> None:
    tree = compute_tree(leaves)
    index = data.draw(st.integers(0, len(leaves) - 1))
    proof = tree.prove(index)
    assert is_included(tree.root, index, hash_leaf(leaves[index]), proof)
    assert not is_included(tree.root, index, hash_leaf(leaves[index] + b"!"), proof)
    if proof:
        assert not is_included(tree.root, index, hash_leaf(leaves[index]), proof[:-1])
    assert not is_included(tree.root, index, hash_leaf(leaves[index]), (*proof, tree.root))
    assert not is_included(tree.root, index + (1 << len(proof)), hash_leaf(leaves[index]), proof)


# Invariants -------------------------------------------------------------------------------------------


def test_invariants_are_named_and_explained() -> None:
    names = [i.name for i in GAME_INVARIANTS] + [i.name for i in TRANSITION_INVARIANTS]
    assert len(names) == len(set(names)) >= 15
    assert all(len(i.rationale) > 20 for i in GAME_INVARIANTS)
    assert all(len(i.rationale) > 20 for i in TRANSITION_INVARIANTS)


def test_invariants_catch_broken_states() -> None:
    state = create_game(make_setup())
    broken = {
        "clocks-within-budget": replace(state, clocks=(Seconds(-1.0), state.clocks[1])),
        "seq-counts-rounds": replace(state, seq=5),
        "query-iff-live": replace(state, query=None),
        "time-ordered": replace(state, round_started_at=Seconds(state.now + 1)),
        "bytes-accounted": replace(state, bytes_tensors=1),
        "evidence-asked-of-one-party": replace(state, query=EvidenceQuery((OpLeafRequest(0),))),
        "agreed-nodes-precede-the-difference": replace(
            state, position=replace(state.position, agreed_nodes=((0, 0, Root(bytes(32))),))),
    }
    for name, bad in broken.items():
        with pytest.raises(InvariantViolation, match=name):
            check_game_invariants(bad)
    later = process_clock(state, 1.0)
    with pytest.raises(InvariantViolation, match="history-advances"):
        check_game_invariants(replace(later, history=state.history), state)


def test_a_flag_falling_at_time_zero_still_falls() -> None:
    setup = make_setup(started_at=Seconds(-MINIMAL.clock_seconds))
    state = process_clock(create_game(setup), 0.0)
    assert state.verdict is not None and state.verdict.reason is Reason.TIMEOUT


# Evidence goes to one party ---------------------------------------------------------------------------


class Withholder(HonestStrategy):
    def answer_evidence(self, state: GameState, role: Role, query: EvidenceQuery) -> Move | None:
        return EvidenceSupply(())


def _evidence_senders(result: object) -> list[tuple[int, str]]:
    return [(event.message.seq, event.message.sender) for event in result.transcript.events  # type: ignore[attr-defined]
            if event.message is not None and isinstance(event.message.move, dict) and event.message.move.get("type") == "evidence"]


@pytest.mark.parametrize("liar_role", list(Role))
def test_evidence_is_asked_of_one_party_and_of_the_other_only_when_withheld(liar_role: Role) -> None:
    machine, provider = get_toy(CONFIG)
    binary = next(j for j, op in enumerate(machine.program) if len(set(op.inputs)) == 2)
    fault = ToyFault("value", 4, binary)
    for cls, expect_switch in ((HonestStrategy, False), (Withholder, liar_role is Role.CHALLENGER)):
        liar = cls(ToyProvider(machine, fault), KEYS[liar_role])
        result = play_honest_against(liar, get_opponent(liar_role), machine, provider)
        assert_honest_wins(result, get_opponent(liar_role))
        senders = _evidence_senders(result)
        assert len({seq for seq, _ in senders}) == len(senders)  # one answer per evidence round
        assert senders[0][1] == Role.CHALLENGER.value  # the challenger is asked first
        if expect_switch:  # the challenger withheld: the worker is asked, and goes first from then on
            assert [sender for _, sender in senders[1:]] == [Role.WORKER.value] * (len(senders) - 1)


def test_an_answer_from_the_party_not_asked_is_refused() -> None:
    machine, provider = get_toy(CONFIG)
    state = create_game(make_setup())
    worker, challenger = HonestStrategy(provider, KEYS[Role.WORKER]), HonestStrategy(ToyProvider(machine, FAULT), KEYS[Role.CHALLENGER])
    at = 0.0
    while not isinstance(state.query, EvidenceQuery):
        for role, strategy in ((Role.WORKER, worker), (Role.CHALLENGER, challenger)):
            if role in get_owing_roles(state):
                move = strategy.compute_move(state, role)
                state = process_move(state, answer(state, role, move), at, REFEREE)
    assert get_owing_roles(state) == (Role.CHALLENGER,)
    move = worker.compute_move(state, Role.WORKER)
    refused = process_move(state, answer(state, Role.WORKER, move), at, REFEREE)
    assert refused.rejected[-1].reason == Rejection.NOT_ASKED.value and refused.verdict is None
    assert refused.answers == state.answers and refused.clocks == state.clocks


# Op leaves proven up to a node both parties revealed alike ------------------------------------------------


@given(st.integers(2, 70), st.data())
def test_short_proofs_check_only_against_agreed_nodes(size: int, data: st.DataObject) -> None:
    leaves = [bytes([i % 256, i // 256]) for i in range(size)]
    tree = compute_tree(leaves)
    height = data.draw(st.integers(0, tree.height - 1), label="agreed height")
    first = data.draw(st.integers(0, (size - 1) >> height), label="agreed index")
    agreed = ((height, first, tree.node(height, first)),)
    agreed_ops = min(size, (first + 1) << height)
    dispute = LeafDispute(job_id=bytes(32), step=0, tree=TreeKind.OPS, index=agreed_ops - 1, leaves=(b"a", b"b"),  # type: ignore[arg-type]
                          state_before=Root(bytes(32)), ops_roots=(tree.root, tree.root), num_ops=size, num_state_after=1,
                          agreed_ops=agreed_ops, agreed_nodes=agreed)
    state = GameState.__new__(GameState)
    object.__setattr__(state, "position", replace(create_game(make_setup()).position, dispute=dispute))
    index = data.draw(st.integers(0, agreed_ops - 1), label="leaf")
    full = tree.prove(index)
    short = shorten_proof(full, index, state)
    assert is_valid_item(dispute, OpLeafItem(index, leaves[index], full))
    assert is_valid_item(dispute, OpLeafItem(index, leaves[index], short))
    under = index >> height == first
    assert len(short) == (height if under else len(full))
    if short:
        forged = (Root(bytes(32)),) + short[1:]
        assert not is_valid_item(dispute, OpLeafItem(index, leaves[index], forged))
    for cut in range(len(full)):
        if (cut, index >> cut) != (height, first):
            assert not is_valid_item(dispute, OpLeafItem(index, leaves[index], full[:cut]))
    assert not is_valid_item(dispute, OpLeafItem(index, leaves[index] + b"x", short))


def test_withholding_that_exhausts_the_evidence_rounds_loses_for_the_withholder() -> None:
    """With exactly the rounds an honest game needs, the extra round a withholding first supplier forces
    must not turn into a referee error: the withholder loses."""
    from verifier.game.adversaries import CATALOGUE, Scenario

    machine, provider = get_toy(ToyConfig())
    config = replace(MINIMAL, max_evidence_rounds=2)  # what the toy referee needs with honest suppliers
    honest = HonestStrategy(provider, KEYS[Role.WORKER])
    liar = CATALOGUE["withheld-evidence"].build(provider, KEYS[Role.CHALLENGER], Scenario(step=3, node=5))
    result = play_game(honest, liar, ToyReferee(machine), config, observer=check_every_event)
    assert_honest_wins(result, Role.WORKER)
    assert result.verdict.reason is Reason.MISSING_EVIDENCE
