"""The game's state: setup, position, clocks, what was said, and the verdict.

A `GameState` is immutable; `protocol.game.rules` computes the next one. Everything in it is public:
both parties, and anyone replaying a transcript, see the same state.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, dataclass, field
from typing import Any

from protocol.game.codec import (
    ParseError,
    is_json_value,
    parse_float,
    parse_hex,
    parse_int,
    parse_list,
    parse_object,
    parse_str,
)
from protocol.game.commitments import (
    SignedRunCommitment,
    TraceCommitment,
    compute_signed_run_commitment_json,
    parse_signed_run_commitment_json,
)
from protocol.game.constants import GameConfig, compute_config_json, parse_config_json
from protocol.game.enums import Outcome, Pair, Phase, Reason, Role, TreeKind
from protocol.game.evidence import Evidence, EvidenceRequest, LeafDispute
from protocol.game.messages import Move, Query, SignedMove
from protocol.types import DIGEST_SIZE, PublicKeyBytes, Root, Seconds, StepIndex


@dataclass(frozen=True)
class GameSetup:
    """Everything fixed before the first round; its canonical JSON hashes to the game id, which every
    move signs. One dispute is one game: `dispute_id` is issued once, when the dispute is opened (by the
    ledger, or a fresh random nonce), so no two games share an id even between the same commitments."""

    worker: SignedRunCommitment
    challenger: SignedRunCommitment
    config: GameConfig  # the arity and every other parameter
    started_at: Seconds  # the time the first query is asked
    context: Any = None  # JSON the game ignores but binds (e.g. how to rebuild the referee)
    _: KW_ONLY
    dispute_id: bytes  # 32 bytes, unique to this dispute
    time_source: PublicKeyBytes | None = None  # the key whose receipts witness the game's times; None: no
    # witness, and then a transcript can prove value verdicts but never a timeout


@dataclass(frozen=True)
class Descent:
    """The node both parties are narrowing down: they committed to different hashes of it."""

    tree: TreeKind
    size: int  # real leaves of the tree; positions size … 2**height_of_root - 1 are padding
    height: int  # of the node above the leaves
    index: int  # of the node among those at its height
    nodes: Pair[Root]  # each party's hash of the node


@dataclass(frozen=True)
class LeafClaim:
    """The first leaf where two trees differ, with each party's leaf hash."""

    tree: TreeKind
    size: int
    index: int
    hashes: Pair[Root]


@dataclass(frozen=True)
class Position:
    """The facts established so far, filled in as the game moves on."""

    descent: Descent | None = None  # the node being dissected, if a descent is under way
    chain_leaf: LeafClaim | None = None  # i: the first differing chain leaf
    step: StepIndex | None = None  # t = i - 1
    state_before: Root | None = None  # the agreed s_t
    states_after: Pair[Root] | None = None  # each party's s_{t+1}
    traces: Pair[TraceCommitment] | None = None  # each party's trace commitment of step t
    leaf: LeafClaim | None = None  # the first differing leaf of the ops or state-after trees
    dispute: LeafDispute | None = None  # that leaf, with both parties' bytes, as given to the referee
    evidence: Evidence = field(default_factory=Evidence)  # checked evidence
    requested: tuple[EvidenceRequest, ...] = ()  # every request the referee has made
    evidence_rounds: int = 0
    supplier: Role | None = None  # the one party the current evidence query is addressed to
    first_supplier: Role = Role.CHALLENGER  # asked first for each new request; the other once it withholds
    asked: tuple[tuple[EvidenceRequest, Role], ...] = ()  # which party has been asked for which request
    agreed_nodes: tuple[tuple[int, int, Root], ...] = ()  # ops-tree nodes (height, index, hash) revealed alike
    withholders: tuple[Role, ...] = ()  # parties that left requested evidence out of an answer


@dataclass(frozen=True)
class PartyRef:
    role: Role
    key: PublicKeyBytes


@dataclass(frozen=True)
class RejectedMessage:
    """A message refused without a verdict; it still cost its sender's clock."""

    at: Seconds
    sender: str
    seq: int
    reason: str


@dataclass(frozen=True)
class Verdict:
    """How a game ended. `winner` is None when nobody wins (no dispute, or both lose)."""

    outcome: Outcome
    winner: PartyRef | None
    losers: tuple[PartyRef, ...]
    reason: Reason
    detail: str  # one line naming what was checked
    phase: Phase  # the phase the game ended in
    tree: TreeKind | None  # the tree of the decisive leaf, when one was reached
    step: StepIndex | None  # t, once known
    index: int | None  # the decisive leaf's index in `tree` (op node, state leaf or chain leaf)
    rounds_chain: int  # queries asked in phase 1
    rounds_trace: int  # queries asked in phase 2
    bytes_total: int  # canonical JSON bytes of every message received, refused ones included
    bytes_without_tensors: int  # the same, without the hex of tensor evidence
    rejected_messages: int
    decided_at: Seconds
    history: Root  # digest of everything the game received, in order (see rules.compute_history)
    evidence: tuple[Any, ...] = ()  # JSON of the messages that prove an equivocation

    @property
    def loser(self) -> PartyRef | None:
        """The single loser of a decided game; None when nobody or both lost."""
        return self.losers[0] if len(self.losers) == 1 else None

    @property
    def rounds(self) -> int:
        return self.rounds_chain + self.rounds_trace


@dataclass(frozen=True)
class GameState:
    setup: GameSetup
    game_id: bytes
    keys: Pair[PublicKeyBytes]
    now: Seconds  # time of the last event processed
    round_started_at: Seconds  # when the current query was asked
    clocks: Pair[Seconds]  # each party's remaining budget, as of the start of the current round
    seq: int  # sequence number of the current query (-1 before the first)
    query: Query | None  # None once decided
    round_histories: tuple[Root, ...]  # the history digest when query n was asked, for n = 0 … seq: what an
    # answer to query n signs as "prev", binding it to every event before its query
    answers: Pair[Move | None]  # the accepted answers to the current query
    position: Position
    accepted: tuple[SignedMove, ...]  # every accepted answer, for equivocation checks
    rejected: tuple[RejectedMessage, ...]
    rounds_chain: int
    rounds_trace: int
    bytes_total: int
    bytes_tensors: int
    history: Root
    verdict: Verdict | None


# JSON of the setup and the verdict (the transcript's fixed parts) -------------------------------------


def compute_setup_json(setup: GameSetup) -> dict[str, Any]:
    return {
        "worker": compute_signed_run_commitment_json(setup.worker),
        "challenger": compute_signed_run_commitment_json(setup.challenger),
        "config": compute_config_json(setup.config),
        "started_at": float(setup.started_at),
        "context": setup.context,
        "dispute_id": bytes(setup.dispute_id).hex(),
        "time_source": None if setup.time_source is None else bytes(setup.time_source).hex(),
    }


def parse_setup_json(value: Any) -> GameSetup:
    body = parse_object(value, ("worker", "challenger", "config", "started_at", "context", "dispute_id",
                                "time_source"), "setup")
    if not is_json_value(body["context"]):
        raise ParseError("setup.context must be a JSON value")
    time_source = body["time_source"]
    return GameSetup(
        worker=parse_signed_run_commitment_json(body["worker"]),
        challenger=parse_signed_run_commitment_json(body["challenger"]),
        config=parse_config_json(body["config"]),
        started_at=Seconds(parse_float(body["started_at"], "setup.started_at")),
        context=body["context"],
        dispute_id=parse_hex(body["dispute_id"], "setup.dispute_id", size=DIGEST_SIZE),
        time_source=None if time_source is None else PublicKeyBytes(parse_hex(time_source, "setup.time_source", size=32)),
    )


def _party_json(party: PartyRef | None) -> dict[str, str] | None:
    return None if party is None else {"role": party.role.value, "key": bytes(party.key).hex()}


def _parse_party(value: Any, what: str) -> PartyRef:
    body = parse_object(value, ("role", "key"), what)
    role = Role(parse_str(body["role"], f"{what}.role", choices=[r.value for r in Role]))
    return PartyRef(role, PublicKeyBytes(parse_hex(body["key"], f"{what}.key", size=32)))


def compute_verdict_json(verdict: Verdict) -> dict[str, Any]:
    return {
        "outcome": verdict.outcome.value,
        "winner": _party_json(verdict.winner),
        "losers": [_party_json(party) for party in verdict.losers],
        "reason": verdict.reason.value,
        "detail": verdict.detail,
        "phase": verdict.phase.value,
        "tree": None if verdict.tree is None else verdict.tree.value,
        "step": verdict.step,
        "index": verdict.index,
        "rounds": {"chain": verdict.rounds_chain, "trace": verdict.rounds_trace},
        "bytes": {"total": verdict.bytes_total, "without_tensors": verdict.bytes_without_tensors},
        "rejected_messages": verdict.rejected_messages,
        "decided_at": float(verdict.decided_at),
        "history": bytes(verdict.history).hex(),
        "evidence": list(verdict.evidence),
    }


def parse_verdict_json(value: Any) -> Verdict:
    keys = ("outcome", "winner", "losers", "reason", "detail", "phase", "tree", "step", "index", "rounds",
            "bytes", "rejected_messages", "decided_at", "history", "evidence")
    body = parse_object(value, keys, "verdict")
    big = 1 << 62
    rounds = parse_object(body["rounds"], ("chain", "trace"), "verdict.rounds")
    sizes = parse_object(body["bytes"], ("total", "without_tensors"), "verdict.bytes")
    evidence = parse_list(body["evidence"], "verdict.evidence", max_length=2)
    if not is_json_value(evidence):
        raise ParseError("verdict.evidence must be JSON")
    return Verdict(
        outcome=Outcome(parse_str(body["outcome"], "verdict.outcome", choices=[o.value for o in Outcome])),
        winner=None if body["winner"] is None else _parse_party(body["winner"], "verdict.winner"),
        losers=tuple(_parse_party(p, "verdict.losers[]") for p in parse_list(body["losers"], "losers", max_length=2)),
        reason=Reason(parse_str(body["reason"], "verdict.reason", choices=[r.value for r in Reason])),
        detail=parse_str(body["detail"], "verdict.detail"),
        phase=Phase(parse_str(body["phase"], "verdict.phase", choices=[p.value for p in Phase])),
        tree=None if body["tree"] is None else TreeKind(
            parse_str(body["tree"], "verdict.tree", choices=[t.value for t in TreeKind])),
        step=None if body["step"] is None else StepIndex(parse_int(body["step"], "verdict.step", low=0, high=big)),
        index=None if body["index"] is None else parse_int(body["index"], "verdict.index", low=0, high=big),
        rounds_chain=parse_int(rounds["chain"], "verdict.rounds.chain", low=0, high=big),
        rounds_trace=parse_int(rounds["trace"], "verdict.rounds.trace", low=0, high=big),
        bytes_total=parse_int(sizes["total"], "verdict.bytes.total", low=0, high=big),
        bytes_without_tensors=parse_int(sizes["without_tensors"], "verdict.bytes.without_tensors", low=0, high=big),
        rejected_messages=parse_int(body["rejected_messages"], "verdict.rejected_messages", low=0, high=big),
        decided_at=Seconds(parse_float(body["decided_at"], "verdict.decided_at")),
        history=Root(parse_hex(body["history"], "verdict.history", size=DIGEST_SIZE)),
        evidence=tuple(evidence),
    )
