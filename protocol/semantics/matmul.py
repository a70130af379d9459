"""Reference matrix products: the canonical order that defines their bits.

Canonical order ("sequential, fused"): every output element is its own running sum,

    acc = +0.0
    for k = 0, 1, …, K-1:   acc = fma(a[i,k], b[k,j], acc)       float32: one rounding per step
    C[i,j] = acc                      (NaN → the canonical NaN 0x7FC00000)

fma(x, y, z) is IEEE 754 fusedMultiplyAdd: x*y + z computed exactly and rounded once to float32
(nearest, ties to even), as every CPU with FMA units and every GPU computes it in one instruction,
which is why the order is fused: a kernel then spends one instruction per step, as the fastest
non-reproducible ones do. The reference computes it exactly with binary64 steps (`compute_fma32`),
so any device with IEEE binary64 arithmetic can referee it. float64 operands follow the separately
rounded order, acc = fl(acc + fl(a[i,k] * b[k,j])) in binary64 (a binary64 fma has no wider type to
be checked against). The k order is strictly ascending; K = 0 gives +0.0. Because each element
depends only on row i of `a` and column j of `b`, the result does not depend on how the rows are
batched, how the work is split, or the operands' memory layout.
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

FLOAT32_OVERFLOW = 2.0**128 - 2.0**103
"""Halfway between the largest float32 and 2**128: from here on (ties to even) a float32 rounds to ±inf."""


def compute_fma32(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """fma(x, y, z) of float32 tensors (broadcast), exactly, by binary64 steps:

        p = x*y                      exact: two 24-bit significands make at most 48 bits
        s = fl64(p + z); e = (p - (s - b)) + (z - b) with b = s - p     (TwoSum: s + e = p + z exactly)
        r = float32(s)               (nearest, ties to even)
        if s lies exactly halfway between r and its float32 neighbour n on s's side, and e points
        beyond that midpoint (e has the sign of s - r): the result is n, else r.

    Why this is exact: binary64 holds every float32 midpoint, so rounding p + z to binary64 never
    carries it across one; only when s lands on a midpoint can the float32 rounding of s differ from
    that of p + z, and then e's sign says on which side p + z lies (e = 0 is a true tie). Specials:
    infinities and NaNs go through s (e is then NaN and changes nothing), as IEEE fma gives them."""
    p = x.double() * y.double()
    z64 = z.double()
    s = p + z64
    back = s - p
    e = (p - (s - back)) + (z64 - back)
    r = s.to(torch.float32)
    r64 = r.double()
    d = s - r64
    toward = torch.where(d > 0, torch.full_like(r, float("inf")), torch.full_like(r, float("-inf")))
    n = torch.nextafter(r, toward)
    # s halfway between r and n; when r overflowed to ±inf, halfway means |s| is the overflow threshold
    halfway = torch.where(torch.isfinite(r), (d != 0) & (d * 2 == n.double() - r64),
                          torch.isfinite(s) & (s.abs() == FLOAT32_OVERFLOW))
    beyond = halfway & (((e > 0) & (d > 0)) | ((e < 0) & (d < 0)))
    return torch.where(beyond, n, r)


_MIDPOINT_MASK = (1 << 29) - 1
"""The binary64 significand bits below a float32's: a binary64 s is halfway between two normal float32
values exactly when these bits of it are 1 << 28."""
_FLOAT32_NORMAL_EXPONENTS = (1023 - 126, 1023 + 127)
"""The binary64 exponent fields of the values float32 holds as normal numbers."""


BLOCK_OUTPUTS = 1 << 20
"""Outputs per row block of the reference chain (speed only: rows are independent). Large blocks keep
the number of torch operations low: each may have to wake the OpenMP pool's threads (immediately
sleeping ones, OMP_WAIT_POLICY=PASSIVE, made 2**16-output blocks 3× slower than these)."""


def _fma_chain(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The canonical float32 chain for a [..., M, K] @ [..., K, N], exactly and fast: per step,
    s = fl64(fl64(a*b) + acc) (the product is exact in binary64, so a fused or unfused binary64
    multiply-add gives the same s), and acc = float32(s), which is the fma's result unless s lies exactly
    on a float32 midpoint or outside float32's normal range; those elements (rare) are redone by
    `compute_fma32`. Rows are taken in blocks of `BLOCK_OUTPUTS` outputs (the rows are independent:
    blocking changes no bit)."""
    *batch, m, depth = a.shape
    n = b.shape[-1]
    out = torch.zeros((*batch, m, n), dtype=torch.float32, device=a.device)
    rows = max(1, BLOCK_OUTPUTS // max(n, 1))
    low, high = _FLOAT32_NORMAL_EXPONENTS
    for start in range(0, m, rows):
        a64 = a[..., start : start + rows, :].double()
        acc = out[..., start : start + rows, :]
        shape = acc.shape
        for k in range(depth):
            x, y = a64[..., k : k + 1], b[..., k : k + 1, :].double()
            s = torch.addcmul(acc.double(), x, y)
            r = s.to(torch.float32)
            bits = s.view(torch.int64)
            exponent = torch.bitwise_and(torch.bitwise_right_shift(bits, 52), 0x7FF)
            doubtful = torch.bitwise_and(bits, _MIDPOINT_MASK) == (1 << 28)
            doubtful |= ((exponent < low) & (s != 0)) | ((exponent > high) & (exponent != 0x7FF))
            if s.device.type != "meta" and bool(doubtful.any()):  # meta tensors carry no values
                where = doubtful.nonzero(as_tuple=True)
                r[where] = compute_fma32(x.float().expand(shape)[where], y.float().expand(shape)[where], acc[where])
            acc = r
        out[..., start : start + rows, :] = acc
    return out


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
    if a.dtype == torch.float32:
        return canonicalize_nan(_fma_chain(a, b))
    acc = torch.zeros((m, n), dtype=a.dtype, device=a.device)
    for k in range(depth):
        acc = torch.add(acc, torch.mul(a[:, k : k + 1], b[k : k + 1, :]))  # binary64: two roundings
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
    if a.dtype == torch.float32:
        return canonicalize_nan(_fma_chain(a, b))
    acc = torch.zeros((batch, m, n), dtype=a.dtype, device=a.device)
    for k in range(depth):
        acc = torch.add(acc, torch.mul(a[:, :, k : k + 1], b[:, k : k + 1, :]))  # binary64: two roundings
    return canonicalize_nan(acc)
