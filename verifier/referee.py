"""The referee for training steps: re-executes one operator on CPU from protocol's reference.

It implements `protocol.game.interfaces.Referee` for pinpoint's step traces. It trusts neither party:

- the true structure of step t (which operator, arguments, input refs, output shapes, and which node
  produces each tensor of s_{t+1}) comes from the skeleton, which it computes itself on meta tensors.
  The skeleton depends on s_t's layout and one-element counters only. When both parties' trace
  commitments carry the same structure hint (`protocol.hint`) and its layout digest is that of s_1
  (one meta step from s_0), the referee takes the counters from it and runs one meta step: constant
  cost in t. An honest party's hint is true, so an agreed hint is true. Otherwise (hints that differ
  or a layout that changed) it replays skeletons from s_0, linear in t, which needs nobody's word;
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
from protocol.hint import StateLayout, compute_state_layout, parse_structure_hint
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


class RefereeError(ValueError):
    """A question about another job than the referee's."""


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
        self._hinted: dict[tuple[int, bytes], Skeleton | None] = {}  # from an agreed hint (None: unusable)
        self._layout_after_first: StateLayout | None = None  # s_1's layout, from one meta step
        self._meta: Session | None = None
        self.replayed_steps = 0  # meta steps run so far (what the hints save)
        self.seconds_executing = 0.0  # time spent re-executing operators (the referee's real work)
        self.last_op: str | None = None

    def _check_job(self, job_id: bytes) -> None:
        if bytes(job_id) != self.job_id:
            raise RefereeError(f"this referee decides job {self.job_id.hex()}, not {bytes(job_id).hex()}")

    # --- structure --------------------------------------------------------------------------------

    def compute_initial_state_root(self, job_id: bytes) -> Root:
        self._check_job(job_id)
        return Root(bytes.fromhex(self.job.initial))  # the job binds s_0: nobody's computation decides it

    def get_skeleton(self, step: int, hints: Pair[bytes] | None = None) -> Skeleton:
        """Skeleton of step `step`: from the parties' structure hints when they agree and fit, else
        replayed from s_0 (both cached)."""
        if step in self._skeletons:
            return self._skeletons[step]
        if step >= 1 and hints is not None and hints[0] == hints[1]:
            key = (step, bytes(hints[0]))
            if key not in self._hinted:
                self._hinted[key] = self._compute_hinted_skeleton(step, bytes(hints[0]))
            hinted = self._hinted[key]
            if hinted is not None:
                return hinted
        return self._replay_skeleton(step)

    def _replay_skeleton(self, step: int) -> Skeleton:
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

    def _guess_layout_after_first(self) -> StateLayout:
        """s_1's layout: s_0's plus the state a stock optimizer creates on its first step, found by
        running only the optimizer, on meta tensors with a gradient for every parameter. A guess (a
        parameter without a gradient would get no state), checked against the agreed layout digest
        before any use."""
        if self._layout_after_first is None:
            session = Session(self.job, self.task, meta=True)
            for param in session.model.parameters():
                param.grad = torch.zeros_like(param)
            session.optimizer.step()
            self._layout_after_first = compute_state_layout(session.state_tensors())
        return self._layout_after_first

    def _compute_hinted_skeleton(self, step: int, hint: bytes) -> Skeleton | None:
        """One meta step from the state the hint describes, if it has s_1's layout."""
        layout = self._guess_layout_after_first()
        scalars = parse_structure_hint(hint, layout)
        if scalars is None or ("step" in scalars and int(scalars["step"]) != step):
            return None  # not a state of this layout, or not s_step
        shapes = {name: (dtype, shape) for name, dtype, shape in layout}
        self.replayed_steps += 1
        try:
            return compute_skeleton(self.job, self.task, shapes, scalars)
        except (StateError, TraceError, RuntimeError, ValueError, TypeError, ArithmeticError):
            return None  # counters no true state has (both parties lied alike): replay instead

    def compute_structure(self, job_id: bytes, step: StepIndex, hints: Pair[bytes] = (b"", b"")) -> StepStructure:
        self._check_job(job_id)
        skeleton = self.get_skeleton(step, hints)
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
        skeleton = self.get_skeleton(dispute.step, dispute.hints)
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
        nodes = self.get_skeleton(dispute.step, dispute.hints).nodes
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
        skeleton = self.get_skeleton(dispute.step, dispute.hints)
        refs = self._refs(dispute)
        if refs is None:
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
