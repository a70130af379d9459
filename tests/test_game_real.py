"""The dispute game's adversary catalogue against real training runs: the honest party answers from
its run directory, the liar edits what it answers, and the real referee re-executes aten operators."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.game import Outcome, Role, check_game_invariants, get_opponent
from protocol.game.state import GameState
from protocol.signing import generate_private_key
from prover.presets import resolve_task
from prover.provider import RunTraceProvider
from prover.run import load_run
from verifier.dispute import make_game_config
from verifier.game.adversaries import CATALOGUE, Scenario
from verifier.game.driver import GameResult, play_game
from verifier.game.strategy import HonestStrategy
from verifier.referee import TraceReferee

KEYS = {Role.WORKER: generate_private_key(), Role.CHALLENGER: generate_private_key()}


class Arena:
    """One real run, its provider (regenerated steps are cached) and a referee, shared by the games."""

    def __init__(self, run_dir: Path) -> None:
        self.run = load_run(run_dir)
        self.provider = RunTraceProvider(self.run)
        self.referee = TraceReferee(self.run.job, resolve_task(self.run.job))

    def play(self, name: str, honest_role: Role, scenario: Scenario, arity: int = 2) -> GameResult:
        liar_role = get_opponent(honest_role)
        liar = CATALOGUE[name].build(self.provider, KEYS[liar_role], scenario)
        honest = HonestStrategy(self.provider, KEYS[honest_role])
        worker, challenger = (honest, liar) if honest_role is Role.WORKER else (liar, honest)

        def observe(state: GameState, previous: GameState | None) -> None:
            check_game_invariants(state, previous)

        return play_game(worker, challenger, self.referee, make_game_config(arity), observer=observe)


@pytest.fixture(scope="module")
def arena(mlp_run: Path) -> Arena:
    return Arena(mlp_run)


def assert_honest_wins(result: GameResult, honest_role: Role) -> None:
    verdict = result.verdict
    assert verdict.outcome is Outcome.DECIDED, (verdict.reason, verdict.detail)
    assert verdict.winner is not None and verdict.winner.role is honest_role, (verdict.reason, verdict.detail)


@pytest.mark.parametrize("honest_role", list(Role))
@pytest.mark.parametrize("name", sorted(CATALOGUE))
def test_honest_party_beats_every_adversary_on_a_real_run(arena: Arena, name: str, honest_role: Role) -> None:
    result = arena.play(name, honest_role, Scenario(step=1, node=37, leaf=3, at_round=2, seed=5))
    assert_honest_wins(result, honest_role)
    assert result.verdict.reason in CATALOGUE[name].reasons or result.verdict.reason.value == "leaf differs from the referee's re-execution"


def _positions(arena: Arena) -> dict[str, int]:
    """Op indices of step 1 by part of the step: forward, backward and optimizer, first and last."""
    nodes = arena.provider.get_trace(1).nodes
    ops = [node.structure.op for node in nodes]
    first_backward = ops.index("aten::ones_like.default")
    first_optimizer = next(j for j, op in enumerate(ops) if op in ("aten::lerp_.Scalar", "aten::add_.Tensor") and j > first_backward + 10)
    return {"first": 0, "forward": ops.index("aten::addmm.default"), "backward": first_backward + 3,
            "optimizer": first_optimizer, "last": len(ops) - 1}


@pytest.mark.parametrize("where", ["first", "forward", "backward", "optimizer", "last"])
@pytest.mark.parametrize("honest_role", list(Role))
def test_wrong_values_are_caught_in_every_part_of_a_step(arena: Arena, where: str, honest_role: Role) -> None:
    node = _positions(arena)[where]
    result = arena.play("wrong-op-leaf", honest_role, Scenario(step=1, node=node))
    assert_honest_wins(result, honest_role)
    assert (result.verdict.step, result.verdict.index) == (1, node)


@settings(max_examples=8, deadline=None)
@given(step=st.sampled_from([0, 3]) | st.integers(0, 3), node=st.integers(0, 111), arity=st.sampled_from([2, 4, 16]))
def test_wrong_values_at_fuzzed_positions(mlp_run: Path, step: int, node: int, arity: int) -> None:
    arena = _ARENAS.setdefault(mlp_run, Arena(mlp_run))
    for honest_role in Role:
        result = arena.play("wrong-op-leaf", honest_role, Scenario(step=step, node=node), arity)
        assert_honest_wins(result, honest_role)
        assert result.verdict.step == step


_ARENAS: dict[Path, Arena] = {}
