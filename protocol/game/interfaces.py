"""The two seams of the game (STYLE.md, item 5): the referee, and what an honest party answers from.

The game knows nothing about training: a `Referee` is injected into the pure transition, and a
`TraceProvider` is what an honest strategy reads its answers from. Both are `typing.Protocol`s; any
object with these methods fits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from protocol.game.commitments import TraceCommitment
from protocol.game.enums import Pair
from protocol.game.evidence import Evidence, EvidenceRequest, LeafDispute, MissingEvidence, StepStructure
from protocol.merkle import MerkleTree
from protocol.types import Root, StepIndex


class Referee(Protocol):
    """Decides the questions that are about values, not about proofs. Must be deterministic: a
    transcript is re-verified by calling a fresh referee at the same points with the same inputs."""

    def compute_initial_state_root(self, job_id: bytes) -> Root:
        """s_0 of the job, when the parties disagree on the initial state."""
        ...

    def is_valid_hint(self, job_id: bytes, state_before: Root, hint: bytes) -> bool:
        """Whether a party's structure hint of s_t (from its trace commitment) is proven against the
        agreed s_t. The game asks it when the trace commitment arrives: a party whose hint is not proven
        loses. A predicate: never raises, and costs no more than reading the hint."""
        ...

    def compute_structure(self, job_id: bytes, step: StepIndex, state_before: Root, hints: Pair[bytes]) -> StepStructure:
        """The true op and state-leaf counts of step t (from the skeleton), when the parties' differ.
        `hints` are the parties' structure hints of s_t, both proven against `state_before` (the agreed s_t)."""
        ...

    def get_evidence_requests(self, dispute: LeafDispute) -> Sequence[EvidenceRequest]:
        """The facts needed to recompute the disputed leaf; may be empty."""
        ...

    def compute_expected_leaf(self, dispute: LeafDispute, evidence: Evidence) -> bytes | MissingEvidence:
        """The correct bytes of the disputed leaf from checked evidence, or what is still missing
        (facts that follow from evidence just supplied, e.g. the tensors a producer leaf names). A fact
        asked for before and still missing was supplied by neither party: both lose. Ask only for facts
        derived from the skeleton and agreed data, which an honest party always holds."""
        ...


class TraceProvider(Protocol):
    """What an honest party answers from. The game asks for the chain tree, s_{i-1} and s_i, and then
    about one step t only: its trace commitment, ops tree and op leaves, the state trees and leaves of
    s_t and s_{t+1}, and tensors it reads or produces. All of it may be computed lazily (regenerating a
    step is expensive) and should be cached by the implementation."""

    def get_job_id(self) -> bytes: ...

    def get_steps(self) -> int:
        """T: the run has states s_0 … s_T."""
        ...

    def get_chain_tree(self) -> MerkleTree:
        """compute_tree([s_0, …, s_T])."""
        ...

    def get_state_root(self, index: int) -> Root:
        """s_index, 0 <= index <= T."""
        ...

    def get_state_tree(self, index: int) -> MerkleTree:
        """The state tree whose root is s_index (its leaves encode (name, tensor digest))."""
        ...

    def get_state_leaf(self, index: int, leaf: int) -> bytes:
        """Leaf `leaf` of the state tree of s_index."""
        ...

    def get_trace_commitment(self, step: StepIndex) -> TraceCommitment:
        """The (unsigned) trace commitment of step t."""
        ...

    def get_ops_tree(self, step: StepIndex) -> MerkleTree: ...

    def get_op_leaf(self, step: StepIndex, index: int) -> bytes: ...

    def get_tensor(self, step: StepIndex, digest: Root) -> bytes | None:
        """The canonical encoding of a tensor step t reads or produces, or None if unknown."""
        ...
