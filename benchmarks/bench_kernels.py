"""Reproducible kernels against torch's native ones, measured side by side.

Run as pytest-benchmark suites (`make bench`; each shape is a group holding both implementations) or
as a script that prints one table of ratios (median of interleaved rounds, reproducible / native)
and writes it as JSON: `python benchmarks/bench_kernels.py OUT.json [--rounds N] [--quick]`.

Measured: mm at 256^3, 1024^3, the training shapes (2048x256)@(256x768), (2048x1024)@(1024x256),
(256x2048)@(2048x1024) and the tiny MLP's (32x64)@(64x64), also with a transposed right operand (the
x @ W.T of a linear layer); bmm at an attention shape; rowsum vs torch.sum and rowmax vs torch.amax
over rows; exp, log, tanh, erf, sqrt, rsqrt vs torch's.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numba
import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import measure, ratio  # noqa: E402

import prover.kernels as kernels  # noqa: E402

MM_SHAPES = [(256, 256, 256), (1024, 1024, 1024), (2048, 256, 768), (2048, 1024, 256), (256, 2048, 1024),
             (32, 64, 64)]
TRANSPOSED_MM_SHAPES = [(2048, 256, 768), (32, 64, 64)]
BMM_SHAPES = [(64, 128, 64, 128)]
ROW_SHAPES = [(2048, 1024), (4096, 256), (256, 4096), (16384, 10), (32, 64)]
ELEMENTWISE_SIZES = [1 << 16, 1 << 20]
ELEMENTWISE = ["exp", "log", "tanh", "erf", "sqrt", "rsqrt"]


def _operand(*shape: int, positive: bool = False) -> torch.Tensor:
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))
    return x.abs() + 1e-3 if positive else x


def _call(function: Callable[..., object], *args: torch.Tensor) -> Callable[[], object]:
    return lambda: function(*args)


def comparisons() -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    """name → (reproducible, native), each a zero-argument call on fixed operands."""
    pairs: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {}
    for m, k, n in MM_SHAPES:
        a, b = _operand(m, k), _operand(k, n)
        pairs[f"mm {m}x{k}x{n}"] = (_call(kernels.mm, a, b), _call(torch.matmul, a, b))
    for m, k, n in TRANSPOSED_MM_SHAPES:
        a, w = _operand(m, k), _operand(n, k)
        pairs[f"mm {m}x{k}x{n} (x @ W.T)"] = (_call(kernels.mm, a, w.t()), _call(torch.matmul, a, w.t()))
    for batch, m, k, n in BMM_SHAPES:
        a, b = _operand(batch, m, k), _operand(batch, k, n)
        pairs[f"bmm {batch}x{m}x{k}x{n}"] = (_call(kernels.bmm, a, b), _call(torch.bmm, a, b))
    for rows, n in ROW_SHAPES:
        x = _operand(rows, n)
        pairs[f"rowsum {rows}x{n}"] = (_call(kernels.rowsum, x), _call(lambda v: torch.sum(v, dim=1), x))
        pairs[f"rowmax {rows}x{n}"] = (_call(kernels.rowmax, x), _call(lambda v: torch.amax(v, dim=1), x))
    for size in ELEMENTWISE_SIZES:
        for name in ELEMENTWISE:
            x = _operand(size, positive=name in ("log", "sqrt", "rsqrt"))
            pairs[f"{name} {size}"] = (_call(getattr(kernels, name), x), _call(getattr(torch, name), x))
    return pairs


_PAIRS = comparisons()


@pytest.mark.parametrize("implementation", ["reproducible", "native"])
@pytest.mark.parametrize("name", list(_PAIRS))
def test_kernel(benchmark, name: str, implementation: str) -> None:
    benchmark.group = name
    reproducible, native = _PAIRS[name]
    benchmark(reproducible if implementation == "reproducible" else native)


def run(rounds: int, quick: bool) -> dict[str, object]:
    """The ratio table: for each comparison, median seconds of both and reproducible / native."""
    started = time.perf_counter()
    kernels.warmup()
    warmup_seconds = time.perf_counter() - started
    table: dict[str, dict[str, float]] = {}
    for name, (reproducible, native) in _PAIRS.items():
        if quick and ("1024x1024" in name or str(1 << 20) in name):
            continue
        results = measure({"reproducible": reproducible, "native": native}, rounds=rounds,
                          target_seconds=0.05 if quick else 0.15)
        table[name] = {
            "reproducible_us": results["reproducible"]["median"] * 1e6,
            "native_us": results["native"]["median"] * 1e6,
            "ratio": ratio(results, "reproducible", "native"),
        }
        print(f"{name:34s} {table[name]['reproducible_us']:11.1f} us {table[name]['native_us']:11.1f} us"
              f"   x{table[name]['ratio']:.2f}", flush=True)
    return {
        "torch_threads": torch.get_num_threads(),
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
