"""Mixed precision inside a step: `torch.autocast` regions, defined by the protocol.

torch's own autocast casts at a dispatch key that exists per device: `torch.autocast("cpu")` casts CPU
tensors only, so the same step on meta tensors (the referee's skeleton) or on another device would
record a different operator graph, and two honest parties on two devices would disagree. Inside a
step, pinpoint therefore replaces autocast by this module's definition, which depends on no device:

- A region opened by `torch.autocast(device_type, dtype, enabled, cache_enabled)` (or its
  `torch.cpu.amp` / `torch.amp` spellings, as a context or a decorator) applies to every tensor in the
  step, whatever the region's device_type and whatever device runs the step; `enabled=False` opens a
  region without casts. The innermost region decides.
- In an enabled region, the functions of `LOWER_PRECISION` get each floating-point tensor argument
  that is not float64 and not already of the region's dtype as `tensor.to(dtype)` (an ordinary,
  differentiable cast: a `_to_copy` node forward and its cast back in backward), and the functions of
  `FLOAT32` get their 16-bit floating-point tensor arguments as `tensor.to(torch.float32)`. Every
  other function runs on its arguments as they are (torch's type promotion decides mixed operands).
- With `cache_enabled` (the default), a leaf tensor that requires grad (a parameter) is cast once per
  outermost region and the cast reused, as torch's autocast caches it; the cache is dropped when the
  outermost region closes.
- The 16-bit operators themselves are the protocol's: operands widened to float32 exactly, the float32
  definition, each output rounded once (`protocol.ops.table`).

The two lists follow torch's CPU autocast policy (torch 2.13) at the level of the functions a model
calls: matrix products, linear layers, convolutions and attention in the region's dtype; losses,
products and the other precision-sensitive functions in float32.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch.amp import autocast_mode
from torch.overrides import TorchFunctionMode

from protocol.patching import ThreadPatch

Tensor = torch.Tensor

LOWER_PRECISION = frozenset({
    torch.mm, Tensor.mm, torch.bmm, Tensor.bmm, torch.matmul, Tensor.matmul, Tensor.__matmul__, Tensor.__rmatmul__,
    torch.addmm, Tensor.addmm, torch.baddbmm, Tensor.baddbmm, torch.addbmm, Tensor.addbmm, F.linear,
    torch.conv1d, torch.conv2d, torch.conv3d, torch.conv_transpose1d, torch.conv_transpose2d,
    torch.conv_transpose3d, torch.conv_tbc, F.prelu, torch.prelu, F.scaled_dot_product_attention,
    torch.linalg.vecdot,
})
"""Functions that run in the region's dtype."""

FLOAT32 = frozenset({
    F.mse_loss, F.l1_loss, F.smooth_l1_loss, F.huber_loss, F.nll_loss, F.cross_entropy, F.kl_div,
    F.binary_cross_entropy, F.binary_cross_entropy_with_logits, F.poisson_nll_loss, F.cosine_embedding_loss,
    F.hinge_embedding_loss, F.margin_ranking_loss, F.soft_margin_loss, F.triplet_margin_loss,
    F.multi_margin_loss, F.multilabel_margin_loss, F.multilabel_soft_margin_loss, torch.prod, Tensor.prod,
    torch.cdist, torch.trace, Tensor.trace, torch.quantile, torch.nanquantile, F.avg_pool3d, F.max_pool3d,
    F.adaptive_avg_pool3d, F.grid_sample,
})
"""Functions that run in float32."""


TO_LOWER = (torch.float32, torch.float16, torch.bfloat16)
"""The dtypes a `LOWER_PRECISION` function's tensor arguments are cast from (never float64)."""
TO_FLOAT32 = (torch.float16, torch.bfloat16)
"""The dtypes a `FLOAT32` function's tensor arguments are cast from."""


@dataclass
class Region:
    """One open autocast region."""

    dtype: torch.dtype
    enabled: bool
    cache_enabled: bool


class _State(threading.local):
    """The calling thread's open regions, cast cache and function mode (torch's mode stacks are per
    thread too)."""

    def __init__(self) -> None:
        self.regions: list[Region] = []
        self.cache: dict[int, tuple[Tensor, Tensor]] = {}  # id → (source, cast)
        self.mode: TorchFunctionMode | None = None


_STATE = _State()


def _cast(value: Any, dtype: torch.dtype, eligible: tuple[torch.dtype, ...], cache: bool) -> Any:
    if isinstance(value, Tensor):
        if not value.is_floating_point() or value.dtype not in eligible or value.dtype == dtype:
            return value
        if cache and value.is_leaf and value.requires_grad:
            hit = _STATE.cache.get(id(value))
            if hit is not None and hit[0] is value:
                return hit[1]
            cast = value.to(dtype)
            _STATE.cache[id(value)] = (value, cast)
            return cast
        return value.to(dtype)
    if isinstance(value, list | tuple):
        return type(value)(_cast(v, dtype, eligible, cache) for v in value)
    return value


class ProtocolAutocastMode(TorchFunctionMode):
    """Casts the arguments of the listed functions as the innermost open region says."""

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        region = _STATE.regions[-1] if _STATE.regions else None
        if region is not None and region.enabled:
            if func in LOWER_PRECISION:
                args = _cast(args, region.dtype, TO_LOWER, region.cache_enabled)
                kwargs = {k: _cast(v, region.dtype, TO_LOWER, region.cache_enabled) for k, v in kwargs.items()}
            elif func in FLOAT32:
                args = _cast(args, torch.float32, TO_FLOAT32, False)
                kwargs = {k: _cast(v, torch.float32, TO_FLOAT32, False) for k, v in kwargs.items()}
        return func(*args, **kwargs)


def _enter(self: autocast_mode.autocast) -> autocast_mode.autocast:
    dtype = self.fast_dtype if self.fast_dtype is not None else torch.bfloat16
    _STATE.regions.append(Region(dtype, bool(self._enabled), bool(self._cache_enabled)))
    if _STATE.mode is None:
        _STATE.mode = ProtocolAutocastMode()
        _STATE.mode.__enter__()
    return self


def _exit(self: autocast_mode.autocast, *exc: Any) -> None:
    _STATE.regions.pop()
    if not _STATE.regions:
        _STATE.cache.clear()
        if _STATE.mode is not None:
            mode, _STATE.mode = _STATE.mode, None
            mode.__exit__(None, None, None)


_ENTER = ThreadPatch(autocast_mode.autocast, "__enter__", lambda original: _enter)
_EXIT = ThreadPatch(autocast_mode.autocast, "__exit__", lambda original: _exit)


@contextmanager
def protocol_autocast() -> Iterator[None]:
    """Inside (in this thread): `torch.autocast` regions follow this module's definition, not torch's."""
    try:
        with _ENTER.active(), _EXIT.active():
            yield
    finally:
        while _STATE.regions:  # a step that raised inside a region
            _exit(None)  # type: ignore[arg-type]
