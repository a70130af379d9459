"""The task zoo: each task's reproducible training step against the same step in plain PyTorch.

Run under `make bench` (one pytest-benchmark test that measures every task and writes the report) or
as a script: `python benchmarks/bench_zoo.py [--quick] [--tasks mlp-mid,gpt-mid] [--out DIR]`. It
prints a table, and writes `zoo.json` and `zoo.png` (ratios per task, goal lines at 1.3x and 2x) into
`benchmarks/results/` (or DIR). Progress goes to stderr; a full run takes several minutes on 2 cores.

Tasks: the mlp (SGD) and transformer (AdamW) presets at mid size, and the zoo's task files at the size
their SIZE line names, set to "mid" in a temporary copy of the file (as the presets are made).

Each side runs in its own process (`runner.py`), asked in turn, round after round (A B A B), so
drift on the machine hits both alike:
- native: a clean environment (no OpenMP or numba settings, nothing of pinpoint imported), torch's
  default threads, the ordinary loop on random batches; every `foreach` choice of the optimizer is
  timed and the best one is the baseline (the table says which won);
- reproducible: `Session` under `ReproducibleMode` with the fast kernels, compiled and warm;
- dispatch floor: the same session under an empty `TorchDispatchMode` that hands every operator to
  torch's own kernel (not reproducible): what routing each operator through Python costs by itself,
  the floor of any per-operator interception, reproducible or not;
- replayed: the reproducible step as `train --replay` runs it (`prover.replay`: the step's operator
  program captured from two eager steps that agree, then replayed without the task's Python; an eager
  step checked against the program every `AUDIT_EVERY` steps is part of the figure), in a process of
  its own, whose peak memory includes the captured steps (they hold every output, as a trace does);
- committed: the reproducible step as `train --checkpoint-every 1` runs it (state digests, Merkle
  root and checkpoint of the previous state on a background thread, waited for before the next
  commit: a pipeline one deep, as in a long run); the overhead is committed / reproducible - 1;
- trace: `regenerate_trace` of the last step of a 2-step run trained for it (checkpoint read and
  checked, the step's full trace hashed), in a process of its own;
- peak resident memory of each process (the native step, the reproducible step, a regeneration).
Each figure is the median of per-step times over all rounds. A task whose operators are not all
defined yet is reported as such (from the same check as `pinpoint check --task`), not measured.
The dispute's critical path is not measured here: `bench_dispute.py` measures it for the transformer.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Child  # noqa: E402

TASK_FOLDER = Path(__file__).resolve().parent.parent / "examples" / "tasks"
RESULTS = Path(__file__).resolve().parent / "results"
# name → (task file, the settings lines rewritten in its temporary copy)
TASKS: dict[str, tuple[str, dict[str, str]]] = {
    "mlp-mid": ("mlp", {"OPTIMIZER": "sgd", "SIZE": "mid"}),
    "transformer-mid": ("transformer", {"OPTIMIZER": "adamw", "SIZE": "mid"}),
    "resnet-mid": ("resnet", {"SIZE": "mid"}),
    "gpt-mid": ("gpt", {"SIZE": "mid"}),
    "llama-mid": ("llama", {"SIZE": "mid"}),
    "rnn-mid": ("rnn", {"SIZE": "mid"}),
    "tabular": ("tabular", {}),  # one size only
}
GOALS = (1.3, 2.0)  # reproducible / native: the targets drawn on the chart
RUN_STEPS = 2  # steps of the run whose last step's trace is regenerated
PAUSE_SECONDS = 0.1  # between one side's turn and the other's: the idle side's pool goes to sleep


def write_task_copy(file: str, settings: dict[str, str], folder: Path) -> Path:
    """The task file with its `NAME = ...` lines set (the way the presets are made)."""
    from prover.presets import compute_task_variant

    path = folder / f"{file}.py"
    path.write_bytes(compute_task_variant(TASK_FOLDER / f"{file}.py", settings))
    return path


def get_count(seconds_per_call: float, target_seconds: float, cap: int = 50) -> int:
    """Calls per turn: enough to last about `target_seconds`, at least one."""
    return max(1, min(cap, round(target_seconds / max(seconds_per_call, 1e-6))))


def measure_task(name: str, path: Path, folder: Path, rounds: int, target_seconds: float, budget_seconds: float,
                 progress: Callable[[str], None]) -> dict[str, Any]:
    """One task's figures (see the module docstring); {"status": ...} when it cannot be measured."""
    run = folder / f"{name}-run"
    trainer = Child("train", str(path), str(run), str(RUN_STEPS))
    native = Child("native", str(path), clean=True)
    reproducible = Child("reproducible", str(path))
    replay = Child("replay", str(path))
    children = [trainer, native, reproducible, replay]
    try:
        progress(f"{name}: checking operators, training a {RUN_STEPS}-step run, starting both sides")
        if not trainer.ready:
            status = (f"undefined operators: {', '.join(trainer.hello['undefined'])}" if "undefined" in trainer.hello
                      else f"error: {trainer.hello.get('error')}")
            return {"status": status, "detail": trainer.hello.get("describe", "")}
        for child, side in ((native, "native"), (reproducible, "reproducible"), (replay, "replay")):
            if not child.ready:
                return {"status": f"error ({side}): {child.hello.get('error')}"}
        tracer = Child("trace", str(path), str(run))
        children.append(tracer)
        if not tracer.ready:
            return {"status": f"error (trace): {tracer.hello.get('error')}"}
        configs: list[str] = native.hello["configs"]
        one = {
            "native": native.ask("steps", 1, config=configs[0])["times"][0],
            "reproducible": reproducible.ask("steps", 1)["times"][0],
            "trace": tracer.ask("regen", 1)["times"][0],
        }
        counts = {side: get_count(seconds, target_seconds) for side, seconds in one.items()}
        native_count = get_count(one["native"], target_seconds / len(configs))
        samples: dict[str, list[float]] = {key: [] for key in [*configs, "reproducible", "floor", "replay", "committed", "trace"]}
        peak: dict[str, int] = {}
        replay_counts: dict[str, int] = {}
        started = time.perf_counter()
        done = 0
        for r in range(rounds):
            for config in configs:
                answer = native.ask("steps", native_count, config=config)
                samples[config] += answer["times"]
                peak["native"] = answer["maxrss_kb"]
                time.sleep(PAUSE_SECONDS)
            answer = reproducible.ask("steps", counts["reproducible"])
            samples["reproducible"] += answer["times"]
            peak.setdefault("reproducible", answer["maxrss_kb"])  # before any commit's copies
            time.sleep(PAUSE_SECONDS)
            samples["floor"] += reproducible.ask("floor", counts["reproducible"])["times"]
            time.sleep(PAUSE_SECONDS)
            answer = replay.ask("steps", counts["reproducible"])
            samples["replay"] += answer["times"]
            peak["replay"], replay_counts = answer["maxrss_kb"], answer["counts"]
            time.sleep(PAUSE_SECONDS)
            samples["committed"] += reproducible.ask("committed", counts["reproducible"])["times"]
            time.sleep(PAUSE_SECONDS)
            answer = tracer.ask("regen", counts["trace"])
            samples["trace"] += answer["times"]
            peak["trace"] = answer["maxrss_kb"]
            time.sleep(PAUSE_SECONDS)
            done = r + 1
            median = {key: statistics.median(values) for key, values in samples.items()}
            best = min(configs, key=lambda c: median[c])
            progress(f"{name}: round {done}/{rounds}  native {1e3 * median[best]:.1f} ms ({best})"
                     f"  reproducible {1e3 * median['reproducible']:.1f} ms  x{median['reproducible'] / median[best]:.2f}")
            if done >= 2 and time.perf_counter() - started > budget_seconds:
                progress(f"{name}: over its time budget; stopping after {done} rounds")
                break
        median = {key: statistics.median(values) for key, values in samples.items()}
        best = min(configs, key=lambda c: median[c])
        step = median["reproducible"]
        return {
            "status": "measured",
            "rounds": done,
            "steps_per_turn": {"native": native_count, "reproducible": counts["reproducible"], "trace": counts["trace"]},
            "threads": {"native": native.hello["threads"], "reproducible": reproducible.hello["threads"]},
            "native_omp_wait_policy": native.hello["omp_wait_policy"],  # None: torch's default
            "operators_per_step": reproducible.hello["operators"],
            "trace_nodes": tracer.hello["nodes"],
            "native_seconds": {config: median[config] for config in configs},
            "native_best": best,
            "seconds": {"native": median[best], "reproducible": step, "dispatch_floor": median["floor"],
                        "replay": median["replay"], "committed": median["committed"], "trace": median["trace"]},
            "reproducible_vs_native": step / median[best],
            "dispatch_floor_vs_native": median["floor"] / median[best],
            "replay_vs_native": median["replay"] / median[best],
            "replay_steps": replay_counts,  # over the whole benchmark: replayed, captured (audits), eager
            "replay_refused": "" if replay.hello["replaying"] else replay.hello["reason"],
            "commit_overhead": median["committed"] / step - 1.0,
            "trace_vs_reproducible": median["trace"] / step,
            "trace_vs_native": median["trace"] / median[best],
            "overhead_per_operator_us": 1e6 * (step - median[best]) / max(reproducible.hello["operators"], 1),
            "peak_rss_mb": {side: kib / 1024 for side, kib in peak.items()},
        }
    except RuntimeError as error:
        return {"status": f"error: {error}"}
    finally:
        for child in children:
            child.close()


def run_zoo(names: list[str], quick: bool, progress: Callable[[str], None]) -> dict[str, Any]:
    rounds, target, budget = (2, 0.05, 5.0) if quick else (7, 0.4, 45.0)
    folder = Path(tempfile.mkdtemp(prefix="pinpoint-bench-zoo-"))
    started = time.perf_counter()
    report: dict[str, Any] = {
        "cores": os.cpu_count(), "python": platform.python_version(), "rounds": rounds, "target_seconds_per_turn": target,
        "dispute_critical_path": "not measured here: see bench_dispute.py (mid transformer)", "tasks": {},
    }
    try:
        for name in names:
            file, settings = TASKS[name]
            task_folder = folder / name
            task_folder.mkdir()
            path = write_task_copy(file, settings, task_folder)
            report["tasks"][name] = measure_task(name, path, task_folder, rounds, target, budget, progress)
            progress(f"{name}: {report['tasks'][name]['status']} ({time.perf_counter() - started:.0f} s so far)")
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    report["seconds_total"] = time.perf_counter() - started
    return report


def format_table(report: dict[str, Any]) -> str:
    header = (f"{'task':16s} {'native ms':>10s} {'best native':>14s} {'repro ms':>9s} {'ratio':>6s} {'floor':>6s} {'replay':>6s}"
              f" {'commit':>7s} {'trace/step':>10s} {'ops':>6s} {'us/op':>6s} {'RSS MB native / repro / replay / trace':>39s}")
    lines = [header]
    for name, r in report["tasks"].items():
        if r["status"] != "measured":
            lines.append(f"{name:16s} {r['status']}")
            continue
        s, m = r["seconds"], r["peak_rss_mb"]
        lines.append(
            f"{name:16s} {1e3 * s['native']:10.1f} {r['native_best']:>14s} {1e3 * s['reproducible']:9.1f}"
            f" {r['reproducible_vs_native']:5.2f}x {r['dispatch_floor_vs_native']:5.2f}x {r['replay_vs_native']:5.2f}x"
            f" {100 * r['commit_overhead']:+6.1f}% {r['trace_vs_reproducible']:9.2f}x"
            f" {r['operators_per_step']:6d} {r['overhead_per_operator_us']:6.1f}"
            f" {m['native']:10.0f} / {m['reproducible']:5.0f} / {m['replay']:6.0f} / {m['trace']:5.0f}"
        )
    return "\n".join(lines)


def plot_zoo(report: dict[str, Any], path: Path) -> None:
    """Bars per measured task: the dispatch floor, reproducible step, replayed step, committed step and trace
    regeneration, each over the native step; dashed goal lines at 1.3x and 2x."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = {name: r for name, r in report["tasks"].items() if r["status"] == "measured"}
    names = list(measured)
    series = {
        "dispatch floor (empty mode)": [r["dispatch_floor_vs_native"] for r in measured.values()],
        "reproducible step": [r["reproducible_vs_native"] for r in measured.values()],
        "replayed step (--replay)": [r["replay_vs_native"] for r in measured.values()],
        "committed step": [r["seconds"]["committed"] / r["seconds"]["native"] for r in measured.values()],
        "trace regeneration": [r["trace_vs_native"] for r in measured.values()],
    }
    figure, axes = plt.subplots(figsize=(max(6.0, 1.3 * len(names) + 2), 4.5))
    width = 0.8 / len(series)
    for i, (label, values) in enumerate(series.items()):
        axes.bar([x + (i - (len(series) - 1) / 2) * width for x in range(len(names))], values, width, label=label)
    for goal in GOALS:
        axes.axhline(goal, linestyle="--", color="grey", linewidth=1)
        axes.text(len(names) - 0.5, goal, f" {goal}x", va="bottom", ha="right", color="grey")
    axes.axhline(1.0, color="black", linewidth=0.8)
    axes.set_xticks(range(len(names)), names, rotation=20)
    axes.set_yscale("log")
    axes.set_ylabel("time / native step (log)")
    skipped = [name for name in report["tasks"] if name not in measured]
    axes.set_title("pinpoint vs native PyTorch, per training step" + (f"\nnot measured: {', '.join(skipped)}" if skipped else ""),
                   fontsize=10)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def write_report(report: dict[str, Any], folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "zoo.json").write_text(json.dumps(report, indent=2) + "\n")
    plot_zoo(report, folder / "zoo.png")


def print_progress(message: str) -> None:
    print(f"[zoo {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


@pytest.mark.benchmark(group="zoo")
def test_zoo(benchmark: Any) -> None:
    """Every task, once (the figures are the children's medians, in `extra_info` and `zoo.json`)."""
    report = benchmark.pedantic(lambda: run_zoo(list(TASKS), False, print_progress), rounds=1, iterations=1)
    write_report(report, RESULTS)
    print(format_table(report))
    for name, r in report["tasks"].items():
        benchmark.extra_info[name] = r.get("reproducible_vs_native", r["status"])


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two short rounds per task (a smoke run)")
    parser.add_argument("--tasks", default=",".join(TASKS), help=f"comma-separated, of {', '.join(TASKS)}")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for zoo.json and zoo.png")
    options = parser.parse_args()
    chosen = [name for name in options.tasks.split(",") if name]
    unknown = [name for name in chosen if name not in TASKS]
    if unknown:
        parser.error(f"unknown task(s) {', '.join(unknown)}")
    result = run_zoo(chosen, options.quick, print_progress)
    print(format_table(result))
    write_report(result, options.out)
    print(f"wrote {options.out / 'zoo.json'} and {options.out / 'zoo.png'}")
