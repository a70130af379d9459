"""Step traces: the operator graph of one training step, one leaf per operator.

A node records what a referee needs to re-execute it and nothing else:

    op       'aten::mm.default'
    args     canonical non-tensor arguments (see protocol.ops.canonical), tensors as {"t": i}
    inputs   where each tensor input comes from, in placeholder order:
               ["s", k]      the k-th named tensor of s_t (canonical name order)
               ["n", j, o]   output o of an earlier node j
               ["c", hex]    a small constant, by its full canonical encoding
    outputs  per output: [dtype code, shape, digest hex] or null for an absent output; the digest is
             "" for the outputs of a *derived* operator (`DERIVED_OPS`: views, detach, clone, …), whose
             values are a cheap function of their one input: they are not hashed, and whoever needs
             them re-applies the operator to the nearest hashed ancestor (`compute_derivation`)

Which outputs a node has (the mutation rule). An operator may write some of its arguments: those
its schema marks `(a!)` (`alias_info.is_write`: `self` of `add_`, every element of `_foreach_add_`'s
`self` list, `out=` of `maximum.out`) and those listed in `protocol.ops.canonical.UNDECLARED_WRITES`
(batch norm's running statistics). A node's outputs are, in order:

    1. the schema's returns, flattened (a `Tensor[]` return adds each element; an absent optional
       return is null); a return that aliases a written argument is that argument, after the write;
    2. then each written argument the operator does not return, in schema order; a list argument adds
       each element in list order, an absent optional argument adds null.

So `add_` has one output (its `self`, returned), `_foreach_mul_.Scalar` over n tensors has n (it
returns nothing), `native_batch_norm` has five (out, save_mean, save_invstd, running_mean,
running_var). A written argument's new value is hashed like any output, and later reads refer to
this node (["n", j, o]), never to the tensor's earlier producer. A definition computes every output
from its inputs as they were when the operator was called, then the arguments are written
(`protocol.ops.canonical.process_writes`); `protocol.ops.execute` returns the same outputs.

A node's *structure* is the same without output digests; the skeleton of a step is the list of
structures plus the bindings of s_{t+1}: for each name (canonical order) the ref that produced it.
Leaf bytes are the canonical JSON of the node. The ops tree is the Merkle tree over the leaves.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import blake3

from protocol.merkle import MerkleTree, compute_tree
from protocol.signing import compute_canonical_json
from protocol.types import DIGEST_SIZE, Root

Ref = tuple[Any, ...]
MAX_CONSTANT_ELEMENTS = 64  # a tensor of unknown origin may enter a trace inline only when this small

DERIVED: Root = Root(b"")
"""The digest entry of a derived operator's output: not hashed, recomputed from its input."""

DERIVED_OPS = frozenset(
    f"aten::{name}"
    for name in ["view.default", "_unsafe_view.default", "reshape.default", "t.default", "transpose.int", "permute.default", "expand.default", "unsqueeze.default", "squeeze.dim", "squeeze.dims", "squeeze.default", "select.int", "slice.Tensor", "split.Tensor", "split_with_sizes.default", "unbind.int", "alias.default", "detach.default", "clone.default", "contiguous.default"]
)
"""Operators of one tensor input whose outputs are that input's values rearranged: exact, cheap, and
most of a step's bytes (a transformer step's views alone are half of what it would hash)."""


SHAPE_ONLY_OPS = frozenset(
    f"aten::{name}"
    for name in ["ones_like.default", "zeros_like.default", "empty_like.default", "full_like.default", "rand_like.default", "randn_like.default", "new_empty.default", "new_empty_strided.default", "new_zeros.default", "new_ones.default", "new_full.default"]
)
"""Operators whose outputs depend on their inputs' dtypes and shapes but not on their values."""


def compute_derived_value(nodes: Sequence[NodeStructure], chain: Sequence[tuple[int, int]], base: Any) -> Any:
    """Re-apply the derived operators of `chain` (from `compute_derivation`) to the base tensor.

    Each operator gets a contiguous input: a view's values are its input's values in row-major
    order, whatever the strides, so the result is the same values the prover had, and views that
    needed a particular layout (after a contiguous clone) always succeed."""
    from protocol.ops import execute

    value = base
    for index, output in chain:
        produced = execute(nodes[index].op, nodes[index].args, [value.contiguous()])
        value = produced[output] if output < len(produced) else None
        if value is None:
            raise ValueError(f"derived node {index} has no output {output}")
    return value.contiguous()


def is_derived(structure: NodeStructure) -> bool:
    """A node whose outputs are not hashed but recomputed from its single input."""
    return structure.op in DERIVED_OPS and len(structure.inputs) == 1 and structure.inputs[0][0] in ("n", "s")


def compute_derivation(nodes: Sequence[NodeStructure], ref: Ref) -> tuple[Ref, list[tuple[int, int]]]:
    """Follow `ref` back through derived nodes to the hashed tensor it comes from.

    Returns (the base ref: a state tensor or a hashed node output, and the (node, output) steps to
    re-apply to the base, first to last)."""
    chain: list[tuple[int, int]] = []
    while ref[0] == "n" and ref[1] < len(nodes) and is_derived(nodes[ref[1]]):
        chain.append((ref[1], ref[2]))
        ref = nodes[ref[1]].inputs[0]
    chain.reverse()
    return ref, chain


class TraceFormatError(ValueError):
    """Bytes that are not a well-formed trace leaf."""


@dataclass(frozen=True)
class OutputMeta:
    dtype: int  # protocol.encoding dtype code
    shape: tuple[int, ...]


@dataclass(frozen=True)
class NodeStructure:
    """One operator call without values: the skeleton's unit."""

    op: str
    args: dict[str, Any]
    inputs: tuple[Ref, ...]
    outputs: tuple[OutputMeta | None, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "op": self.op,
            "args": self.args,
            "in": [list(ref) for ref in self.inputs],
            "out": [None if meta is None else [meta.dtype, list(meta.shape)] for meta in self.outputs],
        }


@dataclass(frozen=True)
class TraceNode:
    """A node with the digests of its outputs (None where an output is absent)."""

    structure: NodeStructure
    digests: tuple[Root | None, ...]

    def to_json(self) -> dict[str, Any]:
        body = self.structure.to_json()
        body["out"] = [
            None if meta is None else [meta.dtype, list(meta.shape), bytes(digest or b"").hex()]
            for meta, digest in zip(self.structure.outputs, self.digests, strict=True)
        ]
        return body


def encode_node(node: TraceNode) -> bytes:
    """The leaf bytes of a node."""
    return compute_canonical_json(node.to_json())


def _as_ref(value: Any) -> Ref:
    if not isinstance(value, list) or not value:
        raise TraceFormatError("an input ref is a non-empty list")
    kind = value[0]
    if kind == "s" and len(value) == 2 and type(value[1]) is int and value[1] >= 0:
        return ("s", value[1])
    if kind == "n" and len(value) == 3 and all(type(v) is int and v >= 0 for v in value[1:]):
        return ("n", value[1], value[2])
    if kind == "c" and len(value) == 2 and isinstance(value[1], str):
        return ("c", value[1])
    raise TraceFormatError(f"bad input ref {value!r}")


def decode_node(leaf: bytes) -> TraceNode:
    """Parse leaf bytes; TraceFormatError on anything malformed or not canonical."""
    try:
        body = json.loads(leaf)
    except (ValueError, UnicodeDecodeError) as error:
        raise TraceFormatError("leaf is not JSON") from error
    if not isinstance(body, dict) or set(body) != {"op", "args", "in", "out"}:
        raise TraceFormatError("leaf must have exactly op, args, in, out")
    if not isinstance(body["op"], str) or not isinstance(body["args"], dict):
        raise TraceFormatError("bad op or args")
    if not isinstance(body["in"], list) or not isinstance(body["out"], list):
        raise TraceFormatError("bad inputs or outputs")
    outputs: list[OutputMeta | None] = []
    digests: list[Root | None] = []
    for entry in body["out"]:
        if entry is None:
            outputs.append(None)
            digests.append(None)
            continue
        if not (isinstance(entry, list) and len(entry) == 3 and type(entry[0]) is int and isinstance(entry[1], list)):
            raise TraceFormatError("bad output entry")
        if not all(type(size) is int and size >= 0 for size in entry[1]) or not isinstance(entry[2], str):
            raise TraceFormatError("bad output shape or digest")
        try:
            digest = bytes.fromhex(entry[2])
        except ValueError as error:
            raise TraceFormatError("output digest is not hex") from error
        if len(digest) not in (0, DIGEST_SIZE):
            raise TraceFormatError("output digest has the wrong length")
        outputs.append(OutputMeta(entry[0], tuple(entry[1])))
        digests.append(Root(digest))
    structure = NodeStructure(body["op"], body["args"], tuple(_as_ref(ref) for ref in body["in"]), tuple(outputs))
    node = TraceNode(structure, tuple(digests))
    if encode_node(node) != leaf:
        raise TraceFormatError("leaf is not in canonical form")
    return node


@dataclass(frozen=True)
class Skeleton:
    """A step without values: node structures and the sources of s_{t+1}'s tensors."""

    nodes: tuple[NodeStructure, ...]
    bindings: tuple[tuple[str, Ref], ...]  # (name, source ref) in canonical name order of s_{t+1}


def compute_influential_outputs(skeleton: Skeleton) -> frozenset[tuple[int, int]]:
    """The (node, output) pairs whose values reach s_{t+1}: those the bindings name, and every output
    the nodes making them read, transitively (not through `SHAPE_ONLY_OPS`). A change to any other output (the loss, which backward
    never reads) leaves the state after the step unchanged."""
    reached: set[tuple[int, int]] = set()
    pending = [(ref[1], ref[2]) for _, ref in skeleton.bindings if ref[0] == "n"]
    while pending:
        output = pending.pop()
        if output in reached or not 0 <= output[0] < len(skeleton.nodes):
            continue
        reached.add(output)
        node = skeleton.nodes[output[0]]
        if node.op not in SHAPE_ONLY_OPS:
            pending.extend((ref[1], ref[2]) for ref in node.inputs if ref[0] == "n")
    return frozenset(reached)


@dataclass(frozen=True)
class StepTrace:
    """One step's full trace: nodes with digests, the bindings, and the digests of s_t and s_{t+1}."""

    step: int
    nodes: tuple[TraceNode, ...]
    bindings: tuple[tuple[str, Ref], ...]
    state_before: dict[str, Root]  # name → digest of s_t's tensors
    state_after: dict[str, Root]  # name → digest of s_{t+1}'s tensors
    hint: bytes = b""  # the structure hint of s_t (protocol.hint)

    @property
    def skeleton(self) -> Skeleton:
        return Skeleton(tuple(node.structure for node in self.nodes), self.bindings)

    def ops_tree(self) -> MerkleTree:
        return compute_tree([encode_node(node) for node in self.nodes])


def compute_trace_root(state_before: bytes, state_after: bytes, ops_root: bytes, num_ops: int) -> Root:
    """One digest for a whole step: s_t, s_{t+1}, the ops tree and the node count."""
    body = {"state_before": bytes(state_before), "state_after": bytes(state_after), "ops_root": bytes(ops_root), "num_ops": num_ops}
    return Root(blake3.blake3(b"pinpoint/v1/trace-root\n" + compute_canonical_json(body)).digest())
