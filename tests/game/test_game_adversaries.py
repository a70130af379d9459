"""The honest party against every adversary of the catalogue, as worker and as challenger, at fuzzed
positions (first and last step, first and last op, any state leaf, any round) and arities."""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from protocol.game import Reason, Role, get_opponent
from protocol.game.transcript import compute_transcript_json
from verifier.game import verify_transcript
from verifier.game.adversaries import CATALOGUE, Scenario
from verifier.game.toy import ToyConfig, ToyReferee

from .game_support import (
    KEYS,
    assert_honest_wins,
    compute_round_bound,
    game_settings,
    get_toy,
    play_honest_against,
)

NAMES = sorted(CATALOGUE)


def test_catalogue_covers_the_issue() -> None:
    assert len(CATALOGUE) >= 15
    wanted = {"wrong-op-leaf", "wrong-state-leaf", "wrong-op-count", "forged-nodes", "forged-state-proof",
              "forged-evidence", "withheld-evidence", "silent", "equivocator", "random-answers",
              "flip-past-answer", "fabricated-chain", "malformed"}
    assert wanted <= set(CATALOGUE)
    for adversary in CATALOGUE.values():
        assert adversary.description and adversary.reasons


@st.composite
def cases(draw: st.DrawFn) -> tuple[ToyConfig, Scenario, int]:
    steps = draw(st.integers(1, 16))
    num_state = draw(st.integers(3, 5))
    num_ops = draw(st.integers(num_state, 16))
    config = ToyConfig(steps=steps, num_ops=num_ops, num_state=num_state, width=2, seed=draw(st.integers(0, 2)))
    scenario = Scenario(
        step=draw(st.sampled_from([0, steps - 1]) | st.integers(0, steps - 1)),
        node=draw(st.sampled_from([0, num_ops - 1]) | st.integers(0, num_ops - 1)),
        leaf=draw(st.integers(0, num_state - 1)),
        at_round=draw(st.just(0) | st.integers(0, 24)),
        seed=draw(st.integers(0, 1 << 16)),
    )
    return config, scenario, draw(st.sampled_from([2, 4, 16]))


@pytest.mark.parametrize("honest_role", list(Role))
@pytest.mark.parametrize("name", NAMES)
@game_settings(20)
@given(case=cases())
@example(case=(ToyConfig(steps=1, num_ops=3, num_state=3), Scenario(0, 0, 0, 0, 0), 2))
@example(case=(ToyConfig(steps=9, num_ops=12), Scenario(8, 11, 3, 0, 1), 4))
@example(case=(ToyConfig(steps=16, num_ops=16), Scenario(15, 15, 2, 0, 2), 16))
def test_honest_beats_adversary(name: str, honest_role: Role, case: tuple[ToyConfig, Scenario, int]) -> None:
    config, scenario, arity = case
    machine, provider = get_toy(config)
    adversary = CATALOGUE[name]
    liar = adversary.build(provider, KEYS[get_opponent(honest_role)], scenario)
    result = play_honest_against(liar, honest_role, machine, provider, arity)
    assert_honest_wins(result, honest_role)
    if scenario.at_round == 0:  # the deviation fires at its first chance: it is what the liar loses for
        assert result.verdict.reason in adversary.reasons, (result.verdict.reason, result.verdict.detail)
    assert result.verdict.rounds <= compute_round_bound(config.steps, config.num_ops + 1, arity)
    assert verify_transcript(compute_transcript_json(result.transcript), ToyReferee(machine)).valid


@pytest.mark.parametrize("name", ["bad-signatures", "impersonator", "replay-opponent"])
def test_unattributable_messages_are_recorded_not_decisive(name: str) -> None:
    machine, provider = get_toy(ToyConfig(steps=6, num_ops=8))
    liar = CATALOGUE[name].build(provider, KEYS[Role.CHALLENGER], Scenario(step=2, node=3, at_round=1))
    result = play_honest_against(liar, Role.WORKER, machine, provider)
    assert_honest_wins(result, Role.WORKER)
    assert result.verdict.rejected_messages >= 1
    assert len(result.state.rejected) == result.verdict.rejected_messages


def test_equivocation_verdict_carries_both_messages() -> None:
    machine, provider = get_toy(ToyConfig(steps=6, num_ops=8))
    liar = CATALOGUE["equivocator"].build(provider, KEYS[Role.WORKER], Scenario(step=3, node=1, at_round=2))
    result = play_honest_against(liar, Role.CHALLENGER, machine, provider)
    assert_honest_wins(result, Role.CHALLENGER)
    assert result.verdict.reason is Reason.EQUIVOCATION
    first, second = result.verdict.evidence
    assert first["seq"] == second["seq"] == 2 and first["sender"] == second["sender"] == "worker"
    assert first["move"] != second["move"]
