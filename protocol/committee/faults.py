"""Committee faults and the evidence that proves each one: a member's stake is taken only on evidence
that anyone can check.

- **Equivocation**: two attestations (or single shares, as one-signer attestations) by one committee of
  two different statements about one game. Both signatures hold, so every seat that signed both signed
  two verdicts for one game: both statements are the proof.
- **Wrong verdict**: an attestation of a statement, and the game's transcript from which another
  statement follows (`compute_transcript_statement`, with the referee built from the job alone). Only a
  game witnessed by a time source can be refuted: its receipts make its transcript unique (an honest
  time source never forks a game's log), so the statement that follows from it is the only true one.
  Every signer of the refuted statement signed a falsehood, whatever the weight of the signers.
- **Absence**: the time source's record of a verdict round (kind `committee-close`): the game, the
  committee, when the round opened and closed, and the seats whose valid signature had arrived by the
  close. A round that lasted at least `signing_timeout` proves that the seats it does not list were
  silent: a timeout is only as good as its witness, here as in the game.

Each check returns a `FaultCheck` naming the offending seats and never raises.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.committee.attestation import Attestation, is_signed_by
from protocol.committee.bls import DEFAULT_BACKEND, BLSBackend
from protocol.committee.config import CommitteeConfig, compute_penalty
from protocol.committee.selection import MAX_EPOCH, Committee, compute_committee_root
from protocol.committee.statement import (
    compute_statement_json,
    compute_statement_message,
    compute_transcript_statement,
)
from protocol.game.codec import parse_float, parse_hex, parse_int, parse_list, parse_object
from protocol.game.interfaces import Referee
from protocol.game.transcript import Transcript
from protocol.signing import compute_canonical_json, sign_statement, verify_statement
from protocol.types import DIGEST_SIZE, Root, Seconds, SignatureBytes

CLOSE_KIND = "committee-close"


class FaultKind(StrEnum):
    EQUIVOCATION = "equivocation"
    WRONG_VERDICT = "wrong verdict"
    ABSENCE = "absence"


@dataclass(frozen=True)
class FaultCheck:
    valid: bool  # the evidence proves the fault
    reason: str  # one line
    kind: FaultKind | None = None
    offenders: tuple[int, ...] = ()  # seats of the committee that committed it


@dataclass(frozen=True)
class EquivocationProof:
    first: Attestation
    second: Attestation


@dataclass(frozen=True)
class WrongVerdictProof:
    attestation: Attestation
    transcript: Transcript


@dataclass(frozen=True)
class RoundClose:
    """The time source's record of one verdict round."""

    game_id: bytes
    epoch: int
    committee: Root
    opened_at: Seconds  # when the verdict was requested from the committee
    closed_at: Seconds  # when the round was closed
    signed: tuple[int, ...]  # seats whose valid share arrived by `closed_at`, increasing


@dataclass(frozen=True)
class AbsenceProof:
    close: RoundClose
    signature: SignatureBytes  # the time source's Ed25519 signature of the record


def _refused(reason: str) -> FaultCheck:
    return FaultCheck(False, reason)


def check_equivocation(proof: EquivocationProof, committee: Committee,
                       backend: BLSBackend = DEFAULT_BACKEND) -> FaultCheck:
    """Seats that signed two different statements about one game (two pairing checks). Never raises."""
    try:
        first, second = proof.first, proof.second
        if bytes(first.statement.game_id) != bytes(second.statement.game_id):
            return _refused("the two statements are about different games")
        if compute_statement_message(first.statement) == compute_statement_message(second.statement):
            return _refused("the two statements are the same: signing one verdict twice is no fault")
        offenders = tuple(sorted(set(first.signers) & set(second.signers)))
        if not offenders:
            return _refused("no seat signed both statements")
        for name, attestation in (("first", first), ("second", second)):
            if not is_signed_by(attestation, committee, backend):
                return _refused(f"the {name} statement's signature does not verify for its signers in this committee")
        return FaultCheck(True, f"seats {list(offenders)} signed two verdicts for game "
                          f"{bytes(first.statement.game_id).hex()}", FaultKind.EQUIVOCATION, offenders)
    except Exception as error:  # never raise on bad input (STYLE.md, item 4)
        return _refused(f"malformed equivocation proof: {type(error).__name__}: {error}")


def check_wrong_verdict(proof: WrongVerdictProof, committee: Committee, referee: Referee,
                        backend: BLSBackend = DEFAULT_BACKEND) -> FaultCheck:
    """The signers of a statement that the game's transcript refutes. `referee` is built from the job alone
    (as for settling by transcript). Never raises."""
    try:
        attestation, transcript = proof.attestation, proof.transcript
        if bytes(transcript.game_id) != bytes(attestation.statement.game_id):
            return _refused("the transcript is of another game than the statement")
        if transcript.setup.time_source is None:
            return _refused("the game names no time source: its transcript is not unique and refutes nothing")
        try:
            truth = compute_transcript_statement(transcript, referee)
        except Exception as error:
            return _refused(f"the transcript does not verify: {type(error).__name__}: {error}")
        if compute_canonical_json(compute_statement_json(truth)) == compute_canonical_json(
                compute_statement_json(attestation.statement)):
            return _refused("the transcript proves the attested statement: nothing to refute")
        if not is_signed_by(attestation, committee, backend):
            return _refused("the attestation's signature does not verify for its signers in this committee")
        differ = sorted(key for key, value in compute_statement_json(truth).items()
                        if compute_statement_json(attestation.statement)[key] != value)
        return FaultCheck(True, f"seats {list(attestation.signers)} signed a verdict the transcript refutes "
                          f"(differs in {', '.join(differ)})", FaultKind.WRONG_VERDICT, tuple(attestation.signers))
    except Exception as error:
        return _refused(f"malformed wrong-verdict proof: {type(error).__name__}: {error}")


def compute_close_json(close: RoundClose) -> dict[str, Any]:
    return {
        "game_id": bytes(close.game_id).hex(),
        "epoch": close.epoch,
        "committee": bytes(close.committee).hex(),
        "opened_at": float(close.opened_at),
        "closed_at": float(close.closed_at),
        "signed": list(close.signed),
    }


def parse_close_json(value: Any, *, max_members: int) -> RoundClose:
    body = parse_object(value, ("game_id", "epoch", "committee", "opened_at", "closed_at", "signed"), "round close")
    signed = parse_list(body["signed"], "round close.signed", max_length=max_members)
    return RoundClose(
        game_id=parse_hex(body["game_id"], "round close.game_id", size=DIGEST_SIZE),
        epoch=parse_int(body["epoch"], "round close.epoch", low=0, high=MAX_EPOCH),
        committee=Root(parse_hex(body["committee"], "round close.committee", size=DIGEST_SIZE)),
        opened_at=Seconds(parse_float(body["opened_at"], "round close.opened_at")),
        closed_at=Seconds(parse_float(body["closed_at"], "round close.closed_at")),
        signed=tuple(parse_int(seat, f"round close.signed[{i}]", low=0, high=max_members - 1)
                     for i, seat in enumerate(signed)),
    )


def sign_round_close(key: Ed25519PrivateKey, close: RoundClose) -> SignatureBytes:
    """The time source closes a round: what it signs."""
    return sign_statement(key, CLOSE_KIND, compute_close_json(close))


def check_absence(proof: AbsenceProof, committee: Committee, config: CommitteeConfig, time_source: bytes) -> FaultCheck:
    """Seats that had not signed by the close of a round that lasted the signing timeout, on the word of the
    `time_source` trusted to witness the committee's rounds. Never raises."""
    try:
        close = proof.close
        if not verify_statement(time_source, CLOSE_KIND, compute_close_json(close), proof.signature):
            return _refused("the round's record is not the time source's signature")
        if close.epoch != committee.epoch or bytes(close.committee) != compute_committee_root(committee):
            return _refused("the round's record is about another committee")
        signed = close.signed
        if list(signed) != sorted(set(signed)) or (signed and not 0 <= signed[0] <= signed[-1] < len(committee.members)):
            return _refused("the record's signers must be distinct seats of the committee, in increasing order")
        if float(close.closed_at) - float(close.opened_at) < float(config.signing_timeout):
            return _refused(f"the round closed after {float(close.closed_at) - float(close.opened_at)} s, before the "
                            f"signing timeout of {float(config.signing_timeout)} s")
        offenders = tuple(seat for seat in range(len(committee.members)) if seat not in set(signed))
        if not offenders:
            return _refused("every seat signed in time")
        return FaultCheck(True, f"seats {list(offenders)} did not sign within {float(config.signing_timeout)} s",
                          FaultKind.ABSENCE, offenders)
    except Exception as error:
        return _refused(f"malformed absence proof: {type(error).__name__}: {error}")


def compute_slashes(committee: Committee, check: FaultCheck, config: CommitteeConfig) -> tuple[tuple[str, int], ...]:
    """(account, tokens) each offender loses for a proven fault, from its stake at the committee's snapshot."""
    if not check.valid or check.kind is None:
        return ()
    bps = {FaultKind.EQUIVOCATION: config.equivocation_slash_bps, FaultKind.WRONG_VERDICT: config.wrong_verdict_slash_bps,
           FaultKind.ABSENCE: config.absence_slash_bps}[check.kind]
    members: Sequence[Any] = committee.members
    return tuple((members[seat].account, compute_penalty(members[seat].stake, bps)) for seat in check.offenders)
