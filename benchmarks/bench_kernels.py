"""Reproducible kernels against torch's native ones, measured side by side.

Run as pytest-benchmark suites (`make bench`; each shape is a group holding both implementations) or
as a script that prints one table of ratios (median of interleaved rounds, reproducible / native)
and writes it as JSON: `python benchmarks/bench_kernels.py OUT.json [--rounds N] [--quick]`.

Measured: mm at 256^3, 1024^3, the training shapes (2048x256)@(256x768), (2048x1024)@(1024x256),
(256x2048)@(2048x1024) and the tiny MLP's (32x64)@(64x64), also with a transposed right operand (the
x @ W.T of a linear layer) and with a transposed left one (the x.T @ g of a weight gradient, the shapes
of the mid transformer's backward); bmm at an attention shape; rowsum vs torch.sum and rowmax vs torch.amax
over rows; exp, log, tanh, erf, sqrt, rsqrt vs torch's.

The native side runs in a process of its own (`runner.py ops`): a clean environment (none of
pinpoint's OpenMP settings), torch's default threads, no numba beside it. Each side times its own
calls; the two are asked in turn, round after round.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numba
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Child, measure, ratio  # noqa: E402

import prover.kernels as kernels  # noqa: E402

MM_SHAPES = [(256, 256, 256), (1024, 1024, 1024), (2048, 256, 768), (2048, 1024, 256), (256, 2048, 1024),
             (32, 64, 64)]
TRANSPOSED_MM_SHAPES = [(2048, 256, 768), (32, 64, 64)]
WEIGHT_GRADIENT_SHAPES = [(256, 2048, 1024), (1024, 2048, 256), (768, 2048, 256)]
BMM_SHAPES = [(64, 128, 64, 128)]
ROW_SHAPES = [(2048, 1024), (4096, 256), (256, 4096), (16384, 10), (32, 64)]
ELEMENTWISE_SIZES = [1 << 16, 1 << 20]
ELEMENTWISE = ["exp", "log", "tanh", "erf", "sqrt", "rsqrt"]


def _operand(*shape: int, positive: bool = False) -> torch.Tensor:
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))
    return x.abs() + 1e-3 if positive else x


def _call(function: Callable[..., object], *args: torch.Tensor) -> Callable[[], object]:
    return lambda: function(*args)


def comparisons() -> dict[str, tuple[Callable[[], object], dict[str, Any]]]:
    """name → (reproducible call on fixed operands, the native call's description for the clean
    process: torch's op by name, operand shapes; `runner.py` draws the same operands there)."""
    pairs: dict[str, tuple[Callable[[], object], dict[str, Any]]] = {}

    def add(name: str, reproducible: Callable[..., object], op: str, *shapes: tuple[int, ...],
            positive: bool = False, transpose: bool = False, transpose_left: bool = False) -> None:
        operands = [_operand(*shape, positive=positive) for shape in shapes]
        if transpose:
            operands[-1] = operands[-1].t()
        if transpose_left:
            operands[0] = operands[0].t()
        pairs[name] = (_call(reproducible, *operands),
                       {"name": name, "op": op, "shapes": shapes, "positive": positive, "transpose": transpose,
                        "transpose_left": transpose_left})

    for m, k, n in MM_SHAPES:
        add(f"mm {m}x{k}x{n}", kernels.mm, "matmul", (m, k), (k, n))
    for m, k, n in TRANSPOSED_MM_SHAPES:
        add(f"mm {m}x{k}x{n} (x @ W.T)", kernels.mm, "matmul", (m, k), (n, k), transpose=True)
    for m, k, n in WEIGHT_GRADIENT_SHAPES:
        add(f"mm {m}x{k}x{n} (x.T @ g)", kernels.mm, "matmul", (k, m), (k, n), transpose_left=True)
    for batch, m, k, n in BMM_SHAPES:
        add(f"bmm {batch}x{m}x{k}x{n}", kernels.bmm, "bmm", (batch, m, k), (batch, k, n))
    for rows, n in ROW_SHAPES:
        add(f"rowsum {rows}x{n}", kernels.rowsum, "rowsum", (rows, n))
        add(f"rowmax {rows}x{n}", kernels.rowmax, "rowmax", (rows, n))
    for size in ELEMENTWISE_SIZES:
        for name in ELEMENTWISE:
            add(f"{name} {size}", getattr(kernels, name), name, (size,), positive=name in ("log", "sqrt", "rsqrt"))
    return pairs


_PAIRS = comparisons()


def start_native() -> Child:
    """torch's kernels on the same operands, in a process of their own with torch's default
    environment and threads (none of pinpoint's settings, no second OpenMP runtime beside it)."""
    child = Child("ops", json.dumps([spec for _, spec in _PAIRS.values()]), clean=True)
    if not child.ready:
        raise RuntimeError(f"the native process did not start: {child.hello.get('error')}")
    return child


def remote_native(child: Child, name: str) -> Callable[[int], list[float]]:
    """n native calls of `name` in the clean process: the mean seconds per call, timed there."""
    return lambda n: [child.ask(name, n)["times"][0]] * n


@pytest.fixture(scope="module")
def native_process() -> Iterator[Child]:
    child = start_native()
    yield child
    child.close()


_CALLS_PER_ROUND: dict[str, int] = {}


def get_calls_per_round(child: Child, name: str) -> int:
    """Calls per timed round for a comparison (both implementations alike): about 20 ms of native
    calls, so the pipe's cost to the clean process stays out of the figure."""
    if name not in _CALLS_PER_ROUND:
        child.ask(name, 1)
        seconds = child.ask(name, 3)["times"][0]
        _CALLS_PER_ROUND[name] = max(1, min(1000, int(0.02 / max(seconds, 1e-7))))
    return _CALLS_PER_ROUND[name]


def repeat(function: Callable[[], object], n: int) -> None:
    for _ in range(n):
        function()


@pytest.mark.parametrize("implementation", ["reproducible", "native"])
@pytest.mark.parametrize("name", list(_PAIRS))
def test_kernel(benchmark: Any, native_process: Child, name: str, implementation: str) -> None:
    """Seconds per round of `calls_per_round` calls (the same count for both implementations)."""
    benchmark.group = name
    calls = get_calls_per_round(native_process, name)
    benchmark.extra_info["calls_per_round"] = calls
    if implementation == "reproducible":
        benchmark.pedantic(repeat, args=(_PAIRS[name][0], calls), rounds=10, warmup_rounds=1)
    else:
        benchmark.pedantic(native_process.ask, args=(name, calls), rounds=10, warmup_rounds=1)


def run(rounds: int, quick: bool) -> dict[str, object]:
    """The ratio table: for each comparison, median seconds of both and reproducible / native."""
    started = time.perf_counter()
    kernels.warmup()
    warmup_seconds = time.perf_counter() - started
    native = start_native()
    table: dict[str, dict[str, float]] = {}
    try:
        for name, (reproducible, _) in _PAIRS.items():
            if quick and ("1024x1024" in name or str(1 << 20) in name):
                continue
            results = measure({"reproducible": reproducible}, rounds=rounds, target_seconds=0.05 if quick else 0.15,
                              remote={"native": remote_native(native, name)})
            table[name] = {
                "reproducible_us": results["reproducible"]["median"] * 1e6,
                "native_us": results["native"]["median"] * 1e6,
                "ratio": ratio(results, "reproducible", "native"),
            }
            print(f"{name:34s} {table[name]['reproducible_us']:11.1f} us {table[name]['native_us']:11.1f} us"
                  f"   x{table[name]['ratio']:.2f}", flush=True)
    finally:
        native.close()
    return {
        "torch_threads": torch.get_num_threads(),
        "native_torch_threads": native.hello["threads"],
        "native_omp_wait_policy": native.hello["omp_wait_policy"],
        "numba_threads": numba.get_num_threads(),
        "numba_threading_layer": numba.threading_layer(),
        "machine": platform.processor() or platform.machine(),
        "warmup_seconds_this_process": warmup_seconds,
        "rounds": rounds,
        "ratios": table,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="where to write the JSON table")
    parser.add_argument("--rounds", type=int, default=9, help="interleaved rounds per comparison")
    parser.add_argument("--quick", action="store_true", help="skip the largest shapes, shorter samples")
    args = parser.parse_args()
    print(f"{'comparison':34s} {'reproducible':>14s} {'native':>14s}   ratio")
    report = run(args.rounds, args.quick)
    args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(f"warm-up {report['warmup_seconds_this_process']:.2f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
