"""Float conventions shared by every reference operator (float32, and float64 where noted).

The references are written with torch operations that are correctly rounded elementwise on every
device (add, sub, mul, div, comparisons, `where`, integer ops on bit patterns), one rounding per
operation, never fused. This module holds what they share:

- Every NaN a reference operator returns is the canonical quiet NaN of its dtype, bits 0x7FC00000
  (float32) or 0x7FF8000000000000 (float64), whatever NaN payloads or signs went in: NaN propagation rules differ between processors, so payloads would
  otherwise make equal computations hash differently.
- Constants are given as float32 bit patterns (`f32`), so a port reads exactly the same values.
- Operands are checked up front (`require_float32`); a bad operand raises `OperandError`.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import torch

CANONICAL_NAN_BITS = 0x7FC00000
"""Bit pattern of the one NaN reference operators return (positive sign, quiet, zero payload)."""
CANONICAL_NAN64_BITS = 0x7FF8000000000000
"""The same NaN as a float64."""
FLOAT_DTYPES = (torch.float32, torch.float64)
"""The dtypes the structural references (matrix products, reductions) are defined for."""
_INT_VIEW = {torch.float32: torch.int32, torch.float64: torch.int64}

FLOAT32_MAX_BITS = 0x7F7FFFFF
"""Bit pattern of the largest finite float32, (2 - 2**-23) * 2**127."""


class OperandError(ValueError):
    """An operand of a reproducible operator has the wrong type, dtype, rank, shape or device."""


def f32(bits: int) -> float:
    """The float32 value with the given 32-bit pattern, as a Python float (exact)."""
    return float(struct.unpack("<f", struct.pack("<I", bits & 0xFFFFFFFF))[0])


def f32_bits(value: float) -> int:
    """The bit pattern of `value` rounded to float32 (round to nearest even)."""
    return int(struct.unpack("<I", struct.pack("<f", value))[0])


def require_float32(x: object, name: str, ndim: int | None = None) -> torch.Tensor:
    """`x` if it is a float32 tensor of rank `ndim` (any rank when None); OperandError otherwise."""
    if not isinstance(x, torch.Tensor):
        raise OperandError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype != torch.float32:
        raise OperandError(f"{name} must be float32, got {x.dtype}")
    if ndim is not None and x.dim() != ndim:
        raise OperandError(f"{name} must have rank {ndim}, got shape {tuple(x.shape)}")
    return x


def require_float(x: object, name: str, ndim: int | None = None) -> torch.Tensor:
    """`x` if it is a float32 or float64 tensor of rank `ndim` (any rank when None); else OperandError."""
    if isinstance(x, torch.Tensor) and x.dtype == torch.float64:
        if ndim is not None and x.dim() != ndim:
            raise OperandError(f"{name} must have rank {ndim}, got shape {tuple(x.shape)}")
        return x
    return require_float32(x, name, ndim)


def require_same_dtype(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    """OperandError unless both tensors have one dtype."""
    if a.dtype != b.dtype:
        raise OperandError(f"{names} must have one dtype, got {a.dtype} and {b.dtype}")


def require_same_device(a: torch.Tensor, b: torch.Tensor, names: str) -> None:
    """OperandError unless both tensors live on the same device."""
    if a.device != b.device:
        raise OperandError(f"{names} must be on one device, got {a.device} and {b.device}")


def constant(bits: int, like: torch.Tensor) -> torch.Tensor:
    """A 0-dim float32 tensor holding the float32 with pattern `bits`, on `like`'s device.

    A device tensor, not a Python scalar: some devices' kernels divide by a scalar through its
    reciprocal, which rounds differently.
    """
    return compute_scalar_tensor(f32(bits), torch.float32, like.device)


_SCALAR_TENSORS: dict[tuple[Any, ...], torch.Tensor] = {}
MAX_SCALAR_TENSORS = 1 << 12
"""How many distinct 0-dim constants are kept (a step uses a few dozen: its literals and scalar arguments)."""


def compute_scalar_tensor(value: bool | int | float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """`torch.tensor(value, dtype=dtype, device=device)`, made once and shared by every later call
    with the same value (the sign of a zero included), dtype and device: making it costs more than
    the small operation that reads it. Callers only read it, as an operand of out-of-place operations.

    Kept only when made outside any dispatch mode and inference mode (a mode could give it another
    type or lifetime) and for numbers that are not NaN (NaNs never compare equal as keys)."""
    key = (type(value), value, math.copysign(1.0, value) if isinstance(value, float) else 0, dtype, device)
    tensor = _SCALAR_TENSORS.get(key)
    if tensor is not None:
        return tensor
    tensor = torch.tensor(value, dtype=dtype, device=device)
    if (
        value == value
        and type(tensor) is torch.Tensor
        and torch._C._len_torch_dispatch_stack() == 0
        and not torch.is_inference_mode_enabled()
        and len(_SCALAR_TENSORS) < MAX_SCALAR_TENSORS
    ):
        _SCALAR_TENSORS[key] = tensor
    return tensor


def canonicalize_nan(x: torch.Tensor) -> torch.Tensor:
    """x with every NaN replaced by its dtype's canonical quiet NaN (0x7FC00000 for float32)."""
    if x.dtype == torch.float64:
        nan = torch.tensor(CANONICAL_NAN64_BITS, dtype=torch.int64, device=x.device).view(torch.float64)
        return torch.where(x != x, nan, x)
    return torch.where(x != x, constant(CANONICAL_NAN_BITS, x), x)


def as_bits(x: torch.Tensor) -> torch.Tensor:
    """The bit patterns of a float32 (int32) or float64 (int64) tensor; a reinterpretation."""
    return x.contiguous().view(_INT_VIEW.get(x.dtype, torch.int32))


def from_bits(bits: torch.Tensor) -> torch.Tensor:
    """The float32 (from int32) or float64 (from int64) tensor with the given bit patterns."""
    return bits.contiguous().view(torch.float64 if bits.dtype == torch.int64 else torch.float32)
