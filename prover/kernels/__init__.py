"""Fast CPU kernels, bit-equal to the reference operators in `protocol.semantics`.

    mm(a [M,K], b [K,N]) -> [M,N]          bmm(a [B,M,K], b [B,K,N]) -> [B,M,N]
    rowsum(x [R,n]) -> [R]                 rowmax(x [R,n]) -> [R]      rowargmax(x [R,n]) -> [R] int64
    exp, log, tanh, erf, sqrt, rsqrt(x [any shape]) -> same shape

All take CPU float32 tensors with any strides and return fresh contiguous tensors; tensors on other
devices belong to the references (the dispatch layer routes them). Results depend only on the input
values and shapes: not on numba's thread count, strides, batch composition or process.

Compiled code is cached on disk next to these modules (numba `cache=True`); `warmup()` compiles or
loads every kernel and checks it against its reference on a small fixed input.
"""

from __future__ import annotations

import time

import torch

from protocol import semantics
from prover.kernels.elementwise import erf, exp, log, rsqrt, sqrt, tanh
from prover.kernels.environment import (
    FloatEnvironmentError,
    is_float_environment_ieee,
    require_float_environment_ieee,
)
from prover.kernels.matmul import bmm, mm
from prover.kernels.reductions import rowargmax, rowmax, rowsum

__all__ = [
    "FloatEnvironmentError",
    "KernelSelfCheckError",
    "bmm",
    "erf",
    "exp",
    "is_float_environment_ieee",
    "log",
    "mm",
    "require_float_environment_ieee",
    "rowargmax",
    "rowmax",
    "rowsum",
    "rsqrt",
    "sqrt",
    "tanh",
    "warmup",
]


class KernelSelfCheckError(RuntimeError):
    """A fast kernel disagreed with its reference on warm-up (stale cache or a changed environment)."""


def _warmup_inputs() -> list[tuple[str, object, object, tuple[torch.Tensor, ...]]]:
    generator = torch.Generator().manual_seed(20240917)
    x = torch.randn(300, 700, generator=generator) * 4  # 210 000 elements: the parallel paths
    x[0, :8] = torch.tensor([0.0, -0.0, float("inf"), -float("inf"), float("nan"), 2.0**-140, -(2.0**-149), 1e30])
    a = torch.randn(40, 37, generator=generator)
    b = torch.randn(37, 70, generator=generator)
    big_a = torch.randn(96, 128, generator=generator)
    big_w = torch.randn(200, 128, generator=generator)  # transposed operand, as in x @ W.T
    batch_a = torch.randn(3, 7, 9, generator=generator)
    batch_b = torch.randn(3, 9, 20, generator=generator)
    cases: list[tuple[str, object, object, tuple[torch.Tensor, ...]]] = [
        ("mm", mm, semantics.reference_mm, (a, b)),
        ("mm parallel, transposed", mm, semantics.reference_mm, (big_a, big_w.t())),
        ("bmm", bmm, semantics.reference_bmm, (batch_a, batch_b)),
        ("rowsum", rowsum, semantics.reference_rowsum, (x,)),
        ("rowsum short rows", rowsum, semantics.reference_rowsum, (x[:20, :11],)),
        ("rowmax", rowmax, semantics.reference_rowmax, (x,)),
        ("rowargmax", rowargmax, semantics.reference_rowargmax, (x,)),
    ]
    for name, fast, reference in (
        ("exp", exp, semantics.reference_exp),
        ("log", log, semantics.reference_log),
        ("tanh", tanh, semantics.reference_tanh),
        ("erf", erf, semantics.reference_erf),
        ("sqrt", sqrt, semantics.reference_sqrt),
        ("rsqrt", rsqrt, semantics.reference_rsqrt),
    ):
        cases.append((name, fast, reference, (x,)))
        cases.append((name + " short", fast, reference, (x[0],)))
    return cases


def _same_bits(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype == torch.float32:
        return torch.equal(a.contiguous().view(torch.int32), b.contiguous().view(torch.int32))
    return torch.equal(a, b)


def warmup(check: bool = True) -> float:
    """Compile (or load from the on-disk cache) every kernel, serial and parallel paths.

    With `check`, also compare each against its reference on a fixed input and verify the
    floating-point environment (raises KernelSelfCheckError / FloatEnvironmentError). Returns the
    seconds spent.
    """
    started = time.perf_counter()
    if check:
        require_float_environment_ieee()
    for name, fast, reference, inputs in _warmup_inputs():
        result = fast(*inputs)  # type: ignore[operator]
        if check and not _same_bits(result, reference(*inputs)):  # type: ignore[operator]
            raise KernelSelfCheckError(f"fast {name} differs from its reference on the warm-up input")
    return time.perf_counter() - started
