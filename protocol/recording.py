"""Reproducible execution: a dispatch mode that routes every aten operator of a training step to
pinpoint's definitions, and optionally records the step's trace or skeleton.

Three uses of one mode, so that the node numbering is the same in all of them:

- training (`recorder=None`): run each operator reproducibly, count nodes, nothing hashed;
- tracing (`Recorder`): additionally record each node's structure and output digests;
- skeleton (`Recorder(skeleton=True)`): run on meta tensors (shapes only, except one-element tensors,
  which stay real so `.item()` reads keep their values) and record the structure.

An operator without a definition raises `UnsupportedOperator` naming it, before anything is committed.
Profiler markers are passed through and `.item()` reads return their value without becoming nodes:
the value can only matter through the arguments of later nodes, which are recorded.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from protocol.encoding import DTYPE_CODES, compute_digest, encode_tensor
from protocol.ops import OpKind, flatten_outputs, get_definition
from protocol.ops.canonical import (
    Mutation,
    bind_arguments,
    bind_call,
    canonicalize_call,
    compute_written_outputs,
    compute_written_positions,
    get_mutation,
    get_op_name,
    process_writes,
)
from protocol.ops.prims import REFERENCE, Primitives
from protocol.ops.table import random_numel
from protocol.trace import (
    DERIVED,
    DERIVED_OPS,
    MAX_CONSTANT_ELEMENTS,
    NodeStructure,
    OutputMeta,
    Ref,
    TraceNode,
    is_derived,
)
from protocol.types import Root

PASS_THROUGH = frozenset(
    {
        "profiler::_record_function_enter_new.default",
        "profiler::_record_function_exit._RecordFunction",
        "profiler::_record_function_enter.default",
        # the identity torch applies to a tensor literal made inside the step (torch.tensor([…])): the
        # literal is what later nodes read, as a constant, on CPU and meta tensors alike
        "aten::lift_fresh.default",
    }
)
READS = frozenset({"aten::_local_scalar_dense.default", "aten::is_nonzero.default", "aten::equal.default"})


class TraceError(RuntimeError):
    """A step that cannot be traced faithfully (a tensor of unknown origin, a stale alias, …)."""


@dataclass(frozen=True)
class Tamper:
    """A deliberate fault, for research: perturb output 0 of `node` in `step` (kind 'output')."""

    kind: str  # "output" or "state"
    step: int
    node: int = 0

    @staticmethod
    def parse(text: str) -> Tamper:
        """'output@T:J' or 'state@T'."""
        try:
            kind, _, where = text.partition("@")
            step_text, _, node_text = where.partition(":")
            tamper = Tamper(kind, int(step_text), int(node_text) if node_text else 0)
        except ValueError as error:
            raise ValueError(f"bad tamper {text!r}: expected output@STEP:NODE or state@STEP") from error
        if tamper.kind not in ("output", "state") or tamper.step < 0 or tamper.node < 0:
            raise ValueError(f"bad tamper {text!r}: expected output@STEP:NODE or state@STEP")
        if tamper.kind == "output" and not node_text:
            raise ValueError(f"bad tamper {text!r}: output tampering names a node, output@STEP:NODE")
        return tamper

    def __str__(self) -> str:
        return f"output@{self.step}:{self.node}" if self.kind == "output" else f"state@{self.step}"


def perturb(tensor: torch.Tensor) -> None:
    """Change the first element in place: x -> 2x + 1 for floats (large enough to survive the
    roundings downstream), the lowest bit for integers, negation for booleans."""
    if tensor.numel() == 0:
        return
    first = (0,) * tensor.dim()  # element [0, …, 0], whatever the strides
    if tensor.dtype == torch.bool:
        tensor[first] = ~tensor[first]
    elif tensor.dtype.is_floating_point:
        tensor[first] = tensor[first] * 2 + 1
    else:
        tensor[first] ^= 1


@dataclass
class RngContext:
    """Where the step's random stream stands: (seed, step) name it, offset counts drawn elements."""

    seed: int
    step: int
    offset: int = 0


@dataclass
class _Origin:
    ref: Ref
    tensor: torch.Tensor  # held so the TensorImpl (and its address) outlives the step
    stale: bool = False  # set when an in-place operator wrote the memory through another view
    storage: int = 0  # the storage key it was listed under in `Recorder.views`


def _storage_key(tensor: torch.Tensor) -> int:
    """Identity of the memory a tensor views (0 for meta or empty tensors, which cannot go stale)."""
    if tensor.device.type == "meta" or tensor.numel() == 0:
        return 0
    return int(tensor.untyped_storage().data_ptr())


def _byte_span(t: torch.Tensor) -> tuple[int, int]:
    """[first, last] byte addresses a strided tensor touches (numel > 0)."""
    low = high = t.data_ptr()
    size = t.element_size()
    for n, stride in zip(t.shape, t.stride(), strict=True):
        reach = (n - 1) * stride * size
        if reach >= 0:
            high += reach
        else:
            low += reach
    return low, high + size - 1


def _may_overlap(a: torch.Tensor, b: torch.Tensor) -> bool:
    """False only when `a` and `b` provably share no element: disjoint byte spans, or the same
    dtype, shape and nested strides with an offset no index difference reaches (the column chunks
    of a split interleave in memory but never meet)."""
    if a.numel() == 0 or b.numel() == 0:
        return False
    (a_low, a_high), (b_low, b_high) = _byte_span(a), _byte_span(b)
    if a_high < b_low or b_high < a_low:
        return False
    if a.dtype != b.dtype or a.shape != b.shape or a.stride() != b.stride():
        return True
    size = a.element_size()
    difference = b.data_ptr() - a.data_ptr()
    if difference % size:
        return True
    difference //= size
    dims = sorted((abs(st), n) for n, st in zip(a.shape, a.stride(), strict=True) if n > 1)
    covered = 0  # how far the smaller dimensions reach, either way
    for stride, n in dims:
        if stride <= 2 * covered:
            return True  # the signed digits below would not be unique: assume the worst
        covered += (n - 1) * stride
    for stride, n in reversed(dims):  # each digit is the nearest multiple: the rest is under stride / 2
        digit = max(-(n - 1), min(n - 1, round(difference / stride)))
        difference -= digit * stride
    return difference == 0


DEFERRED_HASH_BYTES = 1 << 18
"""With `Recorder.defer`, outputs from this size on are hashed when the step ends (smaller ones at once)."""
HASH_THREADS = min(8, os.cpu_count() or 1)
"""Threads that hash the deferred outputs: the kernels' threads are idle by then."""
POOL_BYTES = 8 << 20
"""Deferred outputs below this many bytes in all are hashed on the step's thread: starting the
threads costs more than hashing them (a mid MLP's step owes about 1 MB)."""


@dataclass
class _PendingDigest:
    """An output whose digest is computed when the step ends, or before its memory is written."""

    tensor: torch.Tensor
    node: int
    digest: Root | None = None


@dataclass
class Recorder:
    """Collects a step's nodes and where every tensor came from.

    With `defer`, large outputs are hashed in `finish`, on `HASH_THREADS` threads once the step's
    kernels are done (an output about to be written in place is hashed first): hashed while the step
    runs, they would only share the cores with its kernels (a mid GPT's trace on two cores: 0.94 s
    hashed on a thread beside the step, 0.80 s on the step's thread, 0.71–0.77 s deferred)."""

    skeleton: bool = False
    keep_tensors: bool = False  # also keep every output by digest (to answer a dispute's queries)
    defer: bool = False
    nodes: list[TraceNode] = field(default_factory=list)
    tensors: dict[bytes, torch.Tensor] = field(default_factory=dict)
    _shared: dict[int, list[bytes]] = field(default_factory=dict)  # storage → kept digests still live
    _pending: dict[int, list[_PendingDigest]] = field(default_factory=dict)  # storage → digests not yet computed
    _unresolved: list[_PendingDigest] = field(default_factory=list)  # in node order

    def _resolve(self, pending: _PendingDigest, digest: Root | None = None) -> None:
        if pending.digest is not None:
            return
        pending.digest = digest if digest is not None else compute_digest(pending.tensor)
        if self.keep_tensors:
            self.keep(pending.digest, pending.tensor)

    def before_write(self, tensor: torch.Tensor) -> None:
        """`tensor`'s memory is about to be written in place: compute the digests still owed from it,
        then copy the kept values the write would change."""
        for pending in self._pending.pop(_storage_key(tensor), []):
            self._resolve(pending)
        if self.keep_tensors:
            self.preserve(tensor)

    def finish(self) -> None:
        """Compute every deferred digest and write them into their nodes (call when the step ends)."""
        owed = [pending for pending in self._unresolved if pending.digest is None]
        if owed:
            tensors = [pending.tensor for pending in owed]
            if len(owed) == 1 or sum(t.nbytes for t in tensors) < POOL_BYTES:
                computed = [compute_digest(tensor) for tensor in tensors]
            else:
                # a pool of its own: one kept between steps made the mid GPT's traces slower (770 → 870 ms)
                with ThreadPoolExecutor(max_workers=min(HASH_THREADS, len(owed)), thread_name_prefix="pinpoint-hash") as pool:
                    computed = list(pool.map(compute_digest, tensors))
            for pending, digest in zip(owed, computed, strict=True):
                self._resolve(pending, digest)
        for index in sorted({pending.node for pending in self._unresolved}):
            node = self.nodes[index]
            digests = tuple(d.digest if isinstance(d, _PendingDigest) else d for d in node.digests)
            self.nodes[index] = TraceNode(node.structure, digests)
        self._unresolved.clear()
        self._pending.clear()

    def _hash_later(self, tensor: torch.Tensor, node: int) -> _PendingDigest:
        pending = _PendingDigest(tensor.detach(), node)
        self._unresolved.append(pending)
        key = _storage_key(tensor)
        if key:
            self._pending.setdefault(key, []).append(pending)
        return pending

    def keep(self, digest: bytes, tensor: torch.Tensor) -> None:
        """Keep a tensor by digest without copying it; `preserve` copies it before an in-place write."""
        if digest in self.tensors:
            return
        if tensor.device.type != "cpu":
            self.tensors[digest] = tensor.detach().to("cpu", copy=True)
            return
        self.tensors[digest] = tensor.detach()
        key = _storage_key(tensor)
        if key:
            self._shared.setdefault(key, []).append(digest)

    def preserve(self, tensor: torch.Tensor) -> None:
        """`tensor`'s memory is about to be written in place: copy the kept values it would change."""
        for digest in self._shared.pop(_storage_key(tensor), []):
            self.tensors[digest] = self.tensors[digest].clone()
    origins: dict[int, _Origin] = field(default_factory=dict)  # by TensorImpl address
    views: dict[int, list[int]] = field(default_factory=dict)  # storage → TensorImpl addresses on it

    def _set_origin(self, tensor: torch.Tensor, ref: Ref) -> None:
        address, key = tensor._cdata, _storage_key(tensor)
        previous = self.origins.get(address)
        self.origins[address] = _Origin(ref, tensor, storage=key)
        # A tensor written again is already listed among its storage's views (listing it once per
        # write made every write scan all earlier writes of that storage).
        if key and (previous is None or previous.storage != key):
            self.views.setdefault(key, []).append(address)

    def bind_state(self, names_in_order: list[str], tensors: Mapping[str, torch.Tensor]) -> None:
        """Declare s_t's tensors: the k-th name in canonical order is ref ['s', k]."""
        for k, name in enumerate(names_in_order):
            self._set_origin(tensors[name], ("s", k))
            if self.keep_tensors:
                self.keep(compute_digest(tensors[name]), tensors[name])

    def mark_written(self, tensor: torch.Tensor, fresh: frozenset[int] = frozenset()) -> None:
        """An operator wrote `tensor`'s memory: every other view of it that shares an element is now
        stale (except the TensorImpls in `fresh`, the same node's outputs, which get their new origin
        next). Views of the same storage that share no element (the chunks of a split) stay valid."""
        for address in self.views.get(_storage_key(tensor), []):
            if address != tensor._cdata and address not in fresh and address in self.origins:
                origin = self.origins[address]
                if _may_overlap(tensor, origin.tensor):
                    origin.stale = True

    def ref_of(self, tensor: torch.Tensor) -> Ref:
        origin = self.origins.get(tensor._cdata)
        if origin is not None:
            if origin.stale:
                raise TraceError(f"a tensor from {origin.ref} was read after an in-place write through another view")
            return origin.ref
        if tensor.numel() <= MAX_CONSTANT_ELEMENTS and tensor.device.type != "meta":
            return ("c", encode_tensor(tensor).hex())
        if tensor.numel() == 0:  # an empty tensor is its dtype and shape, on meta tensors too
            return ("c", encode_tensor(torch.empty(tensor.shape, dtype=tensor.dtype)).hex())
        raise TraceError(f"a tensor of unknown origin, shape {tuple(tensor.shape)}, entered the step")

    def record(
        self,
        op: str,
        args: dict[str, Any],
        inputs: tuple[torch.Tensor, ...],
        outputs: tuple[torch.Tensor | None, ...],
        written: tuple[int, ...] = (),
        refs: tuple[Ref, ...] | None = None,
    ) -> None:
        """Append a node; `written` are the positions of outputs that are written arguments; `refs`
        the inputs' refs taken before the operator ran (a constant an in-place operator overwrites
        is the value it read)."""
        if refs is None:
            refs = tuple(self.ref_of(tensor) for tensor in inputs)
        metas = tuple(None if out is None else OutputMeta(DTYPE_CODES[out.dtype], tuple(out.shape)) for out in outputs)
        structure = NodeStructure(op, args, refs, metas)
        index = len(self.nodes)
        if self.skeleton:
            digests: tuple[Any, ...] = tuple(None for _ in outputs)
        elif is_derived(structure):
            digests = tuple(None if out is None else DERIVED for out in outputs)
        else:
            digests = tuple(
                None if out is None
                else self._hash_later(out, index) if self.defer and out.nbytes >= DEFERRED_HASH_BYTES
                else compute_digest(out)
                for out in outputs
            )
            if self.keep_tensors:
                for out, digest in zip(outputs, digests, strict=True):
                    if out is not None and not isinstance(digest, _PendingDigest):
                        self.keep(digest, out)
        self.nodes.append(TraceNode(structure, digests))
        if written and not self.skeleton:
            fresh = frozenset(out._cdata for out in outputs if out is not None)
            for o in written:
                out = outputs[o]
                if out is not None:
                    self.mark_written(out, fresh)
        for o, out in enumerate(outputs):
            if out is not None:
                self._set_origin(out, ("n", index, o))


def _to_meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value if value.device.type == "meta" else value.to("meta")
    if isinstance(value, list | tuple):
        return type(value)(_to_meta(item) for item in value)
    return value


def _any_meta(values: Any) -> bool:
    if isinstance(values, torch.Tensor):
        return values.device.type == "meta"
    if isinstance(values, list | tuple):
        return any(_any_meta(item) for item in values)
    if isinstance(values, dict):
        return any(_any_meta(item) for item in values.values())
    return False


_META_RESULTS: dict[tuple[Any, ...], tuple[bool, tuple[tuple[Any, ...] | None, ...]]] = {}
"""Output metadata of functional operators on meta tensors, by operator, arguments and input layouts:
torch's meta kernels are mostly Python decompositions (about 70 µs an operator), and a step repeats
the same calls layer after layer and step after step."""
MAX_META_RESULTS = 1 << 16


def _meta_signature(value: Any) -> Any:
    """A hashable description of an argument for the meta cache: tensors by layout (not values; a
    one-element real tensor's value cannot decide a functional operator's output layout), the plain
    values torch passes by value; None for anything else."""
    if isinstance(value, torch.Tensor):
        return ("tensor", value.dtype, tuple(value.shape), value.stride(), value.storage_offset())
    if isinstance(value, list | tuple):
        items = tuple(_meta_signature(item) for item in value)
        return None if None in items else (type(value).__name__, items)
    if isinstance(value, dict):
        entries = tuple((key, _meta_signature(item)) for key, item in sorted(value.items()))
        return None if any(item is None for _, item in entries) else ("dict", entries)
    if value is None:
        return ("none",)
    if isinstance(value, bool | int | float | str | torch.dtype | torch.device | torch.layout | torch.memory_format):
        return (type(value).__name__, repr(value))
    return None


def _run_on_meta(func: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any], mutation: Mutation, bound: Any) -> Any:
    """The operator on meta tensors (one-element real inputs moved to meta), for skeletons. An
    operator that writes arguments writes meta copies; what it returns aliasing a written argument
    is the caller's argument itself (`bound`, a function giving the bound arguments)."""
    if mutation.writes:
        result = func(*_to_meta(args), **_to_meta(kwargs))
        if not any(name is not None for name in mutation.returned):
            return result
        arguments = bound()
        items = [arguments[name] if name is not None else item for name, item in zip(mutation.returned, flatten_outputs(result), strict=True)]
        return items[0] if len(items) == 1 else tuple(items)
    if func.is_view or any(r.alias_info is not None for r in func._schema.returns):
        return func(*_to_meta(args), **_to_meta(kwargs))
    # Keyed by the raw call (placement arguments such as memory_format included: they decide strides).
    key: tuple[Any, ...] | None = (name, _meta_signature(args), _meta_signature(kwargs))
    if key is not None and None in key:
        key = None  # an argument of a kind the signature does not describe: not cached
    cached = _META_RESULTS.get(key) if key is not None else None
    if cached is None:
        result = func(*_to_meta(args), **_to_meta(kwargs))
        if key is not None and len(_META_RESULTS) < MAX_META_RESULTS:
            single = isinstance(result, torch.Tensor)
            metas = tuple(None if out is None else (tuple(out.shape), out.stride(), out.dtype) for out in flatten_outputs(result))
            _META_RESULTS[key] = (single, metas)
        return result
    single, metas = cached
    outputs = tuple(None if meta is None else torch.empty_strided(meta[0], meta[1], dtype=meta[2], device="meta") for meta in metas)
    return outputs[0] if single else outputs


def _written_targets(mutation: Mutation, bound: dict[str, Any]) -> list[torch.Tensor]:
    """Every tensor an operator is about to write (list arguments element by element)."""
    targets: list[torch.Tensor] = []
    for name in (*(n for n in mutation.returned if n is not None), *mutation.extra):
        value = bound[name]
        targets.extend(t for t in (value if isinstance(value, list | tuple) else [value]) if t is not None)
    return targets


META_OUTPUT_MASKS = {"aten::native_batch_norm_backward.default": "output_mask"}
"""Operators whose meta kernel returns outputs that the real kernel (and pinpoint's definition)
leaves out: the argument naming which outputs exist. Skeletons must record what the step records."""


def _mask_outputs(result: Any, mask: list[bool]) -> Any:
    return tuple(out if wanted else None for out, wanted in zip(result, mask, strict=True))


PrimitivesFor = Callable[[torch.device], Primitives]


@dataclass(frozen=True)
class _Dispatch:
    """What the mode decides about an operator from its overload alone: made once per operator,
    since a step calls the same few dozen operators thousands of times. Nothing here depends on a
    call's arguments (their dtypes, shapes and values are read anew at every call)."""

    func: Any  # the OpOverload, held so its id (the key) is never reused
    name: str
    passed: bool  # PASS_THROUGH or READS: run as it is, never a node
    derived: bool  # in DERIVED_OPS
    definition: Any  # OpDefinition; None when passed
    mutation: Mutation | None  # None when passed
    plain_native: bool  # NATIVE and writing nothing but its returned self: training runs torch's kernel as it is


_DISPATCH: dict[int, _Dispatch] = {}  # by id of the OpOverload (its own hash is a Python method)


def get_dispatch(func: Any) -> _Dispatch:
    """The decisions for `func`; an operator without a definition raises `UnsupportedOperator`
    (and is not kept: a definition registered later is found)."""
    dispatch = _DISPATCH.get(id(func))
    if dispatch is not None and dispatch.func is func:
        return dispatch
    name = get_op_name(func)
    if name in PASS_THROUGH or name in READS:
        dispatch = _Dispatch(func, name, True, name in DERIVED_OPS, None, None, False)
    else:
        definition = get_definition(name)
        mutation = get_mutation(func)
        plain = definition.kind is OpKind.NATIVE and (mutation.self_only or not mutation.writes)
        dispatch = _Dispatch(func, name, False, name in DERIVED_OPS, definition, mutation, plain)
    _DISPATCH[id(func)] = dispatch
    return dispatch


@contextmanager
def reproducible_settings() -> Iterator[None]:
    """The process settings every reproducible operator runs under (the mode enters them; code that
    calls the mode's `__torch_dispatch__` directly, like the prover's replay, enters them itself)."""
    # Subnormal numbers are part of the definitions: never flush them to zero.
    torch.set_flush_denormal(False)
    # oneDNN off: composite operators then decompose the same way on CPU tensors as on the meta
    # tensors of a skeleton (nn.LSTM takes mkldnn_rnn_layer on CPU only, the cell ops otherwise).
    mkldnn = torch._C._get_mkldnn_enabled()
    torch._C._set_mkldnn_enabled(False)
    try:
        yield
    finally:
        torch._C._set_mkldnn_enabled(mkldnn)


class ReproducibleMode(TorchDispatchMode):
    """Runs every operator by its reproducible definition; see the module docstring."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        # torch wraps a mode's __torch_dispatch__ in a Dynamo guard (a few µs per operator) unless
        # this says no; nothing here is compiled by Dynamo.
        return False

    def __init__(
        self,
        rng: RngContext,
        primitives_for: PrimitivesFor = lambda device: REFERENCE,
        recorder: Recorder | None = None,
        tamper: Tamper | None = None,
    ) -> None:
        super().__init__()
        self.rng = rng
        self.primitives_for = primitives_for
        self.recorder = recorder
        self.tamper = tamper if tamper is not None and tamper.kind == "output" and tamper.step == rng.step else None
        self.tampered = False  # set once the tamper has changed its node's output
        self.node_count = 0
        # While a trace is recorded or a tamper counts nodes, every output stays referenced until the
        # step ends. Autograd takes different operators depending on reference counts (AccumulateGrad
        # steals an unshared gradient but clones a shared one; gradient buffers add in place only
        # when unshared), so the nodes would otherwise depend on who else holds a tensor; holding
        # them all fixes them. Plain training holds nothing: those alternatives give the same values
        # (a clone is exact, fl(a + b) in place or not), so the state is the same, and the step's
        # memory is what torch's would be.
        self.keep_outputs = recorder is not None or self.tamper is not None
        self.outputs_alive: list[torch.Tensor] = []

    def __enter__(self) -> ReproducibleMode:
        self._settings = reproducible_settings()
        self._settings.__enter__()
        super().__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        try:
            super().__exit__(*exc)
        finally:
            self._settings.__exit__(*exc)

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        dispatch = get_dispatch(func)
        if dispatch.passed:
            return func(*args, **kwargs)
        name, definition, mutation = dispatch.name, dispatch.definition, dispatch.mutation
        assert mutation is not None
        if self.tamper is not None and self.node_count == self.tamper.node and dispatch.derived:
            raise TraceError(f"cannot tamper with node {self.node_count} of step {self.tamper.step}: it is {name}, whose "
                             "output is its input rearranged (derived, never hashed); tamper with the node that makes its input")
        if self.recorder is None and definition.kind is not OpKind.RANDOM:
            # Training: nothing records the call, so it needs no canonical form.
            if dispatch.plain_native:
                return self._finish(func(*args, **kwargs), None, mutation.self_only)
            if definition.kind is OpKind.DEFINED:
                return self._run_defined(func, definition, mutation, args, kwargs)
        call = canonicalize_call(func, args, kwargs)
        if definition.kind is OpKind.RANDOM:
            bound = bind_arguments(call.args, call.inputs)
            call.args["pinpoint.rng"] = {"seed": self.rng.seed, "step": self.rng.step, "offset": self.rng.offset}
            self.rng.offset += random_numel(name, bound)
        skeleton = self.recorder is not None and self.recorder.skeleton
        refs = tuple(self.recorder.ref_of(t) for t in call.inputs) if self.recorder is not None else None
        if mutation.self_only:
            # The common in-place form (add_, mul_, …): kept apart because it runs for most optimizer ops.
            if self.recorder is not None and not skeleton:
                self.recorder.before_write(args[0])
            if skeleton and _any_meta((args, kwargs)):
                func(*_to_meta(args), **_to_meta(kwargs))
                result = args[0]
            elif definition.kind is OpKind.NATIVE:
                result = func(*args, **kwargs)
            else:
                value = self._compute(definition, call.args, call.inputs, kwargs.get("device"))
                target = args[0]
                if value is not target:
                    target.copy_(value)
                result = target
            outputs: tuple[torch.Tensor | None, ...] = (result,)
            written: tuple[int, ...] = (0,)
        elif mutation.writes:
            result, outputs, written = self._run_writing(func, name, definition, mutation, call, args, kwargs, skeleton)
        else:
            if skeleton and _any_meta((args, kwargs)):
                result = _run_on_meta(func, name, args, kwargs, mutation, None)
                if name in META_OUTPUT_MASKS:
                    result = _mask_outputs(result, call.args[META_OUTPUT_MASKS[name]])
            elif definition.kind is OpKind.NATIVE:
                result = func(*args, **kwargs)
            else:
                result = self._compute(definition, call.args, call.inputs, kwargs.get("device"))
            outputs, written = flatten_outputs(result), ()
        if self.tamper is not None and self.node_count == self.tamper.node and not skeleton:
            result, outputs = self._apply_tamper(0 in written, result, outputs)
        self.node_count += 1
        if self.keep_outputs:
            self.outputs_alive.extend(out for out in outputs if out is not None)
        if self.recorder is not None:
            self.recorder.record(name, call.args, call.inputs, outputs, written, refs)
        return result

    def _finish(self, result: Any, outputs: tuple[torch.Tensor | None, ...] | None, first_written: bool) -> Any:
        """The bookkeeping every node gets while training (no recorder): tamper, count, and keep alive
        when a tamper counts nodes."""
        if outputs is None and self.tamper is None and isinstance(result, torch.Tensor):  # the common case, in short
            self.node_count += 1
            return result
        if outputs is None:
            outputs = (result,) if first_written else flatten_outputs(result)
        if self.tamper is not None and self.node_count == self.tamper.node:
            result, outputs = self._apply_tamper(first_written, result, outputs)
        self.node_count += 1
        if self.keep_outputs:
            self.outputs_alive.extend(out for out in outputs if out is not None)
        return result

    def _run_defined(self, func: Any, definition: Any, mutation: Mutation, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """A DEFINED operator while training: bound straight from the call (`bind_call`), the same
        values its canonical form would give, so training and tracing compute the same bits."""
        bound, first = bind_call(func, args, kwargs)
        where = first if first is not None else torch.device(kwargs.get("device") or "cpu")
        return self.run_bound(definition, mutation, bound, where, first is None)

    def run_bound(self, definition: Any, mutation: Mutation, bound: dict[str, Any], where: torch.device, factory: bool) -> Any:
        """`_run_defined` once the call is bound (`bind_call`): `where` is the device of its first
        tensor argument, or where a `factory` (a call without tensor arguments) places its result."""
        prims = self.primitives_for(where)
        if mutation.self_only:
            value = definition.compute(prims, bound)
            target = bound["self"]
            if value is not target:
                target.copy_(value)
            return self._finish(target, None, True)
        if mutation.writes:
            result = process_writes(mutation, definition.compute(prims, bound), bound)
            returned = flatten_outputs(result)
            outputs = returned + compute_written_outputs(mutation, bound)
            written = compute_written_positions(mutation, len(returned), len(outputs))
            return self._finish(result, outputs, 0 in written)
        result = definition.compute(prims, bound)
        if factory and isinstance(result, torch.Tensor) and result.device != where:
            result = result.to(where)  # a factory: computed on the CPU, placed where the call asked
        return self._finish(result, None, False)

    def _run_writing(
        self, func: Any, name: str, definition: Any, mutation: Mutation, call: Any, args: tuple[Any, ...], kwargs: dict[str, Any], skeleton: bool
    ) -> tuple[Any, tuple[torch.Tensor | None, ...], tuple[int, ...]]:
        """An operator that writes arguments other than (or besides) its `self`: batch norm's running
        statistics, `_foreach_*_` lists, `out=`. Returns (torch's result, node outputs, written positions)."""
        bound = bind_arguments(call.args, call.inputs)
        if self.recorder is not None and not skeleton:
            for target in _written_targets(mutation, bound):
                self.recorder.before_write(target)
        if skeleton and _any_meta((args, kwargs)):
            result = _run_on_meta(func, name, args, kwargs, mutation, lambda: bound)
        elif definition.kind is OpKind.NATIVE:
            result = func(*args, **kwargs)
        else:
            where = call.inputs[0].device if call.inputs else torch.device(kwargs.get("device") or "cpu")
            result = process_writes(mutation, definition.compute(self.primitives_for(where), bound), bound)
        returned = flatten_outputs(result)
        outputs = returned + compute_written_outputs(mutation, bound)
        return result, outputs, compute_written_positions(mutation, len(returned), len(outputs))

    def _compute(self, definition: Any, canonical_args: dict[str, Any], inputs: tuple[torch.Tensor, ...], device: Any) -> Any:
        """A DEFINED or RANDOM operator's value. Placement is not part of the canonical arguments, so a
        factory without tensor inputs is computed on the CPU and moved where the call asked."""
        where = inputs[0].device if inputs else torch.device(device or "cpu")
        bound = bind_arguments(canonical_args, inputs)
        result = definition.compute(self.primitives_for(where), bound)
        if not inputs and isinstance(result, torch.Tensor) and result.device != where:
            result = result.to(where)
        return result

    def _apply_tamper(self, written: bool, result: Any, outputs: tuple[torch.Tensor | None, ...]) -> tuple[Any, tuple[torch.Tensor | None, ...]]:
        """Perturb output 0: in place when it is a written argument, else a changed copy replaces it
        (output 0 is then the operator's first return)."""
        first = outputs[0] if outputs else None
        if first is None:
            raise TraceError(f"cannot tamper with node {self.tamper.node if self.tamper else '?'}: it has no output")
        self.tampered = True
        if written:
            perturb(first)
            return result, outputs
        changed = first.clone()
        perturb(changed)
        new_outputs = (changed,) + outputs[1:]
        if isinstance(result, torch.Tensor):
            return changed, new_outputs
        return type(result)((changed, *result[1:])), new_outputs
