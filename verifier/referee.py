"""The referee for training steps: re-executes one operator on CPU from protocol's reference.

It implements `protocol.game.interfaces.Referee` for pinpoint's step traces. It trusts neither party:

- the true structure of step t (which operator, arguments, input refs, output shapes, and which node
  produces each tensor of s_{t+1}) comes from the skeleton, which it computes itself on meta tensors.
  The skeleton depends on s_t's layout and one-element tensors only, and those it takes from a
  structure hint (`protocol.hint`) that opens the agreed s_t's root: proven, so true whoever sent it.
  The game refuses a trace commitment whose hint is not proven (`is_valid_hint`), so by the time the
  referee is asked about step t it holds a proven layout and runs one meta step: its work is bounded by
  the size of s_t and of one step, whatever t and T are. When the proven s_t admits no step (a step
  counter other than t, a t the job does not have, shapes the task's model refuses), no claim about
  the step can be right. `replay_skeleton` (from s_0, linear in t) is for tools that hold no hint;
- input digests come from evidence the game has already checked against the agreed prefix of the ops
  tree or against the agreed s_t; input tensors are accepted only with a matching digest; an input
  made by derived (view) operators, which are not hashed, is rebuilt from its hashed ancestor by
  re-applying them (`protocol.trace.compute_derived_value`);
- the operator runs with `protocol.ops.execute` and the reference primitives.

The correct leaf is the skeleton's structure with the digests of the recomputed outputs; a party
wins exactly when its leaf equals it. Everything is deterministic, so a transcript can be
re-checked by a fresh referee.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import torch

from protocol.encoding import EncodingError, compute_digest, decode_tensor
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
from protocol.hint import StateOpening, open_structure_hint
from protocol.job import JobSpec, compute_job_id
from protocol.ops import execute
from protocol.recording import TraceError
from protocol.session import Session, StateError, compute_skeleton, record_step
from protocol.state import StateLeafError, compute_state_leaf, decode_state_leaf
from protocol.task import Task, TaskError
from protocol.trace import (
    DERIVED,
    NodeStructure,
    Ref,
    Skeleton,
    TraceFormatError,
    TraceNode,
    compute_derivation,
    compute_derived_value,
    decode_node,
    encode_node,
    is_derived,
)
from protocol.types import DIGEST_SIZE, Root, StepIndex

MAX_CACHED_OPENINGS = 8  # proven (or refused) hints kept: a game has two


class RefereeError(ValueError):
    """A question about another job than the referee's, or one the game never asks."""


class TraceReferee:
    """Decides leaf disputes about one job's training steps."""

    def __init__(self, job: JobSpec, task: Task) -> None:
        """A referee for `job` with the job's task, which the caller brings (the user's own file, or
        a built-in preset: `prover.presets.resolve_task`), never a file from a party. The task's
        digest and data root are checked against the job. The referee runs protocol code only."""
        if task.digest.hex() != job.task:
            raise TaskError(f"task {task.name} is not this job's task: this referee cannot judge it")
        self.job = job
        self.task = task
        if self.task.data_root().hex() != job.data:
            raise TaskError(f"the data set task {self.task.name} loads here is not the job's: this referee cannot judge it")
        self.job_id = compute_job_id(job)
        self._skeletons: dict[int, Skeleton] = {}  # replayed from s_0: true whatever anyone says
        self._openings: dict[tuple[bytes, bytes], StateOpening | None] = {}  # (s_t root, hint) -> what it proves
        self._proven: dict[tuple[int, bytes], Skeleton | None] = {}  # (t, s_t root) -> skeleton (None: no step)
        self._meta: Session | None = None
        self.replayed_steps = 0  # meta steps run so far (one per proven s_t; t+1 for a replay to step t)
        self.seconds_executing = 0.0  # time spent re-executing operators (the referee's real work)
        self.last_op: str | None = None

    def _check_job(self, job_id: bytes) -> None:
        if bytes(job_id) != self.job_id:
            raise RefereeError(f"this referee decides job {self.job_id.hex()}, not {bytes(job_id).hex()}")

    # --- structure --------------------------------------------------------------------------------

    def compute_initial_state_root(self, job_id: bytes) -> Root:
        self._check_job(job_id)
        return Root(bytes.fromhex(self.job.initial))  # the job binds s_0: nobody's computation decides it

    def _open(self, state_before: bytes, hint: bytes) -> StateOpening | None:
        key = (bytes(state_before), bytes(hint))
        if key not in self._openings:
            if len(self._openings) >= MAX_CACHED_OPENINGS:
                self._openings.pop(next(iter(self._openings)))  # a game has two hints: keep a few, not all
            self._openings[key] = open_structure_hint(hint, state_before)
        return self._openings[key]

    def is_valid_hint(self, job_id: bytes, state_before: Root, hint: bytes) -> bool:
        """Whether `hint` opens the state root `state_before` (`protocol.hint`); never raises on a bad hint."""
        self._check_job(job_id)
        return self._open(state_before, hint) is not None

    def get_skeleton(self, step: int, state_before: bytes, hints: Pair[bytes]) -> Skeleton | None:
        """Skeleton of step `step` from s_t's layout as a hint proven against `state_before` (the agreed
        s_t) states it: one meta step, whatever t is. None when the proven s_t admits no step t. A
        RefereeError when neither hint is proven (the game never asks then: it refuses such hints)."""
        opening = next((o for o in (self._open(state_before, hint) for hint in dict.fromkeys(hints)) if o is not None), None)
        if opening is None:
            raise RefereeError(f"no structure hint of s_{step} is proven against {bytes(state_before).hex()}")
        key = (step, bytes(state_before))  # every proven hint of one root states the same layout
        if key not in self._proven:
            self._proven[key] = self._compute_proven_skeleton(step, opening)
        return self._proven[key]

    def _compute_proven_skeleton(self, step: int, opening: StateOpening) -> Skeleton | None:
        if not 0 <= step < self.job.steps:
            return None  # the job has no step t: no claim about one can be right
        scalars = opening.get_scalars()
        counter = scalars.get("step")
        if counter is None or counter.dtype != torch.int64 or int(counter) != step:
            return None  # the agreed s_t is not a state before step t: nobody's step t can follow from it
        self.replayed_steps += 1
        try:
            return compute_skeleton(self.job, self.task, opening.get_shapes(), scalars)
        except (StateError, TaskError, TraceError, RuntimeError, ValueError, TypeError, ArithmeticError):
            return None  # a layout or counters the task's step refuses: no true step follows from them

    def replay_skeleton(self, step: int) -> Skeleton:
        """Skeleton of step `step` replayed from s_0 (cached), needing nobody's word: time and memory
        linear in t. For tools that hold no hint (the game's referee never replays)."""
        if step in self._skeletons:
            return self._skeletons[step]
        if self._meta is None or int(self._meta.step) > step:
            self._meta = Session(self.job, self.task, meta=True)
        while int(self._meta.step) <= step:
            current = int(self._meta.step)
            try:
                self._skeletons[current] = record_step(self._meta, skeleton=True).skeleton
            except BaseException:
                self._meta = None  # a step that failed half way: the next replay starts from s_0
                raise
            self.replayed_steps += 1
        return self._skeletons[step]

    def compute_structure(self, job_id: bytes, step: StepIndex, state_before: Root, hints: Pair[bytes]) -> StepStructure:
        self._check_job(job_id)
        skeleton = self.get_skeleton(step, state_before, hints)
        if skeleton is None:
            return StepStructure(num_ops=0, num_state_after=0)  # no step: every claimed count (>= 1) is wrong
        return StepStructure(num_ops=len(skeleton.nodes), num_state_after=len(skeleton.bindings))

    # --- evidence ---------------------------------------------------------------------------------

    @staticmethod
    def _requests_for_ref(ref: Ref) -> list[EvidenceRequest]:
        if ref[0] == "n":
            return [OpLeafRequest(ref[1])]
        if ref[0] == "s":
            return [StateLeafRequest(ref[1])]
        return []

    def _refs(self, dispute: LeafDispute) -> list[Ref] | None:
        """The refs whose values decide the disputed leaf (None: no such leaf in the true step)."""
        skeleton = self.get_skeleton(dispute.step, dispute.state_before, dispute.hints)
        if skeleton is None:
            return None
        if dispute.tree is TreeKind.OPS:
            if dispute.index >= len(skeleton.nodes):
                return None
            structure = skeleton.nodes[dispute.index]
            return [] if is_derived(structure) else list(structure.inputs)
        if dispute.index >= len(skeleton.bindings):
            return None
        return [skeleton.bindings[dispute.index][1]]

    def get_evidence_requests(self, dispute: LeafDispute) -> Sequence[EvidenceRequest]:
        self._check_job(dispute.job_id)
        skeleton = self.get_skeleton(dispute.step, dispute.state_before, dispute.hints)
        if skeleton is None:
            return []  # no true leaf: nothing to ask for
        nodes = skeleton.nodes
        requests: list[EvidenceRequest] = []
        for ref in self._refs(dispute) or []:
            base, _ = compute_derivation(nodes, ref)
            for request in self._requests_for_ref(base):
                if request not in requests:
                    requests.append(request)
        return requests

    def _digest_of(self, ref: Ref, evidence: Evidence) -> bytes | EvidenceRequest:
        """The digest a hashed ref names, from checked evidence (or the request that would give it)."""
        if ref[0] == "n":
            leaf = evidence.op_leaves.get(ref[1])
            if leaf is None:
                return OpLeafRequest(ref[1])
            try:
                digests = decode_node(leaf).digests
            except TraceFormatError:
                return b""  # an agreed leaf that does not parse: nothing can depend on it
            digest = digests[ref[2]] if ref[2] < len(digests) else None
            return bytes(digest) if digest is not None else b""
        if ref[0] == "s":
            leaf = evidence.state_before_leaves.get(ref[1])
            if leaf is None:
                return StateLeafRequest(ref[1])
            try:
                return bytes(decode_state_leaf(leaf)[1])
            except StateLeafError:
                return b""
        return bytes(compute_digest(decode_tensor(bytes.fromhex(ref[1]))))

    def _value_of(self, nodes: Sequence[NodeStructure], ref: Ref, evidence: Evidence) -> torch.Tensor | EvidenceRequest | None:
        """The tensor a ref names: its hashed base from evidence, with the derived operators between
        them re-applied. None when no correct value exists (an agreed leaf that cannot be right)."""
        base, chain = compute_derivation(nodes, ref)
        if base[0] == "c":
            value = decode_tensor(bytes.fromhex(base[1]))
        else:
            digest = self._digest_of(base, evidence)
            if not isinstance(digest, bytes):
                return digest
            if len(digest) != DIGEST_SIZE:
                return None
            data = evidence.tensors.get(Root(digest))
            if data is None:
                return TensorRequest(Root(digest))
            try:
                value = decode_tensor(data)
            except EncodingError:
                return None  # cannot happen for data whose digest matched an agreed digest
        try:
            derived: torch.Tensor = compute_derived_value(nodes, chain, value)
        except (RuntimeError, ValueError, TypeError, IndexError):
            return None  # the agreed ancestors do not admit these views: no correct value exists
        return derived

    def compute_expected_leaf(self, dispute: LeafDispute, evidence: Evidence) -> bytes | MissingEvidence:
        self._check_job(dispute.job_id)
        skeleton = self.get_skeleton(dispute.step, dispute.state_before, dispute.hints)
        refs = self._refs(dispute)
        if skeleton is None or refs is None:
            return b""  # no such leaf in the true step: no claimed leaf can be right
        if dispute.tree is TreeKind.STATE_AFTER:
            name, ref = skeleton.bindings[dispute.index]
            base, chain = compute_derivation(skeleton.nodes, ref)
            if not chain:  # the tensor was hashed where it was made: its digest is evidence enough
                digest = self._digest_of(base, evidence)
                if not isinstance(digest, bytes):
                    return MissingEvidence((digest,))
                return compute_state_leaf(name, digest) if len(digest) == DIGEST_SIZE else b""
            value = self._value_of(skeleton.nodes, ref, evidence)
            if isinstance(value, OpLeafRequest | StateLeafRequest | TensorRequest):
                return MissingEvidence((value,))
            return b"" if value is None else compute_state_leaf(name, compute_digest(value))
        structure = skeleton.nodes[dispute.index]
        if is_derived(structure):  # outputs not hashed: the structure alone is the leaf
            return encode_node(TraceNode(structure, tuple(None if meta is None else DERIVED for meta in structure.outputs)))
        inputs: list[torch.Tensor] = []
        missing: list[EvidenceRequest] = []
        for ref in refs:
            value = self._value_of(skeleton.nodes, ref, evidence)
            if value is None:
                return b""
            if isinstance(value, torch.Tensor):
                inputs.append(value)
            elif value not in missing:
                missing.append(value)
        if missing:
            return MissingEvidence(tuple(missing))
        start = time.perf_counter()
        try:
            outputs = execute(structure.op, structure.args, inputs)
        except (RuntimeError, ValueError, TypeError, IndexError):
            return b""  # the true inputs make the operator fail: no claimed output can be right
        finally:
            self.seconds_executing += time.perf_counter() - start
            self.last_op = structure.op
        result_digests = tuple(None if out is None else compute_digest(out) for out in outputs)
        return encode_node(TraceNode(structure, result_digests))
