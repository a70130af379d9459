"""Structure hints: the encoding round-trips and refuses what does not fit, and a referee that takes an
agreed hint computes the same skeleton as one that replays from s_0, in one meta step whatever t is."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from protocol.encoding import DTYPE_CODES
from protocol.game import Role, get_opponent
from protocol.hint import compute_state_layout, compute_structure_hint, parse_structure_hint
from protocol.signing import generate_private_key
from prover.presets import resolve_task
from prover.provider import RunTraceProvider
from prover.run import load_run
from verifier.dispute import make_game_config
from verifier.game.adversaries import CATALOGUE, Scenario
from verifier.game.driver import play_game
from verifier.game.strategy import HonestStrategy
from verifier.referee import TraceReferee

DTYPES = sorted(DTYPE_CODES, key=str)
SHAPES = st.lists(st.integers(0, 3), max_size=3).map(tuple)
STATES = st.dictionaries(
    st.text(st.characters(min_codepoint=33, max_codepoint=0x2FF), min_size=1, max_size=8),
    st.tuples(st.sampled_from(DTYPES), SHAPES, st.integers(0, 255)),
    max_size=6,
)


def _make_state(spec: dict[str, tuple[torch.dtype, tuple[int, ...], int]]) -> dict[str, torch.Tensor]:
    state = {}
    for name, (dtype, shape, value) in spec.items():
        tensor = torch.full(shape, value % 2 if dtype is torch.bool else value).to(dtype)
        state[name] = tensor
    return state


@given(STATES)
def test_hint_round_trips_the_one_element_tensors(spec: dict[str, tuple[torch.dtype, tuple[int, ...], int]]) -> None:
    state = _make_state(spec)
    hint = compute_structure_hint(state)
    scalars = parse_structure_hint(hint, compute_state_layout(state))
    assert scalars is not None
    expected = {name: tensor for name, tensor in state.items() if tensor.numel() == 1}
    assert sorted(scalars) == sorted(expected)
    for name, tensor in expected.items():
        assert scalars[name].dtype == tensor.dtype and scalars[name].shape == tensor.shape
        assert torch.equal(scalars[name], tensor)


@given(STATES, st.data())
def test_hint_refuses_another_layout_and_wrong_lengths(spec: dict[str, tuple[torch.dtype, tuple[int, ...], int]], data: st.DataObject) -> None:
    state = _make_state(spec)
    hint = compute_structure_hint(state)
    layout = compute_state_layout(state)
    assert parse_structure_hint(hint + b"\x00", layout) is None
    if len(hint) > 32:
        assert parse_structure_hint(hint[:-1], layout) is None
    assert parse_structure_hint(hint[:31], layout) is None
    other = dict(state, **{"~extra": torch.zeros(data.draw(SHAPES, label="extra shape"))})
    assert parse_structure_hint(hint, compute_state_layout(other)) is None


def test_hint_states_the_step_counters(mlp_run: Path) -> None:
    provider = RunTraceProvider(load_run(mlp_run))
    trace = provider.get_trace(2)
    commitment = provider.get_trace_commitment(2)
    assert commitment.hint == trace.hint and len(trace.hint) > 32
    referee = TraceReferee(load_run(mlp_run).job, resolve_task(load_run(mlp_run).job))
    scalars = parse_structure_hint(trace.hint, referee._guess_layout_after_first())
    assert scalars is not None and int(scalars["step"]) == 2


@pytest.mark.parametrize("fixture", ["mlp_run", "transformer_run"])
def test_hinted_skeleton_equals_the_replayed_one(fixture: str, request: pytest.FixtureRequest) -> None:
    run = load_run(request.getfixturevalue(fixture))
    provider = RunTraceProvider(run)
    replaying = TraceReferee(run.job, resolve_task(run.job))
    for step in range(1, run.job.steps):
        hint = provider.get_trace(step).hint
        hinted = TraceReferee(run.job, resolve_task(run.job))
        assert hinted.get_skeleton(step, (hint, hint)) == replaying.get_skeleton(step)
        assert hinted.replayed_steps == 1  # one meta step, whatever t is
    assert replaying.replayed_steps == run.job.steps


def test_referee_ignores_hints_that_differ_or_do_not_fit(mlp_run: Path) -> None:
    run = load_run(mlp_run)
    hint = RunTraceProvider(run).get_trace(3).hint
    truth = TraceReferee(run.job, resolve_task(run.job)).get_skeleton(3)
    wrong_step = RunTraceProvider(run).get_trace(2).hint
    for hints in [(hint, hint[:-1] + bytes([hint[-1] ^ 1])), (wrong_step, wrong_step), (b"", b""), (hint[:40], hint[:40])]:
        referee = TraceReferee(run.job, resolve_task(run.job))
        assert referee.get_skeleton(3, hints) == truth
        assert referee.replayed_steps == 4  # fell back to replaying s_0 … s_3


@pytest.mark.parametrize("honest_role", list(Role))
def test_a_wrong_hint_does_not_hurt_the_honest_party(mlp_run: Path, honest_role: Role) -> None:
    run = load_run(mlp_run)
    provider = RunTraceProvider(run)
    referee = TraceReferee(run.job, resolve_task(run.job))
    keys = {role: generate_private_key() for role in Role}
    liar = CATALOGUE["wrong-hint"].build(provider, keys[get_opponent(honest_role)], Scenario(step=3, node=20))
    honest = HonestStrategy(provider, keys[honest_role])
    worker, challenger = (honest, liar) if honest_role is Role.WORKER else (liar, honest)
    result = play_game(worker, challenger, referee, make_game_config(2))
    assert result.verdict.winner is not None and result.verdict.winner.role is honest_role
    assert referee.replayed_steps == 4  # the hints differed: the referee replayed rather than trust one


def test_an_agreed_hint_no_true_state_has_falls_back_to_the_replay(mlp_run: Path) -> None:
    """Two liars agreeing on counters that make the step fail (another seed) cannot crash the referee."""
    run = load_run(mlp_run)
    referee = TraceReferee(run.job, resolve_task(run.job))
    layout = referee._guess_layout_after_first()
    state = {name: torch.zeros(shape, dtype=dtype) for name, dtype, shape in layout}
    state["step"] = torch.tensor(2)
    state["seed"] = torch.tensor(run.job.seed + 1)
    hint = compute_structure_hint(state)
    assert parse_structure_hint(hint, layout) is not None
    assert referee.get_skeleton(2, (hint, hint)) == TraceReferee(run.job, resolve_task(run.job)).get_skeleton(2)
    assert referee.replayed_steps == 1 + 3  # the failed hinted step, then s_0 … s_2
