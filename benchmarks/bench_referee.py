# ruff: noqa: I001
"""The referee's work per verdict against the disputed step t, for a job claiming 2**32 steps.

Run as a script: `python benchmarks/bench_referee.py [--max-log2 K] [--out FILE]`. For each t it builds
a fresh `TraceReferee` for the MLP preset job of T = 2**32 steps and asks for the structure of step t
two ways: with the parties' structure hints agreeing (one meta step, whatever t), and with hints that
differ (the referee replays skeletons from s_0, linear in t). It prints seconds and the growth of the
process's peak RSS for each, and writes them as JSON. The replay is measured only up to 2**K steps
(default 2**9): its per-step cost gives the line for larger t.
"""

from __future__ import annotations

import prover  # noqa: F401  (first: sets the OpenMP wait policy before torch loads)
import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any

import torch

from pinpoint.presets import make_job, resolve_task
from protocol.hint import compute_structure_hint
from protocol.job import compute_job_id
from protocol.session import Session
from protocol.types import StepIndex
from verifier.referee import TraceReferee

CLAIMED_STEPS = 1 << 32  # the most a job may claim (protocol.job.MAX_STEPS); a self-made job can


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # kilobytes on Linux


def hint_for(job: Any, step: int) -> bytes:
    """The true hint of s_step for a stock optimizer: s_1's layout with every counter at `step`."""
    session = Session(job, resolve_task(job), meta=False)
    for param in session.model.parameters():
        param.grad = torch.zeros_like(param)
    session.optimizer.step()
    tensors = session.state_tensors()
    for name, tensor in tensors.items():
        if tensor.numel() == 1 and (name.endswith("/step") or name == "step"):
            tensor.fill_(step)
    return compute_structure_hint(tensors)


def measure(job: Any, step: int, hints: tuple[bytes, bytes]) -> dict[str, float]:
    referee = TraceReferee(job, resolve_task(job))
    before = peak_rss_mb()
    start = time.perf_counter()
    referee.compute_structure(compute_job_id(job), StepIndex(step), hints)
    return {"t": step, "seconds": time.perf_counter() - start, "meta_steps": referee.replayed_steps,
            "peak_rss_growth_mb": peak_rss_mb() - before}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max-log2", type=int, default=9, help="replay measured for t up to 2**K")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    job = make_job("mlp", "adam", CLAIMED_STEPS, seed=1)
    rows: list[dict[str, Any]] = []
    for log2 in range(0, 21, 2):
        step = 1 << log2
        hint = hint_for(job, step)
        rows.append({"path": "agreed hints", **measure(job, step, (hint, hint))})
    for log2 in range(0, args.max_log2 + 1):
        step = 1 << log2
        rows.append({"path": "differing hints (replay)", **measure(job, step, (b"", b"x"))})
    for row in rows:
        print(f"{row['path']:26s} t = {row['t']:>8d}: {row['seconds'] * 1e3:9.1f} ms, {row['meta_steps']:>5d} meta steps, "
              f"peak RSS +{row['peak_rss_growth_mb']:.1f} MB")
    if args.out is not None:
        args.out.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
