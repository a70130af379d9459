"""What the referee may ask for at the end of phase 2, and what it is given.

Once the two parties' trees of step t are narrowed to one differing leaf, the referee names the facts it
needs to recompute that leaf. Only facts both parties are bound to can be asked for, so the game can
check them without trusting whoever supplies them:

    OpLeafRequest(i)      op leaf i, i < agreed_ops: before the first difference both ops trees agree,
                          so a proof against either party's ops root proves it, and so does a shorter
                          proof up to an ops-tree node both parties revealed alike in the descent
    StateLeafRequest(k)   leaf k of the agreed state s_t, proven against s_t
    TensorRequest(d)      a canonical tensor encoding whose digest is d

Either party may supply any item; the game checks each one before the referee sees it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TypeAlias

from protocol.game.enums import Pair, TreeKind
from protocol.types import Root, StepIndex


@dataclass(frozen=True)
class OpLeafRequest:
    index: int  # an op leaf before the first differing one (or any, when the ops trees agree)


@dataclass(frozen=True)
class StateLeafRequest:
    index: int  # a leaf of the agreed state s_t


@dataclass(frozen=True)
class TensorRequest:
    digest: Root  # digest of a canonical tensor encoding


EvidenceRequest: TypeAlias = OpLeafRequest | StateLeafRequest | TensorRequest


@dataclass(frozen=True)
class Evidence:
    """Checked facts: op leaves by index, leaves of s_t by index, tensor encodings by digest."""

    op_leaves: Mapping[int, bytes] = field(default_factory=dict)
    state_before_leaves: Mapping[int, bytes] = field(default_factory=dict)
    tensors: Mapping[Root, bytes] = field(default_factory=dict)

    def has(self, request: EvidenceRequest) -> bool:
        if isinstance(request, OpLeafRequest):
            return request.index in self.op_leaves
        if isinstance(request, StateLeafRequest):
            return request.index in self.state_before_leaves
        return request.digest in self.tensors


@dataclass(frozen=True)
class MissingEvidence:
    """The referee's answer when it needs more facts before it can name the correct leaf."""

    requests: tuple[EvidenceRequest, ...]


@dataclass(frozen=True)
class StepStructure:
    """The true shape of a step's trees, known to the referee from the skeleton."""

    num_ops: int  # N
    num_state_after: int  # m


@dataclass(frozen=True)
class LeafDispute:
    """The one leaf of step t the parties disagree on, as handed to the referee."""

    job_id: bytes
    step: StepIndex
    tree: TreeKind  # OPS or STATE_AFTER
    index: int  # the first differing leaf of that tree
    leaves: Pair[bytes]  # each party's leaf bytes there (they differ)
    state_before: Root  # the agreed s_t
    ops_roots: Pair[Root]  # each party's ops root (equal when tree is STATE_AFTER)
    num_ops: int  # N (both parties claim it)
    num_state_after: int  # m (both parties claim it)
    agreed_ops: int  # op leaves 0 … agreed_ops-1 are the same in both ops trees
    hints: Pair[bytes] = (b"", b"")  # each party's structure hint of s_t (from its trace commitment)
    agreed_nodes: tuple[tuple[int, int, Root], ...] = ()  # (height, index, hash) of ops-tree nodes both
    # revealed alike during the descent: an op leaf below one is proven by a proof up to it
