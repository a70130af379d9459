"""Trace providers built from others: the data a lying party commits to.

`EditedProvider` agrees with a base provider on s_0 … s_t and then commits to edited bytes — an edited
s_0, or an edited ops tree and/or state after step t — keeping every tree it commits to well formed, so
that it can answer every query as consistently as an honest party would. The edits are on opaque leaf
bytes: this knows nothing of what a leaf means.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from functools import cached_property

from protocol.game.commitments import TraceCommitment
from protocol.game.interfaces import TraceProvider
from protocol.merkle import MerkleTree, compute_tree
from protocol.types import Root, StepIndex

LeafEdit = Callable[[list[bytes]], list[bytes]]


def flip_byte(data: bytes, position: int = -1) -> bytes:
    """`data` with one bit of one byte flipped (an empty string becomes one byte)."""
    if not data:
        return b"\x01"
    index = position % len(data)
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


def edit_leaf(index: int) -> LeafEdit:
    """An edit that flips a byte of leaf `index` (taken modulo the number of leaves)."""

    def edit(leaves: list[bytes]) -> list[bytes]:
        out = list(leaves)
        out[index % len(out)] = flip_byte(out[index % len(out)])
        return out

    return edit


def append_leaf(extra: bytes) -> LeafEdit:
    def edit(leaves: list[bytes]) -> list[bytes]:
        return [*leaves, extra]

    return edit


def get_state_leaves(provider: TraceProvider, index: int) -> list[bytes]:
    tree = provider.get_state_tree(index)
    return [provider.get_state_leaf(index, leaf) for leaf in range(tree.size)]


def get_op_leaves(provider: TraceProvider, step: StepIndex) -> list[bytes]:
    count = provider.get_trace_commitment(step).num_ops
    return [provider.get_op_leaf(step, index) for index in range(count)]


class EditedProvider:
    """A provider equal to `base` except for the edits; see the module docstring.

    initial           edit of the leaves of s_0
    step              the step t whose trace is edited (with `ops` and/or `state_after`)
    unbacked_after    commit to this s_{t+1} without any state tree behind it
    extra_chain_leaf  commit to a chain of T+2 leaves, the extra one in the padding
    """

    def __init__(self, base: TraceProvider, *, initial: LeafEdit | None = None, step: int | None = None,
                 ops: LeafEdit | None = None, state_after: LeafEdit | None = None,
                 unbacked_after: Root | None = None, extra_chain_leaf: Root | None = None) -> None:
        self.base = base
        self.initial = initial
        self.step = step
        self.ops = ops
        self.state_after = state_after
        self.unbacked_after = unbacked_after
        self.extra_chain_leaf = extra_chain_leaf

    def get_job_id(self) -> bytes:
        return self.base.get_job_id()

    def get_steps(self) -> int:
        return self.base.get_steps()

    # Edited trees, computed once ------------------------------------------------------------------

    @cached_property
    def _initial_tree(self) -> tuple[list[bytes], MerkleTree] | None:
        if self.initial is None:
            return None
        leaves = self.initial(get_state_leaves(self.base, 0))
        return leaves, compute_tree(leaves)

    @cached_property
    def _ops(self) -> tuple[list[bytes], MerkleTree] | None:
        if self.step is None or self.ops is None:
            return None
        leaves = self.ops(get_op_leaves(self.base, StepIndex(self.step)))
        return leaves, compute_tree(leaves)

    @cached_property
    def _after(self) -> tuple[list[bytes], MerkleTree] | None:
        if self.step is None or self.state_after is None:
            return None
        leaves = self.state_after(get_state_leaves(self.base, self.step + 1))
        return leaves, compute_tree(leaves)

    @cached_property
    def _state_roots(self) -> list[Root]:
        roots = [self.base.get_state_root(i) for i in range(self.get_steps() + 1)]
        if self._initial_tree is not None:
            roots[0] = self._initial_tree[1].root
        if self.step is not None:
            if self.unbacked_after is not None:
                roots[self.step + 1] = self.unbacked_after
            elif self._after is not None:
                roots[self.step + 1] = self._after[1].root
        return roots

    @cached_property
    def _chain(self) -> MerkleTree:
        leaves: Sequence[bytes] = self._state_roots
        if self.extra_chain_leaf is not None:
            leaves = [*leaves, self.extra_chain_leaf]
        return compute_tree([bytes(root) for root in leaves])

    def _edited_state(self, index: int) -> tuple[list[bytes], MerkleTree] | None:
        if index == 0 and self._initial_tree is not None:
            return self._initial_tree
        if self.step is not None and index == self.step + 1:
            if self.unbacked_after is not None:
                raise LookupError(f"s_{index} is committed without a state tree")
            return self._after
        return None

    # TraceProvider -------------------------------------------------------------------------------

    def get_chain_tree(self) -> MerkleTree:
        return self._chain

    def get_state_root(self, index: int) -> Root:
        return self._state_roots[index]

    def get_state_tree(self, index: int) -> MerkleTree:
        edited = self._edited_state(index)
        return self.base.get_state_tree(index) if edited is None else edited[1]

    def get_state_leaf(self, index: int, leaf: int) -> bytes:
        edited = self._edited_state(index)
        return self.base.get_state_leaf(index, leaf) if edited is None else edited[0][leaf]

    def get_trace_commitment(self, step: StepIndex) -> TraceCommitment:
        commitment = self.base.get_trace_commitment(step)
        commitment = replace(commitment, state_before=self.get_state_root(step),
                             state_after=self.get_state_root(step + 1))
        if step == self.step:
            if self._ops is not None:
                commitment = replace(commitment, ops_root=self._ops[1].root, num_ops=len(self._ops[0]))
            if self._after is not None and self.unbacked_after is None:
                commitment = replace(commitment, num_state_after=len(self._after[0]))
        return commitment

    def get_ops_tree(self, step: StepIndex) -> MerkleTree:
        if step == self.step and self._ops is not None:
            return self._ops[1]
        return self.base.get_ops_tree(step)

    def get_op_leaf(self, step: StepIndex, index: int) -> bytes:
        if step == self.step and self._ops is not None:
            return self._ops[0][index]
        return self.base.get_op_leaf(step, index)

    def get_tensor(self, step: StepIndex, digest: Root) -> bytes | None:
        return self.base.get_tensor(step, digest)
