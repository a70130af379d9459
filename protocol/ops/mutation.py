"""Operator definitions: operators that write arguments (see protocol.ops.table for the conventions,
protocol.trace for how written arguments become a node's outputs).

- `_foreach_*`: a foreach operator is its single-tensor operator applied to each list element, with
  that element's arguments. The single-tensor definition is taken from the `OPS` table when the
  operator runs, so each element's bits are exactly what the single-tensor call gives, whoever
  defines it. In-place variants (`_foreach_add_`) and `_out` variants write each element; the
  mode (or `execute`) does the writing, after every element's value is computed.
- `*.out` overloads of single-tensor operators (`maximum.out`, amsgrad's for-loop form): the
  functional overload's value, written into `out` (resized to it, as torch does).
- Batch norm, forward and backward, with the running statistics' momentum update.

Every definition returns its outputs in the trace's order: the returns, then each written argument
(protocol.trace); the written arguments' values are the new values to write.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import torch

from protocol.ops.canonical import resolve_op
from protocol.ops.prims import Primitives
from protocol.ops.table import OPS, OpKind, Outputs, UnsupportedOperator, _register, _require_float, _scalar

Tensor = torch.Tensor
Compute = Callable[[Primitives, dict[str, Any]], Outputs]


# --- running one single-tensor operator from the table -------------------------------------------


def _schema_defaults(name: str) -> dict[str, Any]:
    """Every argument of the named operator with its default (None where it has none)."""
    defaults = _DEFAULTS.get(name)
    if defaults is None:
        schema = resolve_op(name)._schema
        defaults = {a.name: a.default_value if a.has_default_value() else None for a in schema.arguments}
        _DEFAULTS[name] = defaults
    return defaults


_DEFAULTS: dict[str, dict[str, Any]] = {}


def _single_name(name: str) -> str:
    """The table entry to run for `name`: the functional overload, or its in-place twin when only that
    one is defined (a DEFINED in-place entry computes the functional value; see table.py)."""
    if name in OPS:
        return name
    op, _, overload = name.partition(".")
    twin = f"{op}_.{overload}"
    if twin in OPS:
        return twin
    raise UnsupportedOperator(name)


def compute_single(prims: Primitives, name: str, arguments: dict[str, Any]) -> Tensor:
    """The value of one single-tensor operator (defaults filled from its schema), as a new tensor."""
    entry = _single_name(name)
    bound = {**_schema_defaults(entry), **arguments}
    definition = OPS[entry]
    if definition.kind is not OpKind.NATIVE:
        assert definition.compute is not None
        result = definition.compute(prims, bound)
        assert isinstance(result, Tensor)
        return result
    func = resolve_op(entry)
    if definition.in_place:
        bound["self"] = bound["self"].clone()  # a native in-place kernel (copy_, zero_) on a copy
    positional = [bound[a.name] for a in func._schema.arguments if not a.kwarg_only]
    keyword = {a.name: bound[a.name] for a in func._schema.arguments if a.kwarg_only}
    result = func(*positional, **keyword)
    assert isinstance(result, Tensor)
    return result


# --- _foreach_* -------------------------------------------------------------------------------------

_BINARY = {"List": "Tensor", "Tensor": "Tensor", "Scalar": "Scalar", "ScalarList": "Scalar"}
_UNARY = [
    "abs", "acos", "asin", "atan", "ceil", "cos", "cosh", "erf", "erfc", "exp", "expm1", "floor", "frac", "lgamma", "log",
    "log10", "log1p", "log2", "neg", "reciprocal", "round", "rsqrt", "sigmoid", "sign", "sin", "sinh", "sqrt", "tan", "tanh",
    "trunc", "zero", "clone",
]  # fmt: skip

FOREACH: dict[str, tuple[dict[str, str], dict[str, str]]] = {
    # family: ({foreach overload: the single-tensor operator each element runs}, {foreach argument: its name there})
    **{op: ({k: f"{op}.{v}" for k, v in _BINARY.items()}, {"scalar": "other", "scalars": "other"}) for op in ("add", "sub", "mul", "div")},
    "maximum": ({"List": "maximum.default", "Scalar": "clamp_min.default", "ScalarList": "clamp_min.default"}, {"scalar": "min", "scalars": "min"}),
    "minimum": ({"List": "minimum.default", "Scalar": "clamp_max.default", "ScalarList": "clamp_max.default"}, {"scalar": "max", "scalars": "max"}),
    "clamp_min": ({"List": "clamp_min.Tensor", "Scalar": "clamp_min.default", "ScalarList": "clamp_min.default"}, {"other": "min", "scalar": "min", "scalars": "min"}),
    "clamp_max": ({"List": "clamp_max.Tensor", "Scalar": "clamp_max.default", "ScalarList": "clamp_max.default"}, {"other": "max", "scalar": "max", "scalars": "max"}),
    "pow": ({"List": "pow.Tensor_Tensor", "Scalar": "pow.Tensor_Scalar", "ScalarList": "pow.Tensor_Scalar", "ScalarAndTensor": "pow.Scalar"}, {}),
    "addcmul": ({"Scalar": "addcmul.default", "ScalarList": "addcmul.default", "Tensor": "addcmul.default"}, {"scalars": "value"}),
    "addcdiv": ({"Scalar": "addcdiv.default", "ScalarList": "addcdiv.default", "Tensor": "addcdiv.default"}, {"scalars": "value"}),
    "lerp": ({"List": "lerp.Tensor", "Scalar": "lerp.Scalar", "ScalarList": "lerp.Scalar"}, {"tensors1": "end", "weights": "weight"}),
    "norm": ({"Scalar": "linalg_vector_norm.default"}, {}),
    "copy": ({"default": "copy_.default"}, {}),
    **{op: ({"default": f"{op}.default"}, {}) for op in _UNARY if op != "zero"},
    "zero": ({"default": "zero_.default"}, {}),
}
"""How each foreach operator maps to its single-tensor operator. A foreach argument that is a list
gives element i to call i; any other argument is passed to every call; a `scalars` tensor (the
`.Tensor` overloads of addcmul/addcdiv) stands for its elements as Python numbers."""


def _foreach_definition(name: str, single: str, renames: dict[str, str], returns_nothing: bool) -> Compute:
    """Element i of the result is `single` on element i of every list argument. In-place and `_out`
    variants return nothing: their values (a tuple) are written into `self` or `out`."""

    def compute(prims: Primitives, a: dict[str, Any]) -> Outputs:
        arguments = {renames.get(k, k): v for k, v in a.items() if k != "out"}
        if isinstance(arguments.get("value"), Tensor):
            arguments["value"] = arguments["value"].tolist()
        lists = {k: v for k, v in arguments.items() if isinstance(v, list | tuple)}
        lengths = {len(v) for v in lists.values()}
        if len(lengths) != 1:
            raise UnsupportedOperator(name, f"list arguments of different lengths {sorted(lengths)}")
        (count,) = lengths
        values = [compute_single(prims, single, {**arguments, **{k: v[i] for k, v in lists.items()}}) for i in range(count)]
        return tuple(values) if returns_nothing else cast(Outputs, values)  # a Tensor[] return is a list

    return compute


def _register_foreach() -> None:
    """Register every foreach overload this torch has whose family is in `FOREACH` (`_out` variants
    like their plain overload: they write the values into `out`)."""
    for schema in torch._C._jit_get_all_schemas():
        if not schema.name.startswith("aten::_foreach_"):
            continue
        family = schema.name[len("aten::_foreach_") :].rstrip("_")
        overload = schema.overload_name or "default"
        plain = {"out": "default"}.get(overload, overload.removesuffix("_out"))
        if family not in FOREACH or plain not in FOREACH[family][0]:
            continue
        name = f"{schema.name}.{overload}"
        overloads, renames = FOREACH[family]
        _register(name, OpKind.DEFINED, _foreach_definition(name, f"aten::{overloads[plain]}", renames, not schema.returns))


_register_foreach()


# --- out= overloads of single-tensor operators ----------------------------------------------------

OUT_FORMS = {
    "maximum.out": "maximum.default", "minimum.out": "minimum.default", "sqrt.out": "sqrt.default",
    "add.out": "add.Tensor", "sub.out": "sub.Tensor", "mul.out": "mul.Tensor", "div.out": "div.Tensor",
    "addcmul.out": "addcmul.default", "addcdiv.out": "addcdiv.default", "lerp.Scalar_out": "lerp.Scalar",
    "neg.out": "neg.default", "reciprocal.out": "reciprocal.default", "clamp.out": "clamp.default",
}
"""`out=` overloads: the functional overload's value, written into `out`."""


def _out_definition(functional: str) -> Compute:
    def compute(prims: Primitives, a: dict[str, Any]) -> Outputs:
        return compute_single(prims, functional, {k: v for k, v in a.items() if k != "out"})

    return compute


for _out, _functional in OUT_FORMS.items():
    _register(f"aten::{_out}", OpKind.DEFINED, _out_definition(f"aten::{_functional}"))


# --- batch norm -------------------------------------------------------------------------------------


def _channels(x: Tensor) -> Tensor:
    """[N, C, *] → [N, C, L] with L = prod(*) (a view when x's strides allow)."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def _per_channel(values: Tensor, x: Tensor) -> Tensor:
    """[C] → [1, C, 1, …], broadcasting against x [N, C, *]."""
    return values.reshape(1, -1, *([1] * (x.dim() - 2)))


def _laid_out_like(values: Tensor, like: Tensor) -> Tensor:
    """`values` (like's shape) in the memory format torch gives batch norm's outputs: `like`'s, as
    `empty_like` makes it. Only strides differ: the values and bits are the same."""
    out = torch.empty_like(like)
    return values if out.stride() == values.stride() else out.copy_(values)


def compute_batch_norm(
    prims: Primitives, a: dict[str, Any], training: bool
) -> tuple[Tensor, Tensor, Tensor, Tensor | None, Tensor | None]:
    """(out, save_mean, save_invstd, new running_mean, new running_var), per channel c over its n
    elements in row-major order of (N, *):

    training:  (mean, sq) = channel_moments(x): mean = fl(rowsum(x_c) / n), sq = rowsum(fl(xc * xc))
               with xc = fl(x - mean); invstd = rsqrt(fl(fl(sq / n) + float32(eps)))   (biased variance)
               running_mean := fl(fl(float32(m) * mean) + fl(float32(1 - m) * running_mean))
               running_var  := fl(fl(float32(m) * fl(sq / (n - 1))) + fl(float32(1 - m) * running_var))
               (1 - m is taken in double from the canonical momentum, then rounded once)
    eval:      mean = running_mean; invstd = rsqrt(fl(running_var + float32(eps)));
               the running statistics are unchanged, and save_mean / save_invstd are these [C] values
               (torch's CPU kernel returns empty ones; its meta kernel, hence the skeleton, [C] ones)
    out = fl(fl(fl(fl(x - mean) * invstd) * weight) + bias), each step skipped when weight / bias is
    absent, laid out like x.
    """
    x, weight, bias = a["input"], a["weight"], a["bias"]
    running_mean, running_var = a.get("running_mean"), a.get("running_var")
    _require_float("aten::native_batch_norm", x, weight, bias, running_mean, running_var)
    n = x.numel() // x.shape[1] if x.shape[1] else 0
    if training:
        mean, squares = prims.channel_moments(_channels(x))
        invstd = prims.rsqrt(squares / _scalar(float(n), x) + _scalar(a["eps"], x))
    else:
        if running_mean is None or running_var is None:
            raise UnsupportedOperator("aten::native_batch_norm", "evaluation without running statistics")
        mean = running_mean.clone()
        invstd = prims.rsqrt(running_var + _scalar(a["eps"], running_var))
    y = (x - _per_channel(mean, x)) * _per_channel(invstd, x)
    if weight is not None:
        y = y * _per_channel(weight, x)
    if bias is not None:
        y = y + _per_channel(bias, x)
    new_mean, new_var = running_mean, running_var
    if training and running_mean is not None and running_var is not None:
        momentum = a["momentum"]
        m, keep = _scalar(float(momentum), x), _scalar(1.0 - float(momentum), x)
        unbiased = squares / _scalar(float(n - 1), x)  # n == 1 gives inf, as torch's division by zero
        new_mean = m * mean + keep * running_mean
        new_var = m * unbiased + keep * running_var
    return _laid_out_like(y, x), mean, invstd, new_mean, new_var


def _batch_norm_definition(prims: Primitives, a: dict[str, Any]) -> Outputs:
    return compute_batch_norm(prims, a, bool(a["training"]))


def _batch_norm_legit_no_stats(prims: Primitives, a: dict[str, Any]) -> Outputs:
    out, mean, invstd, _, _ = compute_batch_norm(prims, {**a, "running_mean": None, "running_var": None}, True)
    return out, mean, invstd


def _batch_norm_legit_no_training(prims: Primitives, a: dict[str, Any]) -> Outputs:
    out, mean, invstd, _, _ = compute_batch_norm(prims, a, False)
    return out, mean, invstd


_register("aten::native_batch_norm.default", OpKind.DEFINED, _batch_norm_definition)
_register("aten::_native_batch_norm_legit.default", OpKind.DEFINED, _batch_norm_definition)
_register("aten::_native_batch_norm_legit.no_stats", OpKind.DEFINED, _batch_norm_legit_no_stats)
_register("aten::_native_batch_norm_legit_no_training.default", OpKind.DEFINED, _batch_norm_legit_no_training)


def _batch_norm_backward(prims: Primitives, a: dict[str, Any]) -> Outputs:
    """Per channel c over its n elements, with g = grad_out and, in training, the saved statistics:

    (sum_g, sum_gx) = channel_gradient_sums(g, x, mean, invstd): rowsum(g_c), rowsum(fl(g_c * xhat_c))
               with xhat = fl(fl(x - mean) * invstd)
    training:  grad_input = fl(fl(fl(g - fl(sum_g / n)) - fl(xhat * fl(sum_gx / n))) * fl(invstd * weight))
    eval:      mean = running_mean, invstd = rsqrt(fl(running_var + float32(eps)));
               grad_input = fl(g * fl(invstd * weight))
    grad_weight = sum_gx; grad_bias = sum_g; `* weight` is skipped without a weight; grad_input is
    laid out like the input; each output only when output_mask asks for it."""
    grad, x, weight = a["grad_out"], a["input"], a["weight"]
    _require_float("aten::native_batch_norm_backward", grad, x, weight)
    mask = a["output_mask"]
    n = x.numel() // x.shape[1] if x.shape[1] else 0
    if a["train"]:
        mean, invstd = a["save_mean"], a["save_invstd"]
    else:
        mean = a["running_mean"]
        invstd = prims.rsqrt(a["running_var"] + _scalar(a["eps"], a["running_var"]))
    sum_g, sum_gx = prims.channel_gradient_sums(_channels(grad), _channels(x), mean.reshape(-1), invstd.reshape(-1))
    grad_input = grad_weight = grad_bias = None
    if mask[0]:
        scale = _per_channel(invstd if weight is None else invstd * weight, x)
        if a["train"]:
            count = _scalar(float(n), x)
            xhat = (x - _per_channel(mean, x)) * _per_channel(invstd, x)
            centred = (grad - _per_channel(sum_g / count, x)) - xhat * _per_channel(sum_gx / count, x)
            grad_input = _laid_out_like(centred * scale, x)
        else:
            grad_input = _laid_out_like(grad * scale, x)
    if mask[1]:
        grad_weight = sum_gx
    if mask[2]:
        grad_bias = sum_g
    return grad_input, grad_weight, grad_bias


_register("aten::native_batch_norm_backward.default", OpKind.DEFINED, _batch_norm_backward)

