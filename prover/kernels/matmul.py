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


def _run(batch: int, m: int, depth: int, n: int, a: torch.Tensor, a_strides: tuple[int, int, int],
         b: torch.Tensor, b_strides: tuple[int, int, int], c: torch.Tensor) -> None:
    sat, sam, sak = a_strides
    sbt, sbk, sbn = b_strides
    pack_full = _matmul.plan_packing(batch, m, depth, n, sbn)
    threads = numba.get_num_threads()
    if threads == 1 or 2.0 * batch * m * n * depth < _matmul.PARALLEL_MIN_FLOPS:
        _matmul.gemm_serial(batch, m, depth, n, a.data_ptr(), sat, sam, sak, b.data_ptr(), sbt, sbk, sbn,
                            c.data_ptr(), pack_full)
        return
    chunks_m, chunks_n = _matmul.plan_chunks(batch, m, n, threads)
    _matmul.gemm_parallel(batch, m, depth, n, a.data_ptr(), sat, sam, sak, b.data_ptr(), sbt, sbk, sbn,
                          c.data_ptr(), pack_full, chunks_m, chunks_n)


def mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a @ b in the canonical order of `reference_mm`; a [M,K], b [K,N] CPU float32 → [M,N]."""
    require_cpu_float32(a, "a", 2)
    require_cpu_float32(b, "b", 2)
    m, depth = a.shape
    if b.shape[0] != depth:
        raise OperandError(f"inner dimensions differ: a {tuple(a.shape)} @ b {tuple(b.shape)}")
    n = b.shape[1]
    if m == 0 or n == 0 or depth == 0:
        return torch.zeros((m, n), dtype=torch.float32)  # an empty sum is +0.0
    c = torch.empty((m, n), dtype=torch.float32)
    sa = a.stride()
    sb = b.stride()
    _run(1, m, depth, n, a, (0, sa[0], sa[1]), b, (0, sb[0], sb[1]), c)
    return c


def bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a[t] @ b[t] for every t, canonical order; a [B,M,K], b [B,K,N] CPU float32 → [B,M,N]."""
    require_cpu_float32(a, "a", 3)
    require_cpu_float32(b, "b", 3)
    batch, m, depth = a.shape
    if b.shape[0] != batch or b.shape[1] != depth:
        raise OperandError(f"batched shapes do not chain: a {tuple(a.shape)} @ b {tuple(b.shape)}")
    n = b.shape[2]
    if batch == 0 or m == 0 or n == 0 or depth == 0:
        return torch.zeros((batch, m, n), dtype=torch.float32)
    c = torch.empty((batch, m, n), dtype=torch.float32)
    sa = a.stride()
    sb = b.stride()
    _run(batch, m, depth, n, a, (sa[0], sa[1], sa[2]), b, (sb[0], sb[1], sb[2]), c)
    return c
