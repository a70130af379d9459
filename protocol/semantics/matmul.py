"""Reference matrix products: the canonical order that defines their bits.

Canonical order ("sequential, separately rounded"): every output element is its own running sum,

    acc = +0.0
    for k = 0, 1, …, K-1:   acc = fl(acc + fl(a[i,k] * b[k,j]))
    C[i,j] = acc                      (NaN → the canonical NaN 0x7FC00000)

Two roundings per step, never a fused multiply-add; the k order is strictly ascending; K = 0 gives
+0.0. Because each element depends only on row i of `a` and column j of `b`, the result does not
depend on how the rows are batched, how the work is split, or the operands' memory layout.
"""

from __future__ import annotations

import torch

from protocol.semantics.floats import (
    OperandError,
    canonicalize_nan,
    require_float,
    require_same_device,
    require_same_dtype,
)


def reference_mm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """C = a @ b in the canonical order (module docstring); a [M,K], b [K,N] float32 → C [M,N]; float64
    operands give a float64 C by the same steps in float64.

    Plain and slow: vectorised over (i, j), a Python loop over k. Runs on any torch device.
    """
    require_float(a, "a", 2)
    require_float(b, "b", 2)
    require_same_dtype(a, b, "a and b")
    require_same_device(a, b, "a and b")
    if a.shape[1] != b.shape[0]:
        raise OperandError(f"inner dimensions differ: a {tuple(a.shape)} @ b {tuple(b.shape)}")
    m, depth = a.shape
    n = b.shape[1]
    acc = torch.zeros((m, n), dtype=a.dtype, device=a.device)
    for k in range(depth):
        product = torch.mul(a[:, k : k + 1], b[k : k + 1, :])  # [M,1] * [1,N], one rounding
        acc = torch.add(acc, product)  # one rounding
    return canonicalize_nan(acc)


def reference_bmm(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """C[t] = a[t] @ b[t] for every batch index t, each in the canonical order of `reference_mm`.

    a [B,M,K], b [B,K,N] float32 (or both float64) → C [B,M,N] of their dtype.
    """
    require_float(a, "a", 3)
    require_float(b, "b", 3)
    require_same_dtype(a, b, "a and b")
    require_same_device(a, b, "a and b")
    if a.shape[0] != b.shape[0] or a.shape[2] != b.shape[1]:
        raise OperandError(f"batched shapes do not chain: a {tuple(a.shape)} @ b {tuple(b.shape)}")
    batch, m, depth = a.shape
    n = b.shape[2]
    acc = torch.zeros((batch, m, n), dtype=a.dtype, device=a.device)
    for k in range(depth):
        product = torch.mul(a[:, :, k : k + 1], b[:, k : k + 1, :])  # [B,M,1] * [B,1,N]
        acc = torch.add(acc, product)
    return canonicalize_nan(acc)
