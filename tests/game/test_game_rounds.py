"""Bounded cost: rounds <= ceil(log_k(T+1)) + ceil(log_k N) + a constant, for k = 2, 4, 16 and runs of up to
a thousand steps, with the disagreement at the first or last step and the first or last op."""

from __future__ import annotations

import math

import pytest

from protocol.game import Role
from verifier.game import HonestStrategy
from verifier.game.toy import ToyConfig, ToyFault, ToyProvider

from .game_support import (
    CONSTANT_ROUNDS,
    KEYS,
    assert_honest_wins,
    compute_round_bound,
    get_toy,
    play_honest_against,
)

NUM_OPS = 24


@pytest.mark.parametrize("steps", [16, 64, 256, 1024])
def test_rounds_within_the_bound(steps: int) -> None:
    machine, provider = get_toy(ToyConfig(steps=steps, num_ops=NUM_OPS, num_state=4, width=2))
    for step, node in ((0, 0), (steps - 1, NUM_OPS - 1), (steps // 3, NUM_OPS // 2)):
        liar = ToyProvider(machine, ToyFault("value", step, node))
        for arity in (2, 4, 16):
            result = play_honest_against(HonestStrategy(liar, KEYS[Role.CHALLENGER]), Role.WORKER, machine,
                                         provider, arity)
            assert_honest_wins(result, Role.WORKER)
            verdict = result.verdict
            assert (verdict.step, verdict.index) == (step, node)
            assert verdict.rounds <= compute_round_bound(steps, NUM_OPS, arity)
            # Phase 1 is exactly the dissection of T+1 leaves, plus the reveal of s_t and s_{t+1}.
            assert verdict.rounds_chain == math.ceil(math.log2(steps + 1) / math.log2(arity) - 1e-9) + 1
            assert verdict.rounds_trace <= math.ceil(math.log2(NUM_OPS) / math.log2(arity) - 1e-9) + CONSTANT_ROUNDS - 1
