"""Python-float arithmetic of a training step, made to follow `protocol.semantics.scalars`.

Two mechanisms, both active only while a reproducible step runs:

- `ProtocolFloat`: the float a `.item()` read of a tensor returns inside the step
  (`protocol_items()`: Adam's step counter, …; `float(tensor)` cannot return a subclass).
  `x ** y` with a ProtocolFloat on either side is `compute_pow` (correctly rounded) rather than the
  C library's `pow`; `+ - * / // %`, negation and `abs` are IEEE operations (the same everywhere) and
  keep the type, so `1 - beta2 ** step` and `(… ) ** 0.5` stay defined however long the chain.
- `protocol_math()`: replaces `math.exp`, `math.cos`, … (`protocol.semantics.scalars.MATH_FUNCTIONS`,
  plus `math.pow` and two-argument `math.log`) by the correctly rounded definitions while a
  learning-rate scheduler runs (schedulers use `math.cos` on Python numbers that never came from a
  tensor). Only there: code that compiles kernels (numba) reads `math` and must see the original.
  A task's own forward code that calls `math.exp` on Python floats is not covered; the values it
  passes to operators are recorded in the trace, and a platform whose libm differs there would
  build another trace (noted in docs/spec.md).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import torch

from protocol.patching import ThreadPatch
from protocol.semantics.scalars import MATH_FUNCTIONS, compute_log, compute_pow


def _python_pow(x: float, y: float) -> float:
    """x ** y as Python evaluates it, but correctly rounded: Python's errors for 0 ** negative,
    negative ** fraction (a complex result: not supported here) and overflow."""
    if x == 0.0 or x != x or y != y or math.isinf(x) or math.isinf(y):
        return float.__pow__(x, y)  # exact special cases, or the error Python raises
    result = compute_pow(x, y)
    if math.isinf(result):
        raise OverflowError(34, "Numerical result out of range")
    return result


class ProtocolFloat(float):
    """A float whose `**` is the protocol's correctly rounded pow (see the module docstring)."""

    __slots__ = ()

    def __pow__(self, other: Any, modulo: Any = None) -> Any:  # type: ignore[override]
        if modulo is not None or not isinstance(other, int | float):
            return NotImplemented
        return ProtocolFloat(_python_pow(float(self), float(other)))

    def __rpow__(self, other: Any, modulo: Any = None) -> Any:  # type: ignore[override]
        if modulo is not None or not isinstance(other, int | float):
            return NotImplemented
        return ProtocolFloat(_python_pow(float(other), float(self)))

    def __repr__(self) -> str:
        return float.__repr__(self)


def _keep(name: str) -> Callable[..., Any]:
    operation = getattr(float, name)

    def method(self: float, *args: Any) -> Any:
        result = operation(self, *args)
        return ProtocolFloat(result) if type(result) is float else result

    method.__name__ = name
    return method


for _name in ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
              "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__", "__neg__", "__pos__", "__abs__"):
    setattr(ProtocolFloat, _name, _keep(_name))


def as_protocol_float(value: Any) -> Any:
    """A `.item()` result as the step sees it: floats become ProtocolFloat, the rest is unchanged."""
    return ProtocolFloat(value) if type(value) is float else value


def _log(x: float, base: float | None = None) -> float:
    if base is None:
        return compute_log(x)
    return compute_log(x) / compute_log(base)  # two correctly rounded logs, one IEEE division


def _pow(x: float, y: float) -> float:
    return compute_pow(x, y)


REPLACEMENTS: dict[str, Callable[..., float]] = dict(MATH_FUNCTIONS, log=_log, pow=_pow)


def _protocol_item(item: Callable[[torch.Tensor], Any]) -> Callable[[torch.Tensor], Any]:
    def protocol_item(self: torch.Tensor) -> Any:
        return as_protocol_float(item(self))

    return protocol_item


_ITEM = ThreadPatch(torch.Tensor, "item", _protocol_item)


@contextmanager
def protocol_items() -> Iterator[None]:
    """Inside (in this thread): `Tensor.item()` returns ProtocolFloat for floating values."""
    with _ITEM.active():
        yield


_INSIDE = threading.local()


def _guarded(function: Callable[..., float], original: Callable[..., float]) -> Callable[..., float]:
    """`function`, except for calls made while computing one (the high-precision library uses `math`
    itself) and for arguments a float cannot hold (huge ints), which go to the original."""

    def call(*args: Any) -> float:
        if getattr(_INSIDE, "active", False) or any(isinstance(a, int) and not -(2**1023) < a < 2**1023 for a in args):
            return original(*args)
        _INSIDE.active = True
        try:
            return function(*args)
        finally:
            _INSIDE.active = False

    call.__name__ = getattr(original, "__name__", "function")
    return call


def _guarding(function: Callable[..., float]) -> Callable[[Callable[..., float]], Callable[..., float]]:
    return lambda original: _guarded(function, original)


_MATH = [ThreadPatch(math, name, _guarding(function)) for name, function in REPLACEMENTS.items()]


@contextmanager
def protocol_math() -> Iterator[None]:
    """Inside (in this thread): `math`'s transcendental functions are the protocol's correctly rounded ones."""
    with ExitStack() as stack:
        for patch in _MATH:
            stack.enter_context(patch.active())
        yield
