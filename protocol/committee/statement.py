"""The verdict statement: what a committee signs about one game, and exactly what a transcript check yields.

    {"challenger": hex32, "expected_leaf": hex32 | null, "game_id": hex32, "history": hex32,
     "index": n | null, "job_id": hex32, "leaves": [hex32, hex32] | null, "losers": [role, …],
     "outcome": outcome, "outputs": [hex32 | "" | null, …] | null, "reason": reason,
     "step": t | null, "tree": tree | null, "winner": role | null, "worker": hex32}

`worker`/`challenger` are the parties' Ed25519 keys, `history` the game's history digest at its verdict
(it binds every event the game received, so a statement speaks of one course of the game), `tree` and
`index` the decisive leaf (for the ops tree, the node), `leaves` each party's leaf hash there, in the
order (worker, challenger). When the referee decided the game (reason "leaf differs from the referee's
re-execution"), `expected_leaf` is the hash of the leaf it recomputed and `outputs` the output digests
that leaf names: a node's (section 8; "" for a derived output, null for an absent one) or a state leaf's
one digest (section 4); `outputs` is null for other leaf formats. Otherwise both are null.

The statement is a function of a game's final state and the referee (`compute_verdict_statement`), so a
member who verifies the transcript and the settlement that verifies it compute the same bytes. A member
signs `"pinpoint/v1/committee-verdict\\n" || canonical JSON` (`protocol.signing`'s domain, kind
`committee-verdict`) with BLS.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import blake3

from protocol.game.codec import ParseError, parse_hex, parse_int, parse_list, parse_object, parse_str
from protocol.game.enums import Outcome, Reason, Role, TreeKind
from protocol.game.evidence import MissingEvidence
from protocol.game.interfaces import Referee
from protocol.game.state import GameState, compute_verdict_json
from protocol.game.transcript import Transcript, replay_transcript
from protocol.merkle import hash_leaf
from protocol.signing import compute_canonical_json, compute_signing_payload
from protocol.state import StateLeafError, decode_state_leaf
from protocol.trace import TraceFormatError, decode_node
from protocol.types import DIGEST_SIZE, PublicKeyBytes, Root, StepIndex

VERDICT_KIND = "committee-verdict"
MAX_OUTPUTS = 4096  # outputs of one node; far beyond any operator
MAX_INDEX = 1 << 62


class StatementError(ValueError):
    """A game or transcript from which no verdict statement follows (undecided, or a recorded verdict
    that its events do not reach)."""


@dataclass(frozen=True)
class VerdictStatement:
    job_id: bytes
    game_id: bytes
    worker: PublicKeyBytes
    challenger: PublicKeyBytes
    outcome: Outcome
    reason: Reason
    winner: Role | None
    losers: tuple[Role, ...]
    step: StepIndex | None
    tree: TreeKind | None
    index: int | None  # the decisive leaf of `tree` (a node, for the ops tree)
    leaves: tuple[Root, Root] | None  # (worker's, challenger's) leaf hash there
    expected_leaf: Root | None  # hash of the leaf the referee recomputed
    outputs: tuple[Root | None, ...] | None  # the output digests that leaf names
    history: Root


def compute_statement_json(statement: VerdictStatement) -> dict[str, Any]:
    return {
        "job_id": bytes(statement.job_id).hex(),
        "game_id": bytes(statement.game_id).hex(),
        "worker": bytes(statement.worker).hex(),
        "challenger": bytes(statement.challenger).hex(),
        "outcome": statement.outcome.value,
        "reason": statement.reason.value,
        "winner": None if statement.winner is None else statement.winner.value,
        "losers": [role.value for role in statement.losers],
        "step": statement.step,
        "tree": None if statement.tree is None else statement.tree.value,
        "index": statement.index,
        "leaves": None if statement.leaves is None else [bytes(leaf).hex() for leaf in statement.leaves],
        "expected_leaf": None if statement.expected_leaf is None else bytes(statement.expected_leaf).hex(),
        "outputs": None if statement.outputs is None else [
            None if digest is None else bytes(digest).hex() for digest in statement.outputs],
        "history": bytes(statement.history).hex(),
    }


def _optional(value: Any, parse: Any) -> Any:
    return None if value is None else parse(value)


def parse_statement_json(value: Any) -> VerdictStatement:
    """A statement from its JSON; ParseError on any deviation from the format."""
    keys = ("job_id", "game_id", "worker", "challenger", "outcome", "reason", "winner", "losers", "step", "tree",
            "index", "leaves", "expected_leaf", "outputs", "history")
    body = parse_object(value, keys, "verdict statement")
    roles = [role.value for role in Role]

    def role(item: Any, what: str) -> Role:
        return Role(parse_str(item, what, choices=roles))

    def hash32(item: Any, what: str) -> Root:
        return Root(parse_hex(item, what, size=DIGEST_SIZE))

    def output(item: Any, i: int) -> Root | None:
        if item is None:
            return None
        digest = parse_hex(item, f"statement.outputs[{i}]", max_size=DIGEST_SIZE)
        if len(digest) not in (0, DIGEST_SIZE):
            raise ParseError(f"statement.outputs[{i}] is a 32-byte digest or empty")
        return Root(digest)

    losers = tuple(role(item, "statement.losers[]") for item in parse_list(body["losers"], "statement.losers", max_length=2))
    if len(set(losers)) != len(losers):
        raise ParseError("statement.losers names a role twice")
    leaves = _optional(body["leaves"], lambda v: parse_list(v, "statement.leaves", max_length=2))
    if leaves is not None and len(leaves) != 2:
        raise ParseError("statement.leaves has one hash per party")
    outputs = _optional(body["outputs"], lambda v: parse_list(v, "statement.outputs", max_length=MAX_OUTPUTS))
    return VerdictStatement(
        job_id=parse_hex(body["job_id"], "statement.job_id", size=DIGEST_SIZE),
        game_id=parse_hex(body["game_id"], "statement.game_id", size=DIGEST_SIZE),
        worker=PublicKeyBytes(parse_hex(body["worker"], "statement.worker", size=32)),
        challenger=PublicKeyBytes(parse_hex(body["challenger"], "statement.challenger", size=32)),
        outcome=Outcome(parse_str(body["outcome"], "statement.outcome", choices=[o.value for o in Outcome])),
        reason=Reason(parse_str(body["reason"], "statement.reason", choices=[r.value for r in Reason])),
        winner=_optional(body["winner"], lambda v: role(v, "statement.winner")),
        losers=losers,
        step=_optional(body["step"], lambda v: StepIndex(parse_int(v, "statement.step", low=0, high=MAX_INDEX))),
        tree=_optional(body["tree"], lambda v: TreeKind(parse_str(v, "statement.tree",
                                                                  choices=[t.value for t in TreeKind]))),
        index=_optional(body["index"], lambda v: parse_int(v, "statement.index", low=0, high=MAX_INDEX)),
        leaves=None if leaves is None else (hash32(leaves[0], "statement.leaves[0]"),
                                            hash32(leaves[1], "statement.leaves[1]")),
        expected_leaf=_optional(body["expected_leaf"], lambda v: hash32(v, "statement.expected_leaf")),
        outputs=None if outputs is None else tuple(output(item, i) for i, item in enumerate(outputs)),
        history=hash32(body["history"], "statement.history"),
    )


def compute_statement_message(statement: VerdictStatement) -> bytes:
    """The bytes every member signs with BLS for this statement."""
    return compute_signing_payload(VERDICT_KIND, compute_statement_json(statement))


def compute_statement_digest(statement: VerdictStatement) -> Root:
    """H of the signed message: names a statement in records and proofs."""
    return Root(blake3.blake3(compute_statement_message(statement)).digest())


def compute_leaf_outputs(tree: TreeKind, leaf: bytes) -> tuple[Root | None, ...] | None:
    """The output digests a pinpoint leaf names: a node's outputs, or a state leaf's digest; None for a
    leaf of another format."""
    try:
        if tree is TreeKind.OPS:
            return tuple(decode_node(leaf).digests)
        if tree is TreeKind.STATE_AFTER:
            return (decode_state_leaf(leaf)[1],)
    except (TraceFormatError, StateLeafError):
        return None
    return None


def compute_expected_leaf(state: GameState, referee: Referee) -> bytes | None:
    """The leaf the referee recomputes for a game it decided (None for a game decided by another rule).
    The referee is deterministic, so this is the leaf it named when the game was played."""
    verdict = state.verdict
    dispute = state.position.dispute
    if verdict is None or verdict.reason is not Reason.WRONG_LEAF or dispute is None:
        return None
    leaf = referee.compute_expected_leaf(dispute, state.position.evidence)
    if isinstance(leaf, MissingEvidence) or not isinstance(leaf, bytes):
        raise StatementError("the referee cannot recompute the leaf it decided the game on: another referee's game")
    return leaf


def compute_verdict_statement(state: GameState, referee: Referee) -> VerdictStatement:
    """The statement of a decided game, from its final state (a live game's, or a replayed transcript's)."""
    verdict = state.verdict
    if verdict is None:
        raise StatementError("the game is not decided: there is no verdict to state")
    position = state.position
    claim = position.leaf if position.leaf is not None else (
        position.chain_leaf if verdict.tree is TreeKind.CHAIN else None)
    expected = compute_expected_leaf(state, referee)
    return VerdictStatement(
        job_id=bytes(state.setup.worker.commitment.job_id),
        game_id=bytes(state.game_id),
        worker=PublicKeyBytes(bytes(state.keys[0])),
        challenger=PublicKeyBytes(bytes(state.keys[1])),
        outcome=verdict.outcome,
        reason=verdict.reason,
        winner=None if verdict.winner is None else verdict.winner.role,
        losers=tuple(party.role for party in verdict.losers),
        step=verdict.step,
        tree=verdict.tree,
        index=verdict.index,
        leaves=None if claim is None else (Root(bytes(claim.hashes[0])), Root(bytes(claim.hashes[1]))),
        expected_leaf=None if expected is None else hash_leaf(expected),
        outputs=None if expected is None or verdict.tree is None else compute_leaf_outputs(verdict.tree, expected),
        history=Root(bytes(verdict.history)),
    )


def compute_transcript_statement(transcript: Transcript, referee: Referee) -> VerdictStatement:
    """The statement a transcript proves: its events replayed through the rules (receipts checked) must
    end, at the last event, in exactly its recorded verdict; StatementError (or the replay's GameError)
    when they do not."""
    state = replay_transcript(transcript, referee)
    if state.verdict is None:
        raise StatementError("the transcript's events end before the game is decided")
    replayed = compute_canonical_json(compute_verdict_json(state.verdict))
    if replayed != compute_canonical_json(compute_verdict_json(transcript.verdict)):
        raise StatementError("the transcript's recorded verdict does not follow from its events")
    return compute_verdict_statement(state, referee)
