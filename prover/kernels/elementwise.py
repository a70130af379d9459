"""Elementwise exp, log, tanh, erf, sqrt, rsqrt on CPU float32 tensors, bit-equal to the references.

Any shape and strides in; a fresh contiguous tensor of the same shape out.
"""

from __future__ import annotations

import torch

from prover.kernels import _elementwise
from prover.kernels._checks import require_cpu_float32


def _apply(op: int, x: torch.Tensor) -> torch.Tensor:
    if not (isinstance(x, torch.Tensor) and x.dtype is torch.float32 and x.is_cpu):
        require_cpu_float32(x, "x")
    x = x.contiguous()
    out = torch.empty(x.shape, dtype=torch.float32)
    n = x.numel()
    if n >= _elementwise.PARALLEL_MIN_ELEMENTS:
        _elementwise.map_parallel(op, x.data_ptr(), out.data_ptr(), n, _elementwise.CONSTANTS)
    elif n > 0:
        _elementwise.map_serial(op, x.data_ptr(), out.data_ptr(), n, _elementwise.CONSTANTS)
    return out


def exp(x: torch.Tensor) -> torch.Tensor:
    """e**x elementwise, equal to `reference_exp`; CPU float32 of any shape → same shape."""
    return _apply(_elementwise.OP_EXP, x)


def log(x: torch.Tensor) -> torch.Tensor:
    """Natural log elementwise, equal to `reference_log`; CPU float32 → same shape."""
    return _apply(_elementwise.OP_LOG, x)


def tanh(x: torch.Tensor) -> torch.Tensor:
    """tanh elementwise, equal to `reference_tanh`; CPU float32 → same shape."""
    return _apply(_elementwise.OP_TANH, x)


def erf(x: torch.Tensor) -> torch.Tensor:
    """erf elementwise, equal to `reference_erf`; CPU float32 → same shape."""
    return _apply(_elementwise.OP_ERF, x)


def sqrt(x: torch.Tensor) -> torch.Tensor:
    """Correctly rounded square root elementwise, equal to `reference_sqrt`; CPU float32."""
    return _apply(_elementwise.OP_SQRT, x)


def rsqrt(x: torch.Tensor) -> torch.Tensor:
    """fl(1 / sqrt(x)) elementwise, equal to `reference_rsqrt`; CPU float32."""
    return _apply(_elementwise.OP_RSQRT, x)
