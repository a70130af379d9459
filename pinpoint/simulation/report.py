"""From run results to the results table and the summary: metrics per mechanism with Monte Carlo
errors, the measured profitability of cheating against the analytic condition, and the measured
boundary of the phase diagram against the analytic one.

A *mechanism* is one scenario at one sweep point; its repetitions are its Monte Carlo sample.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from pinpoint.simulation.analytic import (
    compute_cheating_advantage,
    compute_critical_slash_fraction,
    compute_loss_if_caught,
)
from pinpoint.simulation.config import Experiment, RunSpec, SimulationConfig
from pinpoint.simulation.engine import RunResult
from pinpoint.simulation.metrics import RUN_COLUMNS

SUMMARY_METRICS = (
    "cheat_rate", "check_rate", "detection_rate", "verify_probability_mean", "cheat_probability_mean", "price_mean",
    "gini_rewards", "retention", "inflation", "inflation_yearly", "jobs_executed", "slash_events", "slashed", "burned",
    "minted", "workers_active", "challengers_active", "entered", "left", "profit_user", "profit_honest",
    "profit_cheater", "profit_adaptive", "profit_lazy", "profit_challenger_fixed", "profit_challenger_adaptive",
    "profit_griefer", "profit_colluder", "profit_guesser", "honest_delay_mean",
)
"""Per-epoch metrics averaged over each run's epochs after warm-up, then over repetitions."""

FINAL_METRICS = ("supply", "circulating", "burned_total", "jackpot", "staked", "retained_from_genesis")
"""Metrics taken at each run's last epoch."""


def compute_label(scenario: str, point: Sequence[tuple[str, Any]]) -> str:
    """A short name for a mechanism: the scenario and the last part of each sweep key."""
    parts = [f"{key.rsplit('.', 1)[-1]}={value}" for key, value in point]
    return ", ".join([scenario] + parts) if parts else scenario


def build_table(results: Sequence[RunResult], sweep_keys: Sequence[str]) -> pd.DataFrame:
    """The tidy results table: one row per run x epoch; the run's identity, its sweep point (one column
    per sweep key) and every per-epoch metric."""
    if not results:
        return pd.DataFrame(columns=list(RUN_COLUMNS) + list(sweep_keys))
    lengths = [len(r.columns["epoch"]) for r in results]
    data: dict[str, Any] = {
        "run": np.repeat([r.index for r in results], lengths),
        "scenario": np.repeat([r.scenario for r in results], lengths),
        "repetition": np.repeat([r.repetition for r in results], lengths),
        "seed": np.repeat(np.array([r.seed for r in results], dtype=np.int64), lengths),
    }
    for key in sweep_keys:
        data[key] = np.repeat(np.array([dict(r.point)[key] for r in results], dtype=object), lengths)
        if all(isinstance(dict(r.point)[key], (int, float)) and not isinstance(dict(r.point)[key], bool) for r in results):
            data[key] = data[key].astype(np.float64 if any(isinstance(dict(r.point)[key], float) for r in results) else np.int64)
    data["epoch"] = np.concatenate([r.columns["epoch"] for r in results]).astype(np.int64)
    for name in results[0].columns:
        if name != "epoch":
            data[name] = np.concatenate([r.columns[name] for r in results])
    return pd.DataFrame(data)


@dataclass(frozen=True)
class Mechanism:
    scenario: str
    point: tuple[tuple[str, Any], ...]
    config: SimulationConfig
    results: tuple[RunResult, ...]

    @property
    def label(self) -> str:
        return compute_label(self.scenario, self.point)


def group_mechanisms(runs: Sequence[RunSpec], results: Sequence[RunResult]) -> list[Mechanism]:
    """Results grouped by (scenario, sweep point), in run order."""
    by_index = {r.index: r for r in results}
    groups: dict[tuple[str, tuple[tuple[str, Any], ...]], list[RunSpec]] = {}
    for spec in runs:
        groups.setdefault((spec.scenario, spec.point), []).append(spec)
    return [
        Mechanism(scenario, point, specs[0].config, tuple(by_index[s.index] for s in specs if s.index in by_index))
        for (scenario, point), specs in groups.items()
    ]


def compute_mean_se(values: Sequence[float]) -> dict[str, float | None]:
    """Mean and standard error over repetitions (NaNs dropped; SE needs two values)."""
    x = np.array([v for v in values if v is not None and np.isfinite(v)], dtype=np.float64)
    if len(x) == 0:
        return {"mean": None, "se": None}
    se = float(x.std(ddof=1) / math.sqrt(len(x))) if len(x) > 1 else None
    return {"mean": float(x.mean()), "se": se}


def _run_mean(result: RunResult, name: str, warmup: int) -> float:
    column = result.columns[name][warmup:]
    finite = column[np.isfinite(column)]
    return float(finite.mean()) if len(finite) else float("nan")


def compute_rolling(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over `window` epochs, ignoring NaN epochs (NaN until a value has been seen)."""
    finite = np.isfinite(values)
    sums = np.cumsum(np.where(finite, values, 0.0))
    counts = np.cumsum(finite)
    sums[window:] = sums[window:] - sums[:-window]
    counts[window:] = counts[window:] - counts[:-window]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)


def compute_cheat_dynamics(mechanism: Mechanism) -> dict[str, Any]:
    """The verifier's dilemma in numbers, from the repetition-averaged cheat and check rates smoothed
    over `window` epochs: where cheating starts, its lowest point (the trough), its highest point after
    the trough (the rebound), and the final quarter."""
    epochs = min(len(r.columns["epoch"]) for r in mechanism.results)
    window = max(5, epochs // 20)

    def averaged(name: str) -> np.ndarray:
        stack = np.vstack([r.columns[name][:epochs] for r in mechanism.results])
        with np.errstate(invalid="ignore"):
            return compute_rolling(np.nanmean(np.where(np.isfinite(stack), stack, np.nan), axis=0), window)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        cheat = averaged("cheat_rate")
        check = averaged("check_rate")
    start = window  # the first full window
    if epochs <= start + 1 or not np.isfinite(cheat[start:]).any():
        return {"window": window}
    trough = start + int(np.nanargmin(cheat[start:]))
    after = cheat[trough:]
    rebound = trough + int(np.nanargmax(after))
    quarter = max(1, epochs // 4)
    return {
        "window": window,
        "cheat_rate_start": _finite(cheat[start]),
        "cheat_rate_trough": _finite(cheat[trough]),
        "trough_epoch": trough,
        "check_rate_at_trough": _finite(check[trough]),
        "cheat_rate_rebound": _finite(cheat[rebound]),
        "rebound_epoch": rebound,
        "check_rate_min_after_start": _finite(float(np.nanmin(check[start:]))),
        "cheat_rate_final_quarter": _finite(float(np.nanmean(np.vstack([r.columns["cheat_rate"][-quarter:] for r in mechanism.results])))),
        "check_rate_final_quarter": _finite(float(np.nanmean(np.vstack([r.columns["check_rate"][-quarter:] for r in mechanism.results])))),
    }


def _finite(value: float) -> float | None:
    return float(value) if value is not None and np.isfinite(value) else None


@dataclass(frozen=True)
class CheatingComparison:
    """Measured profitability of cheating (per resolved job) against the analytic condition."""

    cheat_jobs: int
    honest_jobs: int
    measured: float  # tokens: mean profit of a cheated job - mean profit of an honest one
    se: float  # its Monte Carlo standard error (jobs taken as independent draws)
    analytic: float  # tokens: gain - p_detect * loss_if_caught at the measured means of the inputs
    p_detect: float
    gain: float
    price: float
    stake_at_risk: float
    unreleased_vesting: float
    slash_fraction: float
    game_cost: float

    @property
    def z(self) -> float:
        return (self.measured - self.analytic) / self.se if self.se > 0 else (0.0 if self.measured == self.analytic else math.inf)

    def as_dict(self) -> dict[str, Any]:
        data = {k: getattr(self, k) for k in self.__dataclass_fields__}
        data["z"] = self.z
        return {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in data.items()}


def compute_cheating_comparison(mechanism: Mechanism) -> CheatingComparison | None:
    """Pool every resolved job of the mechanism's runs (after warm-up) and compare the measured gap
    between cheating and honest work with gain - p_detect * (price + f * stake + vesting + game cost),
    whose inputs are the means over the cheated jobs (their detection chance is the chance their
    watcher verified them, known before the draw). None when either kind of job never resolved."""
    warmup = mechanism.config.run.warmup_epochs
    total: dict[str, float] = {}
    for name in ("cheat_jobs", "cheat_profit_sum", "cheat_profit_sumsq", "honest_jobs", "honest_profit_sum",
                 "honest_profit_sumsq", "cheat_gain_sum", "cheat_price_sum", "cheat_stake_sum", "cheat_vesting_sum",
                 "cheat_pdetect_sum"):
        total[name] = float(sum(r.columns[name][warmup:].sum() for r in mechanism.results))
    n_c, n_h = total["cheat_jobs"], total["honest_jobs"]
    if n_c < 2 or n_h < 2:
        return None
    mean_c = total["cheat_profit_sum"] / n_c
    mean_h = total["honest_profit_sum"] / n_h
    # sample variances from the sums (n - 1 in the denominator), then the standard error of the difference
    var_c = max(0.0, (total["cheat_profit_sumsq"] - n_c * mean_c**2) / (n_c - 1))
    var_h = max(0.0, (total["honest_profit_sumsq"] - n_h * mean_h**2) / (n_h - 1))
    se = math.sqrt(var_c / n_c + var_h / n_h)
    p_detect = total["cheat_pdetect_sum"] / n_c
    gain = total["cheat_gain_sum"] / n_c
    price = total["cheat_price_sum"] / n_c
    stake = total["cheat_stake_sum"] / n_c
    vesting = total["cheat_vesting_sum"] / n_c
    fraction = mechanism.config.params.slash_fraction_bps / 10_000
    game = mechanism.config.dispute.game_cost_worker
    loss = compute_loss_if_caught(price, stake, fraction, vesting, game)
    return CheatingComparison(int(n_c), int(n_h), mean_c - mean_h, se, compute_cheating_advantage(p_detect, gain, loss),
                              p_detect, gain, price, stake, vesting, fraction, game)


def compute_axis_value(key: str, value: Any) -> float:
    """A sweep value on its plotting axis: basis points become fractions."""
    return float(value) / 10_000 if key.endswith("_bps") else float(value)


def compute_phase_boundary(mechanisms: Sequence[Mechanism], x_key: str, y_key: str) -> dict[str, Any]:
    """For each scenario and each x (verification probability), where along y (slash fraction) cheating
    stops paying: measured (the first sign change of the measured gap, linearly interpolated) and
    analytic (`compute_critical_slash_fraction` at the measured inputs), with the Monte Carlo tolerance
    2 SE / |slope| at the crossing. Also per-point z-scores of measured against analytic gaps."""
    out: dict[str, Any] = {"x": x_key, "y": y_key, "scenarios": {}}
    for scenario in dict.fromkeys(m.scenario for m in mechanisms):
        points = []
        for m in mechanisms:
            if m.scenario != scenario:
                continue
            comparison = compute_cheating_comparison(m)
            if comparison is None:
                continue
            point = dict(m.point)
            points.append((compute_axis_value(x_key, point[x_key]), compute_axis_value(y_key, point[y_key]), comparison))
        rows = []
        for x in sorted({p[0] for p in points}):
            column = sorted((p for p in points if p[0] == x), key=lambda p: p[1])
            rows.append(_compute_crossing(x, column))
        zs = [abs(p[2].z) for p in points if np.isfinite(p[2].z)]
        decided = [p for p in points if abs(p[2].analytic) > 3 * p[2].se]
        agree = sum(1 for p in decided if (p[2].measured > 0) == (p[2].analytic > 0))
        out["scenarios"][scenario] = {
            "points": [{"x": x, "y": y, **c.as_dict()} for x, y, c in points],
            "boundary": rows,
            "max_abs_z": max(zs) if zs else None,
            "share_within_2se": (sum(1 for z in zs if z <= 2) / len(zs)) if zs else None,
            "share_within_3se": (sum(1 for z in zs if z <= 3) / len(zs)) if zs else None,
            "sign_agreement": f"{agree}/{len(decided)} points whose analytic sign is clear (|gap| > 3 SE)",
            "boundary_within_tolerance": all(r["within"] for r in rows if r["within"] is not None),
            "max_boundary_error": max((abs(r["error"]) for r in rows if r["error"] is not None), default=None),
        }
    return out


def _compute_crossing(x: float, column: list[tuple[float, float, CheatingComparison]]) -> dict[str, Any]:
    ys = [p[1] for p in column]
    c0 = column[0][2]
    analytic = compute_critical_slash_fraction(c0.p_detect, float(np.mean([p[2].gain for p in column])),
                                               float(np.mean([p[2].price for p in column])),
                                               float(np.mean([p[2].stake_at_risk for p in column])),
                                               float(np.mean([p[2].unreleased_vesting for p in column])), c0.game_cost)
    measured: float | None = None
    tolerance: float | None = None
    for (_, y1, a), (_, y2, b) in zip(column[:-1], column[1:], strict=True):
        if a.measured >= 0 > b.measured:
            slope = (b.measured - a.measured) / (y2 - y1)
            measured = y1 + a.measured / -slope
            tolerance = 2 * max(a.se, b.se) / abs(slope)
            break
    lo, hi = min(ys), max(ys)
    if measured is None:
        side = "below" if all(p[2].measured < 0 for p in column) else "above" if all(p[2].measured >= 0 for p in column) else "mixed"
        analytic_side = "below" if analytic < lo else "above" if analytic > hi else "inside"
        within = side == analytic_side if side != "mixed" else False
        return {"x": x, "measured": None, "measured_side": side, "analytic": _finite(analytic), "error": None,
                "tolerance": None, "within": within}
    error = measured - analytic
    # interpolating linearly costs nothing here: the expected gap is linear in the slash fraction
    assert tolerance is not None
    return {"x": x, "measured": measured, "measured_side": "inside", "analytic": _finite(analytic), "error": error,
            "tolerance": tolerance, "within": abs(error) <= tolerance}


def compute_attack_figures(mechanism: Mechanism) -> dict[str, Any]:
    """Griefing, collusion and the guessing of forced errors in numbers, over every epoch of the
    mechanism's runs: what the attackers opened and lost (tokens per run), how much later honest jobs were
    paid (epochs past the end of their first window), whether any wrong cheat was paid, and how often a
    guesser's guessed test was one against the base rate (z: the gap in binomial standard errors)."""
    runs = max(1, len(mechanism.results))

    def total(name: str) -> float:
        return float(sum(np.nansum(r.columns[name]) for r in mechanism.results))

    honest_paid = total("honest_paid")
    guess_checks, guess_hits = total("guess_checks"), total("guess_hits")
    sealed = total("sealed_committed")
    forced_rate = total("forced_errors") / sealed if sealed else None
    precision = guess_hits / guess_checks if guess_checks else None
    z = None
    if precision is not None and forced_rate is not None and 0 < forced_rate < 1:
        z = (precision - forced_rate) / math.sqrt(forced_rate * (1 - forced_rate) / guess_checks)
    return {
        "grief_disputes_per_run": total("grief_disputes") / runs,
        "grief_bonds_lost_per_run": total("grief_bonds_lost") / runs,
        "collusion_disputes_per_run": total("collusion_disputes") / runs,
        "collusion_bonds_lost_per_run": total("collusion_bonds_lost") / runs,
        "bond_shares_to_workers_per_run": total("bond_shares_to_workers") / runs,
        "bonds_burned_per_run": (total("grief_bonds_lost") + total("collusion_bonds_lost") - total("bond_shares_to_workers")) / runs,
        "cheats_paid": int(total("cheats_paid")),
        "cheats_caught": int(total("cheats_caught")),
        "cheats_resolved": int(total("cheat_jobs")),
        "honest_paid": int(honest_paid),
        "honest_delay_mean": total("honest_delay_sum") / honest_paid if honest_paid else None,
        "honest_delayed_share": total("honest_delayed") / honest_paid if honest_paid else None,
        "guess_checks": int(guess_checks),
        "guess_hits": int(guess_hits),
        "guess_precision": precision,
        "forced_rate": forced_rate,
        "guess_z": z,
    }


BASELINE = "baseline"
"""The scenario other scenarios' attacks are measured against, when a config has one."""


def compare_with_baseline(mechanisms: list[dict[str, Any]]) -> None:
    """Give each mechanism's `attacks` what the attack changed for the honest side against the scenario
    named `baseline` at the same sweep point (same seeds): the extra payment delay (epochs per honest
    job), honest workers' mean profit per epoch (tokens) and the honest jobs paid by the end."""
    baselines = {tuple(sorted(m["point"].items())): m for m in mechanisms if m["scenario"] == BASELINE}
    for m in mechanisms:
        base = baselines.get(tuple(sorted(m["point"].items())))
        if base is None or m is base:
            continue
        a, b = m["attacks"], base["attacks"]
        profit, base_profit = m["metrics"]["profit_honest"]["mean"], base["metrics"]["profit_honest"]["mean"]
        a["vs_baseline"] = {
            "honest_delay_extra": None if a["honest_delay_mean"] is None or b["honest_delay_mean"] is None
            else a["honest_delay_mean"] - b["honest_delay_mean"],
            "honest_profit": profit,
            "honest_profit_baseline": base_profit,
            "honest_paid": a["honest_paid"],
            "honest_paid_baseline": b["honest_paid"],
        }


def compute_summary(experiment: Experiment, results: Sequence[RunResult], seconds: float) -> dict[str, Any]:
    """The experiment's summary (JSON-ready): per mechanism, metric means with Monte Carlo errors, the
    cheating dynamics, the measured-vs-analytic comparison; the phase boundary when configured."""
    mechanisms = group_mechanisms(experiment.runs, results)
    report = experiment.base.report
    summary: dict[str, Any] = {
        "name": experiment.base.run.name,
        "runs": len(results),
        "scenarios": list(experiment.scenarios),
        "sweep": {key: list(values) for key, values in experiment.sweep},
        "seconds": seconds,
        "run_seconds_mean": float(np.mean([r.seconds for r in results])) if results else None,
        "invariant_checks": int(sum(r.final["invariant_checks"] for r in results)),
        "mechanisms": [],
    }
    for m in mechanisms:
        warmup = m.config.run.warmup_epochs
        metrics = {name: compute_mean_se([_run_mean(r, name, warmup) for r in m.results]) for name in SUMMARY_METRICS}
        for name in FINAL_METRICS:
            metrics[f"{name}_final"] = compute_mean_se([float(r.columns[name][-1]) for r in m.results])
        comparison = compute_cheating_comparison(m)
        summary["mechanisms"].append({
            "label": m.label,
            "scenario": m.scenario,
            "point": dict(m.point),
            "repetitions": len(m.results),
            "epochs": m.config.run.epochs,
            "metrics": metrics,
            "cheat_dynamics": compute_cheat_dynamics(m),
            "cheating_vs_analytic": comparison.as_dict() if comparison is not None else None,
            "attacks": compute_attack_figures(m),
        })
    compare_with_baseline(summary["mechanisms"])
    if report.phase_x and report.phase_y:
        summary["phase"] = compute_phase_boundary(mechanisms, report.phase_x, report.phase_y)
    return summary


def to_jsonable(value: Any) -> Any:
    """`value` with numpy scalars, tuples and non-finite floats made JSON-safe (NaN and inf -> null)."""
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
