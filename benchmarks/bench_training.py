# ruff: noqa: I001
"""Reproducible training steps against native ones, and the cost of committing to them.

Run as pytest-benchmark suites (`make bench`) or as a script that prints one table of ratios measured
side by side and writes it as JSON: `python benchmarks/bench_training.py [--out FILE] [--quick]`.

Measured, each in one interleaved run:
- a full training step, reproducible vs native torch, for the mid-size transformer (4 layers,
  d_model 256, sequence 128, batch 16, AdamW) and the small MLP (where per-operator interception
  dominates: reported per intercepted operator). The native step runs in a process of its own
  (`runner.py native`): a clean environment, torch's default threads, nothing of pinpoint imported,
  the preset's task file in the ordinary loop; it is timed there and asked in turn with the others;
- the commitment at checkpoint-every 1 (state digests + Merkle root + safetensors checkpoint) vs the
  step it commits to;
- regenerating a step's full trace (every node's outputs hashed) vs the plain reproducible step;
- tensor hashing throughput (GB/s) against BLAKE3's own on the same bytes.
"""

from __future__ import annotations

import prover  # noqa: F401  (first: sets the OpenMP wait policy before torch loads)
import argparse
import json
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import blake3
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Child, measure, ratio  # noqa: E402

from pinpoint.presets import make_job, resolve_task  # noqa: E402
from prover.presets import preset_source  # noqa: E402
from protocol.encoding import compute_digest  # noqa: E402
from protocol.state import compute_state_root  # noqa: E402
from protocol.recording import ReproducibleMode, RngContext  # noqa: E402
from prover.run import (  # noqa: E402
    Committer,
    DigestCache,
    compute_state_digests,
    get_primitives_for,
    trace_step,
    write_checkpoint,
)
from protocol.session import Session  # noqa: E402


class Stepper:
    """One job's session, stepping reproducibly here, and the same task in a native process of its own."""

    def __init__(self, model: str, optimizer: str, size: str) -> None:
        self.job = make_job(model, optimizer, 10_000, 0, size)
        self.session = Session(self.job, resolve_task(self.job))
        self.primitives_for = get_primitives_for()
        self.cache = DigestCache()
        self.folder = Path(tempfile.mkdtemp(prefix="pinpoint-bench-"))
        self.committer = Committer(self.folder, 1, 10**9)
        self.ops = 0
        task_file = self.folder / f"{model}.py"
        task_file.write_bytes(preset_source(model, optimizer, size))
        self.native_process = Child("native", str(task_file), clean=True)
        if not self.native_process.ready:
            raise RuntimeError(f"the native process did not start: {self.native_process.hello.get('error')}")

    def native_steps(self, n: int) -> list[float]:
        """n native steps in the clean process; the seconds of each, timed there. The overlapped
        commit still running here is waited for first, so the native turn has the machine to itself."""
        for future in self.committer.pending:
            future.result()
        times: list[float] = self.native_process.ask("steps", n)["times"]
        return times

    def close(self) -> None:
        self.native_process.close()

    def reproducible(self) -> None:
        mode = ReproducibleMode(RngContext(self.job.seed, int(self.session.step)), self.primitives_for)
        with mode:
            self.session.run_step()
        self.ops = mode.node_count

    def commit(self) -> None:
        """Hash the state and write its checkpoint, synchronously (what the overlap hides)."""
        tensors = self.session.state_tensors()
        root = compute_state_root(compute_state_digests(tensors, self.cache))
        write_checkpoint(self.folder, int(self.session.step), tensors, root)

    def committed_step(self) -> None:
        """A step as `pinpoint train --checkpoint-every 1` runs it: the previous state's hashing and
        checkpoint overlap this step on a background thread (pipeline depth one)."""
        self.reproducible()
        if self.committer.pending:
            self.committer.pending.pop().result()
        self.committer.submit(int(self.session.step), self.session.state_tensors())

    def traced(self) -> None:
        trace_step(self.session)


def hashing_candidates(megabytes: int = 64) -> dict[str, Any]:
    tensor = torch.randn(megabytes * 1024 * 1024 // 4)
    raw = tensor.numpy().tobytes()
    return {
        "digest": lambda: compute_digest(tensor),
        "blake3": lambda: blake3.blake3(raw).digest(),
        "blake3_all_cores": lambda: blake3.blake3(raw, max_threads=blake3.blake3.AUTO).digest(),
    }, len(raw)


def run_all(quick: bool) -> dict[str, Any]:
    report: dict[str, Any] = {"threads": torch.get_num_threads()}
    rounds = 3 if quick else 7
    for label, (model, optimizer, size) in {
        "transformer-mid": ("transformer", "adamw", "mid"),
        "mlp-small": ("mlp", "sgd", "small"),
    }.items():
        stepper = Stepper(model, optimizer, size)
        try:
            results = measure(
                {
                    "reproducible": stepper.reproducible, "commit": stepper.commit,
                    "committed_step": stepper.committed_step, "traced": stepper.traced,
                },
                rounds=rounds,
                target_seconds=0.05 if quick else 0.5,
                remote={"native": stepper.native_steps},
            )
        finally:
            stepper.close()
        report[label] = {
            "seconds": results,
            "reproducible_vs_native": ratio(results, "reproducible", "native"),
            "commit_vs_reproducible_step": ratio(results, "commit", "reproducible"),
            "overlapped_commit_overhead": ratio(results, "committed_step", "reproducible") - 1.0,
            "traced_vs_reproducible": ratio(results, "traced", "reproducible"),
            "operators_per_step": stepper.ops,
            "native_threads": stepper.native_process.hello["threads"],
            "overhead_per_operator_us": 1e6 * (results["reproducible"]["median"] - results["native"]["median"]) / max(stepper.ops, 1),
        }
    candidates, size = hashing_candidates(16 if quick else 64)
    results = measure(candidates, rounds=rounds)
    report["hashing"] = {
        "bytes": size,
        "digest_GBps": size / results["digest"]["median"] / 1e9,
        "blake3_GBps": size / results["blake3"]["median"] / 1e9,
        "blake3_all_cores_GBps": size / results["blake3_all_cores"]["median"] / 1e9,
        "digest_vs_blake3": ratio(results, "digest", "blake3"),
        "digest_vs_blake3_all_cores": ratio(results, "digest", "blake3_all_cores"),
    }
    return report


def print_report(report: dict[str, Any]) -> None:
    for label in ("transformer-mid", "mlp-small"):
        r = report[label]
        s = r["seconds"]
        print(
            f"{label:16s} native ({r['native_threads']} threads, own process) {s['native']['median'] * 1e3:8.1f} ms  reproducible {s['reproducible']['median'] * 1e3:8.1f} ms"
            f"  ratio {r['reproducible_vs_native']:.2f}x  commit {100 * r['commit_vs_reproducible_step']:.1f}% of a step"
            f" (overlapped: {100 * r['overlapped_commit_overhead']:+.1f}%)"
            f"  traced {r['traced_vs_reproducible']:.2f}x  {r['operators_per_step']} ops,"
            f" {r['overhead_per_operator_us']:.1f} us/op"
        )
    h = report["hashing"]
    print(f"hashing          digest {h['digest_GBps']:.2f} GB/s  blake3 {h['blake3_GBps']:.2f} GB/s (one thread),"
          f" {h['blake3_all_cores_GBps']:.2f} GB/s (all cores)")


# --- pytest-benchmark suites -----------------------------------------------------------------------


MLP_STEPS_PER_ROUND = 50  # the small MLP's step is about a millisecond: timed in batches, both sides alike


def repeat(function: Callable[[], None], n: int) -> None:
    for _ in range(n):
        function()


@pytest.fixture(scope="module")
def mlp() -> Iterator[Stepper]:
    stepper = Stepper("mlp", "sgd", "small")
    yield stepper
    stepper.close()


@pytest.mark.benchmark(group=f"mlp-step (x{MLP_STEPS_PER_ROUND})")
def test_mlp_native_step(benchmark: Any, mlp: Stepper) -> None:
    """Seconds per batch of steps in the clean native process (the batch keeps the pipe's cost out)."""
    benchmark.extra_info["steps_per_round"] = MLP_STEPS_PER_ROUND
    benchmark.pedantic(mlp.native_steps, args=(MLP_STEPS_PER_ROUND,), rounds=10, warmup_rounds=1)


@pytest.mark.benchmark(group=f"mlp-step (x{MLP_STEPS_PER_ROUND})")
def test_mlp_reproducible_step(benchmark: Any, mlp: Stepper) -> None:
    benchmark.extra_info["steps_per_round"] = MLP_STEPS_PER_ROUND
    benchmark.pedantic(repeat, args=(mlp.reproducible, MLP_STEPS_PER_ROUND), rounds=10, warmup_rounds=1)


@pytest.mark.benchmark(group=f"mlp-step (x{MLP_STEPS_PER_ROUND})")
def test_mlp_commit(benchmark: Any, mlp: Stepper) -> None:
    benchmark.extra_info["steps_per_round"] = MLP_STEPS_PER_ROUND
    benchmark.pedantic(repeat, args=(mlp.commit, MLP_STEPS_PER_ROUND), rounds=10, warmup_rounds=1)


@pytest.fixture(scope="module")
def transformer() -> Iterator[Stepper]:
    stepper = Stepper("transformer", "adamw", "mid")
    yield stepper
    stepper.close()


@pytest.mark.benchmark(group="transformer-mid-step")
def test_transformer_native_step(benchmark: Any, transformer: Stepper) -> None:
    """One step in the clean native process per round (the pipe's cost is well under 0.1 % of it)."""
    benchmark.pedantic(transformer.native_steps, args=(1,), rounds=5, warmup_rounds=1)


@pytest.mark.benchmark(group="transformer-mid-step")
def test_transformer_reproducible_step(benchmark: Any, transformer: Stepper) -> None:
    benchmark.pedantic(transformer.reproducible, rounds=5, warmup_rounds=1)


@pytest.mark.benchmark(group="transformer-mid-step")
def test_transformer_commit(benchmark: Any, transformer: Stepper) -> None:
    benchmark.pedantic(transformer.commit, rounds=5, warmup_rounds=1)


@pytest.mark.benchmark(group="hashing")
def test_digest_throughput(benchmark: Any) -> None:
    candidates, _ = hashing_candidates()
    benchmark(candidates["digest"])


@pytest.mark.benchmark(group="hashing")
def test_blake3_throughput(benchmark: Any) -> None:
    candidates, _ = hashing_candidates()
    benchmark(candidates["blake3"])


if __name__ == "__main__":
    from prover.process import tune_process

    tune_process()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None, help="write the report as JSON here")
    parser.add_argument("--quick", action="store_true", help="fewer rounds (a smoke run)")
    options = parser.parse_args()
    report = run_all(options.quick)
    print_report(report)
    if options.out is not None:
        options.out.write_text(json.dumps(report, indent=2) + "\n")
