"""Plots (matplotlib, Agg backend, PNG): time series per mechanism, and the phase diagram of cheating
profitability over (verification probability, slash fraction) with the analytic boundary."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib.colors import TwoSlopeNorm  # noqa: E402

from pinpoint.simulation.analytic import compute_critical_slash_fraction  # noqa: E402
from pinpoint.simulation.metrics import EPOCH_COLUMNS, PROFIT_COLUMNS  # noqa: E402
from pinpoint.simulation.output import write_atomic  # noqa: E402
from pinpoint.simulation.report import compute_label, compute_rolling  # noqa: E402


def plot_timeseries(table: pd.DataFrame, series: Sequence[str], sweep_keys: Sequence[str], path: Path,
                    title: str) -> Path:
    """One panel per metric in `series`; one line per mechanism (scenario x sweep point), the mean over
    repetitions smoothed over a short trailing window, with a band from the repetitions' min to max."""
    known = set(EPOCH_COLUMNS) | set(PROFIT_COLUMNS)
    series = [s for s in series if s in known and s in table.columns]
    keys = ["scenario", *sweep_keys]
    groups = list(table.groupby(keys, sort=False, dropna=False))
    epochs = int(table["epoch"].max()) + 1 if len(table) else 1
    window = max(1, epochs // 50)
    fig, axes = plt.subplots(len(series), 1, figsize=(9, 2.3 * len(series) + 0.8), sharex=True, squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for g, (key, frame) in enumerate(groups):
        key = key if isinstance(key, tuple) else (key,)
        label = compute_label(str(key[0]), list(zip(sweep_keys, key[1:], strict=True)))
        color = colors[g % len(colors)]
        style = ("-", "--", ":")[g // len(colors) % 3]  # past the colour cycle, lines differ by dash
        for ax, name in zip(axes[:, 0], series, strict=True):
            wide = frame.pivot_table(index="epoch", columns="run", values=name, aggfunc="first", dropna=False)
            x = wide.index.to_numpy()
            values = wide.to_numpy(dtype=np.float64)
            with np.errstate(invalid="ignore"):
                smooth = np.column_stack([compute_rolling(values[:, j], window) for j in range(values.shape[1])])
            finite = np.isfinite(smooth)
            count = finite.sum(axis=1)
            mean = np.where(count > 0, np.where(finite, smooth, 0.0).sum(axis=1) / np.maximum(count, 1), np.nan)
            low = np.where(count > 0, np.where(finite, smooth, np.inf).min(axis=1), np.nan)
            high = np.where(count > 0, np.where(finite, smooth, -np.inf).max(axis=1), np.nan)
            ax.plot(x, mean, color=color, ls=style, lw=1.4, label=label)
            if values.shape[1] > 1:
                ax.fill_between(x, low, high, color=color, alpha=0.15, lw=0)
            ax.set_ylabel(name.replace("_", " "), fontsize=8)
            ax.grid(alpha=0.3)
    axes[0, 0].set_title(f"{title} (mean over repetitions, {window}-epoch trailing mean; band: min-max)", fontsize=9)
    axes[-1, 0].set_xlabel("epoch")
    axes[0, 0].legend(fontsize=7, loc="best")
    fig.tight_layout()
    return _save(fig, path)


def plot_phase_diagram(phase: dict[str, Any], path: Path, title: str) -> Path:
    """Measured advantage of cheating (tokens per job: mean profit of a cheated job minus an honest
    one) over (verification probability, slash fraction), one panel per scenario; the measured zero
    crossing per column (dots, with Monte Carlo error bars) and the analytic boundary
    p * (price + f * stake + vesting + game cost) = gain (line)."""
    scenarios = phase["scenarios"]
    fig, axes = plt.subplots(1, max(1, len(scenarios)), figsize=(6.2 * max(1, len(scenarios)), 5), squeeze=False)
    for ax, (scenario, data) in zip(axes[0], scenarios.items(), strict=False):
        points = data["points"]
        if not points:
            ax.set_title(f"{scenario}: no cheats resolved")
            continue
        xs = sorted({p["x"] for p in points})
        ys = sorted({p["y"] for p in points})
        grid = np.full((len(ys), len(xs)), np.nan)
        for p in points:
            grid[ys.index(p["y"]), xs.index(p["x"])] = p["measured"]
        # each side of zero gets the full colour range, so a faint advantage still shows as red
        low = min(float(np.nanmin(grid)), -1e-9)
        high = max(float(np.nanmax(grid)), 1e-9)
        mesh = ax.pcolormesh(_edges(xs), _edges(ys), grid, cmap="RdBu_r", norm=TwoSlopeNorm(0.0, low, high), shading="flat")
        fig.colorbar(mesh, ax=ax, label="cheat - honest profit per job (tokens)")
        measured = [(r["x"], r["measured"], r["tolerance"]) for r in data["boundary"] if r["measured"] is not None]
        if measured:
            mx, my, mt = zip(*measured, strict=True)
            ax.errorbar(mx, my, yerr=mt, fmt="o", color="k", ms=4, capsize=3, label="measured boundary (±2 SE)")
        mean = {k: float(np.mean([p[k] for p in points])) for k in ("gain", "price", "stake_at_risk", "unreleased_vesting", "game_cost")}
        coverage = float(np.mean([p["p_detect"] / p["x"] for p in points if p["x"] > 0])) if any(p["x"] > 0 for p in points) else 1.0
        curve_x = np.linspace(min(xs), max(xs), 200)
        curve_y = [compute_critical_slash_fraction(x * coverage, mean["gain"], mean["price"], mean["stake_at_risk"],
                                                   mean["unreleased_vesting"], mean["game_cost"]) for x in curve_x]
        ax.plot(curve_x, curve_y, color="k", lw=1.5, ls="--", label="analytic: p·(price + f·stake + g) = gain")
        ax.set_xlim(_edges(xs)[0], _edges(xs)[-1])
        ax.set_ylim(_edges(ys)[0], _edges(ys)[-1])
        ax.set_xlabel(phase["x"].rsplit(".", 1)[-1].replace("_", " "))
        ax.set_ylabel(phase["y"].rsplit(".", 1)[-1].replace("_bps", " (fraction)").replace("_", " "))
        ax.set_title(f"{title}: {scenario}\nred: cheating pays; blue: it does not", fontsize=9)
        ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return _save(fig, path)


def _edges(values: Sequence[float]) -> np.ndarray:
    """Cell edges around sorted grid values (midpoints inside, half a step beyond the ends)."""
    v = np.asarray(values, dtype=np.float64)
    if len(v) == 1:
        return np.array([v[0] - 0.5, v[0] + 0.5]) if v[0] == 0 else np.array([v[0] * 0.5, v[0] * 1.5])
    mids = (v[1:] + v[:-1]) / 2
    return np.concatenate([[v[0] - (mids[0] - v[0])], mids, [v[-1] + (v[-1] - mids[-1])]])


def _save(fig: Any, path: Path) -> Path:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    plt.close(fig)
    data = buffer.getvalue()
    return write_atomic(path, lambda stream: stream.write(data))
