"""Canonical form of one operator call: what a trace node records besides its tensors.

An aten call `func(*args, **kwargs)` is bound to its schema; every argument becomes a JSON value:

    tensor                  {"t": i}          the call's i-th tensor input (inputs are listed apart)
    list of tensors         [{"t": i}, …]
    int / bool / str / None as is
    float                   {"f": float.hex(value)}     exact, including inf and nan
    dtype                   {"dtype": "float32"}
    device, layout, memory format, pin_memory, generator   dropped (null): placement never changes values

The canonical arguments (`args`, a dict from argument name to value) plus the ordered tensor inputs
rebuild the call on any device (`rebuild_call`). Two calls are the same computation exactly when
their op names, canonical arguments and input values are equal.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

# Arguments whose value only says where or how a result is laid out, never what it is.
PLACEMENT_TYPES = ("Device", "Layout", "MemoryFormat", "Generator")
PLACEMENT_NAMES = frozenset({"device", "layout", "memory_format", "pin_memory", "generator", "non_blocking"})

DTYPE_NAMES: dict[torch.dtype, str] = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
    torch.int64: "int64",
    torch.int32: "int32",
    torch.int16: "int16",
    torch.int8: "int8",
    torch.uint8: "uint8",
    torch.bool: "bool",
}
DTYPES_BY_NAME = {name: dtype for dtype, name in DTYPE_NAMES.items()}


class CanonicalFormError(ValueError):
    """An argument that has no canonical form (and so cannot be committed to)."""


_NAMES: dict[int, tuple[Any, str]] = {}
"""Per-operator caches are keyed by the OpOverload's id (its own hash is a Python method, called
for every intercepted operator otherwise); each entry holds the overload, so the id is never reused."""


def get_op_name(func: Any) -> str:
    """'aten::mm.default' style name of an OpOverload."""
    entry = _NAMES.get(id(func))
    if entry is None or entry[0] is not func:
        entry = _NAMES[id(func)] = (func, f"{func._schema.name}.{func._overloadname}")
    return entry[1]


@dataclass(frozen=True)
class CanonicalCall:
    """One operator call, ready to be committed to and re-executed."""

    op: str
    args: dict[str, Any]  # canonical JSON values, tensors as {"t": i}
    inputs: tuple[torch.Tensor, ...]  # the tensor inputs in the order of their placeholders


def _is_placement(argument: Any) -> bool:
    type_text = str(argument.type)
    return argument.name in PLACEMENT_NAMES or any(kind in type_text for kind in PLACEMENT_TYPES)


def encode_scalar(value: Any) -> Any:
    """The canonical JSON form of a non-tensor argument value."""
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return {"f": value.hex()}
    if isinstance(value, torch.dtype):
        if value not in DTYPE_NAMES:
            raise CanonicalFormError(f"dtype {value} is not supported")
        return {"dtype": DTYPE_NAMES[value]}
    if isinstance(value, list | tuple):
        return [encode_scalar(item) for item in value]
    raise CanonicalFormError(f"argument of type {type(value).__name__} has no canonical form")


def decode_scalar(value: Any) -> Any:
    """Inverse of `encode_scalar` (tensor placeholders are left in place)."""
    if isinstance(value, dict):
        if "f" in value:
            return float.fromhex(value["f"])
        if "dtype" in value:
            return DTYPES_BY_NAME[value["dtype"]]
        return value
    if isinstance(value, list):
        return [decode_scalar(item) for item in value]
    return value


@dataclass(frozen=True)
class _Argument:
    name: str
    kwarg_only: bool
    has_default: bool
    default: Any
    placement: bool


_SCHEMAS: dict[int, tuple[Any, tuple[_Argument, ...]]] = {}  # by id, as `_NAMES`


def _get_arguments(func: Any) -> tuple[_Argument, ...]:
    """The schema's arguments, analysed once per operator (this runs for every intercepted call)."""
    entry = _SCHEMAS.get(id(func))
    if entry is not None and entry[0] is func:
        return entry[1]
    arguments = tuple(
        _Argument(
            argument.name,
            argument.kwarg_only,
            argument.has_default_value(),
            argument.default_value if argument.has_default_value() else None,
            _is_placement(argument),
        )
        for argument in func._schema.arguments
    )
    _SCHEMAS[id(func)] = (func, arguments)
    return arguments


def canonicalize_call(func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> CanonicalCall:
    """Bind a dispatcher call to its schema and put it in canonical form."""
    inputs: list[torch.Tensor] = []

    def encode(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            inputs.append(value)
            return {"t": len(inputs) - 1}
        if isinstance(value, list | tuple) and any(isinstance(item, torch.Tensor) for item in value):
            return [encode(item) for item in value]
        return encode_scalar(value)

    canonical: dict[str, Any] = {}
    for position, argument in enumerate(_get_arguments(func)):
        if argument.placement:
            canonical[argument.name] = None
            continue
        if position < len(args) and not argument.kwarg_only:
            value = args[position]
        elif argument.name in kwargs:
            value = kwargs[argument.name]
        else:
            value = argument.default
        if isinstance(value, float) and math.isnan(value):
            value = math.nan  # one NaN, whatever payload Python carried
        canonical[argument.name] = encode(value)
    return CanonicalCall(op=get_op_name(func), args=canonical, inputs=tuple(inputs))


def _plain(value: Any) -> Any:
    """A call's argument as `bind_arguments(canonicalize_call(…))` gives it back (see `bind_call`)."""
    kind = type(value)  # the common exact types first: this runs for every argument of every call
    if kind is torch.Tensor or kind is int or kind is bool or value is None:
        return value
    if kind is float:
        return math.nan if value != value else value
    if isinstance(value, bool | str | torch.Tensor):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return math.nan if math.isnan(value) else float(value)  # exact through hex: only NaN changes
    if isinstance(value, torch.dtype):
        if value not in DTYPE_NAMES:
            raise CanonicalFormError(f"dtype {value} is not supported")
        return value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    raise CanonicalFormError(f"argument of type {type(value).__name__} has no canonical form")


def bind_call(func: Any, args: Sequence[Any], kwargs: dict[str, Any]) -> tuple[dict[str, Any], torch.device | None]:
    """What `bind_arguments(canonicalize_call(func, args, kwargs))` returns, without building the
    canonical form (for calls nobody records), and the device of the first tensor argument in the
    canonical inputs' order (None without one). The same values, types and errors: tested."""
    bound: dict[str, Any] = {}
    first: torch.device | None = None
    for position, argument in enumerate(_get_arguments(func)):
        if argument.placement:
            bound[argument.name] = None
            continue
        if position < len(args) and not argument.kwarg_only:
            value = args[position]
        elif argument.name in kwargs:
            value = kwargs[argument.name]
        else:
            value = argument.default
        if first is None:
            if isinstance(value, torch.Tensor):
                first = value.device
            elif isinstance(value, list | tuple):
                first = next((item.device for item in value if isinstance(item, torch.Tensor)), None)
        bound[argument.name] = _plain(value)
    return bound, first


def bind_arguments(args: dict[str, Any], inputs: Sequence[torch.Tensor]) -> dict[str, Any]:
    """Canonical arguments with placeholders replaced by tensors and scalars decoded."""

    def decode(value: Any) -> Any:
        if isinstance(value, dict) and set(value) == {"t"}:
            return inputs[value["t"]]
        if isinstance(value, list):
            return [decode(item) for item in value]
        return decode_scalar(value)

    return {name: decode(value) for name, value in args.items()}


def resolve_op(name: str) -> Any:
    """The OpOverload named 'namespace::op.overload'."""
    namespace, _, rest = name.partition("::")
    op_name, _, overload = rest.partition(".")
    try:
        return getattr(getattr(getattr(torch.ops, namespace), op_name), overload or "default")
    except AttributeError as error:
        raise CanonicalFormError(f"no operator named {name}") from error


def rebuild_call(name: str, args: dict[str, Any], inputs: Sequence[torch.Tensor]) -> Callable[[], Any]:
    """A thunk that runs the named aten operator on `inputs` with the canonical arguments."""
    func = resolve_op(name)
    bound = bind_arguments(args, inputs)
    positional: list[Any] = []
    keyword: dict[str, Any] = {}
    for argument in func._schema.arguments:
        value = bound.get(argument.name)
        if argument.kwarg_only:
            if value is not None or not argument.has_default_value():
                keyword[argument.name] = value
        else:
            positional.append(value)
    return lambda: func(*positional, **keyword)


# --- mutation: which arguments an operator writes -------------------------------------------------

UNDECLARED_WRITES: dict[str, tuple[str, ...]] = {
    # torch updates the running statistics in place in training mode, but this schema does not mark
    # them `(a!)` (its `_native_batch_norm_legit` twin does): the trace rule reads the writes from here.
    "aten::native_batch_norm.default": ("running_mean", "running_var"),
}
"""Arguments an operator writes although its schema does not say so, by operator name."""


@dataclass(frozen=True)
class Mutation:
    """The arguments an operator writes (schema `alias_info.is_write`, plus `UNDECLARED_WRITES`), in
    the terms of the trace rule (see protocol.trace): a node's outputs are the schema's returns,
    flattened, then each written argument the operator does not return, in schema order."""

    returned: tuple[str | None, ...]  # per schema return: the written argument it returns, or None
    extra: tuple[str, ...]  # written arguments not returned, in schema order (a list adds each element)
    resizable: frozenset[str]  # written `out=` arguments: resized to the result's shape, as torch does
    writes: bool = field(init=False)  # any argument written (fields, not properties: read per operator)
    self_only: bool = field(init=False)  # the common in-place form (`add_`): writes `self`, returns it

    def __post_init__(self) -> None:
        object.__setattr__(self, "writes", bool(self.extra) or any(name is not None for name in self.returned))
        object.__setattr__(self, "self_only", self.returned == ("self",) and not self.extra)


def _read_mutation(name: str, schema: Any) -> Mutation:
    written = [a.name for a in schema.arguments if a.alias_info is not None and a.alias_info.is_write]
    written += [n for n in UNDECLARED_WRITES.get(name, ()) if n not in written]
    by_set: dict[str, str] = {}
    for argument in schema.arguments:
        if argument.name in written and argument.alias_info is not None:
            for alias in argument.alias_info.before_set:
                by_set[alias] = argument.name
    returned: list[str | None] = []
    for value in schema.returns:
        info = value.alias_info
        aliased = next((by_set[s] for s in info.before_set if s in by_set), None) if info is not None and info.is_write else None
        returned.append(aliased)
    extra = tuple(n for n in (a.name for a in schema.arguments) if n in written and n not in returned)
    resizable = frozenset(a.name for a in schema.arguments if a.name in written and a.kwarg_only and a.name.startswith("out"))
    return Mutation(tuple(returned), extra, resizable)


_MUTATIONS: dict[Any, Mutation] = {}


def get_mutation(func: Any) -> Mutation:
    """The mutation of an OpOverload (or of an operator name), read once and cached."""
    mutation = _MUTATIONS.get(func)
    if mutation is None:
        if isinstance(func, str):
            mutation = _read_mutation(func, resolve_op(func)._schema)
        else:
            mutation = _read_mutation(get_op_name(func), func._schema)
        _MUTATIONS[func] = mutation
    return mutation


def _as_targets(value: Any) -> list[torch.Tensor | None]:
    """A written argument's tensors: one, or each element of a list (None for an absent optional)."""
    return list(value) if isinstance(value, list | tuple) else [value]


def process_writes(mutation: Mutation, values: Any, bound: dict[str, Any]) -> Any:
    """Write a definition's computed values into the written arguments and return what torch's
    operator returns. `values` are the new values in node-output order (the returns, then each extra
    written argument, element by element); every value is computed before any argument is written,
    so a definition reads its inputs as they were when the operator was called."""
    if not mutation.writes:
        return values
    flat = list(values) if isinstance(values, list | tuple) else [values]
    position = 0

    def write(name: str, value: torch.Tensor | None, target: torch.Tensor | None) -> torch.Tensor | None:
        if target is None or value is None:
            if target is not value:
                raise ValueError(f"written argument {name}: a value for an absent tensor, or none for a present one")
            return None
        if value is target:
            return target
        if name in mutation.resizable and target.shape != value.shape:
            target.resize_(value.shape)
        target.copy_(value)
        return target

    returns: list[Any] = []
    for name in mutation.returned:
        value = flat[position]
        position += 1
        returns.append(value if name is None else write(name, value, bound[name]))
    for name in mutation.extra:
        for target in _as_targets(bound[name]):
            write(name, flat[position], target)
            position += 1
    if position != len(flat):
        raise ValueError(f"a definition gave {len(flat)} values for {position} outputs")
    if not returns:
        return None
    return returns[0] if len(returns) == 1 else tuple(returns)


def compute_written_outputs(mutation: Mutation, bound: dict[str, Any]) -> tuple[torch.Tensor | None, ...]:
    """The written arguments a node adds after the operator's returns (see `Mutation`)."""
    return tuple(t for name in mutation.extra for t in _as_targets(bound[name]))


def compute_written_positions(mutation: Mutation, returned_count: int, output_count: int) -> tuple[int, ...]:
    """Which of a node's outputs are written arguments: returns that alias one, and the extras."""
    aliased = tuple(i for i, name in enumerate(mutation.returned) if name is not None)
    return aliased + tuple(range(returned_count, output_count))
