"""The game's constants in one table, with presets (STYLE.md, item 3).

`MAINNET` is what a deployment uses; `MINIMAL` keeps tests fast and small. Every field has a unit
and a reason; a game's config is part of its id, so both parties and any later verifier agree on it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocol.game.codec import parse_float, parse_int, parse_object
from protocol.types import Seconds

MAX_ARITY = 1 << 10  # beyond this a single reveal is larger than the whole descent it replaces


@dataclass(frozen=True)
class GameConfig:
    """Parameters of one dispute game."""

    arity: int  # k: a descent round reveals k descendants of the disputed node; a power of two >= 2
    clock_seconds: Seconds  # each party's chess-clock budget for the whole game, seconds
    max_evidence_rounds: int  # evidence rounds the referee may ask for before it must decide
    max_leaf_bytes: int  # largest op or state leaf a party may reveal, bytes
    max_tensor_bytes: int  # largest canonical tensor encoding accepted as evidence, bytes
    max_tree_leaves: int  # largest op or state-leaf count a trace commitment may claim

    @property
    def depth(self) -> int:
        """log2(k): levels of a tree one descent round covers."""
        return self.arity.bit_length() - 1


MAINNET = GameConfig(
    arity=4,  # 4 halves the rounds of bisection for a few hundred bytes more per round
    clock_seconds=Seconds(3 * 24 * 3600.0),  # regenerating a step takes minutes; days leave room for outages
    max_evidence_rounds=4,  # producers' leaves, then their tensors; one round for a withheld answer, one spare
    max_leaf_bytes=1 << 16,  # an op leaf names one aten call and its argument refs: a few hundred bytes
    max_tensor_bytes=1 << 31,  # the largest operator input of the models we train is far below 2 GiB
    max_tree_leaves=1 << 40,  # a step of a trillion operators is beyond any model we train
)

MINIMAL = GameConfig(
    arity=2,
    clock_seconds=Seconds(600.0),
    max_evidence_rounds=4,
    max_leaf_bytes=1 << 12,
    max_tensor_bytes=1 << 20,
    max_tree_leaves=1 << 20,
)

PRESETS: dict[str, GameConfig] = {"mainnet": MAINNET, "minimal": MINIMAL}


def is_power_of_two(value: int) -> bool:
    return value > 0 and value & (value - 1) == 0


def get_config_problem(config: GameConfig) -> str | None:
    """Why a config cannot be played, or None."""
    if type(config.arity) is not int or not is_power_of_two(config.arity) or not 2 <= config.arity <= MAX_ARITY:
        return f"arity must be a power of two in [2, {MAX_ARITY}], got {config.arity!r}"
    if not isinstance(config.clock_seconds, float) or not 0 < config.clock_seconds < float("inf"):
        return f"clock_seconds must be a positive finite float, got {config.clock_seconds!r}"
    for name in ("max_evidence_rounds", "max_leaf_bytes", "max_tensor_bytes", "max_tree_leaves"):
        value = getattr(config, name)
        if type(value) is not int or not 1 <= value <= 1 << 62:
            return f"{name} must be a positive integer, got {value!r}"
    return None


def compute_config_json(config: GameConfig) -> dict[str, Any]:
    return {
        "arity": config.arity,
        "clock_seconds": float(config.clock_seconds),
        "max_evidence_rounds": config.max_evidence_rounds,
        "max_leaf_bytes": config.max_leaf_bytes,
        "max_tensor_bytes": config.max_tensor_bytes,
        "max_tree_leaves": config.max_tree_leaves,
    }


def parse_config_json(value: Any) -> GameConfig:
    """The config from its JSON; ParseError when malformed (the values are checked by `create_game`)."""
    body = parse_object(value, ("arity", "clock_seconds", "max_evidence_rounds", "max_leaf_bytes",
                                "max_tensor_bytes", "max_tree_leaves"), "config")
    big = 1 << 62
    return GameConfig(
        arity=parse_int(body["arity"], "config.arity", low=0, high=big),
        clock_seconds=Seconds(parse_float(body["clock_seconds"], "config.clock_seconds")),
        max_evidence_rounds=parse_int(body["max_evidence_rounds"], "config.max_evidence_rounds", low=0, high=big),
        max_leaf_bytes=parse_int(body["max_leaf_bytes"], "config.max_leaf_bytes", low=0, high=big),
        max_tensor_bytes=parse_int(body["max_tensor_bytes"], "config.max_tensor_bytes", low=0, high=big),
        max_tree_leaves=parse_int(body["max_tree_leaves"], "config.max_tree_leaves", low=0, high=big),
    )
