"""The adversary catalogue: liars as first-class test actors (STYLE.md, item 9).

Each class is a strategy. The *data liars* commit to wrong data and then defend it as well as anyone
could (an honest strategy over an `EditedProvider`); the *protocol liars* take a provider that already
lies (so that there is something to dispute) and also break the protocol in one way, from query
`at_round` on. Everything here is generic over opaque leaves; a consistent liar that computes a step
wrong in a meaningful way is `verifier.game.toy.ToyProvider` with a `ToyFault` (or the real engine with
a tampered step).

`CATALOGUE` maps a name to a factory `(base, key, scenario) -> Strategy`, where `base` is the honest
provider of the run, and to the reasons the adversary is expected to lose for when its deviation fires.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import blake3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.game.commitments import (
    RunCommitment,
    SignedRunCommitment,
    TraceCommitment,
    sign_run_commitment,
    sign_trace_commitment,
)
from protocol.game.enums import Reason, Role, TreeKind, get_opponent, get_role_index
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
    StateLeafItem,
    StatesQuery,
    StatesReveal,
    TensorItem,
    TraceQuery,
    TraceReveal,
    compute_message_json,
    sign_move,
)
from protocol.game.state import GameState
from protocol.merkle import MerkleTree, compute_height
from protocol.signing import private_key_from_bytes, private_key_to_bytes
from protocol.types import Root, Seconds, StepIndex
from verifier.game.providers import EditedProvider, append_leaf, edit_leaf, flip_byte
from verifier.game.strategy import HonestStrategy, Send, Strategy, get_round_history


def _random_root(rng: random.Random) -> Root:
    return Root(rng.randbytes(32))


def _derive_key(key: Ed25519PrivateKey, label: bytes) -> Ed25519PrivateKey:
    """Another key, fixed by `key` and `label` (so adversaries stay deterministic)."""
    return private_key_from_bytes(blake3.blake3(label + private_key_to_bytes(key)).digest())


def compute_perturbed_move(move: Move) -> Move:
    """A different well-formed answer of the same kind (for equivocation)."""
    if isinstance(move, NodesReveal):
        return NodesReveal((Root(flip_byte(move.hashes[0])), *move.hashes[1:]))
    if isinstance(move, StatesReveal):
        return replace(move, state=Root(flip_byte(move.state)))
    if isinstance(move, TraceReveal):
        return replace(move, commitment=replace(move.commitment, num_ops=move.commitment.num_ops + 1))
    if isinstance(move, LeafReveal):
        return LeafReveal(move.leaf + b"\x00")
    if move.items:
        return EvidenceSupply(move.items[:-1])
    return EvidenceSupply((TensorItem(Root(bytes(32)), b""),))


# Data liars -------------------------------------------------------------------------------------------


class WrongOpLeaf(HonestStrategy):
    """A wrong value at op `node` of step `step` (and, as a wrong value would, a different s_{t+1})."""

    def __init__(self, base: TraceProvider, key: Ed25519PrivateKey, step: int, node: int, **kw: Any) -> None:
        super().__init__(EditedProvider(base, step=step, ops=edit_leaf(node), state_after=edit_leaf(0)), key, **kw)


class WrongStateLeaf(HonestStrategy):
    """A wrong state root with a correct trace: the ops of step t are right, leaf `leaf` of s_{t+1} is not."""

    def __init__(self, base: TraceProvider, key: Ed25519PrivateKey, step: int, leaf: int, **kw: Any) -> None:
        super().__init__(EditedProvider(base, step=step, state_after=edit_leaf(leaf)), key, **kw)


class WrongInitialState(HonestStrategy):
    """A wrong s_0: leaf `leaf` of the initial state changed."""

    def __init__(self, base: TraceProvider, key: Ed25519PrivateKey, leaf: int, **kw: Any) -> None:
        super().__init__(EditedProvider(base, initial=edit_leaf(leaf)), key, **kw)


class WrongOpCount(HonestStrategy):
    """Wrong structure: one op too many in step t."""

    def __init__(self, base: TraceProvider, key: Ed25519PrivateKey, step: int, **kw: Any) -> None:
        provider = EditedProvider(base, step=step, ops=append_leaf(b"extra op"), state_after=edit_leaf(0))
        super().__init__(provider, key, **kw)


class WrongStateCount(HonestStrategy):
    """Wrong structure: one state leaf too many after step t."""

    def __init__(self, base: TraceProvider, key: Ed25519PrivateKey, step: int, **kw: Any) -> None:
        super().__init__(EditedProvider(base, step=step, state_after=append_leaf(b"extra state leaf")), key, **kw)


class UnbackedStateRoot(HonestStrategy):
    """Commits to an s_{t+1} with no state tree behind it (correct ops); can only make up its descendants."""

    def __init__(self, base: TraceProvider, key: Ed25519PrivateKey, step: int, seed: int = 0, **kw: Any) -> None:
        self.rng = random.Random(seed)
        super().__init__(EditedProvider(base, step=step, unbacked_after=_random_root(self.rng)), key, **kw)

    def answer_nodes(self, state: GameState, role: Role, query: NodesQuery) -> Move | None:
        if query.tree is TreeKind.STATE_AFTER:
            return NodesReveal(tuple(_random_root(self.rng) for _ in range(1 << query.depth)))
        return super().answer_nodes(state, role, query)

    def answer_leaf(self, state: GameState, role: Role, query: LeafQuery) -> Move | None:
        if query.tree is TreeKind.STATE_AFTER:
            return LeafReveal(self.rng.randbytes(40))
        return super().answer_leaf(state, role, query)


class FabricatedChain(HonestStrategy):
    """Disputes a correct run with a chain root it made up: it has nothing to reveal but noise."""

    def __init__(self, base: TraceProvider, key: Ed25519PrivateKey, seed: int = 0, **kw: Any) -> None:
        super().__init__(base, key, **kw)
        self.rng = random.Random(seed)

    def get_run_commitment(self) -> SignedRunCommitment:
        commitment = RunCommitment(self.provider.get_job_id(), self.provider.get_steps(),
                                   _random_root(self.rng), self.public_key)
        return sign_run_commitment(self.key, commitment)

    def answer_nodes(self, state: GameState, role: Role, query: NodesQuery) -> Move | None:
        return NodesReveal(tuple(_random_root(self.rng) for _ in range(1 << query.depth)))


class PaddedChain(HonestStrategy):
    """All states right, plus a fake s_{T+1} in the chain's padding."""

    def __init__(self, base: TraceProvider, key: Ed25519PrivateKey, seed: int = 0, **kw: Any) -> None:
        extra = _random_root(random.Random(seed))
        super().__init__(EditedProvider(base, extra_chain_leaf=extra), key, **kw)


# Protocol liars ---------------------------------------------------------------------------------------


class Deviant(HonestStrategy):
    """Plays its (lying) provider's data and deviates from query `at_round` on (see `deviate`)."""

    def __init__(self, provider: TraceProvider, key: Ed25519PrivateKey, at_round: int = 0, seed: int = 0,
                 **kw: Any) -> None:
        super().__init__(provider, key, **kw)
        self.at_round = at_round
        self.rng = random.Random(seed)

    def compute_actions(self, state: GameState, role: Role) -> Sequence[Send]:
        if state.seq < self.at_round:
            return super().compute_actions(state, role)
        return self.deviate(state, role)

    def deviate(self, state: GameState, role: Role) -> Sequence[Send]:
        return super().compute_actions(state, role)


class ForgedNodes(Deviant):
    """Reveals descendants that do not fold to its committed node."""

    def answer_nodes(self, state: GameState, role: Role, query: NodesQuery) -> Move | None:
        move = super().answer_nodes(state, role, query)
        if state.seq < self.at_round or not isinstance(move, NodesReveal):
            return move
        return NodesReveal((*move.hashes[:-1], Root(flip_byte(move.hashes[-1]))))


class ForgedStateProof(Deviant):
    """Reveals s_{i-1} with a forged inclusion proof (or a forged s_0)."""

    def answer_states(self, state: GameState, role: Role, query: StatesQuery) -> Move | None:
        move = super().answer_states(state, role, query)
        if state.seq < self.at_round or not isinstance(move, StatesReveal):
            return move
        if move.proof:
            return replace(move, proof=(Root(flip_byte(move.proof[0])), *move.proof[1:]))
        return replace(move, state=Root(flip_byte(move.state)))


class ForgedEvidence(Deviant):
    """Supplies evidence that does not check: a tensor whose bytes miss its digest, a leaf with a bad proof."""

    def answer_evidence(self, state: GameState, role: Role, query: EvidenceQuery) -> Move | None:
        move = super().answer_evidence(state, role, query)
        if state.seq < self.at_round or not isinstance(move, EvidenceSupply) or not move.items:
            return move
        first: EvidenceItem = move.items[0]
        if isinstance(first, TensorItem):
            first = TensorItem(first.digest, flip_byte(first.data))
        elif first.proof:
            first = replace(first, proof=(Root(flip_byte(first.proof[0])), *first.proof[1:]))
        else:
            first = replace(first, leaf=flip_byte(first.leaf))
        return EvidenceSupply((first, *move.items[1:]))


class WithheldEvidence(Deviant):
    """Answers every evidence query with nothing."""

    def answer_evidence(self, state: GameState, role: Role, query: EvidenceQuery) -> Move | None:
        return EvidenceSupply(())


class Silent(Deviant):
    """Stops answering."""

    def deviate(self, state: GameState, role: Role) -> Sequence[Send]:
        return []


class LateAnswers(Deviant):
    """Answers, but after its clock has run out."""

    def deviate(self, state: GameState, role: Role) -> Sequence[Send]:
        move = self.compute_move(state, role)
        late = state.clocks[get_role_index(role)] + 1.0
        return [] if move is None else [self.compute_send(state, role, move, delay=late)]


class Equivocator(Deviant):
    """Signs two different answers to the same query."""

    def deviate(self, state: GameState, role: Role) -> Sequence[Send]:
        move = self.compute_move(state, role)
        if move is None:
            return []
        return [self.compute_send(state, role, move),
                self.compute_send(state, role, compute_perturbed_move(move), delay=self.delay + 0.5)]


class FlipPastAnswer(Deviant):
    """Agrees, then flips: answers query r, and also signs a different answer to query r-1."""

    def deviate(self, state: GameState, role: Role) -> Sequence[Send]:
        actions = list(super().deviate(state, role))
        for message in state.accepted:  # its answer to the previous query, if there was one
            if message.sender == role.value and message.seq == state.seq - 1 and isinstance(message.move, dict):
                flipped = {**message.move, "flipped": True}  # any other body signed for the same query
                actions.append(self.compute_send(state, role, flipped, seq=message.seq, delay=self.delay / 2))
        return actions


class RandomAnswers(Deviant):
    """Answers with random bytes of the right shapes."""

    def deviate(self, state: GameState, role: Role) -> Sequence[Send]:
        rng, query = self.rng, state.query
        move: Move
        if isinstance(query, NodesQuery):
            move = NodesReveal(tuple(_random_root(rng) for _ in range(1 << query.depth)))
        elif isinstance(query, StatesQuery):
            height = compute_height(state.setup.worker.commitment.steps + 1)
            proof = tuple(_random_root(rng) for _ in range(height))
            move = (StatesReveal(_random_root(rng), None, None) if query.leaf_index == 0
                    else StatesReveal(_random_root(rng), _random_root(rng), proof))
        elif isinstance(query, TraceQuery):
            honest = self.provider.get_trace_commitment(query.step)
            commitment = replace(honest, state_before=_random_root(rng), state_after=_random_root(rng),
                                 ops_root=_random_root(rng))
            move = TraceReveal(commitment, sign_trace_commitment(self.key, commitment))
        elif isinstance(query, LeafQuery):
            move = LeafReveal(rng.randbytes(1 + rng.randrange(64)))
        elif isinstance(query, EvidenceQuery):
            items: list[EvidenceItem] = []
            for request in query.requests:
                if isinstance(request, OpLeafRequest):
                    items.append(OpLeafItem(request.index, rng.randbytes(32), (_random_root(rng),)))
                elif isinstance(request, StateLeafRequest):
                    items.append(StateLeafItem(request.index, rng.randbytes(32), (_random_root(rng),)))
                else:
                    items.append(TensorItem(request.digest, rng.randbytes(24)))
            move = EvidenceSupply(tuple(items))
        else:
            return []
        return [self.compute_send(state, role, move)]


def _uppercase(value: Any) -> Any:
    if isinstance(value, str):
        return value.upper()
    if isinstance(value, list):
        return [_uppercase(item) for item in value]
    if isinstance(value, dict):
        return {key: value[key] if key in ("type", "kind") else _uppercase(value[key]) for key in value}
    return value


def compute_malformed_body(body: dict[str, Any], variant: int) -> Any:
    """A body that is not a well-formed answer, in one of six ways."""
    variant %= 6
    if variant == 0:
        return {"type": "nonsense"}
    if variant == 1:
        return [body]
    if variant == 3:
        return {**body, "type": 7}
    if variant == 4 and _uppercase(body) != body:
        return _uppercase(body)  # hex must be lowercase: one spelling per value
    if variant == 5:
        return {"type": body.get("type")}
    return {**body, "extra": 1}


class MalformedMessages(Deviant):
    """Signs bodies that are not well-formed answers (unknown types, extra keys, uppercase hex, …)."""

    def deviate(self, state: GameState, role: Role) -> Sequence[Send]:
        move = self.compute_move(state, role)
        if move is None:
            return []
        body = compute_message_json(sign_move(self.key, state.game_id, state.seq, role, move,
                                                       prev=get_round_history(state, state.seq)))["move"]
        return [self.compute_send(state, role, compute_malformed_body(body, self.rng.randrange(6)))]


class BadSignatures(Deviant):
    """Sends its answers signed with a key that is not its own."""

    def deviate(self, state: GameState, role: Role) -> Sequence[Send]:
        move = self.compute_move(state, role)
        other = _derive_key(self.key, b"not my key")
        return [] if move is None else [self.compute_send(state, role, move, key=other)]


class Impersonator(Deviant):
    """Plays its lie, and also sends junk in its opponent's name (signed with its own key)."""

    def deviate(self, state: GameState, role: Role) -> Sequence[Send]:
        fake = sign_move(self.key, state.game_id, state.seq, get_opponent(role), {"type": "nodes", "hashes": []},
                         prev=get_round_history(state, state.seq))
        return [Send(fake, Seconds(self.delay / 2)), *super().deviate(state, role)]


class ReplayOpponent(Deviant):
    """Re-sends its opponent's signed messages instead of answering."""

    def deviate(self, state: GameState, role: Role) -> Sequence[Send]:
        theirs = [m for m in state.accepted if m.sender == get_opponent(role).value]
        return [Send(message, self.delay) for message in theirs[-2:]]


class TraceFlip(Deviant):
    """Agrees, then flips in phase 2: commits to the opponent's s_{t+1} instead of its own."""

    def answer_trace(self, state: GameState, role: Role, query: TraceQuery) -> Move | None:
        move = super().answer_trace(state, role, query)
        states_after = state.position.states_after
        if state.seq < self.at_round or not isinstance(move, TraceReveal) or states_after is None:
            return move
        commitment = replace(move.commitment, state_after=states_after[get_role_index(get_opponent(role))])
        return TraceReveal(commitment, sign_trace_commitment(self.key, commitment))


class WrongTraceSignature(Deviant):
    """Signs its trace commitment with another key."""

    def answer_trace(self, state: GameState, role: Role, query: TraceQuery) -> Move | None:
        move = super().answer_trace(state, role, query)
        if state.seq < self.at_round or not isinstance(move, TraceReveal):
            return move
        return replace(move, signature=sign_trace_commitment(_derive_key(self.key, b"trace"), move.commitment))


class WrongHint(Deviant):
    """Commits to its trace with a structure hint other than the true one (properly signed): a hint
    that does not open the agreed s_t loses at once (a bad proof); a machine whose structure needs no
    hint (the toy's) ignores it, and the liar loses on its values."""

    def answer_trace(self, state: GameState, role: Role, query: TraceQuery) -> Move | None:
        move = super().answer_trace(state, role, query)
        if state.seq < self.at_round or not isinstance(move, TraceReveal):
            return move
        commitment = replace(move.commitment, hint=flip_byte(move.commitment.hint))
        return TraceReveal(commitment, sign_trace_commitment(self.key, commitment))


class WrongLeafReveal(Deviant):
    """Reveals leaf bytes other than the ones it committed to."""

    def answer_leaf(self, state: GameState, role: Role, query: LeafQuery) -> Move | None:
        move = super().answer_leaf(state, role, query)
        if state.seq < self.at_round or not isinstance(move, LeafReveal):
            return move
        return LeafReveal(flip_byte(move.leaf, 0))


# Directory liars: a party whose own files cannot back what it signed --------------------------------


class DirectoryError(RuntimeError):
    """What a party's own storage raises when its files do not back its commitment."""


class FailingProvider:
    """`base` (a lying provider) whose files break from state `broken_from` on: the chain (the roots it
    signed) is intact, but any state or step at or after `broken_from` cannot be rebuilt, the way a run
    directory fails when its checkpoints are deleted, corrupt, of another step, or do not reproduce the
    roots it signed (`prover.run.restore_session` raises). The strategy over it raises when asked about
    them; the driver turns that into the party's silence."""

    def __init__(self, base: TraceProvider, broken_from: int, problem: str) -> None:
        self.base = base
        self.broken_from = broken_from
        self.problem = problem

    def _check(self, state: int) -> None:
        if state >= self.broken_from:
            raise DirectoryError(f"{self.problem} (state s_{state})")

    def get_job_id(self) -> bytes:
        return self.base.get_job_id()

    def get_steps(self) -> int:
        return self.base.get_steps()

    def get_chain_tree(self) -> MerkleTree:
        return self.base.get_chain_tree()

    def get_state_root(self, index: int) -> Root:
        return self.base.get_state_root(index)

    def get_state_tree(self, index: int) -> MerkleTree:
        self._check(index)
        return self.base.get_state_tree(index)

    def get_state_leaf(self, index: int, leaf: int) -> bytes:
        self._check(index)
        return self.base.get_state_leaf(index, leaf)

    def get_trace_commitment(self, step: StepIndex) -> TraceCommitment:
        self._check(step + 1)
        return self.base.get_trace_commitment(step)

    def get_ops_tree(self, step: StepIndex) -> MerkleTree:
        self._check(step + 1)
        return self.base.get_ops_tree(step)

    def get_op_leaf(self, step: StepIndex, index: int) -> bytes:
        self._check(step + 1)
        return self.base.get_op_leaf(step, index)

    def get_tensor(self, step: StepIndex, digest: Root) -> bytes | None:
        self._check(step + 1)
        return self.base.get_tensor(step, digest)


def _inconsistent_roots(base: TraceProvider, key: Ed25519PrivateKey, s: Scenario) -> Strategy:
    """Signs a root s_{t+1} its checkpoints do not produce: regenerating step t fails."""
    step = _steps(base, s)
    lie = EditedProvider(base, step=step, unbacked_after=_random_root(random.Random(s.seed)))
    return HonestStrategy(FailingProvider(lie, step + 1, f"step {step} does not reproduce the signed root"), key)


def _deleted_checkpoints(base: TraceProvider, key: Ed25519PrivateKey, s: Scenario) -> Strategy:
    """A wrong op leaf at step t, and every checkpoint after s_{t-j} deleted (j fuzzed by the seed)."""
    step = _steps(base, s)
    broken_from = max(0, step + 1 - s.seed % 3)
    return HonestStrategy(FailingProvider(_lie(base, s), broken_from, "no checkpoint to rebuild from"), key)


def _checkpoint_of_another_step(base: TraceProvider, key: Ed25519PrivateKey, s: Scenario) -> Strategy:
    """A wrong s_{t+1} whose checkpoint holds the state of another step: it does not match the signed root."""
    step = _steps(base, s)
    lie = EditedProvider(base, step=step, state_after=edit_leaf(s.leaf))
    return HonestStrategy(FailingProvider(lie, step + 1, "the checkpoint is of another step"), key)


# The catalogue ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Scenario:
    """Where an adversary lies; tests fuzz every field."""

    step: int = 0  # t: the step it gets wrong (taken modulo T)
    node: int = 0  # the op leaf it gets wrong (taken modulo N)
    leaf: int = 0  # the state leaf it gets wrong (taken modulo m)
    at_round: int = 0  # the first query at which a protocol liar deviates
    seed: int = 0


AdversaryFactory = Callable[[TraceProvider, Ed25519PrivateKey, Scenario], Strategy]


@dataclass(frozen=True)
class Adversary:
    name: str
    build: AdversaryFactory
    reasons: frozenset[Reason]  # why it loses once its deviation fires (at_round 0 at the latest)
    description: str


def _lie(base: TraceProvider, s: Scenario) -> EditedProvider:
    """The data lie the protocol liars defend: a wrong op leaf at (step, node)."""
    step = s.step % base.get_steps()
    return EditedProvider(base, step=step, ops=edit_leaf(s.node), state_after=edit_leaf(0))


def _deviant(cls: type[Deviant]) -> AdversaryFactory:
    def build(base: TraceProvider, key: Ed25519PrivateKey, s: Scenario) -> Strategy:
        return cls(_lie(base, s), key, at_round=s.at_round, seed=s.seed)

    return build


def _entry(name: str, build: AdversaryFactory, reasons: set[Reason], description: str) -> tuple[str, Adversary]:
    return name, Adversary(name, build, frozenset(reasons), description)


def _steps(base: TraceProvider, s: Scenario) -> int:
    return s.step % base.get_steps()


CATALOGUE: dict[str, Adversary] = dict([
    _entry("wrong-op-leaf", lambda b, k, s: WrongOpLeaf(b, k, _steps(b, s), s.node), {Reason.WRONG_LEAF},
           "a wrong value at a chosen op of a chosen step"),
    _entry("wrong-state-leaf", lambda b, k, s: WrongStateLeaf(b, k, _steps(b, s), s.leaf), {Reason.WRONG_LEAF},
           "a wrong state root with a correct trace"),
    _entry("wrong-initial-state", lambda b, k, s: WrongInitialState(b, k, s.leaf), {Reason.WRONG_INITIAL_STATE},
           "a wrong s_0"),
    _entry("wrong-op-count", lambda b, k, s: WrongOpCount(b, k, _steps(b, s)), {Reason.WRONG_STRUCTURE},
           "an extra op: wrong structure counts"),
    _entry("wrong-state-count", lambda b, k, s: WrongStateCount(b, k, _steps(b, s)), {Reason.WRONG_STRUCTURE},
           "an extra state leaf: wrong structure counts"),
    _entry("unbacked-state-root", lambda b, k, s: UnbackedStateRoot(b, k, _steps(b, s), s.seed), {Reason.BAD_PROOF},
           "an s_{t+1} with nothing behind it"),
    _entry("fabricated-chain", lambda b, k, s: FabricatedChain(b, k, s.seed), {Reason.BAD_PROOF},
           "disputes a correct run with a made-up chain root"),
    _entry("padded-chain", lambda b, k, s: PaddedChain(b, k, s.seed),
           {Reason.NON_CANONICAL_PADDING, Reason.BAD_PROOF}, "a fake extra state in the chain's padding"),
    _entry("forged-nodes", _deviant(ForgedNodes), {Reason.BAD_PROOF}, "descendants that do not fold"),
    _entry("forged-state-proof", _deviant(ForgedStateProof), {Reason.BAD_PROOF}, "a forged inclusion proof of s_t"),
    _entry("forged-evidence", _deviant(ForgedEvidence), {Reason.BAD_EVIDENCE, Reason.WRONG_LEAF},
           "evidence whose digest or proof does not check"),
    _entry("withheld-evidence", _deviant(WithheldEvidence), {Reason.WRONG_LEAF}, "supplies no evidence"),
    _entry("silent", _deviant(Silent), {Reason.TIMEOUT}, "stops answering"),
    _entry("late", _deviant(LateAnswers), {Reason.TIMEOUT}, "answers after its clock ran out"),
    _entry("equivocator", _deviant(Equivocator), {Reason.EQUIVOCATION}, "two different answers to one query"),
    _entry("flip-past-answer", _deviant(FlipPastAnswer), {Reason.EQUIVOCATION},
           "agrees, then signs a different answer to an earlier query"),
    _entry("random-answers", _deviant(RandomAnswers),
           {Reason.BAD_PROOF, Reason.INCONSISTENT_TRACE, Reason.BAD_EVIDENCE}, "random bytes of the right shapes"),
    _entry("malformed", _deviant(MalformedMessages), {Reason.MALFORMED_MESSAGE}, "signed bodies that do not parse"),
    _entry("bad-signatures", _deviant(BadSignatures), {Reason.TIMEOUT}, "messages signed with another key"),
    _entry("impersonator", _deviant(Impersonator), {Reason.WRONG_LEAF}, "junk in the opponent's name"),
    _entry("replay-opponent", _deviant(ReplayOpponent), {Reason.TIMEOUT}, "re-sends the opponent's messages"),
    _entry("trace-flip", _deviant(TraceFlip), {Reason.INCONSISTENT_TRACE},
           "agrees, then commits to the opponent's s_{t+1}"),
    _entry("wrong-trace-signature", _deviant(WrongTraceSignature), {Reason.BAD_TRACE_SIGNATURE},
           "a trace commitment signed with another key"),
    _entry("wrong-hint", _deviant(WrongHint), {Reason.BAD_PROOF, Reason.WRONG_LEAF},
           "a structure hint that is not its s_t's, in a validly signed trace commitment"),
    _entry("wrong-leaf-reveal", _deviant(WrongLeafReveal), {Reason.BAD_PROOF},
           "reveals leaf bytes other than those committed"),
    _entry("inconsistent-roots", _inconsistent_roots, {Reason.TIMEOUT},
           "signed roots its checkpoints do not produce: cannot answer for the step"),
    _entry("deleted-checkpoints", _deleted_checkpoints, {Reason.TIMEOUT},
           "a wrong value, and the checkpoints to rebuild it deleted"),
    _entry("checkpoint-of-another-step", _checkpoint_of_another_step, {Reason.TIMEOUT},
           "a wrong state whose checkpoint is of another step"),
])
