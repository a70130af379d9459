"""`pinpoint simulate`: run an experiment from a TOML config and write its table, summary and plots.

The command object is `simulate_command`; the main command line registers it as `simulate`.
"""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import Executor
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import click

from pinpoint.simulation.config import Experiment, load_experiment
from pinpoint.simulation.engine import RunResult
from pinpoint.simulation.output import (
    PHASE_PNG,
    SUMMARY_JSON,
    TIMESERIES_PNG,
    claim_output_dir,
    prepare_output_dir,
    write_json,
    write_table,
)
from pinpoint.simulation.sweep import dask_executor, local_executor, run_sweep


def run_experiment(experiment: Experiment, out: Path, executor: Executor, progress: bool = False) -> dict[str, Any]:
    """Run every run of `experiment` on `executor` and write the outputs into `out`; returns the summary
    (which also lists the files written)."""
    from tqdm import tqdm

    from pinpoint.simulation.plots import plot_phase_diagram, plot_timeseries
    from pinpoint.simulation.report import build_table, compute_summary

    prepare_output_dir(out)
    start = time.perf_counter()
    with tqdm(total=len(experiment.runs), desc="simulate", unit="run", file=sys.stderr, disable=not progress) as bar:
        def on_done(result: RunResult) -> None:
            bar.update(1)

        results = run_sweep(experiment.runs, executor, on_done)
    seconds = time.perf_counter() - start
    sweep_keys = [key for key, _ in experiment.sweep]
    table = build_table(results, sweep_keys)
    summary = compute_summary(experiment, results, seconds)
    files = [p.name for p in write_table(table, out)]
    report = experiment.base.report
    mechanisms = len(summary["mechanisms"])
    if mechanisms <= report.max_series_lines:
        files.append(plot_timeseries(table, report.series, sweep_keys, out / TIMESERIES_PNG, experiment.base.run.name).name)
    else:
        summary["timeseries_skipped"] = f"{mechanisms} mechanisms exceed report.max_series_lines={report.max_series_lines}"
    if "phase" in summary:
        files.append(plot_phase_diagram(summary["phase"], out / PHASE_PNG, experiment.base.run.name).name)
    files.append(SUMMARY_JSON)
    summary["files"] = files
    write_json(summary, out / SUMMARY_JSON)
    return summary


@click.command("simulate")
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="experiment config (TOML)")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="a new (or empty) directory for runs.parquet, runs.csv, summary.json and the plots")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="local worker processes (default: CPU count)")
@click.option("--scheduler", default=None, help="Dask distributed scheduler address (e.g. tcp://host:8786) instead of local processes")
@click.option("--json", "as_json", is_flag=True, help="print the summary as JSON")
def simulate_command(config_path: Path, out: Path, workers: int | None, scheduler: str | None, as_json: bool) -> None:
    """Agent-based simulation of the economy: sweeps of mechanisms, Monte Carlo runs, table and plots.
    Errors propagate to the command line's error policy (`pinpoint.cli`): a bad config or output
    directory is refused with one line."""
    from prover.process import tune_process

    if scheduler is not None and workers is not None:
        raise click.UsageError("--workers sizes the local process pool; with --scheduler the cluster decides (give one of them)")
    tune_process()
    experiment = load_experiment(config_path)
    with claim_output_dir(out):
        context: AbstractContextManager[Executor] = dask_executor(scheduler) if scheduler else local_executor(workers)
        with context as executor:
            summary = run_experiment(experiment, out, executor, progress=not as_json)
    if as_json:
        click.echo(json.dumps(_brief(summary, out, full=True), default=str))
        return
    brief = _brief(summary, out, full=False)
    click.echo(f"{brief['runs']} runs in {brief['seconds']:.1f} s -> {out}")
    for m in brief["mechanisms"]:
        click.echo(f"  {m['label']}: cheat rate {_fmt(m['cheat_rate'])}, check rate {_fmt(m['check_rate'])}, "
                   f"detection {_fmt(m['detection_rate'])}, gini {_fmt(m['gini_rewards'])}")
        attacks = m["attacks"]
        if attacks["grief_disputes_per_run"] or attacks["collusion_disputes_per_run"] or attacks["guess_checks"]:
            click.echo(f"    honest pay delay {_fmt(attacks['honest_delay_mean'])} epochs, griefers' bonds lost "
                       f"{_fmt(attacks['grief_bonds_lost_per_run'])} and colluders' {_fmt(attacks['collusion_bonds_lost_per_run'])} "
                       f"per run, wrong cheats paid {attacks['cheats_paid']}, guesses that were tests "
                       f"{_fmt(attacks['guess_precision'])} (rate {_fmt(attacks['forced_rate'])})")
    for scenario, phase in brief.get("phase", {}).items():
        click.echo(f"  phase boundary [{scenario}]: max |z| {_fmt(phase['max_abs_z'])}, "
                   f"max boundary error {_fmt(phase['max_boundary_error'])}, within MC error: {phase['within']}")


def _fmt(value: Any) -> str:
    return "n/a" if value is None else f"{value:.3g}"


def _brief(summary: dict[str, Any], out: Path, full: bool) -> dict[str, Any]:
    from pinpoint.simulation.report import to_jsonable

    if full:
        return {"out": str(out), **to_jsonable(summary)}
    brief: dict[str, Any] = {"runs": summary["runs"], "seconds": summary["seconds"], "mechanisms": []}
    for m in summary["mechanisms"]:
        brief["mechanisms"].append({"label": m["label"], "attacks": m["attacks"], **{k: m["metrics"][k]["mean"] for k in (
            "cheat_rate", "check_rate", "detection_rate", "gini_rewards")}})
    if "phase" in summary:
        brief["phase"] = {
            s: {"max_abs_z": d["max_abs_z"], "max_boundary_error": d["max_boundary_error"], "within": d["boundary_within_tolerance"]}
            for s, d in summary["phase"]["scenarios"].items()
        }
    return brief
