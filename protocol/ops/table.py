"""The semantics of every operator a reproducible training step may run: the ground truth.

Three kinds of operator:

- NATIVE: torch's own kernel already gives bits that depend only on the inputs' values and shapes
  (views, copies, indexing, comparisons, masks, and the correctly rounded tensor-tensor add, sub, mul,
  div, neg, relu). The kernel is the definition; the test suite pins this claim against numpy.
- DEFINED: pinpoint defines the result as a fixed sequence of correctly rounded elementwise
  operations and the primitives of `protocol.ops.prims` (matmul, pairwise row sums, exp, …). Each
  function below is that sequence; `fl(·)` in a comment means one rounding to the result dtype.
- RANDOM: results drawn from `protocol.ops.random` with the (seed, step, offset) that the executing
  mode adds to the canonical arguments under the key "pinpoint.rng".

Python scalars are turned into 0-dim tensors of the result dtype before an elementwise operation
(`_scalar`), so "x * 0.1" means fl(x * float32(0.1)) on every backend and device.
In-place variants (`add_`, `lerp_`, …) compute their functional result and write it into `self`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch

from protocol.ops.prims import Primitives
from protocol.semantics.floats import compute_scalar_tensor

Tensor = torch.Tensor
Outputs = Tensor | tuple[Tensor | None, ...]


class OpKind(Enum):
    NATIVE = "native"
    DEFINED = "defined"
    RANDOM = "random"


@dataclass(frozen=True)
class OpDefinition:
    """How to compute one operator: `compute(prims, bound_args)` (None for NATIVE operators)."""

    name: str
    kind: OpKind
    compute: Callable[[Primitives, dict[str, Any]], Outputs] | None = None

    @property
    def in_place(self) -> bool:
        return self.name.split("::")[-1].split(".")[0].endswith("_")


class UnsupportedOperator(RuntimeError):
    """An operator with no reproducible definition: nothing may be committed after it runs."""

    def __init__(self, name: str, detail: str = "") -> None:
        message = f"operator {name} has no reproducible implementation"
        super().__init__(message + (f": {detail}" if detail else ""))
        self.op = name


OPS: dict[str, OpDefinition] = {}

NATIVE_OPS = """
view.default _unsafe_view.default reshape.default t.default transpose.int permute.default expand.default
unsqueeze.default squeeze.dim squeeze.dims squeeze.default select.int slice.Tensor split.Tensor
split_with_sizes.default unbind.int alias.default detach.default clone.default _to_copy.default
copy_.default contiguous.default cat.default stack.default index.Tensor
index_select.default gather.default embedding.default masked_fill.Scalar masked_fill.Tensor
masked_fill_.Scalar where.self eq.Scalar eq.Tensor ne.Scalar ne.Tensor lt.Scalar lt.Tensor le.Scalar
le.Tensor gt.Scalar gt.Tensor ge.Scalar ge.Tensor bitwise_not.default logical_not.default
bitwise_and.Tensor bitwise_or.Tensor neg.default relu.default relu_.default threshold_backward.default
abs.default sign.default zeros_like.default ones_like.default full_like.default zeros.default
ones.default full.default scalar_tensor.default fill_.Scalar fill_.Tensor zero_.default
arange.default arange.start arange.start_step mul.Tensor mul_.Tensor div.Tensor div_.Tensor
remainder.Scalar floor_divide.default new_zeros.default new_ones.default new_full.default
slice_backward.default select_backward.default
"""


class DuplicateDefinition(RuntimeError):
    """Two modules define the same operator: one of them would silently replace the other."""


LOW_PRECISION = (torch.bfloat16, torch.float16)


def _is_low(value: Any) -> bool:
    if isinstance(value, Tensor):
        return value.dtype in LOW_PRECISION
    return isinstance(value, list) and any(isinstance(v, Tensor) and v.dtype in LOW_PRECISION for v in value)


def _any_low(values: Any) -> bool:
    """Whether any argument is (or lists) a 16-bit float tensor; `_is_low` over all, in one loop."""
    for value in values:
        if isinstance(value, Tensor):
            if value.dtype in LOW_PRECISION:
                return True
        elif isinstance(value, list) and _is_low(value):
            return True
    return False


def _upcast(value: Any) -> Any:
    if isinstance(value, Tensor):
        return value.float() if value.dtype in LOW_PRECISION else value
    if isinstance(value, list):
        return [_upcast(v) for v in value]
    return value


def _output_dtypes(name: str, bound: dict[str, Any]) -> list[torch.dtype | None]:
    """The dtypes torch gives the operator's outputs for these inputs (its meta kernel)."""
    from protocol.ops.canonical import resolve_op

    def meta(value: Any) -> Any:
        if isinstance(value, Tensor):
            return torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device="meta")
        if isinstance(value, list):
            return [meta(v) for v in value]
        return value

    func = resolve_op(name)
    positional = [meta(bound.get(a.name)) for a in func._schema.arguments if not a.kwarg_only]
    keyword = {a.name: meta(bound.get(a.name)) for a in func._schema.arguments if a.kwarg_only and bound.get(a.name) is not None}
    result = func(*positional, **keyword)
    flat = [result] if isinstance(result, Tensor) else list(result or ())
    return [out.dtype if isinstance(out, Tensor) else None for out in flat]


def _with_low_precision(name: str, compute: Callable[[Primitives, dict[str, Any]], Outputs]) -> Callable[[Primitives, dict[str, Any]], Outputs]:
    """bfloat16 and float16 operands, by definition: each is widened to float32 (exactly), the
    float32 definition runs, and every output torch gives a 16-bit dtype is rounded to it once
    (round to nearest, ties to even). Float32 calls go straight through."""

    def computed(prims: Primitives, bound: dict[str, Any]) -> Outputs:
        if not _any_low(bound.values()):
            return compute(prims, bound)
        result = compute(prims, {key: _upcast(value) for key, value in bound.items()})
        dtypes = _output_dtypes(name, bound)
        if isinstance(result, Tensor):
            return result.to(dtypes[0]) if dtypes and dtypes[0] in LOW_PRECISION else result
        rounded = [out.to(dtype) if isinstance(out, Tensor) and dtype in LOW_PRECISION else out
                   for out, dtype in zip(result, dtypes, strict=False)]
        return type(result)(rounded)

    return computed


def _register(name: str, kind: OpKind, compute: Callable[[Primitives, dict[str, Any]], Outputs] | None = None) -> None:
    if name in OPS:
        raise DuplicateDefinition(f"{name} is defined twice")
    OPS[name] = OpDefinition(name, kind, None if compute is None else _with_low_precision(name, compute))


for _short in NATIVE_OPS.split():
    _register(f"aten::{_short}", OpKind.NATIVE)


def defines(*names: str, kind: OpKind = OpKind.DEFINED) -> Callable[[Callable[..., Outputs]], Callable[..., Outputs]]:
    """Register a function as the definition of the named operators."""

    def wrap(function: Callable[..., Outputs]) -> Callable[..., Outputs]:
        for name in names:
            _register(f"aten::{name}", kind, function)
        return function

    return wrap


def get_definition(name: str) -> OpDefinition:
    """The definition of an operator, or UnsupportedOperator naming it."""
    if name not in OPS:
        raise UnsupportedOperator(name)
    return OPS[name]


def is_supported(name: str) -> bool:
    return name in OPS


# --- helpers --------------------------------------------------------------------------------------


def _scalar(value: Any, like: Tensor) -> Tensor:
    """A Python number as a 0-dim tensor of the dtype `like` promotes with it to (one rounding).
    Shared between calls (`compute_scalar_tensor`): only ever an operand."""
    dtype = like.dtype
    kind = type(value)
    if kind is bool or kind is int or kind is float:
        if not dtype.is_floating_point:  # a floating tensor keeps its dtype with any real Python number
            dtype = torch.result_type(like, value)
        return compute_scalar_tensor(value, dtype, like.device)
    return torch.tensor(value, dtype=torch.result_type(like, value), device=like.device)


FLOAT_DTYPES = (torch.float32, torch.float64)
"""The dtypes every definition is written for: the same steps, each rounding to the operands' dtype."""


def _require_float(name: str, *tensors: Tensor | None) -> None:
    """UnsupportedOperator unless the tensor operands are all float32 or all float64 (16-bit operands
    never get here: `_with_low_precision` widens them to float32 first)."""
    first = None
    for tensor in tensors:  # the common case, every operand float32 (or every one float64), in one pass
        if tensor is not None:
            if first is None:
                first = tensor.dtype
            elif tensor.dtype is not first:
                break
    else:
        if first is None or first in FLOAT_DTYPES:
            return
    dtypes = {tensor.dtype for tensor in tensors if tensor is not None}
    for dtype in dtypes:
        if dtype not in FLOAT_DTYPES:
            raise UnsupportedOperator(name, f"dtype {dtype} (float32, float64, bfloat16 and float16 are defined)")
    if len(dtypes) > 1:
        raise UnsupportedOperator(name, f"operands of mixed dtypes {sorted(str(d) for d in dtypes)}")


def _as_rows(x: Tensor, dims: list[int]) -> tuple[Tensor, list[int]]:
    """Move `dims` last (in ascending order) and flatten: [R, n] rows, plus the kept sizes."""
    ndim = x.dim()
    reduced = sorted({d % ndim for d in dims}) if ndim else []
    kept = [d for d in range(ndim) if d not in reduced]
    kept_sizes = [x.shape[d] for d in kept]
    n = 1
    for d in reduced:
        n *= x.shape[d]
    rows = x.permute(kept + reduced).contiguous().reshape(-1, n) if ndim else x.reshape(1, 1)
    return rows, kept_sizes


def _reduce(prim: Callable[[Tensor], Tensor], x: Tensor, dims: list[int] | None, keepdim: bool) -> Tensor:
    """A row reduction over `dims` (all when None or empty, as torch's sum does)."""
    ndim = x.dim()
    dims = list(range(ndim)) if not dims else [d % max(ndim, 1) for d in dims]
    rows, kept_sizes = _as_rows(x, dims)
    out = prim(rows).reshape(kept_sizes)
    if keepdim:
        for d in sorted(dims):
            out = out.unsqueeze(d)
    return out


def _last_dim_rows(x: Tensor, dim: int) -> tuple[Tensor, Callable[[Tensor], Tensor]]:
    """x as contiguous rows over `dim`, and the function that puts row results back in x's layout."""
    dim = dim % max(x.dim(), 1)
    moved = x.movedim(dim, -1).contiguous() if x.dim() else x.reshape(1)
    shape = moved.shape
    rows = moved.reshape(-1, shape[-1])
    return rows, lambda r: r.reshape(shape).movedim(-1, dim).contiguous() if x.dim() else r.reshape(())


# --- arithmetic with scalars, alpha and fused forms ----------------------------------------------


def _scaled_other(a: dict[str, Any]) -> Tensor:
    """fl(other * alpha) as a tensor (other itself when alpha == 1)."""
    other = a["other"] if isinstance(a["other"], Tensor) else _scalar(a["other"], a["self"])
    return other if a["alpha"] == 1 else other * _scalar(a["alpha"], other)


@defines("add.Tensor", "add_.Tensor", "add.Scalar", "add_.Scalar")
def _add(_: Primitives, a: dict[str, Any]) -> Outputs:
    return a["self"] + _scaled_other(a)  # fl(self + fl(other * alpha))


@defines("sub.Tensor", "sub_.Tensor", "sub.Scalar", "sub_.Scalar")
def _sub(_: Primitives, a: dict[str, Any]) -> Outputs:
    return a["self"] - _scaled_other(a)  # fl(self - fl(other * alpha))


@defines("mul.Scalar", "mul_.Scalar")
def _mul_scalar(_: Primitives, a: dict[str, Any]) -> Outputs:
    return a["self"] * _scalar(a["other"], a["self"])  # fl(self * float32(other))


@defines("div.Scalar", "div_.Scalar")
def _div_scalar(_: Primitives, a: dict[str, Any]) -> Outputs:
    return a["self"] / _scalar(a["other"], a["self"])  # fl(self / float32(other)), a true division


@defines("rsub.Scalar")
def _rsub_scalar(_: Primitives, a: dict[str, Any]) -> Outputs:
    other = _scalar(a["other"], a["self"])
    scaled = a["self"] if a["alpha"] == 1 else a["self"] * _scalar(a["alpha"], a["self"])
    return other - scaled  # fl(other - fl(self * alpha))


@defines("lerp.Scalar", "lerp_.Scalar")
def _lerp(_: Primitives, a: dict[str, Any]) -> Outputs:
    # fl(self + fl(weight * fl(end - self))): one formula for every weight (torch switches at 0.5).
    self, end = a["self"], a["end"]
    return self + _scalar(a["weight"], self) * (end - self)


@defines("addcmul.default", "addcmul_.default")
def _addcmul(_: Primitives, a: dict[str, Any]) -> Outputs:
    # fl(self + fl(fl(tensor1 * tensor2) * value)); the value product is skipped when value == 1.
    product = a["tensor1"] * a["tensor2"]
    if a["value"] != 1:
        product = product * _scalar(a["value"], product)
    return a["self"] + product


@defines("addcdiv.default", "addcdiv_.default")
def _addcdiv(_: Primitives, a: dict[str, Any]) -> Outputs:
    # fl(self + fl(fl(tensor1 / tensor2) * value)); the value product is skipped when value == 1.
    quotient = a["tensor1"] / a["tensor2"]
    if a["value"] != 1:
        quotient = quotient * _scalar(a["value"], quotient)
    return a["self"] + quotient


@defines("pow.Tensor_Scalar")
def _pow_scalar(_: Primitives, a: dict[str, Any]) -> Outputs:
    # Only small integer exponents, as repeated multiplication left to right: x, x*x, (x*x)*x, …
    exponent = a["exponent"]
    if not (isinstance(exponent, int | float) and float(exponent).is_integer() and 1 <= exponent <= 4):
        raise UnsupportedOperator("aten::pow.Tensor_Scalar", f"exponent {exponent}")
    result = a["self"]
    for _power in range(int(exponent) - 1):
        result = result * a["self"]
    return result


# --- elementwise functions through the primitives ----------------------------------------------


def _through_primitive(name: str) -> Callable[[Primitives, dict[str, Any]], Outputs]:
    """The operator aten::<name> is the primitive of the same name, on float32 or float64."""

    def compute(prims: Primitives, a: dict[str, Any]) -> Outputs:
        _require_float(f"aten::{name}", a["self"])
        result: Tensor = getattr(prims, name)(a["self"])
        return result

    return compute


for _primitive in ("sqrt", "rsqrt", "exp", "log", "tanh", "sin", "cos"):
    defines(f"{_primitive}.default", f"{_primitive}_.default")(_through_primitive(_primitive))


@defines("tanh_backward.default")
def _tanh_backward(_: Primitives, a: dict[str, Any]) -> Outputs:
    # fl(grad * fl(1 - fl(y * y)))
    y = a["output"]
    return a["grad_output"] * (_scalar(1.0, y) - y * y)


@defines("gelu.default", "gelu_.default")
def _gelu(prims: Primitives, a: dict[str, Any]) -> Outputs:
    x = a["self"]
    _require_float("aten::gelu", x)
    if a["approximate"] == "tanh":
        return prims.gelu_tanh(x)  # see protocol.ops.prims.compute_gelu_tanh
    return prims.gelu(x)  # the erf form: see protocol.ops.prims.compute_gelu


@defines("gelu_backward.default")
def _gelu_backward(prims: Primitives, a: dict[str, Any]) -> Outputs:
    grad, x = a["grad_output"], a["self"]
    _require_float("aten::gelu_backward", grad, x)
    if a["approximate"] == "tanh":
        # d/dx of 0.5x(1+tanh(u)), u = c(x + k x^3): 0.5(1+t) + 0.5x(1-t^2) c (1 + 3k x^2)
        return prims.gelu_tanh_backward(grad, x)  # see protocol.ops.prims.compute_gelu_tanh_backward
    return prims.gelu_backward(grad, x)  # the erf form: see protocol.ops.prims.compute_gelu_backward


# --- matrix products ------------------------------------------------------------------------------


@defines("mm.default")
def _mm(prims: Primitives, a: dict[str, Any]) -> Outputs:
    _require_float("aten::mm", a["self"], a["mat2"])
    return prims.mm(a["self"], a["mat2"])


@defines("bmm.default")
def _bmm(prims: Primitives, a: dict[str, Any]) -> Outputs:
    _require_float("aten::bmm", a["self"], a["mat2"])
    return prims.bmm(a["self"], a["mat2"])


@defines("addmm.default")
def _addmm(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # fl(fl(beta * self) + fl(alpha * mm(mat1, mat2))), each scalar product skipped when it is 1.
    _require_float("aten::addmm", a["self"], a["mat1"], a["mat2"])
    product = prims.mm(a["mat1"], a["mat2"])
    if a["alpha"] != 1:
        product = product * _scalar(a["alpha"], product)
    bias = a["self"] if a["beta"] == 1 else a["self"] * _scalar(a["beta"], a["self"])
    return product + bias


# --- reductions -----------------------------------------------------------------------------------


@defines("sum.dim_IntList")
def _sum_dims(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # Pairwise row sum over the reduced elements taken in row-major order of the reduced dims.
    x = a["self"]
    if a.get("dtype") is not None and a["dtype"] != x.dtype:
        x = x.to(a["dtype"])
    if not x.dtype.is_floating_point and not x.dtype.is_complex:
        # Integer and bool sums (counts of targets, masks) are exact in any order (int64 wraps
        # modulo 2**64 whatever the order): torch's own kernel is the definition.
        dims = a["dim"] or list(range(x.dim()))
        return torch.sum(x, dim=dims, keepdim=a["keepdim"]) if x.dim() else torch.sum(x)
    _require_float("aten::sum", x)
    leading = _leading_dims(x, a["dim"])
    if leading:
        # the same rows as _reduce's (the reduced elements in row-major order), read as the columns of
        # x as [reduced, kept] without moving them last: a bias gradient's sum over batch and positions
        out = prims.colsum(x.reshape(math.prod(x.shape[:leading]), -1)).reshape(x.shape[leading:])
        return out.reshape((1,) * leading + tuple(out.shape)) if a["keepdim"] else out
    return _reduce(prims.rowsum, x, a["dim"], a["keepdim"])


def _leading_dims(x: Tensor, dims: list[int] | None) -> int:
    """How many leading dims `dims` names when it names exactly the first few of x's and not all of them
    (then a sum over them is a column sum of x as [reduced, kept]); 0 otherwise."""
    if not dims or x.dim() < 2:
        return 0
    reduced = sorted({d % x.dim() for d in dims})
    return len(reduced) if reduced == list(range(len(reduced))) and len(reduced) < x.dim() else 0


@defines("sum.default")
def _sum_all(prims: Primitives, a: dict[str, Any]) -> Outputs:
    return _sum_dims(prims, {"self": a["self"], "dim": None, "keepdim": False, "dtype": a.get("dtype")})


@defines("mean.dim")
def _mean_dims(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # fl(sum / float32(count)): count is the number of reduced elements
    x = a["self"]
    total = _sum_dims(prims, a)
    assert isinstance(total, Tensor)
    dims = a["dim"] or list(range(x.dim()))
    count = math.prod(x.shape[d] for d in dims) if x.dim() else 1
    return total / _scalar(float(count), total)


@defines("mean.default")
def _mean_all(prims: Primitives, a: dict[str, Any]) -> Outputs:
    return _mean_dims(prims, {"self": a["self"], "dim": None, "keepdim": False, "dtype": a.get("dtype")})


@defines("amax.default")
def _amax(prims: Primitives, a: dict[str, Any]) -> Outputs:
    _require_float("aten::amax", a["self"])
    return _reduce(prims.rowmax, a["self"], a["dim"], a["keepdim"])


# --- softmax family -------------------------------------------------------------------------------


def _softmax_rows(prims: Primitives, rows: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """z = x - rowmax, e = exp(z), s = rowsum(e): the shared start of softmax and log-softmax."""
    shifted = rows - prims.rowmax(rows).unsqueeze(1)
    exps = prims.exp(shifted)
    return shifted, exps, prims.rowsum(exps)


@defines("_softmax.default")
def _softmax(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # fl(e / s) with z, e, s as in _softmax_rows (the primitive: protocol.ops.prims.compute_softmax_rows)
    _require_float("aten::_softmax", a["self"])
    rows, restore = _last_dim_rows(a["self"], a["dim"])
    probs, _, _ = prims.softmax_rows(rows)
    return restore(probs)


@defines("_log_softmax.default")
def _log_softmax(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # fl(z - log(s))
    _require_float("aten::_log_softmax", a["self"])
    rows, restore = _last_dim_rows(a["self"], a["dim"])
    shifted, _, sums = _softmax_rows(prims, rows)
    return restore(shifted - prims.log(sums).unsqueeze(1))


@defines("_softmax_backward_data.default")
def _softmax_backward(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # fl(y * fl(g - rowsum(fl(g * y))))
    _require_float("aten::_softmax_backward_data", a["grad_output"], a["output"])
    grads, restore = _last_dim_rows(a["grad_output"], a["dim"])
    outputs, _ = _last_dim_rows(a["output"], a["dim"])
    return restore(prims.softmax_backward(grads, outputs))  # see protocol.ops.prims.compute_softmax_backward


@defines("_log_softmax_backward_data.default")
def _log_softmax_backward(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # fl(g - fl(exp(y) * rowsum(g)))
    _require_float("aten::_log_softmax_backward_data", a["grad_output"], a["output"])
    grads, restore = _last_dim_rows(a["grad_output"], a["dim"])
    outputs, _ = _last_dim_rows(a["output"], a["dim"])
    return restore(grads - prims.exp(outputs) * prims.rowsum(grads).unsqueeze(1))


# --- losses ---------------------------------------------------------------------------------------

REDUCTION_NONE, REDUCTION_MEAN, REDUCTION_SUM = 0, 1, 2


@defines("nll_loss_forward.default")
def _nll_loss_forward(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # picked[i] = -self[i, target[i]] (0 where target == ignore_index); total_weight = count of the rest
    # mean: fl(rowsum(picked) / total_weight); sum: rowsum(picked); none: picked
    x, target = a["self"], a["target"]
    _require_float("aten::nll_loss_forward", x)
    if a["weight"] is not None:
        raise UnsupportedOperator("aten::nll_loss_forward", "class weights")
    x2 = x if x.dim() == 2 else x.unsqueeze(0)
    t = target.reshape(-1)
    valid = t != a["ignore_index"]
    safe = torch.where(valid, t, torch.zeros_like(t))
    picked = torch.where(valid, -x2.gather(1, safe.unsqueeze(1)).squeeze(1), torch.zeros((), dtype=x.dtype, device=x.device))
    total_weight = valid.sum().to(x.dtype)
    reduction = a["reduction"]
    if reduction == REDUCTION_NONE:
        return picked if x.dim() == 2 else picked.reshape(()), total_weight
    total = prims.rowsum(picked.unsqueeze(0)).reshape(())
    if reduction == REDUCTION_MEAN:
        total = total / total_weight
    return total, total_weight


@defines("nll_loss_backward.default")
def _nll_loss_backward(_: Primitives, a: dict[str, Any]) -> Outputs:
    # grad_input[i, target[i]] = fl(-grad / total_weight) (mean), -grad (sum), -grad[i] (none); else 0
    grad, x, target = a["grad_output"], a["self"], a["target"]
    _require_float("aten::nll_loss_backward", x, grad)
    if a["weight"] is not None:
        raise UnsupportedOperator("aten::nll_loss_backward", "class weights")
    x2 = x if x.dim() == 2 else x.unsqueeze(0)
    t = target.reshape(-1)
    valid = t != a["ignore_index"]
    safe = torch.where(valid, t, torch.zeros_like(t))
    if a["reduction"] == REDUCTION_NONE:
        values = -grad.reshape(-1)
    elif a["reduction"] == REDUCTION_MEAN:
        values = (-grad / a["total_weight"]).reshape(1).expand(t.shape[0])
    else:
        values = (-grad).reshape(1).expand(t.shape[0])
    values = torch.where(valid, values, torch.zeros((), dtype=x.dtype, device=x.device))
    out = torch.zeros_like(x2).scatter(1, safe.unsqueeze(1), values.unsqueeze(1))
    return out if x.dim() == 2 else out.squeeze(0)


# --- normalisation --------------------------------------------------------------------------------


@defines("native_layer_norm.default")
def _layer_norm(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # Over the last len(normalized_shape) dims, as rows of n elements:
    # mean = fl(rowsum(x) / n); xc = fl(x - mean); var = fl(rowsum(fl(xc*xc)) / n)
    # rstd = rsqrt(fl(var + float32(eps))); y = fl(fl(fl(xc * rstd) * weight) + bias)
    x, weight, bias = a["input"], a["weight"], a["bias"]
    _require_float("aten::native_layer_norm", x, weight, bias)
    k = len(a["normalized_shape"])
    lead = list(x.shape[: x.dim() - k])
    n = math.prod(x.shape[x.dim() - k :])
    rows = x.contiguous().reshape(-1, n)
    count = _scalar(float(n), rows)
    mean = (prims.rowsum(rows) / count).unsqueeze(1)
    centred = rows - mean
    var = (prims.rowsum(centred * centred) / count).unsqueeze(1)
    rstd = prims.rsqrt(var + _scalar(a["eps"], var))
    y = centred * rstd
    if weight is not None:
        y = y * weight.reshape(1, n)
    if bias is not None:
        y = y + bias.reshape(1, n)
    stat_shape = lead + [1] * k
    return y.reshape(x.shape), mean.reshape(stat_shape), rstd.reshape(stat_shape)


def _column_sums(prims: Primitives, rows: Tensor) -> Tensor:
    """[R, n] → [n]: pairwise sum down each column (the rows in order)."""
    return prims.colsum(rows)


@defines("native_layer_norm_backward.default")
def _layer_norm_backward(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # xhat = fl(fl(x - mean) * rstd); g = fl(grad * weight) (grad without weight)
    # grad_input = fl(fl(fl(g - fl(rowsum(g)/n)) - fl(xhat * fl(rowsum(fl(g*xhat))/n))) * rstd)
    # grad_weight = column sums of fl(grad * xhat); grad_bias = column sums of grad
    grad, x, mean, rstd = a["grad_out"], a["input"], a["mean"], a["rstd"]
    weight, mask = a["weight"], a["output_mask"]
    _require_float("aten::native_layer_norm_backward", grad, x, weight)
    k = len(a["normalized_shape"])
    n = math.prod(x.shape[x.dim() - k :])
    rows = x.contiguous().reshape(-1, n)
    grads = grad.contiguous().reshape(-1, n)
    grad_input = grad_weight = grad_bias = None
    if mask[0] or (mask[1] and weight is not None):
        # see protocol.ops.prims.compute_layer_norm_backward
        grad_rows, grads_xhat = prims.layer_norm_backward(grads, rows, mean.reshape(-1, 1), rstd.reshape(-1, 1), weight)
        if mask[0]:
            grad_input = grad_rows.reshape(x.shape)
        if mask[1] and weight is not None:
            grad_weight = _column_sums(prims, grads_xhat).reshape(weight.shape)
    if mask[2] and a["bias"] is not None:
        grad_bias = _column_sums(prims, grads).reshape(a["bias"].shape)
    return grad_input, grad_weight, grad_bias


# --- embeddings -----------------------------------------------------------------------------------


@defines("embedding_dense_backward.default")
def _embedding_backward(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # grad_weight[v] = sequential sum, in position order, of grad rows whose index is v (padding skipped)
    grad, indices = a["grad_output"], a["indices"]
    _require_float("aten::embedding_dense_backward", grad)
    if a["scale_grad_by_freq"]:
        raise UnsupportedOperator("aten::embedding_dense_backward", "scale_grad_by_freq")
    width = grad.shape[-1]
    flat_indices = indices.reshape(-1)
    if a["padding_idx"] is not None and a["padding_idx"] >= 0:
        flat_indices = torch.where(flat_indices == a["padding_idx"], torch.full_like(flat_indices, -1), flat_indices)
    return prims.segment_sum(grad.reshape(-1, width).contiguous(), flat_indices, a["num_weights"])


# --- randomness -----------------------------------------------------------------------------------


@defines("bernoulli_.float", kind=OpKind.RANDOM)
def _bernoulli(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # self := 1 where uniform(seed, step, offset + i) < float32(p), else 0 (i in row-major order);
    # see protocol.ops.random.compute_bernoulli
    rng, self = a["pinpoint.rng"], a["self"]
    return prims.bernoulli(a["p"], rng["seed"], rng["step"], rng["offset"], tuple(self.shape), self.dtype, self.device)


@defines("empty_like.default", "empty.memory_format", "new_empty.default", "new_empty_strided.default", "empty_strided.default")
def _empty(_: Primitives, a: dict[str, Any]) -> Outputs:
    # Uninitialised memory is defined as zeros, so it is never hashed blindly.
    if "self" in a and isinstance(a["self"], Tensor):
        size = a.get("size") or list(a["self"].shape)
        dtype = a.get("dtype") or a["self"].dtype
        device = a["self"].device
    else:
        size, dtype, device = a["size"], a.get("dtype") or torch.float32, None
    return torch.zeros(size, dtype=dtype, device=device)


def random_numel(name: str, bound: dict[str, Any]) -> int:
    """How many counters a RANDOM operator consumes (the mode advances the offset by this)."""
    if name == "aten::bernoulli_.float":
        return int(bound["self"].numel())
    raise UnsupportedOperator(name, "not a random operator")
