"""Shared pieces of the game tests: keys, toy jobs, and games played with every invariant checked after
every event."""

from __future__ import annotations

import functools
import math
from dataclasses import replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, settings

from protocol.game import MINIMAL, GameState, Outcome, Role, check_game_invariants, get_opponent
from protocol.signing import private_key_from_bytes
from verifier.game import GameResult, HonestStrategy, Strategy, play_game
from verifier.game.toy import ToyConfig, ToyMachine, ToyProvider, ToyReferee

GAME_SETTINGS = settings(database=None, deadline=None, derandomize=True,
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
"""Hypothesis settings for the game tests: reproducible (derandomized, explicit seeds), no example database."""


def game_settings(max_examples: int) -> settings:
    return settings(GAME_SETTINGS, max_examples=max_examples)

KEYS: dict[Role, Ed25519PrivateKey] = {
    Role.WORKER: private_key_from_bytes(bytes(range(32))),
    Role.CHALLENGER: private_key_from_bytes(bytes(range(32, 64))),
}
EVIDENCE_ROUNDS = 2  # the toy referee asks for producer leaves, then for their tensors
WITHHELD_ROUNDS = 1  # evidence queries go to one party; the other is asked once, if the first withholds
CONSTANT_ROUNDS = 3 + EVIDENCE_ROUNDS + WITHHELD_ROUNDS  # states reveal, trace commitment, leaf reveal, evidence


@functools.lru_cache(maxsize=32)
def get_toy(config: ToyConfig) -> tuple[ToyMachine, ToyProvider]:
    """A toy job and its honest provider (cached: providers cache the steps they regenerate)."""
    machine = ToyMachine(config)
    return machine, ToyProvider(machine)


def check_every_event(state: GameState, previous: GameState | None) -> None:
    check_game_invariants(state, previous)


def play(worker: Strategy, challenger: Strategy, machine: ToyMachine, arity: int = 2) -> GameResult:
    return play_game(worker, challenger, ToyReferee(machine), replace(MINIMAL, arity=arity),
                     observer=check_every_event)


def play_honest_against(liar: Strategy, honest_role: Role, machine: ToyMachine, provider: ToyProvider,
                        arity: int = 2) -> GameResult:
    """The honest party in `honest_role` against `liar` (who must sign with the other role's key)."""
    honest = HonestStrategy(provider, KEYS[honest_role])
    if honest_role is Role.WORKER:
        return play(honest, liar, machine, arity)
    return play(liar, honest, machine, arity)


def assert_honest_wins(result: GameResult, honest_role: Role) -> None:
    verdict = result.verdict
    assert verdict.outcome is Outcome.DECIDED, (verdict.outcome, verdict.reason, verdict.detail)
    assert verdict.winner is not None and verdict.winner.role is honest_role, (verdict.reason, verdict.detail)
    assert verdict.loser is not None and verdict.loser.role is get_opponent(honest_role)


def compute_round_bound(steps: int, num_ops: int, arity: int, constant: int = CONSTANT_ROUNDS) -> int:
    """ceil(log_k(T+1)) + ceil(log_k N) + constant, computed in integers (log_k x = log2 x / log2 k)."""
    depth = arity.bit_length() - 1

    def ceil_log(x: int) -> int:
        return math.ceil(max(0, (x - 1).bit_length()) / depth)  # ceil(log2 x) = bit_length(x - 1)

    return ceil_log(steps + 1) + ceil_log(num_ops) + constant
