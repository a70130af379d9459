"""Operator definitions: activations, losses and statistics (see protocol.ops.table for the conventions).

Every function below is a fixed sequence of correctly rounded float32 tensor operations (+, -, *, /
on same-dtype tensors, comparisons, `where`, negation and absolute value, which are exact) and the
primitives of `protocol.ops.prims`; `fl(·)` in a comment is one rounding to float32, a Python
scalar `c` is float32(c) (`_scalar`). Shared building blocks, each written once:

    sigmoid pair   e = exp(-|x|), d = fl(1 + e), p = fl(1 / d), q = fl(e / d):
                   sigmoid(x) = p if x >= 0 else q, and 1 - sigmoid(x) = q if x >= 0 else p
                   (both sides accurate: no cancellation in 1 - p)
    log1p(u)       w = fl(1 + u); fl(u * fl(log(w) / fl(w - 1))), u itself where w == 1, +inf at
                   +inf (the quotient corrects the rounding of 1 + u: a few ulp for every u > -1)
    expm1(x)       u = exp(x); fl(fl(u - 1) * fl(x / log(u))), x itself where u == 1, -1 where
                   fl(u - 1) == -1, +inf where u == +inf
    softplus(z)    log(1 + e**z) = fl(max(z, 0) + log1p(exp(-|z|)))
    reductions     over all elements (losses) or the reduced dims (statistics) in row-major order,
                   as [R, n] rows summed by `prims.rowsum`; a mean is fl(sum / float32(n))

Every result's NaNs are the canonical NaN (0x7FC00000): an invalid operation's NaN has a sign that
differs between processors (x86 gives 0xFFC00000), so a NaN must not reach a digest as it came out.
Zeros keep torch's sign where torch is consistent; maximum and minimum order -0.0 < +0.0.

NATIVE claims made here (torch's kernel moves values without arithmetic, or computes booleans;
`tests/test_ops_activations` pins each against numpy bit for bit): in-place transpose, unsafe
splits, flip, roll, repeat, constant padding, narrow, masked_scatter, logical and/or/xor. Not
claimed: scatter and scatter_add (with repeated indices torch's result depends on the kernel's
order of writes or additions).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from protocol.ops import prims as prims_module
from protocol.ops.prims import Primitives
from protocol.ops.table import (
    OPS,
    REDUCTION_MEAN,
    REDUCTION_NONE,
    OpKind,
    Outputs,
    UnsupportedOperator,
    _as_rows,
    _register,
    _require_float,
    _scalar,
    defines,
)
from protocol.semantics.floats import canonicalize_nan
from protocol.semantics.reductions import compute_max2

Tensor = torch.Tensor
Compute = Callable[[Primitives, dict[str, Any]], Outputs]


def _defines_new(*names: str) -> Callable[[Compute], Compute]:
    """`defines`, refusing a name another module already defined (registering would replace it)."""
    taken = [name for name in names if f"aten::{name}" in OPS]
    if taken:
        raise RuntimeError(f"operators defined twice: {taken}")
    return defines(*names)


# --- native claims: data movement -------------------------------------------------------------------

NATIVE_MOVEMENT_OPS = """
transpose_.default unsafe_split.Tensor unsafe_split_with_sizes.default flip.default roll.default
repeat.default constant_pad_nd.default narrow.default masked_scatter.default
logical_and.default logical_and_.default logical_or.default logical_or_.default logical_xor.default
"""
"""Operators whose torch kernel only moves (or fills with one constant) values, or computes booleans
from comparisons with zero: exact by construction."""

for _short in NATIVE_MOVEMENT_OPS.split():
    if f"aten::{_short}" not in OPS:
        _register(f"aten::{_short}", OpKind.NATIVE)


# --- helpers ------------------------------------------------------------------------------------------


def _canonical(x: Tensor) -> Tensor:
    """x with every NaN the canonical NaN (see the module docstring)."""
    return canonicalize_nan(x)


def _is_exact_dtype(x: Tensor) -> bool:
    """Integer and bool tensors: comparisons and selections on them are exact in any order."""
    return not x.dtype.is_floating_point and not x.dtype.is_complex


def _times(x: Tensor, value: float) -> Tensor:
    """fl(x * float32(value)); x itself when value == 1 (a product with 1 is exact anyway)."""
    return x if value == 1 else x * _scalar(value, x)


def _over(x: Tensor, value: float) -> Tensor:
    """fl(x / float32(value)); x itself when value == 1."""
    return x if value == 1 else x / _scalar(value, x)


def compute_sigmoid_pair(prims: Primitives, x: Tensor) -> tuple[Tensor, Tensor]:
    """(sigmoid(x), 1 - sigmoid(x)) through `prims.exp`: see `protocol.ops.prims.compute_sigmoid_pair`."""
    return prims_module.compute_sigmoid_pair(x, prims.exp)


def compute_log1p(prims: Primitives, u: Tensor) -> Tensor:
    """log(1 + u): w = fl(1 + u); fl(u * fl(log(w) / fl(w - 1))); u where w == 1; +inf at +inf."""
    w = _scalar(1.0, u) + u
    result = u * (prims.log(w) / (w - _scalar(1.0, u)))
    result = torch.where(w == 1, u, result)  # |u| below half an ulp of 1, and ±0 keeps its sign
    return torch.where(u == math.inf, u, result)  # log(inf) / inf would be NaN


def compute_expm1(prims: Primitives, x: Tensor) -> Tensor:
    """e**x - 1: u = exp(x); fl(fl(u - 1) * fl(x / log(u))); x where u == 1; -1 where fl(u - 1) == -1;
    +inf where u == +inf."""
    u = prims.exp(x)
    um1 = u - _scalar(1.0, x)
    result = um1 * (x / prims.log(u))
    result = torch.where(u == 1, x, result)  # tiny |x|, and ±0 keeps its sign
    result = torch.where(um1 == -1, um1, result)  # the quotient is not needed (and log(0) = -inf)
    return torch.where(u == math.inf, u, result)


def compute_softplus(prims: Primitives, z: Tensor) -> Tensor:
    """log(1 + e**z) = fl(max(z, 0) + log1p(exp(-|z|))), never overflowing."""
    positive = torch.where(z > 0, z, torch.zeros((), dtype=z.dtype, device=z.device))
    return positive + compute_log1p(prims, prims.exp(-torch.abs(z)))


def _reduce_loss(prims: Primitives, loss: Tensor, reduction: int) -> Tensor:
    """none: loss; sum: rowsum of every element in row-major order; mean: fl(sum / float32(numel))."""
    if reduction == REDUCTION_NONE:
        return loss
    total = prims.rowsum(loss.contiguous().reshape(1, -1)).reshape(())
    if reduction == REDUCTION_MEAN:
        total = total / _scalar(float(loss.numel()), total)
    return total


def _loss_grad(grad: Tensor, numel: int, reduction: int) -> Tensor:
    """The upstream gradient per element: fl(grad / float32(numel)) for mean, grad otherwise."""
    return grad / _scalar(float(numel), grad) if reduction == REDUCTION_MEAN else grad


# --- sigmoid, SiLU, softplus ------------------------------------------------------------------------


@_defines_new("sigmoid.default", "sigmoid_.default")
def _sigmoid(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # the sigmoid pair's first element (module docstring)
    x = a["self"]
    _require_float("aten::sigmoid", x)
    return prims.sigmoid(x)  # the pair's first, NaN canonical: one primitive (the prover fuses it)


@_defines_new("sigmoid_backward.default")
def _sigmoid_backward(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # fl(fl(grad * fl(1 - y)) * y), y the forward output, NaN canonical: one primitive (the prover fuses it)
    grad, y = a["grad_output"], a["output"]
    _require_float("aten::sigmoid_backward", grad, y)
    return prims.sigmoid_backward(grad, y)


@_defines_new("silu.default", "silu_.default")
def _silu(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # fl(x * sigmoid(x))
    x = a["self"]
    _require_float("aten::silu", x)
    return prims.silu(x)  # see protocol.ops.prims.compute_silu


@_defines_new("silu_backward.default")
def _silu_backward(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # s, c = sigmoid pair of x; fl(grad * fl(s * fl(1 + fl(x * c))))  (d/dx x·s = s·(1 + x·(1 - s)))
    grad, x = a["grad_output"], a["self"]
    _require_float("aten::silu_backward", grad, x)
    return prims.silu_backward(grad, x)  # see protocol.ops.prims.compute_silu_backward


@_defines_new("softplus.default")
def _softplus(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # z = fl(x * beta); x where z > float32(threshold), else fl(softplus(z) / beta)  (torch's threshold rule)
    x, beta = a["self"], a["beta"]
    _require_float("aten::softplus", x)
    z = _times(x, beta)
    return _canonical(torch.where(z > _scalar(a["threshold"], x), x, _over(compute_softplus(prims, z), beta)))


@_defines_new("softplus_backward.default")
def _softplus_backward(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # z = fl(x * beta); grad where z > float32(threshold), else fl(grad * sigmoid(z))
    grad, x = a["grad_output"], a["self"]
    _require_float("aten::softplus_backward", grad, x)
    z = _times(x, a["beta"])
    sigmoid = compute_sigmoid_pair(prims, z)[0]
    return _canonical(torch.where(z > _scalar(a["threshold"], x), grad, grad * sigmoid))


# --- ELU, leaky ReLU, hardtanh ----------------------------------------------------------------------


def _elu_coefficients(a: dict[str, Any], like: Tensor) -> tuple[Tensor, float, float]:
    """(negcoef = fl(float32(alpha) * float32(scale)), scale, input_scale), as torch forms them."""
    negcoef = _scalar(a["alpha"], like) * _scalar(a["scale"], like)
    return negcoef, a["scale"], a["input_scale"]


@_defines_new("elu.default", "elu_.default")
def _elu(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # fl(x * scale) where x > 0, else fl(expm1(fl(x * input_scale)) * negcoef)
    x = a["self"]
    _require_float("aten::elu", x)
    negcoef, scale, input_scale = _elu_coefficients(a, x)
    negative = compute_expm1(prims, _times(x, input_scale)) * negcoef
    return _canonical(torch.where(x > 0, _times(x, scale), negative))


@_defines_new("elu_backward.default")
def _elu_backward(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # from the input x:  x > 0: fl(grad * scale); else fl(grad * fl(fl(negcoef * input_scale) * exp(fl(x * input_scale))))
    # from the result y: y > 0: fl(grad * scale); else fl(grad * fl(fl(y + negcoef) * input_scale))
    grad, v = a["grad_output"], a["self_or_result"]
    _require_float("aten::elu_backward", grad, v)
    negcoef, scale, input_scale = _elu_coefficients(a, v)
    if a["is_result"]:
        slope = _times(v + negcoef, input_scale)
    else:
        slope = _times(negcoef, input_scale) * prims.exp(_times(v, input_scale))
    return _canonical(torch.where(v > 0, _times(grad, scale), grad * slope))


@_defines_new("celu.default", "celu_.default")
def _celu(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # elu with alpha, scale 1 and input_scale 1/alpha (as torch's kernel; its backward is elu_backward)
    return _elu(prims, {"self": a["self"], "alpha": a["alpha"], "scale": 1.0, "input_scale": 1.0 / a["alpha"]})


@_defines_new("leaky_relu.default", "leaky_relu_.default")
def _leaky_relu(_: Primitives, a: dict[str, Any]) -> Outputs:
    # x where x > 0, else fl(x * negative_slope)
    x = a["self"]
    _require_float("aten::leaky_relu", x)
    return _canonical(torch.where(x > 0, x, x * _scalar(a["negative_slope"], x)))


@_defines_new("leaky_relu_backward.default")
def _leaky_relu_backward(_: Primitives, a: dict[str, Any]) -> Outputs:
    # grad where x > 0, else fl(grad * negative_slope)  (x the input, or the result: same sign)
    grad, x = a["grad_output"], a["self"]
    _require_float("aten::leaky_relu_backward", grad, x)
    return _canonical(torch.where(x > 0, grad, grad * _scalar(a["negative_slope"], grad)))


@_defines_new("hardtanh.default", "hardtanh_.default")
def _hardtanh(_: Primitives, a: dict[str, Any]) -> Outputs:
    # clamp(x, min_val, max_val)
    x = a["self"]
    _require_float("aten::hardtanh", x)
    return _clamp_values(x, _scalar(a["min_val"], x), _scalar(a["max_val"], x))


@_defines_new("hardtanh_backward.default")
def _hardtanh_backward(_: Primitives, a: dict[str, Any]) -> Outputs:
    # +0 where x <= min_val or x >= max_val, else grad
    grad, x = a["grad_output"], a["self"]
    _require_float("aten::hardtanh_backward", grad, x)
    outside = (x <= _scalar(a["min_val"], x)) | (x >= _scalar(a["max_val"], x))
    return _canonical(torch.where(outside, torch.zeros((), dtype=grad.dtype, device=grad.device), grad))


@_defines_new("hardsigmoid.default", "hardsigmoid_.default")
def _hardsigmoid(_: Primitives, a: dict[str, Any]) -> Outputs:
    # fl(clamp(fl(x + 3), 0, 6) / 6)
    x = a["self"]
    _require_float("aten::hardsigmoid", x)
    relu6 = _clamp_values(x + _scalar(3.0, x), _scalar(0.0, x), _scalar(6.0, x))
    return _canonical(relu6 / _scalar(6.0, x))


@_defines_new("hardsigmoid_backward.default")
def _hardsigmoid_backward(_: Primitives, a: dict[str, Any]) -> Outputs:
    # fl(grad / 6) where -3 < x < 3, else +0
    grad, x = a["grad_output"], a["self"]
    _require_float("aten::hardsigmoid_backward", grad, x)
    inside = (x > _scalar(-3.0, x)) & (x < _scalar(3.0, x))
    return _canonical(torch.where(inside, grad / _scalar(6.0, grad), torch.zeros((), dtype=grad.dtype, device=grad.device)))


@_defines_new("hardswish.default", "hardswish_.default")
def _hardswish(_: Primitives, a: dict[str, Any]) -> Outputs:
    # fl(fl(x * clamp(fl(x + 3), 0, 6)) / 6)
    x = a["self"]
    _require_float("aten::hardswish", x)
    relu6 = _clamp_values(x + _scalar(3.0, x), _scalar(0.0, x), _scalar(6.0, x))
    return _canonical((x * relu6) / _scalar(6.0, x))


@_defines_new("hardswish_backward.default")
def _hardswish_backward(_: Primitives, a: dict[str, Any]) -> Outputs:
    # +0 where x < -3; fl(grad * fl(fl(x / 3) + 0.5)) where x <= 3; else grad  (torch's branches)
    grad, x = a["grad_output"], a["self"]
    _require_float("aten::hardswish_backward", grad, x)
    middle = grad * (x / _scalar(3.0, x) + _scalar(0.5, x))
    result = torch.where(x <= _scalar(3.0, x), middle, grad)
    return _canonical(torch.where(x < _scalar(-3.0, x), torch.zeros((), dtype=grad.dtype, device=grad.device), result))


@_defines_new("mish.default", "mish_.default")
def _mish(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # fl(x * tanh(softplus(x)))
    x = a["self"]
    _require_float("aten::mish", x)
    return _canonical(x * prims.tanh(compute_softplus(prims, x)))


@_defines_new("mish_backward.default")
def _mish_backward(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # t = tanh(softplus(x)), s = sigmoid(x): fl(grad * fl(t + fl(fl(x * s) * fl(1 - fl(t * t)))))
    grad, x = a["grad_output"], a["self"]
    _require_float("aten::mish_backward", grad, x)
    t = prims.tanh(compute_softplus(prims, x))
    s = compute_sigmoid_pair(prims, x)[0]
    return _canonical(grad * (t + (x * s) * (_scalar(1.0, x) - t * t)))


@_defines_new("log_sigmoid_forward.default")
def _log_sigmoid_forward(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # e = exp(-|x|); output = fl(min(x, 0) - log1p(e)) = -softplus(-x); buffer = e (as torch's CPU kernel)
    x = a["self"]
    _require_float("aten::log_sigmoid_forward", x)
    e = prims.exp(-torch.abs(x))
    negative = torch.where(x < 0, x, torch.zeros((), dtype=x.dtype, device=x.device))
    return _canonical(negative - compute_log1p(prims, e)), _canonical(e)


@_defines_new("log_sigmoid_backward.default")
def _log_sigmoid_backward(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # fl(grad * (1 - sigmoid(x))), the complement from the sigmoid pair of x (the buffer is not read)
    grad, x = a["grad_output"], a["self"]
    _require_float("aten::log_sigmoid_backward", grad, x)
    return _canonical(grad * compute_sigmoid_pair(prims, x)[1])


def _glu_halves(x: Tensor, dim: int) -> tuple[Tensor, Tensor]:
    half = x.shape[dim] // 2
    return x.narrow(dim, 0, half), x.narrow(dim, half, half)


@_defines_new("glu.default")
def _glu(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # x = [u, v] halves along dim: fl(u * sigmoid(v))
    x, dim = a["self"], a["dim"]
    _require_float("aten::glu", x)
    u, v = _glu_halves(x, dim)
    return _canonical(u * compute_sigmoid_pair(prims, v)[0])


@_defines_new("glu_backward.default")
def _glu_backward(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # s, c = sigmoid pair of v: [fl(grad * s), fl(fl(fl(grad * u) * s) * c)] along dim
    grad, x, dim = a["grad_output"], a["self"], a["dim"]
    _require_float("aten::glu_backward", grad, x)
    u, v = _glu_halves(x, dim)
    s, c = compute_sigmoid_pair(prims, v)
    return _canonical(torch.cat([grad * s, ((grad * u) * s) * c], dim=dim))


@_defines_new("_prelu_kernel.default")
def _prelu(_: Primitives, a: dict[str, Any]) -> Outputs:
    # x where x > 0, else fl(weight * x)  (weight broadcast as given)
    x, weight = a["self"], a["weight"]
    _require_float("aten::_prelu_kernel", x, weight)
    return _canonical(torch.where(x > 0, x, weight * x))


@_defines_new("_prelu_kernel_backward.default")
def _prelu_backward(_: Primitives, a: dict[str, Any]) -> Outputs:
    # grad_input = grad where x > 0, else fl(weight * grad); grad_weight = +0 where x > 0, else fl(x * grad)
    # (both of the broadcast shape; autograd sums grad_weight down to the weight's shape)
    grad, x, weight = a["grad_output"], a["self"], a["weight"]
    _require_float("aten::_prelu_kernel_backward", grad, x, weight)
    positive = x > 0
    zero = torch.zeros((), dtype=grad.dtype, device=grad.device)
    return _canonical(torch.where(positive, grad, weight * grad)), _canonical(torch.where(positive, zero, x * grad))


# --- selection: sign, clamp, maximum, minimum -------------------------------------------------------


@_defines_new("sgn.default", "sgn_.default")
def _sgn(_: Primitives, a: dict[str, Any]) -> Outputs:
    # 1 where x > 0, -1 where x < 0, else +0 (zeros and NaN, as torch's sign)
    x = a["self"]
    if _is_exact_dtype(x):
        return torch.sgn(x)
    _require_float("aten::sgn", x)
    one, zero = _scalar(1.0, x), torch.zeros((), dtype=x.dtype, device=x.device)
    return torch.where(x > 0, one, torch.where(x < 0, -one, zero)).expand(x.shape).contiguous()


def _clamp_values(x: Tensor, low: Tensor | None, high: Tensor | None) -> Tensor:
    """low where x < low, then high where that exceeds high; a NaN in x or a bound gives NaN
    (so low > high gives high, as torch). Selection only: no rounding."""
    result = x
    if low is not None:
        result = torch.where((result < low) | (low != low), low, result)
    if high is not None:
        result = torch.where((result > high) | (high != high), high, result)
    if result is x:
        result = x.clone()
    return _canonical(result)


def _is_integer_bound(bound: Any) -> bool:
    """An absent bound, a Python int or an integer tensor: clamping an integer tensor by it is exact."""
    if isinstance(bound, Tensor):
        return _is_exact_dtype(bound)
    return bound is None or (isinstance(bound, int) and not isinstance(bound, bool))


def _clamp_bounds(name: str, a: dict[str, Any], low_key: str | None, high_key: str | None) -> Outputs:
    x = a["self"]
    low, high = a.get(low_key) if low_key else None, a.get(high_key) if high_key else None
    if low is None and high is None:
        raise UnsupportedOperator(name, "at least one of min and max must be given")
    if _is_exact_dtype(x) and _is_integer_bound(low) and _is_integer_bound(high):
        return torch.clamp(x, low, high)  # integers: exact whatever the order
    bounds = [b for b in (low, high) if isinstance(b, Tensor)]
    _require_float(name, x, *bounds)

    def as_tensor(bound: Any) -> Tensor | None:
        return bound if bound is None or isinstance(bound, Tensor) else _scalar(bound, x)

    return _clamp_values(x, as_tensor(low), as_tensor(high))


@_defines_new("clamp.default", "clamp_.default", "clamp.Tensor", "clamp_.Tensor")
def _clamp(_: Primitives, a: dict[str, Any]) -> Outputs:
    # min(max(x, float32(min)), float32(max)) by selection; NaN in x or a bound → NaN
    return _clamp_bounds("aten::clamp", a, "min", "max")


@_defines_new("clamp_min.default", "clamp_min_.default", "clamp_min.Tensor", "clamp_min_.Tensor")
def _clamp_min(_: Primitives, a: dict[str, Any]) -> Outputs:
    return _clamp_bounds("aten::clamp_min", a, "min", None)


@_defines_new("clamp_max.default", "clamp_max_.default", "clamp_max.Tensor", "clamp_max_.Tensor")
def _clamp_max(_: Primitives, a: dict[str, Any]) -> Outputs:
    return _clamp_bounds("aten::clamp_max", a, None, "max")


def _broadcast_pair(name: str, a: dict[str, Any]) -> tuple[Tensor, Tensor] | None:
    """self and other broadcast to one shape, or None when both are integer tensors (exact natively)."""
    x, y = a["self"], a["other"]
    if _is_exact_dtype(x) and _is_exact_dtype(y):
        return None
    _require_float(name, x, y)
    shape = torch.broadcast_shapes(x.shape, y.shape)
    return x.expand(shape), y.expand(shape)


@_defines_new("maximum.default")
def _maximum(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # max2 of protocol.semantics.reductions: NaN if either is NaN; +0.0 > -0.0 (so it commutes)
    pair = _broadcast_pair("aten::maximum", a)
    if pair is None:
        return torch.maximum(a["self"], a["other"])
    return prims.maximum(*pair)


@_defines_new("minimum.default")
def _minimum(_: Primitives, a: dict[str, Any]) -> Outputs:
    # -max2(-x, -y): NaN if either is NaN; -0.0 < +0.0
    pair = _broadcast_pair("aten::minimum", a)
    if pair is None:
        return torch.minimum(a["self"], a["other"])
    x, y = pair
    return _canonical(-compute_max2(-x, -y))


# --- elementwise functions ------------------------------------------------------------------------


@_defines_new("reciprocal.default", "reciprocal_.default")
def _reciprocal(_: Primitives, a: dict[str, Any]) -> Outputs:
    # fl(1 / x): ±0 → ±inf, ±inf → ±0
    x = a["self"]
    _require_float("aten::reciprocal", x)
    return _canonical(_scalar(1.0, x) / x)


@_defines_new("log1p.default", "log1p_.default")
def _log1p(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # compute_log1p (module docstring): -1 → -inf, below -1 → NaN
    x = a["self"]
    _require_float("aten::log1p", x)
    return _canonical(compute_log1p(prims, x))


@_defines_new("expm1.default", "expm1_.default")
def _expm1(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # compute_expm1 (module docstring): -inf → -1, large x → +inf
    x = a["self"]
    _require_float("aten::expm1", x)
    return _canonical(compute_expm1(prims, x))


def _xlogy(prims: Primitives, x: Tensor, y: Tensor) -> Tensor:
    """fl(x * log(y)); +0 where x == 0 (even for y = 0 or inf); NaN where y is NaN (as torch)."""
    _require_float("aten::xlogy", x, y)
    product = x * prims.log(y.expand(torch.broadcast_shapes(x.shape, y.shape)).contiguous())
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    result = torch.where(x == 0, zero, product)
    return _canonical(torch.where(y != y, y, result))


@_defines_new("xlogy.Tensor", "xlogy_.Tensor")
def _xlogy_tensor(prims: Primitives, a: dict[str, Any]) -> Outputs:
    return _xlogy(prims, a["self"], a["other"])


@_defines_new("xlogy.Scalar_Other", "xlogy_.Scalar_Other")
def _xlogy_scalar_other(prims: Primitives, a: dict[str, Any]) -> Outputs:
    return _xlogy(prims, a["self"], _scalar(a["other"], a["self"]))


@_defines_new("xlogy.Scalar_Self")
def _xlogy_scalar_self(prims: Primitives, a: dict[str, Any]) -> Outputs:
    return _xlogy(prims, _scalar(a["self"], a["other"]), a["other"])


# --- losses ---------------------------------------------------------------------------------------


@_defines_new("mse_loss.default")
def _mse_loss(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # d = fl(x - t); loss = fl(d * d), reduced (module docstring)
    x, t = a["self"], a["target"]
    _require_float("aten::mse_loss", x, t)
    d = x - t
    return _canonical(_reduce_loss(prims, d * d, a["reduction"]))


@_defines_new("mse_loss_backward.default")
def _mse_loss_backward(_: Primitives, a: dict[str, Any]) -> Outputs:
    # g = fl(grad * 2) (then fl(g / float32(n)) for mean); fl(fl(x - t) * g)
    grad, x, t = a["grad_output"], a["self"], a["target"]
    _require_float("aten::mse_loss_backward", grad, x, t)
    d = x - t
    g = _loss_grad(grad * _scalar(2.0, grad), d.numel(), a["reduction"])
    return _canonical(d * g)


def _check_beta(name: str, beta: float) -> None:
    if beta < 0:
        raise UnsupportedOperator(name, f"negative beta/delta {beta}")


@_defines_new("smooth_l1_loss.default")
def _smooth_l1_loss(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # z = |fl(x - t)|; fl(fl(fl(z * z) * 0.5) / beta) where z < beta, else fl(z - fl(beta * 0.5)); reduced
    x, t, beta = a["self"], a["target"], a["beta"]
    _require_float("aten::smooth_l1_loss", x, t)
    _check_beta("aten::smooth_l1_loss", beta)
    z = torch.abs(x - t)
    b, half = _scalar(beta, z), _scalar(0.5, z)
    loss = torch.where(z < b, ((z * z) * half) / b, z - b * half)
    return _canonical(_reduce_loss(prims, loss, a["reduction"]))


@_defines_new("smooth_l1_loss_backward.default")
def _smooth_l1_loss_backward(_: Primitives, a: dict[str, Any]) -> Outputs:
    # d = fl(x - t), g = grad (fl(grad / float32(n)) for mean):
    # -g where d <= -beta, g where d >= beta, else fl(fl(d / beta) * g)
    grad, x, t, beta = a["grad_output"], a["self"], a["target"], a["beta"]
    _require_float("aten::smooth_l1_loss_backward", grad, x, t)
    _check_beta("aten::smooth_l1_loss_backward", beta)
    d = x - t
    g = _loss_grad(grad, d.numel(), a["reduction"]).expand(d.shape)
    b = _scalar(beta, d)
    inner = torch.where(d >= b, g, (d / b) * g)
    return _canonical(torch.where(d <= -b, -g, inner))


@_defines_new("huber_loss.default")
def _huber_loss(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # z = |fl(x - t)|; fl(fl(z * z) * 0.5) where z < delta, else fl(delta * fl(z - fl(delta * 0.5))); reduced
    x, t, delta = a["self"], a["target"], a["delta"]
    _require_float("aten::huber_loss", x, t)
    _check_beta("aten::huber_loss", delta)
    z = torch.abs(x - t)
    c, half = _scalar(delta, z), _scalar(0.5, z)
    loss = torch.where(z < c, (z * z) * half, c * (z - c * half))
    return _canonical(_reduce_loss(prims, loss, a["reduction"]))


@_defines_new("huber_loss_backward.default")
def _huber_loss_backward(_: Primitives, a: dict[str, Any]) -> Outputs:
    # d = fl(x - t), g = grad (fl(grad / float32(n)) for mean):
    # fl(-delta * g) where d < -delta, fl(delta * g) where d > delta, else fl(d * g)
    grad, x, t, delta = a["grad_output"], a["self"], a["target"], a["delta"]
    _require_float("aten::huber_loss_backward", grad, x, t)
    _check_beta("aten::huber_loss_backward", delta)
    d = x - t
    g = _loss_grad(grad, d.numel(), a["reduction"]).expand(d.shape)
    c = _scalar(delta, d)
    inner = torch.where(d > c, c * g, d * g)
    return _canonical(torch.where(d < -c, -(c * g), inner))


@_defines_new("binary_cross_entropy_with_logits.default")
def _bce_with_logits(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # torch's (1 - t)·x + lw·(max(-x, 0) + log1p(exp(-|x|))), lw = 1 + (pw - 1)·t, rearranged so
    # that no large terms cancel:
    #   L = log1p(exp(-|x|)); pt = fl(pw * t) (t without pos_weight); lw = fl(fl(fl(pw - 1) * t) + 1)
    #   linear = -fl(pt * x) where x < 0, else fl(fl(1 - t) * x)
    #   loss = fl(linear + fl(lw * L)) (fl(linear + L) without pos_weight); fl(loss * weight); reduced
    x, t, weight, pos_weight = a["self"], a["target"], a["weight"], a["pos_weight"]
    _require_float("aten::binary_cross_entropy_with_logits", x, t, weight, pos_weight)
    one = _scalar(1.0, x)
    tail = compute_log1p(prims, prims.exp(-torch.abs(x)))
    pt = t if pos_weight is None else pos_weight * t
    linear = torch.where(x < 0, -(pt * x), (one - t) * x)
    if pos_weight is not None:
        tail = ((pos_weight - one) * t + one) * tail
    loss = linear + tail
    if weight is not None:
        loss = loss * weight
    return _canonical(_reduce_loss(prims, loss, a["reduction"]))


LOG_FLOOR = -100.0
"""binary_cross_entropy clamps each log term to >= -100 (torch's rule), so a confident wrong
prediction costs at most 100 and never inf."""
BCE_EPSILON = 1e-12
"""binary_cross_entropy_backward divides by max(x (1 - x), 1e-12) (torch's rule)."""


@_defines_new("binary_cross_entropy.default")
def _binary_cross_entropy(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # lx = max(log(x), -100); lx1 = max(log1p(-x), -100)   (max by selection; NaN stays NaN)
    # loss = fl(fl(fl(t - 1) * lx1) - fl(t * lx)); fl(loss * weight); reduced
    x, t, weight = a["self"], a["target"], a["weight"]
    _require_float("aten::binary_cross_entropy", x, t, weight)
    floor = _scalar(LOG_FLOOR, x)
    log_x = _clamp_values(prims.log(x), floor, None)
    log_1mx = _clamp_values(compute_log1p(prims, -x), floor, None)
    loss = (t - _scalar(1.0, t)) * log_1mx - t * log_x
    if weight is not None:
        loss = loss * weight
    return _canonical(_reduce_loss(prims, loss, a["reduction"]))


@_defines_new("binary_cross_entropy_backward.default")
def _binary_cross_entropy_backward(_: Primitives, a: dict[str, Any]) -> Outputs:
    # g = grad (fl(grad / float32(n)) for mean); fl(fl(g * fl(x - t)) / max(fl(fl(1 - x) * x), 1e-12)); fl(· * weight)
    grad, x, t, weight = a["grad_output"], a["self"], a["target"], a["weight"]
    _require_float("aten::binary_cross_entropy_backward", grad, x, t, weight)
    g = _loss_grad(grad, x.numel(), a["reduction"])
    denominator = _clamp_values((_scalar(1.0, x) - x) * x, _scalar(BCE_EPSILON, x), None)
    result = (g * (x - t)) / denominator
    if weight is not None:
        result = result * weight
    return _canonical(result)


# --- statistics and norms -------------------------------------------------------------------------


def _reduced_dims(x: Tensor, dim: Any) -> list[int]:
    """The dims a statistic reduces: all when `dim` is None or empty (as torch's sum), else `dim`."""
    if dim is None or (isinstance(dim, list | tuple) and len(dim) == 0):
        return list(range(x.dim()))
    dims = [dim] if isinstance(dim, int) else list(dim)
    return [d % max(x.dim(), 1) for d in dims]


def _reduce_rows(x: Tensor, dim: Any, keepdim: bool) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """x as [R, n] rows over the reduced dims (row-major order within a row), and the function that
    shapes a [R] result (kept dims, plus the reduced ones as size 1 when keepdim)."""
    dims = _reduced_dims(x, dim)
    rows, kept_sizes = _as_rows(x, dims)

    def shape(result: Tensor) -> Tensor:
        out = result.reshape(kept_sizes)
        if keepdim:
            for d in sorted(dims):
                out = out.unsqueeze(d)
        return out

    return rows, shape


def _moments(prims: Primitives, name: str, a: dict[str, Any]) -> tuple[Tensor, Tensor, Callable[[Tensor], Tensor]]:
    """(var, mean) per row, two passes: mean = fl(rowsum(x) / float32(n)); c = fl(x - mean);
    var = fl(rowsum(fl(c * c)) / float32(max(n - correction, 0)))  (correction 1 when not given)."""
    x = a["self"]
    _require_float(name, x)
    rows, shape = _reduce_rows(x, a["dim"], a["keepdim"])
    n = rows.shape[1]
    correction = 1 if a["correction"] is None else a["correction"]
    mean = prims.rowsum(rows) / _scalar(float(n), rows)
    centred = rows - mean.unsqueeze(1)
    var = prims.rowsum(centred * centred) / _scalar(float(max(n - correction, 0)), rows)
    return var, mean, shape


@_defines_new("var.correction")
def _var(prims: Primitives, a: dict[str, Any]) -> Outputs:
    var, _, shape = _moments(prims, "aten::var", a)
    return _canonical(shape(var))


@_defines_new("std.correction")
def _std(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # sqrt(var)
    var, _, shape = _moments(prims, "aten::std", a)
    return _canonical(shape(prims.sqrt(var)))


@_defines_new("var_mean.correction")
def _var_mean(prims: Primitives, a: dict[str, Any]) -> Outputs:
    var, mean, shape = _moments(prims, "aten::var_mean", a)
    return _canonical(shape(var)), _canonical(shape(mean))


@_defines_new("std_mean.correction")
def _std_mean(prims: Primitives, a: dict[str, Any]) -> Outputs:
    var, mean, shape = _moments(prims, "aten::std_mean", a)
    return _canonical(shape(prims.sqrt(var))), _canonical(shape(mean))


@_defines_new("linalg_vector_norm.default")
def _vector_norm(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # per row of the reduced elements: ord 2: sqrt(rowsum(fl(x * x))) (overflows past ~1.8e19, as torch);
    # 1: rowsum(|x|); inf: rowmax(|x|); -inf: -rowmax(-|x|); 0: rowsum(x != 0 as 1.0)
    x, ord = a["self"], a["ord"]
    if a.get("dtype") is not None and a["dtype"] != x.dtype:
        x = x.to(a["dtype"])
    _require_float("aten::linalg_vector_norm", x)
    rows, shape = _reduce_rows(x, a["dim"], a["keepdim"])
    magnitudes = torch.abs(rows)
    if ord == 2:
        result = prims.sqrt(prims.rowsum(rows * rows))
    elif ord == 1:
        result = prims.rowsum(magnitudes)
    elif ord == math.inf:
        result = prims.rowmax(magnitudes)
    elif ord == -math.inf:
        result = -prims.rowmax(-magnitudes)
    elif ord == 0:
        result = prims.rowsum((rows != 0).to(rows.dtype))
    else:
        raise UnsupportedOperator("aten::linalg_vector_norm", f"ord {ord} (defined: 2, 1, inf, -inf, 0)")
    return _canonical(shape(result))


@_defines_new("logsumexp.default")
def _logsumexp(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # per row: m = rowmax(x), 0 where m is ±inf; fl(log(rowsum(exp(fl(x - m)))) + m); -inf for no elements
    x = a["self"]
    _require_float("aten::logsumexp", x)
    rows, shape = _reduce_rows(x, a["dim"], a["keepdim"])
    if rows.shape[1] == 0:
        return shape(torch.full((rows.shape[0],), -math.inf, dtype=x.dtype, device=x.device))
    peak = prims.rowmax(rows)
    peak = torch.where(torch.abs(peak) == math.inf, torch.zeros((), dtype=x.dtype, device=x.device), peak)
    total = prims.rowsum(prims.exp(rows - peak.unsqueeze(1)))
    return _canonical(shape(prims.log(total) + peak))


def compute_rowprod(rows: Tensor) -> Tensor:
    """Product of each row of [R, n] by the halving tree of `reference_rowsum`, padded with 1.0:
    y[i] = fl(y[i] * y[i + h]) for h = P/2, …, 1 (P the least power of two >= n); n = 0 gives 1."""
    count, n = rows.shape
    size = 1
    while size < n:
        size *= 2
    y = torch.cat([rows, torch.ones((count, size - n), dtype=rows.dtype, device=rows.device)], dim=1)
    while size > 1:
        size //= 2
        y = y[:, :size] * y[:, size : 2 * size]
    return y[:, 0].clone()


def _prod(name: str, x: Tensor, dim: Any, keepdim: bool, dtype: Any) -> Tensor:
    if _is_exact_dtype(x) and (dtype is None or _is_exact_dtype(torch.empty((), dtype=dtype))):
        # integer products wrap modulo 2**bits: exact and associative, so torch's order does not matter
        return torch.prod(x, dtype=dtype) if dim is None else torch.prod(x, dim, keepdim, dtype=dtype)
    if dtype is not None and dtype != x.dtype:
        x = x.to(dtype)
    _require_float(name, x)
    rows, shape = _reduce_rows(x, dim, keepdim)
    return _canonical(shape(compute_rowprod(rows)))


@_defines_new("prod.default")
def _prod_all(_: Primitives, a: dict[str, Any]) -> Outputs:
    # compute_rowprod over every element in row-major order
    return _prod("aten::prod", a["self"], None, False, a.get("dtype"))


@_defines_new("prod.dim_int")
def _prod_dim(_: Primitives, a: dict[str, Any]) -> Outputs:
    # compute_rowprod along dim
    return _prod("aten::prod", a["self"], a["dim"], a["keepdim"], a.get("dtype"))
