"""Reference row reductions over the last axis of a [R, n] float32 tensor.

rowsum — a pairwise halving tree, fixed by n alone:
    n = 0: +0.0.   n = 1: x[0] unchanged (even -0.0).
    n >= 2: y = the row padded with +0.0 to P, the least power of two >= n; then for
    h = P/2, P/4, …, 1: y[i] = fl(y[i] + y[i+h]) for i = 0 … h-1; the result is y[0].

rowmax — the maximum under `max2`, which is commutative and associative, so the order of
evaluation cannot change the result (the reference uses a halving tree padded with -inf):
    max2(a, b) = NaN if a or b is NaN; a if a > b; b if b > a; otherwise (a == b, which covers
    +0.0 == -0.0) the float with bits(a) AND bits(b) — so +0.0 wins over -0.0.
    n = 0 is an OperandError (a maximum of nothing is undefined).

rowargmax — an int64 index: the first NaN of the row if it has one; otherwise the first index i
with x[i] == rowmax (== compares +0.0 and -0.0 equal, so the first zero of either sign wins).
    n = 0 is an OperandError.

Every NaN result is the canonical NaN 0x7FC00000. float64 rows reduce by the same steps in float64
(bits(·) their 64-bit patterns, NaN 0x7FF8000000000000).
"""

from __future__ import annotations

import torch

from protocol.semantics.floats import (
    OperandError,
    as_bits,
    canonicalize_nan,
    from_bits,
    require_float,
)


def compute_padded_length(n: int) -> int:
    """P, the least power of two >= n (1 for n <= 1)."""
    size = 1
    while size < n:
        size *= 2
    return size


def reference_rowsum(x: torch.Tensor) -> torch.Tensor:
    """Sum of each row by the halving tree (module docstring); x [R,n] float32 → [R] float32."""
    require_float(x, "x", 2)
    rows, n = x.shape
    if n == 0:
        return torch.zeros(rows, dtype=x.dtype, device=x.device)
    if n == 1:
        return canonicalize_nan(x[:, 0].clone())
    size = compute_padded_length(n)
    padding = torch.zeros((rows, size - n), dtype=x.dtype, device=x.device)  # +0.0
    y = torch.cat([x, padding], dim=1)
    while size > 1:
        half = size // 2
        y = torch.add(y[:, :half], y[:, half:size])
        size = half
    return canonicalize_nan(y[:, 0].clone())


def compute_max2(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """max2 of the module docstring, elementwise over same-shaped float32 tensors."""
    both = from_bits(torch.bitwise_and(as_bits(a), as_bits(b))).reshape(a.shape)
    larger = torch.where(a > b, a, torch.where(b > a, b, both))
    nan = (a != a) | (b != b)
    return torch.where(nan, a + b, larger)  # a + b is a NaN here; canonicalised by the caller


def reference_rowmax(x: torch.Tensor) -> torch.Tensor:
    """Maximum of each row under max2 (module docstring); x [R,n] float32, n >= 1 → [R] float32."""
    require_float(x, "x", 2)
    rows, n = x.shape
    if n == 0:
        raise OperandError("rowmax of an empty row is undefined (n = 0)")
    size = compute_padded_length(n)
    padding = torch.full((rows, size - n), float("-inf"), dtype=x.dtype, device=x.device)
    y = torch.cat([x, padding], dim=1)
    while size > 1:
        half = size // 2
        y = compute_max2(y[:, :half], y[:, half:size])
        size = half
    return canonicalize_nan(y[:, 0].clone())


def reference_rowargmax(x: torch.Tensor) -> torch.Tensor:
    """Index of each row's maximum (first NaN, else first element equal to rowmax); → [R] int64."""
    require_float(x, "x", 2)
    rows, n = x.shape
    if n == 0:
        raise OperandError("rowargmax of an empty row is undefined (n = 0)")
    index = torch.arange(n, dtype=torch.int64, device=x.device).expand(rows, n)
    beyond = torch.full((rows, n), n, dtype=torch.int64, device=x.device)
    is_nan = x != x
    first_nan = torch.where(is_nan, index, beyond).amin(dim=1)
    maximum = reference_rowmax(x)
    first_max = torch.where(x == maximum[:, None], index, beyond).amin(dim=1)
    return torch.where(is_nan.any(dim=1), first_nan, first_max)
