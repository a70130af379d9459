"""Small config tables shared by the simulation tests (MINIMAL preset, a few dozen agents)."""

from __future__ import annotations

import copy
from typing import Any

PARAMS: dict[str, Any] = {
    "worker_stake_increment": 0,
    "heartbeat_grace_epochs": 5,
    "unbonding_period_epochs": 8,
    "vesting_share_bps": 0,
    "job_tax_bps": 500,
    "slash_fraction_bps": 5000,
    "challenger_reward_bps": 5000,
}

MIXED: dict[str, Any] = {
    "run": {"name": "mixed", "epochs": 40, "seed": 1, "invariants": "epoch"},
    "protocol": {"preset": "minimal", "params": dict(PARAMS, vesting_share_bps=5000, forced_error_rate_bps=2000)},
    "churn": {"enabled": True, "min_tenure": 3, "entry_rate": 0.2, "exit_below": 0.0, "enter_above": 0.0},
    "users": {"count": 8, "jobs_per_epoch": 2.0, "work_units": [5, 15], "max_unit_price": [2, 4]},
    "workers": {
        "honest": {"count": 8, "pool": 3, "ask_spread": 0.3, "fixed_cost": 0.5},
        "cheaters": {"strategy": "cheater", "count": 4, "pool": 2, "cheat_probability": 0.4, "ask_spread": 0.3},
        "adaptive": {"strategy": "adaptive", "count": 4, "cheat_probability": 0.3, "ask_spread": 0.3},
        "lazy": {"strategy": "lazy", "count": 2, "pool": 1, "ask_spread": 0.3},
    },
    "challengers": {
        "fixed": {"count": 2, "capacity": 10, "verify_probability": 0.5},
        "learners": {"strategy": "adaptive", "count": 2, "pool": 2, "capacity": 10, "fixed_cost": 0.2},
    },
}
"""Every strategy, churn, vesting and forced errors: a run that reaches most transitions."""

DILEMMA: dict[str, Any] = {
    "run": {"name": "dilemma", "epochs": 260, "seed": 3, "repetitions": 2, "invariants": "off", "warmup_epochs": 10},
    "protocol": {"preset": "minimal", "params": dict(PARAMS, jackpot_payout_bps=5000)},
    "users": {"count": 20, "jobs_per_epoch": 2.0, "work_units": [10, 10], "max_unit_price": [3, 3]},
    "workers": {"adaptive": {"strategy": "adaptive", "count": 40, "ask_markup": 2.0, "cheat_probability": 0.3,
                             "learning_rate": 0.02}},
    "challengers": {"watchers": {"strategy": "adaptive", "count": 5, "capacity": 20, "verify_probability": 0.5,
                                 "check_cost": 0.3, "learning_rate": 0.02}},
    "scenarios": {
        "no_forced_errors": {"protocol.params.forced_error_rate_bps": 0},
        "forced_errors_jackpot": {"protocol.params.forced_error_rate_bps": 1000},
    },
}
"""examples/simulations/verifiers-dilemma.toml with 260 epochs and two repetitions instead of 400 and three."""

PHASE: dict[str, Any] = {
    "run": {"name": "phase", "epochs": 60, "seed": 11, "repetitions": 2, "invariants": "off", "warmup_epochs": 2,
            "common_seeds": False},
    "protocol": {"preset": "minimal", "params": dict(PARAMS, forced_error_rate_bps=0)},
    "users": {"count": 10, "jobs_per_epoch": 2.0, "work_units": [10, 10], "max_unit_price": [3, 3]},
    "workers": {"cheaters": {"strategy": "cheater", "count": 20, "ask_markup": 2.0, "cheat_probability": 0.5}},
    "challengers": {"watchers": {"count": 3, "capacity": 20, "check_cost": 0.3}},
    "report": {"phase_x": "challengers.watchers.verify_probability", "phase_y": "protocol.params.slash_fraction_bps"},
    "sweep": {
        "challengers.watchers.verify_probability": [0.15, 0.3],
        "protocol.params.slash_fraction_bps": [0, 2000, 4000, 6000],
    },
}
"""A 2 x 4 corner of examples/simulations/phase-diagram.toml: the analytic boundary is
f* = (10 / p - 20.2) / 100, i.e. 0.465 at p = 0.15 and 0.131 at p = 0.3, inside the grid."""


def table(base: dict[str, Any], **sections: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of `base` with whole sections replaced or added."""
    result = copy.deepcopy(base)
    result.update(copy.deepcopy(sections))
    return result


def toml_text(data: dict[str, Any]) -> str:
    """`data` as TOML (tables of scalars, lists, and nested tables; enough for these configs)."""
    lines: list[str] = []

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        return repr(v)

    def key(k: str) -> str:
        return k if k.replace("_", "").isalnum() else value(k)

    def emit(prefix: str, node: dict[str, Any]) -> None:
        scalars = {k: v for k, v in node.items() if not isinstance(v, dict)}
        tables = {k: v for k, v in node.items() if isinstance(v, dict)}
        if prefix and (scalars or not tables):
            lines.append(f"[{prefix}]")
        for k, v in scalars.items():
            lines.append(f"{key(k)} = {value(v)}")
        for k, v in tables.items():
            emit(f"{prefix}.{key(k)}" if prefix else key(k), v)

    emit("", data)
    return "\n".join(lines) + "\n"

GRIEFING: dict[str, Any] = {
    "run": {"name": "griefing", "epochs": 40, "seed": 21, "invariants": "epoch", "warmup_epochs": 2},
    "protocol": {"preset": "minimal", "params": dict(PARAMS, forced_error_rate_bps=1000, jackpot_payout_bps=5000)},
    "dispute": {"game_epochs": 4},
    "users": {"count": 10, "jobs_per_epoch": 2.0, "work_units": [10, 10], "max_unit_price": [3, 3]},
    "workers": {
        "honest": {"count": 14, "ask_markup": 2.0},
        "cheaters": {"strategy": "cheater", "count": 6, "ask_markup": 2.0, "cheat_probability": 0.4},
    },
    "challengers": {
        "watchers": {"count": 3, "capacity": 20, "verify_probability": 1.0, "check_cost": 0.3},
        "griefers": {"strategy": "griefer", "count": 0, "capacity": 20, "verify_probability": 0.5},
        "colluders": {"strategy": "colluder", "count": 0, "partner": "cheaters"},
        "guessers": {"strategy": "guesser", "count": 0, "capacity": 20, "verify_probability": 1.0, "check_cost": 0.3},
    },
    "scenarios": {
        "baseline": {},
        "griefing": {"challengers.griefers.count": 2},
        "chain": {"challengers.griefers.count": 2, "challengers.griefers.grief_chain": 3},
        "collusion": {"challengers.colluders.count": 2},
        "guessing": {"challengers.watchers.count": 0, "challengers.guessers.count": 3},
    },
}
"""examples/simulations/griefing.toml with half the agents, 40 epochs and one repetition."""
