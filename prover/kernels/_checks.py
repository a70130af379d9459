"""Operand checks shared by the fast kernels' wrappers."""

from __future__ import annotations

import torch

from protocol.semantics.floats import OperandError


def require_cpu_float32(x: object, name: str, ndim: int | None = None) -> torch.Tensor:
    """`x` if it is a CPU float32 tensor of rank `ndim` (any rank when None); OperandError otherwise.

    The fast kernels read CPU memory directly; tensors on other devices go to the references.
    """
    if not isinstance(x, torch.Tensor):
        raise OperandError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if not x.is_cpu:
        raise OperandError(f"{name} is on {x.device}; the fast kernels take CPU tensors only")
    if x.dtype != torch.float32:
        raise OperandError(f"{name} must be float32, got {x.dtype}")
    if ndim is not None and x.dim() != ndim:
        raise OperandError(f"{name} must have rank {ndim}, got shape {tuple(x.shape)}")
    return x
