"""Strategies: what a party wants to say, as data (STYLE.md, item 6).

A strategy is asked once per query and returns the signed messages it wants delivered, each with the
delay after the query at which it arrives; the driver carries them out. `HonestStrategy` answers
every query truthfully from a `TraceProvider`; adversaries (`verifier.game.adversaries`) override parts
of it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.game.commitments import (
    RunCommitment,
    SignedRunCommitment,
    sign_run_commitment,
    sign_trace_commitment,
)
from protocol.game.enums import Role, TreeKind
from protocol.game.evidence import OpLeafRequest, StateLeafRequest
from protocol.game.interfaces import TraceProvider
from protocol.game.messages import (
    EvidenceItem,
    EvidenceQuery,
    EvidenceSupply,
    LeafQuery,
    LeafReveal,
    Move,
    NodesQuery,
    NodesReveal,
    OpLeafItem,
    SignedMove,
    StateLeafItem,
    StatesQuery,
    StatesReveal,
    TensorItem,
    TraceQuery,
    TraceReveal,
    sign_move,
)
from protocol.game.state import GameState
from protocol.merkle import MerkleTree
from protocol.signing import get_public_key_bytes
from protocol.types import PublicKeyBytes, Root, Seconds, StepIndex

DEFAULT_DELAY = Seconds(1.0)  # simulated seconds an honest party takes to answer a query


@dataclass(frozen=True)
class Send:
    """Deliver `message`, `delay` seconds after the current query was asked."""

    message: SignedMove
    delay: Seconds


class Strategy(Protocol):
    """A party: its run commitment, and what it says in answer to each query."""

    def get_run_commitment(self) -> SignedRunCommitment: ...

    def compute_actions(self, state: GameState, role: Role) -> Sequence[Send]:
        """Messages to send in answer to `state.query` (asked as `state.seq`); empty means silence."""
        ...


class HonestStrategy:
    """Answers every query truthfully from its provider, within `delay` simulated seconds."""

    def __init__(self, provider: TraceProvider, key: Ed25519PrivateKey, delay: float = DEFAULT_DELAY,
                 commitment: SignedRunCommitment | None = None) -> None:
        """`commitment`: the run commitment this party already signed (e.g. registered on a ledger); by
        default one is made from the provider's chain tree."""
        self.provider = provider
        self.key = key
        self.delay = Seconds(float(delay))
        self.commitment = commitment

    @property
    def public_key(self) -> PublicKeyBytes:
        return get_public_key_bytes(self.key)

    def get_run_commitment(self) -> SignedRunCommitment:
        if self.commitment is not None:
            return self.commitment
        provider = self.provider
        commitment = RunCommitment(provider.get_job_id(), provider.get_steps(), provider.get_chain_tree().root,
                                   self.public_key)
        return sign_run_commitment(self.key, commitment)

    def compute_actions(self, state: GameState, role: Role) -> Sequence[Send]:
        move = self.compute_move(state, role)
        return [] if move is None else [self.compute_send(state, role, move)]

    def compute_send(self, state: GameState, role: Role, move: Move | Any, *, delay: float | None = None,
                     seq: int | None = None, key: Ed25519PrivateKey | None = None) -> Send:
        """Sign `move` (a Move or a raw JSON body) for query `seq` (default: the current one)."""
        message = sign_move(key or self.key, state.game_id, state.seq if seq is None else seq, role, move,
                            prev=get_round_history(state, state.seq if seq is None else seq))
        return Send(message, Seconds(self.delay if delay is None else float(delay)))

    def compute_move(self, state: GameState, role: Role) -> Move | None:
        query = state.query
        if isinstance(query, NodesQuery):
            return self.answer_nodes(state, role, query)
        if isinstance(query, StatesQuery):
            return self.answer_states(state, role, query)
        if isinstance(query, TraceQuery):
            return self.answer_trace(state, role, query)
        if isinstance(query, LeafQuery):
            return self.answer_leaf(state, role, query)
        if isinstance(query, EvidenceQuery):
            return self.answer_evidence(state, role, query)
        return None

    # Honest answers, one per query kind ---------------------------------------------------------------

    def get_step(self, state: GameState) -> StepIndex:
        step = state.position.step
        assert step is not None, "phase 2 queries come after the step is fixed"
        return step

    def get_tree(self, state: GameState, tree: TreeKind) -> MerkleTree:
        if tree is TreeKind.CHAIN:
            return self.provider.get_chain_tree()
        step = self.get_step(state)
        if tree is TreeKind.OPS:
            return self.provider.get_ops_tree(step)
        return self.provider.get_state_tree(step + 1)

    def answer_nodes(self, state: GameState, role: Role, query: NodesQuery) -> Move | None:
        tree = self.get_tree(state, query.tree)
        return NodesReveal(tree.children(query.height, query.index, query.depth))

    def answer_states(self, state: GameState, role: Role, query: StatesQuery) -> Move | None:
        i = query.leaf_index
        root = self.provider.get_state_root(i)
        if i == 0:
            return StatesReveal(root, None, None)
        chain = self.provider.get_chain_tree()
        return StatesReveal(root, self.provider.get_state_root(i - 1), chain.prove(i - 1))

    def answer_trace(self, state: GameState, role: Role, query: TraceQuery) -> Move | None:
        commitment = self.provider.get_trace_commitment(query.step)
        return TraceReveal(commitment, sign_trace_commitment(self.key, commitment))

    def answer_leaf(self, state: GameState, role: Role, query: LeafQuery) -> Move | None:
        step = self.get_step(state)
        if query.tree is TreeKind.OPS:
            return LeafReveal(self.provider.get_op_leaf(step, query.index))
        return LeafReveal(self.provider.get_state_leaf(step + 1, query.index))

    def answer_evidence(self, state: GameState, role: Role, query: EvidenceQuery) -> Move | None:
        step = self.get_step(state)
        items: list[EvidenceItem] = []
        for request in query.requests:
            try:
                if isinstance(request, OpLeafRequest):
                    proof = shorten_proof(self.provider.get_ops_tree(step).prove(request.index), request.index, state)
                    items.append(OpLeafItem(request.index, self.provider.get_op_leaf(step, request.index), proof))
                elif isinstance(request, StateLeafRequest):
                    proof = self.provider.get_state_tree(step).prove(request.index)
                    items.append(StateLeafItem(request.index, self.provider.get_state_leaf(step, request.index), proof))
                else:
                    data = self.provider.get_tensor(step, request.digest)
                    if data is not None:
                        items.append(TensorItem(Root(request.digest), data))
            except (IndexError, KeyError, LookupError):
                continue  # a fact this party does not hold; the other may supply it
        return EvidenceSupply(tuple(items))


def get_round_history(state: GameState, seq: int) -> bytes:
    """The history digest at which query `seq` was asked: what an answer to it signs as `prev` (32 zero
    bytes for a query not yet asked, whose answers the rules refuse anyway)."""
    return bytes(state.round_histories[seq]) if 0 <= seq < len(state.round_histories) else bytes(32)


def shorten_proof(proof: tuple[Root, ...], index: int, state: GameState) -> tuple[Root, ...]:
    """The proof of op leaf `index` cut at the lowest ops-tree node above it that both parties revealed
    alike in the descent (the game already holds that node, so the siblings above it are not needed)."""
    dispute = state.position.dispute
    known = {(height, node) for height, node, _ in dispute.agreed_nodes} if dispute is not None else set()
    for height in range(len(proof)):
        if (height, index >> height) in known:
            return proof[:height]
    return proof
