"""Structure hints: a hint opens a state's root to its layout and small values and refuses every change,
the referee takes s_t's layout only from a hint proven against the agreed s_t and builds the same
skeleton as a replay from s_0 in one meta step, and a hint that is not proven loses its sender the game."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from protocol.encoding import DTYPE_CODES, compute_digest
from protocol.game import Reason, Role, get_opponent
from protocol.hint import compute_state_layout, compute_structure_hint, open_structure_hint
from protocol.job import compute_job_id
from protocol.signing import generate_private_key
from protocol.state import compute_state_root
from protocol.types import Root, StepIndex
from prover.presets import resolve_task
from prover.provider import RunTraceProvider
from prover.run import load_run, restore_session
from verifier.dispute import make_game_config
from verifier.game.adversaries import CATALOGUE, Scenario
from verifier.game.driver import play_game
from verifier.game.strategy import HonestStrategy
from verifier.referee import RefereeError, TraceReferee

DTYPES = sorted(DTYPE_CODES, key=str)
SHAPES = st.lists(st.integers(0, 3), max_size=3).map(tuple)
STATES = st.dictionaries(
    st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=8),
    st.tuples(st.sampled_from(DTYPES), SHAPES, st.integers(0, 255)),
    min_size=1, max_size=6,
)


def _make_state(spec: dict[str, tuple[torch.dtype, tuple[int, ...], int]]) -> dict[str, torch.Tensor]:
    state = {}
    for name, (dtype, shape, value) in spec.items():
        tensor = torch.full(shape, value % 2 if dtype is torch.bool else value).to(dtype)
        state[name] = tensor
    return state


def _root(state: dict[str, torch.Tensor]) -> Root:
    return compute_state_root({name: compute_digest(tensor) for name, tensor in state.items()})


@given(STATES)
def test_a_hint_opens_its_state_root(spec: dict[str, tuple[torch.dtype, tuple[int, ...], int]]) -> None:
    state = _make_state(spec)
    opening = open_structure_hint(compute_structure_hint(state), _root(state))
    assert opening is not None
    assert opening.layout == compute_state_layout(state)
    small = {name: tensor for name, tensor in state.items() if tensor.numel() * tensor.element_size() <= 32}
    assert sorted(opening.values) == sorted(small)
    for name, tensor in small.items():
        assert opening.values[name].dtype == tensor.dtype and opening.values[name].shape == tensor.shape
        assert torch.equal(opening.values[name], tensor)
    assert opening.get_scalars().keys() == {name for name, tensor in state.items() if tensor.numel() == 1}


@given(STATES, st.data())
def test_a_hint_refuses_every_change(spec: dict[str, tuple[torch.dtype, tuple[int, ...], int]], data: st.DataObject) -> None:
    state = _make_state(spec)
    hint, root = compute_structure_hint(state), _root(state)
    assert open_structure_hint(hint + b"\x00", root) is None
    assert open_structure_hint(hint[:-1], root) is None
    assert open_structure_hint(b"", root) is None
    position = data.draw(st.integers(0, len(hint) - 1), label="flipped byte")
    flipped = hint[:position] + bytes([hint[position] ^ data.draw(st.integers(1, 255), label="mask")]) + hint[position + 1 :]
    assert open_structure_hint(flipped, root) is None
    other = dict(state, **{"\u0400extra": torch.zeros(data.draw(SHAPES, label="extra shape"))})
    assert open_structure_hint(hint, _root(other)) is None
    assert open_structure_hint(compute_structure_hint(other), root) is None


def test_a_hint_refuses_names_out_of_order() -> None:
    state = {"a": torch.zeros(3), "b": torch.tensor(1)}
    hint = compute_structure_hint(state)
    first = compute_structure_hint({"a": state["a"]})
    swapped = hint[len(first) :] + first  # the same entries, b before a
    assert open_structure_hint(hint, _root(state)) is not None
    assert open_structure_hint(swapped, _root(state)) is None
    assert open_structure_hint(first + first, _root(state)) is None


def test_hint_states_the_step_counters(mlp_run: Path) -> None:
    run = load_run(mlp_run)
    provider = RunTraceProvider(run)
    trace = provider.get_trace(2)
    commitment = provider.get_trace_commitment(2)
    assert commitment.hint == trace.hint
    opening = open_structure_hint(trace.hint, provider.get_state_root(2))
    assert opening is not None and int(opening.get_scalars()["step"]) == 2
    assert open_structure_hint(trace.hint, provider.get_state_root(3)) is None


@pytest.mark.parametrize("fixture", ["mlp_run", "transformer_run"])
def test_proven_skeleton_equals_the_replayed_one(fixture: str, request: pytest.FixtureRequest) -> None:
    run = load_run(request.getfixturevalue(fixture))
    provider = RunTraceProvider(run)
    replaying = TraceReferee(run.job, resolve_task(run.job))
    for step in range(run.job.steps):
        hint = provider.get_trace(step).hint
        proven = TraceReferee(run.job, resolve_task(run.job))
        assert proven.get_skeleton(step, provider.get_state_root(step), (hint, b"")) == replaying.replay_skeleton(step)
        assert proven.replayed_steps == 1  # one meta step, whatever t is
    assert replaying.replayed_steps == run.job.steps


def test_referee_takes_no_layout_that_is_not_proven(mlp_run: Path) -> None:
    run = load_run(mlp_run)
    provider = RunTraceProvider(run)
    hint, root = provider.get_trace(3).hint, provider.get_state_root(3)
    referee = TraceReferee(run.job, resolve_task(run.job))
    job_id = compute_job_id(run.job)
    assert referee.is_valid_hint(job_id, root, hint)
    for wrong in [hint[:-1] + bytes([hint[-1] ^ 1]), provider.get_trace(2).hint, b"", hint[:40]]:
        assert not referee.is_valid_hint(job_id, root, wrong)
        with pytest.raises(RefereeError):
            referee.get_skeleton(3, root, (wrong, wrong))
    assert referee.replayed_steps == 0
    assert referee.get_skeleton(3, root, (b"", hint)) == TraceReferee(run.job, resolve_task(run.job)).replay_skeleton(3)


@pytest.mark.parametrize("honest_role", list(Role))
def test_a_wrong_hint_loses_at_once(mlp_run: Path, honest_role: Role) -> None:
    run = load_run(mlp_run)
    provider = RunTraceProvider(run)
    referee = TraceReferee(run.job, resolve_task(run.job))
    keys = {role: generate_private_key() for role in Role}
    liar = CATALOGUE["wrong-hint"].build(provider, keys[get_opponent(honest_role)], Scenario(step=3, node=20))
    honest = HonestStrategy(provider, keys[honest_role])
    worker, challenger = (honest, liar) if honest_role is Role.WORKER else (liar, honest)
    result = play_game(worker, challenger, referee, make_game_config(2))
    assert result.verdict.winner is not None and result.verdict.winner.role is honest_role
    assert result.verdict.reason is Reason.BAD_PROOF and "structure hint" in result.verdict.detail
    assert referee.replayed_steps == 0  # decided by the proof alone: no meta step


def test_a_proven_state_that_admits_no_step_makes_every_claim_wrong(mlp_run: Path) -> None:
    """Two liars agreeing on an s_t no run reaches (another seed, another step counter) cannot crash
    the referee: no count and no leaf of that step is right."""
    run = load_run(mlp_run)
    job_id = compute_job_id(run.job)
    state = restore_session(run, 2, task=resolve_task(run.job)).state_tensors()
    for name, value in [("seed", run.job.seed + 1), ("step", 1)]:
        liar_state = dict(state, **{name: torch.tensor(value)})
        hint, root = compute_structure_hint(liar_state), _root(liar_state)
        referee = TraceReferee(run.job, resolve_task(run.job))
        assert referee.is_valid_hint(job_id, root, hint)
        assert referee.get_skeleton(2, root, (hint, hint)) is None
        structure = referee.compute_structure(job_id, StepIndex(2), root, (hint, hint))
        assert (structure.num_ops, structure.num_state_after) == (0, 0)
        assert referee.replayed_steps <= 1
