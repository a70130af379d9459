"""Row reductions `rowsum`, `rowmax`, `rowargmax` on CPU float32 tensors, bit-equal to the references.

x [R, n] with any strides (rows are made contiguous first when needed) → a fresh [R] tensor.
"""

from __future__ import annotations

import torch

from protocol.semantics.floats import OperandError
from prover.kernels import _reductions
from prover.kernels._checks import require_cpu_float32


def _reduce(op: int, x: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if not (isinstance(x, torch.Tensor) and x.dtype is torch.float32 and x.is_cpu and x.dim() == 2):
        require_cpu_float32(x, "x", 2)
    rows, n = x.shape
    if op != _reductions.OP_SUM and n == 0:
        raise OperandError("rowmax / rowargmax of an empty row is undefined (n = 0)")
    if n > 1 and x.stride(1) != 1:
        x = x.contiguous()
    out = torch.empty(rows, dtype=dtype)
    if rows == 0:
        return out
    if n >= _reductions.LONG_ROW and rows < 8 and op != _reductions.OP_ARGMAX:
        _reductions.reduce_long_rows(op, x.data_ptr(), x.stride(0), rows, n, out.data_ptr())
    elif rows * n >= _reductions.PARALLEL_MIN_ELEMENTS and rows > 1:
        _reductions.reduce_parallel(op, x.data_ptr(), x.stride(0), rows, n, out.data_ptr())
    else:
        _reductions.reduce_serial(op, x.data_ptr(), x.stride(0), rows, n, out.data_ptr())
    return out


def rowsum(x: torch.Tensor) -> torch.Tensor:
    """Halving-tree sum of each row, equal to `reference_rowsum`; x [R,n] → [R] float32."""
    return _reduce(_reductions.OP_SUM, x, torch.float32)


def rowmax(x: torch.Tensor) -> torch.Tensor:
    """Maximum of each row (NaN propagates, +0.0 beats -0.0), equal to `reference_rowmax`; n >= 1."""
    return _reduce(_reductions.OP_MAX, x, torch.float32)


def rowargmax(x: torch.Tensor) -> torch.Tensor:
    """Index of each row's first NaN, else its first maximum, equal to `reference_rowargmax`; int64."""
    return _reduce(_reductions.OP_ARGMAX, x, torch.int64)
