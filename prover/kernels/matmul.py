"""`mm` and `bmm` on CPU float32 tensors, bit-equal to `reference_mm` and `reference_bmm`.

Inputs may have any strides (transposed, sliced, expanded); the result is a fresh contiguous tensor.
Small products run on the calling thread, larger ones on numba's threads; neither choice, nor the
thread count, changes a bit of the result (see `prover.kernels._matmul`).
"""

from __future__ import annotations

import numba
import torch

from protocol.semantics.floats import OperandError
from prover.kernels import _matmul
from prover.kernels._checks import require_cpu_float32


def _run(batch: int, m: int, depth: int, n: int, a: torch.Tensor, sat: int, sam: int, sak: int,
         b: torch.Tensor, sbt: int, sbk: int, sbn: int, c: torch.Tensor) -> None:
    pack_full = sbn != 1 or _matmul.plan_packing(batch, m, depth, n, sbn)
    if 2.0 * batch * m * n * depth < _matmul.PARALLEL_MIN_FLOPS:
        _matmul.gemm_serial(batch, m, depth, n, a.data_ptr(), sat, sam, sak, b.data_ptr(), sbt, sbk, sbn,
                            c.data_ptr(), pack_full)
        return
    chunks_m, chunks_n = _matmul.plan_chunks(batch, m, n, numba.get_num_threads())
    # a k-strided A is copied into row order first (`plan_row_packing`); the buffer lives until the call returns
    rows = torch.empty(batch * m * _matmul.row_stride(depth) if _matmul.plan_row_packing(m, n, sak) else 0,
                       dtype=torch.float32)
    _matmul.gemm_parallel(batch, m, depth, n, a.data_ptr(), sat, sam, sak, b.data_ptr(), sbt, sbk, sbn,
                          c.data_ptr(), pack_full, chunks_m, chunks_n, rows.data_ptr() if rows.numel() else 0)


def _is_operand(x: object, ndim: int) -> bool:
    return isinstance(x, torch.Tensor) and x.dtype is torch.float32 and x.is_cpu and x.dim() == ndim


def mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b in the canonical order of `reference_mm`; a [M,K], b [K,N] CPU float32 → [M,N]."""
    if not (_is_operand(a, 2) and _is_operand(b, 2)):
        require_cpu_float32(a, "a", 2)
        require_cpu_float32(b, "b", 2)
    m, depth = a.shape
    if b.shape[0] != depth:
        raise OperandError(f"inner dimensions differ: a {tuple(a.shape)} @ b {tuple(b.shape)}")
    n = b.shape[1]
    if m == 0 or n == 0 or depth == 0:
        return torch.zeros((m, n), dtype=torch.float32)  # an empty sum is +0.0
    c = torch.empty(m, n, dtype=torch.float32)
    sam, sak = a.stride()
    sbk, sbn = b.stride()
    _run(1, m, depth, n, a, 0, sam, sak, b, 0, sbk, sbn, c)
    return c


def bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a[t] @ b[t] for every t, canonical order; a [B,M,K], b [B,K,N] CPU float32 → [B,M,N]."""
    if not (_is_operand(a, 3) and _is_operand(b, 3)):
        require_cpu_float32(a, "a", 3)
        require_cpu_float32(b, "b", 3)
    batch, m, depth = a.shape
    if b.shape[0] != batch or b.shape[1] != depth:
        raise OperandError(f"batched shapes do not chain: a {tuple(a.shape)} @ b {tuple(b.shape)}")
    n = b.shape[2]
    if batch == 0 or m == 0 or n == 0 or depth == 0:
        return torch.zeros((batch, m, n), dtype=torch.float32)
    c = torch.empty(batch, m, n, dtype=torch.float32)
    sat, sam, sak = a.stride()
    sbt, sbk, sbn = b.stride()
    _run(batch, m, depth, n, a, sat, sam, sak, b, sbt, sbk, sbn, c)
    return c
