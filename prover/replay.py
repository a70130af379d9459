"""Capture a training step's operator program once and replay it, without the task's Python.

A small model's step is mostly Python: the module's forward, autograd's engine, the optimizer's loop,
and the dispatch mode's entry for each of its operators (an empty `TorchDispatchMode` alone doubles
an MLP step). Every step of a job calls the same operators on the same state tensors, so the worker
can run the step's operators from a list instead: the same `ReproducibleMode.__torch_dispatch__`,
called directly with the tensors and numbers of this step. The bits are those of the eager step
because the code that computes them is the same; what replay must get right is *which* calls, with
*which* arguments. That is what a capture records and two captures check.

What a step's call may depend on, and how each is handled:

- **Tensors** are named by where they come from: a state tensor (`param/…`, `optim/…`, `batch`, …,
  looked up by name at each replay), the output of an earlier call of the program, or a tensor made
  outside the operators (a literal): the same object at every step is passed as it is, else a
  literal whose value when first read is the same in both captures is passed as a fresh copy of it.
  A step that writes such a tensor, swaps a state tensor's memory (`p.data = …`), changes a
  tensor's layout in place (`transpose_`) or makes an output whose shape depends on values (a
  boolean mask) is not replayed.
- **Numbers that change from step to step** are tracked: each `.item()` read inside torch's own
  optimizer step returns a `TrackedFloat` (Adam's step counter), each group's learning rate is one
  while the step runs, and the arithmetic on them (the protocol's, `protocol.scalar_mode`) builds an
  expression. A float argument of an operator that equals a tracked number passed to the enclosing
  torch call (seen by a `TorchFunctionMode`) is replayed as that expression, evaluated with this
  step's reads and rates. Every other argument is a constant and must be equal in both captures.
- **Python that branches on a tracked number** or converts it (a comparison, `float()`, `int()`,
  `bool()`, …) makes the step unreplayable when the number comes from a tensor read (RAdam's
  rectification test); when it comes only from learning rates, those rates are frozen: replay
  requires them unchanged. `math` and numpy read a float's value in C, unseen: that is why reads are
  tracked in torch's own optimizers only, whose code uses them by arithmetic. A read anywhere else
  (`.item()` or `float(t)` in the task's code, `.tolist()`, `.numpy()`), or an optimizer whose step
  is the task's own code, makes the step unreplayable.
- A tracked read that gave the same value at both captures (NAdam's momentum product once it
  underflows to 0) cannot be told from a constant: each replay checks it reads that value again, and
  puts the state back and runs the step eagerly if not. The optimizer's other hyperparameters must
  equal the capture's at each replay.

Two consecutive eager steps are captured; when their programs agree, later steps replay the second.
Every `AUDIT_EVERY` replayed steps one step runs eagerly again and is compared with the program; a
step whose guards fail runs eagerly and is captured anew. What no capture can see is Python state
the step reads without tensors or numbers passing through it (a module attribute counting calls
that changes the operators only at step 1,000). The protocol excludes such a task already: the
referee rebuilds step t's operators in a fresh session from s_t alone (its skeleton), so an honest
worker training it eagerly would lose a dispute too. Replay is the worker's choice (`pinpoint train
--replay`) and changes nothing in the protocol: a wrong replay is a wrong state, which the worker would lose a dispute over. A replayed
step runs none of the task's Python, so its prints and logging happen in captured steps only.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

from protocol.ops import OpKind, flatten_outputs
from protocol.ops.canonical import bind_call, get_op_name
from protocol.patching import ThreadPatch
from protocol.recording import (
    READS,
    PrimitivesFor,
    ReproducibleMode,
    RngContext,
    get_dispatch,
    reproducible_settings,
)
from protocol.scalar_mode import ProtocolFloat
from protocol.session import Session

AUDIT_EVERY = 50
"""Replayed steps between two eager steps checked against the program."""

MAX_ATTEMPTS = 3
"""Captures in a row that may disagree before the run stops trying and trains eagerly."""

ITEM = "aten::_local_scalar_dense.default"
DETACH = "aten::detach.default"
INDEX = "aten::index.Tensor"
RESTRIDING = frozenset(f"aten::{name}" for name in (
    "transpose_.default", "t_.default", "squeeze_.default", "squeeze_.dim", "squeeze_.dims", "unsqueeze_.default",
    "as_strided_.default", "resize_.default", "resize_as_.default", "set_.source_Storage", "set_.source_Storage_storage_offset",
    "set_.source_Tensor", "set_.default", "swapdims_.default", "swapaxes_.default", "detach_.default"))
"""In-place operators that change a tensor's layout rather than its values: a detach alias (which a
program reads as the tensor itself) would be restrided with its source."""
VALUE_SHAPED = frozenset(f"aten::{name}" for name in (
    "nonzero.default", "masked_select.default", "unique_dim.default", "_unique2.default", "_unique.default",
    "unique_consecutive.default", "repeat_interleave.Tensor", "nonzero_static.default"))
"""Operators whose output shape depends on tensor values (so may the Python that reads it)."""

Expression = tuple[Any, ...]
"""("const", value) | ("item", entry) | ("lr", group) | (float method name, operand, *operands)."""


# --- numbers that remember where they came from ----------------------------------------------------


class TrackedFloat(ProtocolFloat):
    """A ProtocolFloat that carries the expression it was computed by (see the module docstring)."""

    expr: Expression

    def __new__(cls, value: float, expr: Expression) -> TrackedFloat:
        number = float.__new__(cls, value)
        number.expr = expr
        return number


def _plain(value: TrackedFloat) -> ProtocolFloat:
    return ProtocolFloat(float.__float__(value))


def _expression_of(value: Any) -> Expression:
    return value.expr if isinstance(value, TrackedFloat) else ("const", value)


ARITHMETIC = ("__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__", "__rtruediv__",
              "__floordiv__", "__rfloordiv__", "__mod__", "__rmod__", "__neg__", "__pos__", "__abs__", "__pow__", "__rpow__")
"""ProtocolFloat's arithmetic: a TrackedFloat's result is tracked too."""

OBSERVING = ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__int__", "__float__", "__round__",
             "__trunc__", "__floor__", "__ceil__", "__hash__", "__divmod__", "__rdivmod__", "is_integer", "as_integer_ratio",
             "hex")
"""What Python can branch on or turn into an untracked number (`float(x)` calls `__float__`; torch
reads a float argument's value without calling it). `math` and numpy functions read the value in C
without any call: which is why only torch's own optimizers may read tensors (`_Capture.in_optimizer`)."""


def _tracking(name: str) -> Callable[..., Any]:
    operation = getattr(ProtocolFloat, name)

    def method(self: TrackedFloat, *args: Any) -> Any:
        # the operation on plain values: its own float() of them must not count as an observation
        result = operation(_plain(self), *(_plain(a) if isinstance(a, TrackedFloat) else a for a in args))
        if type(result) is not ProtocolFloat:
            return result  # NotImplemented (a tensor operand): the tensor's own method takes it
        operands = tuple(_expression_of(a) for a in args if a is not None)
        return TrackedFloat(result, (name, self.expr, *operands))

    method.__name__ = name
    return method


def _observing(name: str) -> Callable[..., Any]:
    operation = getattr(float, name)

    def method(self: TrackedFloat, *args: Any) -> Any:
        capture = _current_capture()
        if capture is not None:
            capture.observe(self, *args)
        return operation(self, *args)

    method.__name__ = name
    return method


for _name in ARITHMETIC:
    setattr(TrackedFloat, _name, _tracking(_name))
for _name in OBSERVING:
    setattr(TrackedFloat, _name, _observing(_name))


Code = list[tuple[Any, Any, tuple[int, ...]]]
"""Straight-line code for tracked numbers, one register per instruction: (None, constant, ()),
("item", call, ()), ("lr", group, ()), or (ProtocolFloat's method, first operand's register, the
other operands' registers)."""


def compile_expression(expr: Expression, code: Code, registers: dict[int, int]) -> int:
    """Append `expr`'s instructions to `code` (each node once: `registers` maps a node's id to its
    register) and return the register that holds its value; operands come before their uses."""
    known = registers.get(id(expr))
    if known is not None:
        return known
    kind = expr[0]
    if kind == "const":
        instruction: tuple[Any, Any, tuple[int, ...]] = (None, expr[1], ())
    elif kind in ("item", "lr"):
        instruction = (kind, expr[1], ())
    else:
        operands = [compile_expression(operand, code, registers) for operand in expr[1:]]
        instruction = (getattr(ProtocolFloat, kind), operands[0], tuple(operands[1:]))
    registers[id(expr)] = len(code)
    code.append(instruction)
    return len(code) - 1


def run_code(code: Code, values: list[Any], start: int, stop: int, items: dict[int, Any], rates: list[float]) -> None:
    """Compute registers start … stop - 1 with this step's `.item()` reads (by call) and learning
    rates: the same ProtocolFloat operations, in the same order, as the eager step's Python."""
    for i in range(start, stop):
        kind, first, rest = code[i]
        if kind is None:
            values[i] = first
        elif kind == "item":
            values[i] = ProtocolFloat(items[first])
        elif kind == "lr":
            values[i] = ProtocolFloat(rates[first])
        else:
            values[i] = kind(values[first], *[values[r] for r in rest])


def evaluate(expr: Expression, items: dict[int, Any], rates: list[float]) -> Any:
    """The value of one expression with these reads and rates (what a replay computes for it)."""
    code: Code = []
    register = compile_expression(expr, code, {})
    values: list[Any] = [None] * len(code)
    run_code(code, values, 0, len(code), items, rates)
    return values[register]


def _sources(expr: Expression) -> Iterator[Expression]:
    if expr[0] in ("item", "lr"):
        yield expr
    elif expr[0] != "const":
        for operand in expr[1:]:
            yield from _sources(operand)


# --- the capture -----------------------------------------------------------------------------------


@dataclass
class _Capture:
    """What one eager step's calls have shown so far: each call is made an entry as it returns
    (`_Builder`), so the capture holds no tensor and autograd sees the reference counts of plain
    training (it steals gradients rather than cloning them: the program is training's own)."""

    builder: _Builder
    calls: int = 0  # calls seen, profiler markers included (what ("item", n) names)
    last_item: int = -1  # the number of the last `_local_scalar_dense` call
    tracked_items: set[int] = field(default_factory=set)
    scope: list[TrackedFloat] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    frozen: set[int] = field(default_factory=set)  # groups whose learning rate the step branched on
    depth: int = 0  # > 0 inside the mode's own work (definitions read tensors as arrays; the task may not)
    in_optimizer: bool = False  # inside torch's own optimizer step, whose reads are tracked

    def observe(self, *values: Any) -> None:
        for value in values:
            if not isinstance(value, TrackedFloat):
                continue
            for source in _sources(value.expr):
                if source[0] == "lr":
                    self.frozen.add(source[1])
                else:
                    self.problems.append("the step branches on (or converts to an untracked number) a value it "
                                         "read from a tensor with .item()")

    def add(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> None:
        index = self.calls
        self.calls += 1
        self.builder.entry(index, func, args, kwargs, result, self.scope)
        if self.builder.entries and self.builder.entries[-1].index == index and self.builder.entries[-1].item:
            self.last_item = index


_LOCAL = threading.local()


def _current_capture() -> _Capture | None:
    return getattr(_LOCAL, "capture", None)


def _tracking_item(item: Callable[[torch.Tensor], Any]) -> Callable[[torch.Tensor], Any]:
    def tracked_item(self: torch.Tensor) -> Any:
        value = item(self)
        if isinstance(value, TrackedFloat):
            return value  # tracked already (the patches nest)
        capture = _current_capture()
        if (capture is not None and capture.in_optimizer and isinstance(value, float)
                and capture.last_item == capture.calls - 1 >= 0):
            capture.tracked_items.add(capture.last_item)
            return TrackedFloat(value, ("item", capture.last_item))
        return value

    return tracked_item


_ITEM = ThreadPatch(torch.Tensor, "item", _tracking_item)


def _reading(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """`Tensor.<name>`, which reads a tensor's memory without an operator: a problem when the task's
    Python calls it during a capture (the mode's own definitions may)."""

    def make(method: Callable[..., Any]) -> Callable[..., Any]:
        def reading(self: torch.Tensor, *args: Any, **kwargs: Any) -> Any:
            capture = _current_capture()
            if capture is not None and capture.depth == 0:
                capture.problems.append(f"the step reads a tensor's memory into Python (Tensor.{name})")
            return method(self, *args, **kwargs)

        return reading

    return make


_TOLIST = ThreadPatch(torch.Tensor, "tolist", _reading("tolist"))
_NUMPY = ThreadPatch(torch.Tensor, "numpy", _reading("numpy"))
_ARRAY = ThreadPatch(torch.Tensor, "__array__", _reading("__array__"))


def _tracked_in(value: Any, found: list[TrackedFloat]) -> None:
    if isinstance(value, TrackedFloat):
        found.append(value)
    elif isinstance(value, list | tuple):
        for item in value:
            _tracked_in(item, found)
    elif isinstance(value, dict):
        for item in value.values():
            _tracked_in(item, found)


class _ScopeMode(TorchFunctionMode):
    """Notes the tracked numbers each torch call receives, for the operators it dispatches."""

    def __init__(self, capture: _Capture) -> None:
        super().__init__()
        self.capture = capture

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        found: list[TrackedFloat] = []
        _tracked_in((args, kwargs), found)
        outer, self.capture.scope = self.capture.scope, found
        try:
            return func(*args, **kwargs)
        finally:
            self.capture.scope = outer


class _CapturingMode(ReproducibleMode):
    """The training mode, telling the capture of every call."""

    def __init__(self, rng: RngContext, primitives_for: PrimitivesFor, capture: _Capture) -> None:
        super().__init__(rng, primitives_for)
        self.capture = capture

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        self.capture.depth += 1
        try:
            result = super().__torch_dispatch__(func, types, args, kwargs)
        finally:
            self.capture.depth -= 1
        self.capture.add(func, args, kwargs, result)
        return result


@contextmanager
def _tracking_rates(optimizer: torch.optim.Optimizer) -> Iterator[None]:
    for index, group in enumerate(optimizer.param_groups):
        if type(group["lr"]) is float:
            group["lr"] = TrackedFloat(group["lr"], ("lr", index))
    try:
        yield
    finally:
        for group in optimizer.param_groups:
            if isinstance(group["lr"], TrackedFloat):
                group["lr"] = float.__float__(group["lr"])  # not float(): that would observe it


# --- programs --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Slot:
    index: int


@dataclass(eq=False)
class _Scalar:
    expr: Expression
    register: int = -1  # where the program's compiled expressions leave its value (`_compile`)


CALL, DEFINED, DISPATCH = 0, 1, 2
"""How an entry runs: torch's own kernel (what the mode does for pass-through and plain native
operators), pinpoint's definition on the bound call (`ReproducibleMode.run_bound`), or the mode's
whole `__torch_dispatch__` (random operators, native ones that write other arguments)."""


@dataclass(slots=True)
class _Entry:
    index: int  # the call's number in the capture (what ("item", n) expressions name)
    func: Any
    kind: int
    args: list[Any]  # CALL, DISPATCH: the positional arguments, with _Slot and _Scalar holes
    kwargs: dict[str, Any]
    bound: dict[str, Any]  # DEFINED: the bound call (`bind_call`), with holes
    holes: tuple[tuple[Any, Any], ...]  # (position or name, template) of each argument holding a hole
    definition: Any
    mutation: Any
    where: torch.device
    factory: bool
    outputs: tuple[tuple[int, int], ...]  # (position in the flat result, new slot)
    slot_holes: tuple[tuple[Any, int], ...]  # the holes that are one tensor: (position or, DEFINED, name; slot)
    other_holes: tuple[tuple[Any, Any], ...]  # the rest (numbers, lists, keyword arguments of CALL and DISPATCH)
    call: Any  # CALL: the overload's C++ entry (what calling the OpOverload calls)
    item: bool  # an .item() read
    effects: bool  # writes an argument, draws random numbers or reads a value: never left out
    key: Any  # everything two captures must agree on


@dataclass
class Program:
    """One captured step: its calls, where each slot's tensor comes from, and what must hold to replay it."""

    entries: list[_Entry]
    state: dict[int, str]  # slot → state name
    foreign: dict[int, torch.Tensor]  # slot → a tensor made outside the operators
    snapshots: dict[int, torch.Tensor]  # slot → that tensor's value when the step first read it
    constant: set[int]  # foreign slots passed as a fresh copy of that value
    total: int
    items: dict[int, Any]  # entry → the value its read returned here
    rates: list[float]
    hyper: list[dict[str, Any]]
    frozen: frozenset[int]
    problems: list[str]
    dead: list[list[int]] = field(default_factory=list)  # per entry, the slots free after it
    live: dict[str, torch.Tensor] = field(default_factory=dict)  # the state tensors, but COUNTERS (read anew)
    fixed: dict[int, Any] = field(default_factory=dict)  # reads that gave one value at both captured steps
    size: int = 0  # how many slots
    code: Code = field(default_factory=list)  # the scalars' expressions (`_compile`)


COUNTERS = ("seed", "step", "batch")
"""State tensors the session replaces at each step rather than writing: read from it at each replay."""


def _hyperparameters(optimizer: torch.optim.Optimizer) -> list[dict[str, Any]]:
    return [{key: value for key, value in group.items() if key not in ("params", "lr")} for group in optimizer.param_groups]


def _same_number(a: Any, b: Any) -> bool:
    """Equal as the operator would see them: type, and bits for floats (−0.0 ≠ 0.0, NaN = NaN)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b and math.copysign(1.0, a) == math.copysign(1.0, b) or (a != a and b != b)
    return bool(a == b)


def _key(value: Any) -> Any:
    """A comparable form of a template or expression (floats by their bits)."""
    if isinstance(value, float):
        return ("f", float.hex(value))
    if isinstance(value, list | tuple):
        return (type(value).__name__, tuple(_key(item) for item in value))
    if isinstance(value, dict):
        return ("dict", tuple((name, _key(item)) for name, item in value.items()))
    if isinstance(value, _Slot):
        return ("slot", value.index)
    if isinstance(value, _Scalar):
        return ("scalar", _key(value.expr))
    if isinstance(value, bool | int | str | type(None)):
        return (type(value).__name__, value)
    return ("repr", repr(value))


class _Builder:
    """Makes each call an entry as it returns. Tensors are told apart by their TensorImpl's address
    while alive (a weak reference says whether the one seen is still the one named: an address is
    reused once a tensor is freed)."""

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        self.state_names = {tensor._cdata: name for name, tensor in state.items() if not name.startswith(("lr/", "sched/"))}
        self.slot_of: dict[int, tuple[int, weakref.ref[torch.Tensor]]] = {}
        self.state: dict[int, str] = {}
        self.foreign: dict[int, torch.Tensor] = {}
        self.snapshots: dict[int, torch.Tensor] = {}  # foreign slot → its value when first read
        self.uses: list[int] = []  # per slot, the last entry that reads or makes it
        self.entries: list[_Entry] = []
        self.items: dict[int, Any] = {}  # call number → the value its read returned
        self.problems: list[str] = []

    def find(self, tensor: torch.Tensor) -> int:
        """The slot naming `tensor` now, or -1."""
        known = self.slot_of.get(tensor._cdata)
        return known[0] if known is not None and known[1]() is tensor else -1

    def slot(self, tensor: torch.Tensor, entry: int, made: bool = False) -> int:
        """The slot of a tensor an entry reads, or makes (`made`: a new output)."""
        index = self.find(tensor)
        if index < 0:
            index = len(self.uses)
            self.slot_of[tensor._cdata] = (index, weakref.ref(tensor))
            self.uses.append(entry)
            name = self.state_names.get(tensor._cdata)
            if name is not None:
                self.state[index] = name
            elif not made:
                # a literal: small, held for the comparison of two steps, with its value when first read
                self.foreign[index] = tensor
                self.snapshots[index] = tensor.detach().clone()
        self.uses[index] = entry
        return index

    def template(self, value: Any, scope: list[TrackedFloat], entry: int) -> tuple[Any, bool]:
        if isinstance(value, torch.Tensor):
            return _Slot(self.slot(value, entry)), True
        if type(value) is float:
            exprs = {_key(t.expr): t.expr for t in scope if _same_number(float.__float__(t), value)}
            if len(exprs) > 1:
                self.problems.append(f"a number ({value!r}) matches two different tracked values passed to one torch call")
            if exprs:
                return _Scalar(next(iter(exprs.values()))), True
            return value, False
        if isinstance(value, list | tuple):
            items = [self.template(item, scope, entry) for item in value]
            holes = any(hole for _, hole in items)
            return (type(value)(item for item, _ in items) if holes else value), holes
        return value, False

    def entry(self, index: int, func: Any, call_args: tuple[Any, ...], call_kwargs: dict[str, Any], result: Any,
              scope: list[TrackedFloat]) -> None:
        name = get_op_name(func)
        if name.startswith("profiler::"):
            return  # markers for a profiler: no values
        position = len(self.entries)
        if name == DETACH and isinstance(call_args[0], torch.Tensor) and isinstance(result, torch.Tensor):
            # the same memory without autograd's history, which a replay (below autograd) has no use
            # for: later calls read the tensor itself
            source = self.slot(call_args[0], position)
            self.slot_of[result._cdata] = (source, weakref.ref(result))
            return
        if name in RESTRIDING:
            self.problems.append(f"the step changes a tensor's shape or strides in place ({name})")
        if name in VALUE_SHAPED or (name == INDEX and any(
                isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in (call_args[1] or ()))):
            self.problems.append(f"an output's shape depends on tensor values ({name})")
        dispatch = get_dispatch(func)
        definition, mutation = dispatch.definition, dispatch.mutation
        if dispatch.passed or dispatch.plain_native:
            kind = CALL
        elif definition.kind is OpKind.DEFINED:
            kind = DEFINED
        else:
            kind = DISPATCH
        args, _ = self.template(list(call_args), scope, position)
        kwargs = {argument: self.template(value, scope, position)[0] for argument, value in call_kwargs.items()}
        bound: dict[str, Any] = {}
        where, factory = torch.device("cpu"), False
        holes: list[tuple[Any, Any]]
        if kind == DEFINED:
            real, first = bind_call(func, call_args, call_kwargs)
            where = first if first is not None else torch.device(call_kwargs.get("device") or "cpu")
            factory = first is None
            bound = {argument: self.template(value, scope, position)[0] for argument, value in real.items()}
            holes = [(argument, value) for argument, value in bound.items() if _has_hole(value)]
        else:
            holes = [(p, value) for p, value in enumerate(args) if _has_hole(value)]
            holes += [(argument, value) for argument, value in kwargs.items() if _has_hole(value)]
        item = name == ITEM
        outputs: list[tuple[int, int]] = []
        metas: list[Any] = []
        if item:
            self.items[index] = result
        elif name in READS:
            self.problems.append(f"the step reads a tensor's value into Python ({name})")
        else:
            try:
                flat = flatten_outputs(result)
            except TypeError:
                self.problems.append(f"{name} returns a Python value the step may branch on")
                flat = ()
            for p, out in enumerate(flat):
                if out is None:
                    metas.append(None)
                    continue
                metas.append((tuple(out.shape), out.dtype, out.stride()))
                if self.find(out) < 0:
                    outputs.append((p, self.slot(out, position, made=True)))
                else:
                    self.slot(out, position)
        effects = item or mutation is None or mutation.writes or definition is None or definition.kind is OpKind.RANDOM
        key = (name, kind, _key(args), _key(kwargs), _key(bound), tuple(outputs), repr(metas), item, str(where))
        slot_holes = tuple((where_, value.index) for where_, value in holes
                           if type(value) is _Slot and (kind == DEFINED or type(where_) is int))
        other_holes = tuple((where_, value) for where_, value in holes
                            if not (type(value) is _Slot and (kind == DEFINED or type(where_) is int)))
        self.entries.append(_Entry(index, func, kind, args, kwargs, bound, tuple(holes), definition, mutation, where, factory,
                                   tuple(outputs), slot_holes, other_holes, func._op, item, effects, key))


def _has_hole(value: Any) -> bool:
    if isinstance(value, _Slot | _Scalar):
        return True
    return isinstance(value, list | tuple) and any(_has_hole(item) for item in value)


def _layout(tensor: torch.Tensor) -> tuple[int, int, tuple[int, ...], tuple[int, ...]]:
    """What must not change about a state tensor across a step: the object, its memory and layout
    (`p.data = …` keeps the object and swaps the rest)."""
    return tensor._cdata, tensor.data_ptr(), tuple(tensor.shape), tensor.stride()


def _layouts(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    return {name: _layout(tensor) for name, tensor in state.items() if not name.startswith(("lr/", "sched/"))}


def build_program(capture: _Capture, before: dict[str, Any], after: dict[str, Any], total: torch.Tensor,
                  optimizer: torch.optim.Optimizer) -> Program:
    """The program of one captured step (its `problems` say why it cannot be replayed, if it cannot);
    `before` and `after` are the state's `_layouts` around it."""
    builder = capture.builder
    problems = capture.problems + builder.problems
    untracked = sorted(set(builder.items) - capture.tracked_items)
    if untracked:
        problems.append("the step reads a tensor's value into Python other than in torch's own optimizer step "
                        "(.item() in the task's code, float(t), int(t), …)")
    written = [slot for slot, tensor in builder.foreign.items() if not _same_values(tensor, builder.snapshots[slot])]
    if written:
        problems.append("the step writes a tensor made outside its operators (a literal, or memory shared with one)")
    moved = sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))
    if moved:
        problems.append(f"the step replaces state tensors rather than writing them ({', '.join(moved[:3])})")
    total_slot = builder.find(total)
    if total_slot < 0:
        problems.append("the step's loss is not an output of its operators")
    entries = _needed(builder.entries, total_slot)
    rates = [float(group["lr"]) for group in optimizer.param_groups]
    program = Program(entries, builder.state, builder.foreign, builder.snapshots, set(), total_slot, builder.items, rates,
                      _hyperparameters(optimizer), frozenset(capture.frozen), problems)
    keep = set(builder.state) | set(builder.foreign) | {total_slot}
    last: dict[int, int] = {}
    for n, entry in enumerate(entries):
        for slot in _slots_of(entry):
            last[slot] = n
    program.code = _compile(entries)
    program.size = len(builder.uses)
    program.dead = [[] for _ in entries]
    for slot, n in last.items():
        if slot not in keep:
            program.dead[n].append(slot)
    return program


def _compile(entries: list[_Entry]) -> Code:
    """Every scalar hole's expression as straight-line code, in the order the entries need them:
    a register needed at an entry depends only on reads made before it."""
    code: Code = []
    registers: dict[int, int] = {}

    def visit(value: Any) -> None:
        if isinstance(value, _Scalar):
            value.register = compile_expression(value.expr, code, registers)
        elif isinstance(value, list | tuple):
            for item in value:
                visit(item)

    for entry in entries:
        for _, value in entry.holes:
            visit(value)
    return code


def _slots_of(entry: _Entry) -> Iterator[int]:
    """Every slot an entry reads or makes."""
    for _, value in entry.holes:
        yield from _holes(value)
    for _, slot in entry.outputs:
        yield slot


def _holes(value: Any) -> Iterator[int]:
    if isinstance(value, _Slot):
        yield value.index
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _holes(item)


def _needed(entries: list[_Entry], total: int) -> list[_Entry]:
    """The entries whose work reaches the state or the loss: a call that writes an argument, draws
    random numbers (the stream's offset moves) or reads a value, and every call one of those reads
    from. The rest (a detach autograd saved and never used, …) compute nothing anyone reads."""
    needed_slots = {total}
    kept = []
    for entry in reversed(entries):
        if entry.effects or any(slot in needed_slots for _, slot in entry.outputs):
            kept.append(entry)
            for _, value in entry.holes:
                needed_slots.update(_holes(value))
    kept.reverse()
    return kept


def agree(first: Program, second: Program) -> list[str]:
    """Why two consecutive steps' programs do not describe one replayable step (empty: they do).
    Settles which foreign tensors `second` passes as they are and which as copies."""
    problems = first.problems + second.problems
    if problems:
        return problems
    if len(first.entries) != len(second.entries):
        return [f"the steps call different numbers of operators ({len(first.entries)}, {len(second.entries)})"]
    for index, (a, b) in enumerate(zip(first.entries, second.entries, strict=True)):
        if a.key != b.key:
            return [f"call {index} differs between steps ({a.key[0]} and {b.key[0]}): an argument the step computes "
                    "in Python changes from step to step"]
    if first.state != second.state or first.foreign.keys() != second.foreign.keys():
        return ["the steps read different tensors"]
    for slot, tensor in second.foreign.items():
        earlier = first.foreign[slot]
        if earlier is tensor:
            continue
        if not _same_tensor(first.snapshots[slot], second.snapshots[slot]):
            return [f"a tensor made outside the operators (shape {tuple(tensor.shape)}) changes from step to step"]
        second.constant.add(slot)
    # A read that gave the same value at both steps cannot be told from a constant (a number derived
    # from it unseen would look constant too): replays check it still gives that value, and undo the
    # step if it does not.
    second.fixed = {index: value for index, value in second.items.items() if _same_number(first.items[index], value)}
    if [_key(h) for h in first.hyper] != [_key(h) for h in second.hyper] or len(first.rates) != len(second.rates):
        return ["the optimizer's hyperparameters changed between the steps"]
    # A learning rate the two steps share proves nothing about how the step uses it (a number the
    # step derived from it without tracking would look constant): replay requires it unchanged.
    second.frozen = second.frozen | {i for i, (a, b) in enumerate(zip(first.rates, second.rates, strict=True)) if _same_number(a, b)}
    return []


def _same_values(a: torch.Tensor, b: torch.Tensor) -> bool:
    """The same dtype, shape and bits, whatever the layout."""
    return a.dtype == b.dtype and a.shape == b.shape and bool(
        a.detach().reshape(-1).view(torch.uint8).equal(b.detach().reshape(-1).view(torch.uint8)))


def _same_tensor(a: torch.Tensor, b: torch.Tensor) -> bool:
    if a.dtype != b.dtype or a.shape != b.shape or a.stride() != b.stride() or a.device != b.device:
        return False
    return bool(a.reshape(-1).view(torch.uint8).equal(b.reshape(-1).view(torch.uint8)))


# --- running a program -----------------------------------------------------------------------------


def _fill(value: Any, slots: list[Any], scalars: Callable[[_Scalar], float]) -> Any:
    if isinstance(value, _Slot):
        return slots[value.index]
    if isinstance(value, _Scalar):
        return scalars(value)
    if isinstance(value, list | tuple):
        return type(value)(_fill(item, slots, scalars) for item in value)
    return value


def run_program(program: Program, session: Session, primitives_for: PrimitivesFor, rng: RngContext) -> torch.Tensor:
    """The step's update by its program: what the eager step's mode ran, call for call."""
    mode = ReproducibleMode(rng, primitives_for)
    dispatch, run_bound = mode.__torch_dispatch__, mode.run_bound
    slots: list[Any] = [None] * program.size
    for slot, name in program.state.items():
        slots[slot] = program.live[name] if name not in COUNTERS else getattr(session, name)
    for slot, tensor in program.foreign.items():
        slots[slot] = program.snapshots[slot].clone() if slot in program.constant else tensor
    items: dict[int, Any] = {}
    rates = [float(group["lr"]) for group in session.optimizer.param_groups]
    code = program.code
    registers: list[Any] = [None] * len(code)
    done = [0]  # registers computed so far: in the order the entries need them, so their reads are in

    def scalars(scalar: _Scalar) -> float:
        if scalar.register >= done[0]:
            run_code(code, registers, done[0], scalar.register + 1, items, rates)
            done[0] = scalar.register + 1
        value = float(registers[scalar.register])
        return math.nan if value != value else value  # as `bind_call` passes a NaN

    with reproducible_settings(), torch._C._AutoDispatchBelowADInplaceOrView():
        for entry, dead in zip(program.entries, program.dead, strict=True):
            kind = entry.kind
            if kind == DEFINED:
                bound = entry.bound.copy() if entry.holes else entry.bound
                for argument, slot in entry.slot_holes:
                    bound[argument] = slots[slot]
                for argument, value in entry.other_holes:
                    bound[argument] = _fill(value, slots, scalars)
                result = run_bound(entry.definition, entry.mutation, bound, entry.where, entry.factory)
            else:
                args, kwargs = (entry.args.copy() if entry.holes else entry.args), entry.kwargs
                for position, slot in entry.slot_holes:
                    args[position] = slots[slot]
                if entry.other_holes:
                    kwargs = kwargs.copy()
                    for where, value in entry.other_holes:
                        if type(where) is int:
                            args[where] = _fill(value, slots, scalars)
                        else:
                            kwargs[where] = _fill(value, slots, scalars)
                result = entry.call(*args, **kwargs) if kind == CALL else dispatch(entry.func, (), tuple(args), kwargs)
            if entry.item:
                items[entry.index] = result
                if entry.index in program.fixed and not _same_number(result, program.fixed[entry.index]):
                    raise _ReadChanged
            elif entry.outputs:
                if isinstance(result, torch.Tensor):
                    slots[entry.outputs[0][1]] = result
                else:
                    flat = flatten_outputs(result)
                    for position, slot in entry.outputs:
                        slots[slot] = flat[position]
            for slot in dead:
                slots[slot] = None
    return slots[program.total]


# --- a run's steps ---------------------------------------------------------------------------------


def capture_step(session: Session, primitives_for: PrimitivesFor) -> tuple[torch.Tensor, Program]:
    """One eager step (the same bits as `run_step` under a `ReproducibleMode`), and its program."""
    rng = RngContext(session.job.seed, int(session.step))
    before = session.state_tensors()
    layouts = _layouts(before)
    capture = _Capture(_Builder(before))
    optimizer = session.optimizer
    if not type(optimizer).step.__module__.startswith("torch.optim."):
        capture.problems.append(f"the optimizer's step is the task's own code ({type(optimizer).__name__}): only torch's "
                                "optimizers are known to use what they read from tensors by arithmetic alone")

    def entering(*_: Any) -> None:
        capture.in_optimizer = True

    def leaving(*_: Any) -> None:
        capture.in_optimizer = False

    hooks = [optimizer.register_step_pre_hook(entering), optimizer.register_step_post_hook(leaving)]
    _LOCAL.capture = capture
    try:
        with (_ITEM.active(), _TOLIST.active(), _NUMPY.active(), _ARRAY.active(), _ScopeMode(capture),
              _CapturingMode(rng, primitives_for, capture), _tracking_rates(optimizer)):
            total = session.update()
    finally:
        _LOCAL.capture = None
        for hook in hooks:
            hook.remove()
    program = build_program(capture, layouts, _layouts(session.state_tensors()), total, optimizer)
    with ReproducibleMode(rng, primitives_for):
        session.advance()
    return total, program


class _ReadChanged(Exception):
    """A read that gave one value at both captured steps gives another now: the replay is undone."""


@dataclass
class ReplayCounts:
    """How a run's steps ran."""

    replayed: int = 0
    captured: int = 0
    eager: int = 0
    reason: str = ""  # why steps are not replayed, when they are not


class Replayer:
    """Runs a session's steps, replaying its program once two captured steps agree (module docstring).
    The session is the replayer's: nothing else may replace its tensors between steps."""

    def __init__(self, session: Session, primitives_for: PrimitivesFor, audit_every: int = AUDIT_EVERY) -> None:
        self.session = session
        self.primitives_for = primitives_for
        self.audit_every = audit_every
        self.counts = ReplayCounts()
        self.program: Program | None = None  # agreed, replayable
        self.previous: Program | None = None  # the last captured step's, not yet agreed
        self.since_audit = 0
        self.failures = 0

    def run_step(self) -> torch.Tensor:
        """One step of the session: replayed, captured or eager; the same state whichever."""
        session = self.session
        if self.program is not None and self.since_audit < self.audit_every and self._guards_hold(self.program):
            rng = RngContext(session.job.seed, int(session.step))
            program = self.program
            saved = [(t, t.clone()) for name, t in program.live.items() if not name.startswith("data/")] if program.fixed else []
            try:
                total = run_program(program, session, self.primitives_for, rng)
            except _ReadChanged:
                with torch.no_grad():
                    for tensor, value in saved:
                        tensor.copy_(value)
                return self._capture_step()
            with ReproducibleMode(rng, self.primitives_for):
                session.advance()
            self.since_audit += 1
            self.counts.replayed += 1
            return total
        return self._capture_step()

    def _capture_step(self) -> torch.Tensor:
        session = self.session
        if self.failures >= MAX_ATTEMPTS:
            self.counts.eager += 1
            with ReproducibleMode(RngContext(session.job.seed, int(session.step)), self.primitives_for):
                return session.run_step()
        total, program = capture_step(session, self.primitives_for)
        self.counts.captured += 1
        earlier = self.program or self.previous
        problems = program.problems or (agree(earlier, program) if earlier is not None and not earlier.problems else [])
        if problems:
            self.failures += 1
            self.counts.reason = problems[0]
        self.previous, self.program = program, None
        if not problems and earlier is not None and not earlier.problems:
            self.failures = 0
            self.counts.reason = ""
            self._adopt(program)
        return total

    def _adopt(self, program: Program) -> None:
        self.program, self.previous, self.since_audit = program, None, 0
        program.live = {name: tensor for name, tensor in self.session.state_tensors().items() if name not in COUNTERS}
        # the captured step's gradients: a replayed step makes its own and does not attach them
        self.session.optimizer.zero_grad(set_to_none=True)

    def _guards_hold(self, program: Program) -> bool:
        groups = self.session.optimizer.param_groups
        if len(groups) != len(program.rates):
            return False
        for index in program.frozen:
            if not _same_number(float(groups[index]["lr"]), program.rates[index]):
                return False
        for group, hyper in zip(groups, program.hyper, strict=True):
            for name, value in hyper.items():
                current = group.get(name)
                if current is not value and _key(current) != _key(value):
                    return False
        return True
