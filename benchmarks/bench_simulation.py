"""The agent-based simulation: one large run, and a sweep's throughput on 1 and 2 local workers.

Run as pytest-benchmark suites (`make bench`) or as a script that prints a table and writes it as
JSON: `python benchmarks/bench_simulation.py [--out FILE] [--quick]`.

Measured:
- 1,000 agents x 1,000 epochs in one run on one core (about 200 jobs an epoch through the protocol's
  transitions), with the economy's invariants checked every epoch and with them off, and where the
  time goes (a profile of a shorter run, grouped by module);
- a sweep of small runs (200 agents x 200 epochs) on a local process pool of 1 and of 2 workers, in
  runs per second on a warm pool, and the whole sweep's time from a cold one (start-up included).
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import json
import pstats
import time
from collections.abc import Iterator
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

import pytest

from pinpoint.simulation import build_config, compute_experiment, local_executor, run_sweep
from pinpoint.simulation.engine import Simulation

PARAMS: dict[str, Any] = {
    "worker_stake_increment": 0, "heartbeat_grace_epochs": 10, "unbonding_period_epochs": 12,
    "forced_error_rate_bps": 200, "vesting_epochs": 10,
}

LARGE: dict[str, Any] = {
    "run": {"name": "large", "epochs": 1000, "seed": 1, "invariants": "epoch"},
    "protocol": {"preset": "minimal", "params": PARAMS},
    "churn": {"enabled": True},
    "users": {"count": 50, "jobs_per_epoch": 4.0, "work_units": [5, 20], "max_unit_price": [2, 4]},
    "workers": {
        "honest": {"count": 550, "pool": 50, "ask_spread": 0.3},
        "cheaters": {"strategy": "cheater", "count": 50, "cheat_probability": 0.2, "ask_spread": 0.3},
        "adaptive": {"strategy": "adaptive", "count": 100, "pool": 20, "cheat_probability": 0.3, "ask_spread": 0.3},
        "lazy": {"strategy": "lazy", "count": 20, "ask_spread": 0.3},
    },
    "challengers": {"watchers": {"strategy": "adaptive", "count": 120, "pool": 40, "capacity": 5}},
}
"""1,000 agents: 50 users, 840 workers (720 active at genesis) and 160 challengers (120 active)."""


def large_table(epochs: int = 1000, invariants: str = "epoch") -> dict[str, Any]:
    data = copy.deepcopy(LARGE)
    data["run"].update(epochs=epochs, invariants=invariants)
    return data


def sweep_table(runs: int, agents_scale: float = 0.2, epochs: int = 200) -> dict[str, Any]:
    """`runs` runs of a fifth of LARGE (200 agents) for `epochs` epochs: repetitions of one point."""
    data = copy.deepcopy(LARGE)
    data["run"].update(epochs=epochs, repetitions=runs)
    data["users"]["count"] = round(50 * agents_scale)
    for section in ("workers", "challengers"):
        for population in data[section].values():
            population["count"] = max(1, round(population["count"] * agents_scale))
            population["pool"] = round(population.get("pool", 0) * agents_scale)
    return data


def count_agents(data: dict[str, Any]) -> int:
    pops = list(data["workers"].values()) + list(data["challengers"].values())
    return int(data["users"]["count"] + sum(p["count"] + p.get("pool", 0) for p in pops))


def time_large_run(epochs: int, invariants: str) -> dict[str, float]:
    config = build_config(large_table(epochs, invariants))
    start = time.perf_counter()
    simulation = Simulation(config, seed=1)
    columns = simulation.run()
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "jobs": float(columns["jobs_executed"].sum()), "epochs": float(epochs)}


def profile_large_run(epochs: int) -> dict[str, float]:
    """Share of the run's time (tottime) by module: each economy module, the simulation, the rest."""
    config = build_config(large_table(epochs, "epoch"))
    profiler = cProfile.Profile()
    profiler.enable()
    Simulation(config, seed=1).run()
    profiler.disable()
    stats = pstats.Stats(profiler)
    groups: dict[str, float] = {}
    total = 0.0
    for (filename, _, _), (_, _, tottime, _, _) in stats.stats.items():  # type: ignore[attr-defined]
        total += tottime
        path = filename.replace("\\", "/")
        if "/protocol/economy/" in path:
            key = "economy/" + path.rsplit("/", 1)[-1]
        elif "/pinpoint/simulation/" in path:
            key = "simulation/" + path.rsplit("/", 1)[-1]
        elif "fractions.py" in path:
            key = "fractions (economy's batch auction)"
        else:
            key = "other (numpy, builtins)"
        groups[key] = groups.get(key, 0.0) + tottime
    return {k: v / total for k, v in sorted(groups.items(), key=lambda kv: -kv[1])}


def warm_up(pool: Executor, workers: int) -> None:
    """Start every worker process (imports included) before timing: one 1-epoch run per worker."""
    tiny = sweep_table(workers, epochs=1)
    run_sweep(compute_experiment(tiny).runs, pool)


def time_sweep(runs: int, workers: int, epochs: int) -> dict[str, float]:
    """Seconds for `runs` runs on a pool of `workers` processes: from a cold pool (start-up included)
    and on a warm one (throughput proper)."""
    experiment = compute_experiment(sweep_table(runs, epochs=epochs))
    start = time.perf_counter()
    with local_executor(workers) as pool:
        run_sweep(experiment.runs, pool)
        cold = time.perf_counter() - start
        start = time.perf_counter()
        run_sweep(experiment.runs, pool)
        warm = time.perf_counter() - start
    return {"runs": runs, "cold_seconds": cold, "warm_seconds": warm, "runs_per_second": runs / warm}


def run_all(quick: bool) -> dict[str, Any]:
    epochs = 200 if quick else 1000
    report: dict[str, Any] = {"agents": count_agents(LARGE)}
    report["large_run"] = {mode: time_large_run(epochs, mode) for mode in ("epoch", "off")}
    report["profile_share"] = profile_large_run(100 if quick else 200)
    runs = 4 if quick else 12
    sweep_epochs = 100 if quick else 200
    report["sweep"] = {
        "agents": count_agents(sweep_table(runs)), "epochs": sweep_epochs,
        "workers_1": time_sweep(runs, 1, sweep_epochs), "workers_2": time_sweep(runs, 2, sweep_epochs),
    }
    return report


def print_report(report: dict[str, Any]) -> None:
    for mode, r in report["large_run"].items():
        print(f"{report['agents']} agents x {int(r['epochs'])} epochs, invariants {mode:5s}: {r['seconds']:6.2f} s "
              f"({r['jobs'] / r['epochs']:.0f} jobs/epoch, {r['seconds'] / r['epochs'] * 1e3:.2f} ms/epoch)")
    print("where the time goes (share of profiled time):")
    for key, share in list(report["profile_share"].items())[:10]:
        print(f"  {key:40s} {100 * share:5.1f}%")
    s = report["sweep"]
    one, two = s["workers_1"], s["workers_2"]
    print(f"sweep of {one['runs']} runs ({s['agents']} agents x {s['epochs']} epochs) on a warm pool: "
          f"1 worker {one['runs_per_second']:.2f} runs/s, 2 workers {two['runs_per_second']:.2f} runs/s "
          f"(speed-up {two['runs_per_second'] / one['runs_per_second']:.2f}x); from a cold pool "
          f"{one['cold_seconds']:.2f} s vs {two['cold_seconds']:.2f} s")


# --- pytest-benchmark suites -----------------------------------------------------------------------


@pytest.mark.benchmark(group="simulation-run")
def test_large_run(benchmark: Any) -> None:
    config = build_config(large_table(1000, "epoch"))
    benchmark.pedantic(lambda: Simulation(config, seed=1).run(), rounds=1, iterations=1)


@pytest.fixture(scope="module", params=[1, 2], ids=["workers-1", "workers-2"])
def warm_pool(request: Any) -> Iterator[Executor]:
    with local_executor(request.param) as pool:
        warm_up(pool, request.param)
        yield pool


@pytest.mark.benchmark(group="simulation-sweep")
def test_sweep_throughput(benchmark: Any, warm_pool: Executor) -> None:
    """Eight runs of 200 agents x 100 epochs on a warm pool of 1 or 2 processes."""
    experiment = compute_experiment(sweep_table(8, epochs=100))
    benchmark.pedantic(lambda: run_sweep(experiment.runs, warm_pool), rounds=3, iterations=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="write the report as JSON here")
    parser.add_argument("--quick", action="store_true", help="fewer epochs and runs")
    args = parser.parse_args()
    report = run_all(args.quick)
    print_report(report)
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
