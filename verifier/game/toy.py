"""A toy machine: a small, deterministic, real computation to play the game over without training.

A state is a few named int64 tensors: `counter` (shape ()), `data` (a constant, shape (width,)) and
`w0 … w{m-3}` (shape (width,)). A step runs a fixed program of N operators on 31-bit integers; op 0
increments the counter, op 1 reads w0, every later op's first input is the previous op's output, and
the last m-2 ops write the w's. Second inputs come from s_t or op 0 only, and every operator is a
bijection of its first input, so a wrong value at any op changes the state after the step. The program is the skeleton; `ToyReferee` re-executes one
operator from evidence exactly as a real referee would.

    op leaf     canonical JSON {"op": name, "arg": c, "in": [["s", k] | ["n", j], …], "out": [shape, digest]}
    state leaf  canonical JSON {"name": name, "digest": hex}
    tensors     protocol.encoding's canonical encoding of int64 tensors

`ToyProvider` is an honest party's data, or a consistent liar's when given a `ToyFault`: it computes
step t wrong in one way and every later step correctly from its wrong state.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property

import blake3
import numpy as np
import torch

from protocol.encoding import EncodingError, compute_digest_of_encoding, decode_tensor, encode_tensor
from protocol.game.commitments import TraceCommitment
from protocol.game.enums import Pair, TreeKind
from protocol.game.evidence import (
    Evidence,
    EvidenceRequest,
    LeafDispute,
    MissingEvidence,
    OpLeafRequest,
    StateLeafRequest,
    StepStructure,
    TensorRequest,
)
from protocol.merkle import MerkleTree, compute_tree
from protocol.signing import compute_canonical_json
from protocol.types import Root, StepIndex

MASK = (1 << 31) - 1  # values stay in [0, 2**31) so products of two fit in int64
UNARY = ("inc", "scale", "roll")
BINARY = ("add", "sub", "xor", "mul")
FAULT_KINDS = ("value", "operator", "argument", "source", "shape", "state", "initial", "extra_op")
Ref = tuple[str, int]  # ("s", leaf index of s_t) or ("n", index of an earlier op)


def compute_op(name: str, arg: int, inputs: Sequence[np.ndarray]) -> np.ndarray:
    """One toy operator on int64 arrays with values in [0, 2**31); each is a bijection of inputs[0]."""
    a = inputs[0]
    if name == "inc":
        out = a + arg
    elif name == "scale":
        out = a * (2 * arg + 1) + arg
    elif name == "roll":
        out = np.roll(a, 1) + arg
    elif name == "add":
        out = a + inputs[1] + arg
    elif name == "sub":
        out = a - inputs[1] + arg
    elif name == "xor":
        out = (a ^ inputs[1]) + arg
    elif name == "mul":
        out = a * (2 * inputs[1] + 1) + arg
    else:
        raise ValueError(f"unknown toy operator {name!r}")
    return np.asarray(out & MASK, dtype=np.int64)


def encode_array(array: np.ndarray) -> bytes:
    return encode_tensor(torch.from_numpy(np.array(array, dtype=np.int64)))  # a copy: contiguous, 0-d kept


def decode_array(data: bytes) -> np.ndarray:
    tensor = decode_tensor(data)
    if tensor.dtype != torch.int64:
        raise EncodingError("toy tensors are int64")
    return tensor.numpy()


def compute_op_leaf(name: str, arg: int, inputs: Sequence[Ref], output: np.ndarray, digest: bytes) -> bytes:
    return compute_canonical_json({"op": name, "arg": arg, "in": [list(ref) for ref in inputs],
                                   "out": [list(output.shape), bytes(digest).hex()]})


def compute_state_leaf(name: str, digest: bytes) -> bytes:
    return compute_canonical_json({"name": name, "digest": bytes(digest).hex()})


def get_leaf_digest(leaf: bytes) -> Root:
    """The output digest an op leaf names, or the digest a state leaf names; ValueError if malformed."""
    body = json.loads(leaf)
    digest = body["out"][1] if "out" in body else body["digest"]
    raw = bytes.fromhex(digest)
    if len(raw) != 32:
        raise ValueError("digest must be 32 bytes")
    return Root(raw)


@dataclass(frozen=True)
class ToyConfig:
    """One toy job."""

    steps: int = 8  # T: the run has states s_0 … s_T
    num_ops: int = 12  # N: operators per step (at least num_state)
    num_state: int = 4  # m: tensors in a state: counter, data, w0 … w{m-3} (at least 3)
    width: int = 3  # elements of each tensor but the counter
    seed: int = 0  # program, constants and initial values


@dataclass(frozen=True)
class ToyOp:
    name: str
    arg: int
    inputs: tuple[Ref, ...]


@dataclass(frozen=True)
class ToyFault:
    """How a consistent liar gets step `step` wrong (or s_0, for kind "initial")."""

    kind: str  # one of FAULT_KINDS
    step: int = 0
    node: int = 0  # the op (value, operator, argument, source, shape), taken modulo N
    leaf: int = 0  # the state tensor (state, initial), taken modulo m


@dataclass(frozen=True)
class StepRun:
    """Everything step t computed: ops as executed, their outputs, and the state after."""

    ops: tuple[ToyOp, ...]
    outputs: tuple[np.ndarray, ...]
    bindings: tuple[Ref, ...]  # per state leaf of s_{t+1}: the op that wrote it, or ("s", k) unchanged
    state_after: tuple[np.ndarray, ...]


class ToyMachine:
    """The job: its program (the skeleton), initial state and step function."""

    def __init__(self, config: ToyConfig) -> None:
        if config.num_state < 3 or config.num_ops < config.num_state or config.steps < 1 or config.width < 1:
            raise ValueError(f"a toy job needs num_state >= 3, num_ops >= num_state, steps >= 1: {config}")
        self.config = config
        self.names = ("counter", "data", *(f"w{i}" for i in range(config.num_state - 2)))
        self.job_id = blake3.blake3(b"pinpoint/v1/toy-job\n" + compute_canonical_json(config.__dict__)).digest()
        rng = np.random.default_rng(config.seed)
        n, m = config.num_ops, config.num_state
        ops = [ToyOp("inc", 1, (("s", 0),))]
        for j in range(1, n):
            first: Ref = ("s", 2) if j == 1 else ("n", j - 1)
            # Second inputs never lie on the chain of first inputs, so nothing downstream can cancel a change.
            sources: list[Ref] = [("s", k) for k in range(m)] + [("n", 0)]
            if rng.random() < 0.3:
                ops.append(ToyOp(str(rng.choice(UNARY)), int(rng.integers(0, 1 << 16)), (first,)))
            else:
                second = sources[int(rng.integers(0, len(sources)))]
                ops.append(ToyOp(str(rng.choice(BINARY)), int(rng.integers(0, 1 << 16)), (first, second)))
        self.program = tuple(ops)
        writers = {0: ("n", 0), 1: ("s", 1)}
        writers.update({2 + i: ("n", n - (m - 2) + i) for i in range(m - 2)})
        self.bindings: tuple[Ref, ...] = tuple(writers[k] for k in range(m))
        self._initial = (np.array(0, dtype=np.int64), *(rng.integers(0, MASK, size=config.width, dtype=np.int64)
                                                        for _ in range(m - 1)))

    def compute_initial_state(self) -> tuple[np.ndarray, ...]:
        return tuple(array.copy() for array in self._initial)

    def compute_state_leaves(self, state: Sequence[np.ndarray]) -> list[bytes]:
        return [compute_state_leaf(name, compute_digest_of_encoding(encode_array(array)))
                for name, array in zip(self.names, state, strict=True)]

    def compute_state_root(self, state: Sequence[np.ndarray]) -> Root:
        return compute_tree(self.compute_state_leaves(state)).root

    def run_step(self, state: Sequence[np.ndarray], fault: ToyFault | None = None) -> StepRun:
        """Step t from s_t; with a fault, the step the liar computes instead."""
        ops: list[ToyOp] = []
        outputs: list[np.ndarray] = []
        bindings = list(self.bindings)

        def value(ref: Ref) -> np.ndarray:
            return state[ref[1]] if ref[0] == "s" else outputs[ref[1]]

        target = None if fault is None else fault.node % len(self.program)
        for j, op in enumerate(self.program):
            out = compute_op(op.name, op.arg, [value(ref) for ref in op.inputs])
            if fault is not None and j == target:
                op, out = self._apply_fault(fault, op, out, value, j)
            ops.append(op)
            outputs.append(out)
        if fault is not None and fault.kind == "extra_op":
            last = len(ops) - 1
            ops.append(ToyOp("inc", 1, (("n", last),)))
            outputs.append(compute_op("inc", 1, [outputs[last]]))
            bindings[len(bindings) - 1] = ("n", len(ops) - 1)
        after = [value(ref) if ref[0] == "s" else outputs[ref[1]] for ref in bindings]
        if fault is not None and fault.kind == "state":
            k = fault.leaf % len(after)
            after[k] = np.asarray((after[k] + 1) & MASK, dtype=np.int64)
        return StepRun(tuple(ops), tuple(outputs), tuple(bindings), tuple(after))

    def _apply_fault(self, fault: ToyFault, op: ToyOp, out: np.ndarray, value, j: int) -> tuple[ToyOp, np.ndarray]:
        inputs = [value(ref) for ref in op.inputs]
        if fault.kind == "operator":
            for name in (UNARY if len(op.inputs) == 1 else BINARY):
                candidate = compute_op(name, op.arg, inputs)
                if name != op.name and not np.array_equal(candidate, out):
                    return ToyOp(name, op.arg, op.inputs), candidate
        elif fault.kind == "argument":
            return ToyOp(op.name, op.arg + 1, op.inputs), compute_op(op.name, op.arg + 1, inputs)
        elif fault.kind == "source":
            position = len(op.inputs) - 1
            sources: list[Ref] = [("s", k) for k in range(len(self.names))] + [("n", i) for i in range(j)]
            for ref in sources:
                if ref == op.inputs[position]:
                    continue
                moved = list(inputs)
                moved[position] = value(ref)
                try:
                    candidate = compute_op(op.name, op.arg, moved)
                except ValueError:
                    continue
                if candidate.shape == out.shape and not np.array_equal(candidate, out):
                    refs = list(op.inputs)
                    refs[position] = ref
                    return ToyOp(op.name, op.arg, tuple(refs)), candidate
        elif fault.kind == "shape":
            return op, out.reshape(out.shape + (1,))
        elif fault.kind != "value":
            return op, out  # state, initial and extra_op faults act elsewhere
        return op, np.asarray((out + 1) & MASK, dtype=np.int64)  # value fault, and the fallback of the others


class ToyReferee:
    """The toy job's referee: structure from the program, one operator re-executed from evidence."""

    def __init__(self, machine: ToyMachine) -> None:
        self.machine = machine

    def _check_job(self, job_id: bytes) -> None:
        if bytes(job_id) != self.machine.job_id:
            raise ValueError("this referee judges another job")

    def compute_initial_state_root(self, job_id: bytes) -> Root:
        self._check_job(job_id)
        return self.machine.compute_state_root(self.machine.compute_initial_state())

    def is_valid_hint(self, job_id: bytes, state_before: Root, hint: bytes) -> bool:
        return bytes(job_id) == self.machine.job_id  # the toy's structure is the same at every step: no hint needed

    def compute_structure(self, job_id: bytes, step: StepIndex, state_before: Root, hints: Pair[bytes]) -> StepStructure:
        self._check_job(job_id)
        return StepStructure(len(self.machine.program), len(self.machine.names))

    def _sources(self, dispute: LeafDispute) -> tuple[Ref, ...] | None:
        if dispute.tree is TreeKind.OPS:
            if dispute.index >= len(self.machine.program):
                return None
            return self.machine.program[dispute.index].inputs
        if dispute.index >= len(self.machine.bindings):
            return None
        return (self.machine.bindings[dispute.index],)

    def get_evidence_requests(self, dispute: LeafDispute) -> list[EvidenceRequest]:
        sources = self._sources(dispute) or ()
        return [OpLeafRequest(ref[1]) if ref[0] == "n" else StateLeafRequest(ref[1]) for ref in sources]

    def compute_expected_leaf(self, dispute: LeafDispute, evidence: Evidence) -> bytes | MissingEvidence:
        self._check_job(dispute.job_id)
        sources = self._sources(dispute)
        if sources is None:
            return b""  # no such leaf in the true step: neither party can match
        leaves = [evidence.op_leaves.get(ref[1]) if ref[0] == "n" else evidence.state_before_leaves.get(ref[1])
                  for ref in sources]
        missing_leaves = tuple(r for r in self.get_evidence_requests(dispute) if not evidence.has(r))
        if missing_leaves:
            return MissingEvidence(missing_leaves)
        try:
            digests = [get_leaf_digest(leaf or b"") for leaf in leaves]
        except (ValueError, KeyError, IndexError, TypeError):
            return b""  # agreed evidence no honest party would have committed to
        if dispute.tree is TreeKind.STATE_AFTER:
            name = self.machine.names[dispute.index]
            return compute_state_leaf(name, digests[0]) if sources[0][0] == "n" else leaves[0] or b""
        missing = tuple(TensorRequest(d) for d in dict.fromkeys(digests) if d not in evidence.tensors)
        if missing:
            return MissingEvidence(missing)
        op = self.machine.program[dispute.index]
        try:
            inputs = [decode_array(evidence.tensors[d]) for d in digests]
            out = compute_op(op.name, op.arg, inputs)
        except (EncodingError, ValueError, TypeError):
            return b""
        digest = compute_digest_of_encoding(encode_array(out))
        return compute_op_leaf(op.name, op.arg, op.inputs, out, digest)


@dataclass(frozen=True)
class _StepData:
    commitment: TraceCommitment
    op_leaves: tuple[bytes, ...]
    ops_tree: MerkleTree
    tensors: dict[Root, bytes]


class ToyProvider:
    """A party's data for a toy job: honest, or a consistent liar with a `ToyFault`."""

    def __init__(self, machine: ToyMachine, fault: ToyFault | None = None) -> None:
        if fault is not None and fault.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {fault.kind!r}; choose one of {FAULT_KINDS}")
        if fault is not None and not 0 <= fault.step < machine.config.steps:
            raise ValueError(f"fault step {fault.step} is outside [0, {machine.config.steps})")
        self.machine = machine
        self.fault = fault
        self._steps: dict[int, _StepData] = {}

    def _fault_at(self, step: int) -> ToyFault | None:
        fault = self.fault
        if fault is None or fault.kind == "initial" or fault.step != step:
            return None
        return fault

    @cached_property
    def _states(self) -> list[tuple[np.ndarray, ...]]:
        state = self.machine.compute_initial_state()
        if self.fault is not None and self.fault.kind == "initial":
            k = self.fault.leaf % len(state)
            state = tuple(np.asarray((a + 1) & MASK, dtype=np.int64) if i == k else a for i, a in enumerate(state))
        states = [state]
        for step in range(self.machine.config.steps):
            state = self.machine.run_step(state, self._fault_at(step)).state_after
            states.append(state)
        return states

    @cached_property
    def _state_leaves(self) -> list[list[bytes]]:
        return [self.machine.compute_state_leaves(state) for state in self._states]

    @cached_property
    def _state_trees(self) -> list[MerkleTree]:
        return [compute_tree(leaves) for leaves in self._state_leaves]

    @cached_property
    def _chain(self) -> MerkleTree:
        return compute_tree([bytes(tree.root) for tree in self._state_trees])

    def _step(self, step: int) -> _StepData:
        """Regenerate step t with its full trace (the expensive part of a real provider)."""
        if step not in self._steps:
            before = self._states[step]
            run = self.machine.run_step(before, self._fault_at(step))
            tensors = {compute_digest_of_encoding(data): data for data in map(encode_array, before)}
            leaves = []
            for op, out in zip(run.ops, run.outputs, strict=True):
                data = encode_array(out)
                digest = compute_digest_of_encoding(data)
                tensors[digest] = data
                leaves.append(compute_op_leaf(op.name, op.arg, op.inputs, out, digest))
            ops_tree = compute_tree(leaves)
            commitment = TraceCommitment(
                job_id=self.machine.job_id, step=StepIndex(step), state_before=self._state_trees[step].root,
                state_after=self._state_trees[step + 1].root, ops_root=ops_tree.root, num_ops=len(leaves),
                num_state_after=len(self._state_leaves[step + 1]),
            )
            self._steps[step] = _StepData(commitment, tuple(leaves), ops_tree, tensors)
        return self._steps[step]

    def get_job_id(self) -> bytes:
        return self.machine.job_id

    def get_steps(self) -> int:
        return self.machine.config.steps

    def get_chain_tree(self) -> MerkleTree:
        return self._chain

    def get_state_root(self, index: int) -> Root:
        return self._state_trees[index].root

    def get_state_tree(self, index: int) -> MerkleTree:
        return self._state_trees[index]

    def get_state_leaf(self, index: int, leaf: int) -> bytes:
        return self._state_leaves[index][leaf]

    def get_trace_commitment(self, step: StepIndex) -> TraceCommitment:
        return self._step(step).commitment

    def get_ops_tree(self, step: StepIndex) -> MerkleTree:
        return self._step(step).ops_tree

    def get_op_leaf(self, step: StepIndex, index: int) -> bytes:
        return self._step(step).op_leaves[index]

    def get_tensor(self, step: StepIndex, digest: Root) -> bytes | None:
        return self._step(step).tensors.get(Root(bytes(digest)))
