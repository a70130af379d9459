"""The honest party against consistent liars of the toy machine: every fault kind, at every position,
as worker and as challenger, for several arities."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from protocol.game import Outcome, Reason, Role, TreeKind, get_opponent
from protocol.game.transcript import compute_transcript_json
from verifier.game import HonestStrategy, verify_transcript
from verifier.game.toy import FAULT_KINDS, ToyConfig, ToyFault, ToyMachine, ToyProvider, ToyReferee

from .game_support import (
    KEYS,
    assert_honest_wins,
    compute_round_bound,
    game_settings,
    get_toy,
    play,
    play_honest_against,
)

EXPECTED_REASON = {
    "value": Reason.WRONG_LEAF, "operator": Reason.WRONG_LEAF, "argument": Reason.WRONG_LEAF,
    "source": Reason.WRONG_LEAF, "shape": Reason.WRONG_LEAF, "state": Reason.WRONG_LEAF,
    "initial": Reason.WRONG_INITIAL_STATE, "extra_op": Reason.WRONG_STRUCTURE,
}
EXPECTED_TREE = {"state": TreeKind.STATE_AFTER, "initial": TreeKind.CHAIN, "extra_op": None}


def test_both_honest_same_run_nothing_to_dispute() -> None:
    machine, provider = get_toy(ToyConfig(steps=6, num_ops=9))
    worker = HonestStrategy(provider, KEYS[Role.WORKER])
    challenger = HonestStrategy(ToyProvider(machine), KEYS[Role.CHALLENGER])  # recomputed independently
    result = play(worker, challenger, machine)
    assert result.verdict.outcome is Outcome.NO_DISPUTE
    assert result.verdict.reason is Reason.NOTHING_TO_DISPUTE
    assert result.verdict.winner is None and result.verdict.losers == () and result.verdict.rounds == 0
    assert result.transcript.events == ()
    assert verify_transcript(compute_transcript_json(result.transcript), ToyReferee(machine)).valid


@st.composite
def toy_disputes(draw: st.DrawFn) -> tuple[ToyConfig, ToyFault, Role, int]:
    steps = draw(st.integers(1, 20))
    num_state = draw(st.integers(3, 6))
    num_ops = draw(st.integers(num_state, 24))
    config = ToyConfig(steps=steps, num_ops=num_ops, num_state=num_state, width=draw(st.integers(1, 4)),
                       seed=draw(st.integers(0, 3)))
    step = draw(st.sampled_from([0, steps - 1]) | st.integers(0, steps - 1))  # first, last, or any step
    node = draw(st.sampled_from([0, num_ops - 1]) | st.integers(0, num_ops - 1))  # first, last, or any op
    fault = ToyFault(draw(st.sampled_from(FAULT_KINDS)), step, node, draw(st.integers(0, num_state - 1)))
    return config, fault, draw(st.sampled_from(list(Role))), draw(st.sampled_from([2, 4, 16]))


@game_settings(250)
@given(toy_disputes())
@example((ToyConfig(steps=1, num_ops=3, num_state=3), ToyFault("value", 0, 0), Role.WORKER, 2))
@example((ToyConfig(steps=1, num_ops=3, num_state=3), ToyFault("value", 0, 2), Role.CHALLENGER, 16))
@example((ToyConfig(steps=16, num_ops=16), ToyFault("value", 15, 15), Role.CHALLENGER, 4))
@example((ToyConfig(steps=15, num_ops=16), ToyFault("shape", 0, 0), Role.WORKER, 2))
def test_honest_beats_consistent_toy_liar(case: tuple[ToyConfig, ToyFault, Role, int]) -> None:
    config, fault, honest_role, arity = case
    machine, provider = get_toy(config)
    liar = HonestStrategy(ToyProvider(machine, fault), KEYS[get_opponent(honest_role)])
    result = play_honest_against(liar, honest_role, machine, provider, arity)
    assert_honest_wins(result, honest_role)
    verdict = result.verdict
    assert verdict.reason is EXPECTED_REASON[fault.kind]
    assert verdict.tree is EXPECTED_TREE.get(fault.kind, TreeKind.OPS)
    if verdict.tree is TreeKind.OPS:
        assert verdict.step == fault.step and verdict.index == fault.node % config.num_ops
    if fault.kind == "state":
        assert verdict.index == fault.leaf % config.num_state
    if fault.kind != "initial":
        assert verdict.step == fault.step
    assert verdict.rounds <= compute_round_bound(config.steps, config.num_ops, arity)
    assert verify_transcript(compute_transcript_json(result.transcript), ToyReferee(machine)).valid


@game_settings(60)
@given(toy_disputes(), st.sampled_from(FAULT_KINDS), st.integers(0, 30))
def test_two_liars_end_in_a_coherent_verdict(case: tuple[ToyConfig, ToyFault, Role, int], other_kind: str,
                                             other_node: int) -> None:
    """With nobody honest the game still ends, within the bound, with a verdict the transcript backs."""
    config, fault, role, arity = case
    machine, _ = get_toy(config)
    other = ToyFault(other_kind, (fault.step + 1) % config.steps, other_node, other_node)
    first = HonestStrategy(ToyProvider(machine, fault), KEYS[role])
    second = HonestStrategy(ToyProvider(machine, other), KEYS[get_opponent(role)])
    result = play(first, second, machine, arity) if role is Role.WORKER else play(second, first, machine, arity)
    assert result.verdict.rounds <= compute_round_bound(config.steps, config.num_ops + 1, arity)
    assert verify_transcript(compute_transcript_json(result.transcript), ToyReferee(machine)).valid


def test_same_fault_on_both_sides_is_no_dispute() -> None:
    machine, _ = get_toy(ToyConfig(steps=5, num_ops=8))
    fault = ToyFault("value", 2, 3)
    worker = HonestStrategy(ToyProvider(machine, fault), KEYS[Role.WORKER])
    challenger = HonestStrategy(ToyProvider(machine, fault), KEYS[Role.CHALLENGER])
    assert play(worker, challenger, machine).verdict.outcome is Outcome.NO_DISPUTE


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_every_fault_changes_the_chain(kind: str) -> None:
    """A fault the chain does not see could not be disputed: each kind must change s_{t+1} (or s_0)."""
    machine = ToyMachine(ToyConfig(steps=4, num_ops=10, num_state=5))
    honest = ToyProvider(machine)
    for step in range(4):
        for node in range(10):
            liar = ToyProvider(machine, ToyFault(kind, step, node, node))
            first = 0 if kind == "initial" else step + 1
            assert liar.get_state_root(first) != honest.get_state_root(first)
            assert all(liar.get_state_root(i) == honest.get_state_root(i) for i in range(first))


def test_toy_referee_recomputes_the_honest_leaf() -> None:
    """The referee's re-execution of any op, from the honest party's evidence, is the honest leaf."""
    from protocol.game import (
        Evidence,
        LeafDispute,
        MissingEvidence,
        OpLeafRequest,
        StateLeafRequest,
        TensorRequest,
    )
    from protocol.types import StepIndex

    machine, provider = get_toy(ToyConfig(steps=3, num_ops=12, num_state=5))
    referee = ToyReferee(machine)
    step = StepIndex(1)
    commitment = provider.get_trace_commitment(step)
    for tree, count in ((TreeKind.OPS, commitment.num_ops), (TreeKind.STATE_AFTER, commitment.num_state_after)):
        for index in range(count):
            truth = provider.get_op_leaf(step, index) if tree is TreeKind.OPS else provider.get_state_leaf(2, index)
            dispute = LeafDispute(machine.job_id, step, tree, index, (truth, b"x"), commitment.state_before,
                                  (commitment.ops_root, commitment.ops_root), commitment.num_ops,
                                  commitment.num_state_after, index if tree is TreeKind.OPS else commitment.num_ops)
            evidence = Evidence()
            for _ in range(3):
                result = referee.compute_expected_leaf(dispute, evidence)
                if not isinstance(result, MissingEvidence):
                    break
                ops, states, tensors = dict(evidence.op_leaves), dict(evidence.state_before_leaves), dict(evidence.tensors)
                for request in result.requests:
                    if isinstance(request, OpLeafRequest):
                        ops[request.index] = provider.get_op_leaf(step, request.index)
                    elif isinstance(request, StateLeafRequest):
                        states[request.index] = provider.get_state_leaf(step, request.index)
                    elif isinstance(request, TensorRequest):
                        data = provider.get_tensor(step, request.digest)
                        assert data is not None
                        tensors[request.digest] = data
                evidence = Evidence(ops, states, tensors)
            assert result == truth, (tree, index)
