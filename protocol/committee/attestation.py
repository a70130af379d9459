"""A committee attestation: one verdict statement, one aggregate BLS signature, the seats that signed it.

    {"committee": hex32, "epoch": e, "signature": hex96, "signers": [seat, …], "statement": {…}}

`committee` is the committee's root (`compute_committee_root`) and `signers` the seats (indices into its
members, strictly increasing) whose signatures of the statement's message the signature aggregates. The
ledger accepts it when it is about its committee, the signers hold at least `quorum_numerator /
quorum_denominator` of the committee's stake, and FastAggregateVerify holds for their keys: one pairing
check, whatever the committee's size. The stake is counted before the pairing, so an under-weight
attestation costs its verifier nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from protocol.committee.bls import (
    DEFAULT_BACKEND,
    SIGNATURE_SIZE,
    BLSBackend,
    BLSSecretKey,
    BLSSignature,
    aggregate_signatures,
    is_valid_aggregate,
    sign_bls,
)
from protocol.committee.config import CommitteeConfig
from protocol.committee.selection import MAX_EPOCH, Committee, compute_committee_root
from protocol.committee.statement import (
    VerdictStatement,
    compute_statement_json,
    compute_statement_message,
    parse_statement_json,
)
from protocol.game.codec import ParseError, parse_hex, parse_int, parse_list, parse_object
from protocol.types import DIGEST_SIZE, Root


@dataclass(frozen=True)
class Attestation:
    statement: VerdictStatement
    epoch: int
    committee: Root  # compute_committee_root of the committee that signed
    signers: tuple[int, ...]  # seats, strictly increasing
    signature: BLSSignature  # the aggregate of the signers' signatures of the statement's message


@dataclass(frozen=True)
class AttestationCheck:
    """The answer of `verify_attestation`: never an exception."""

    valid: bool
    reason: str  # one line: why it is accepted, or the first check it fails
    statement: VerdictStatement | None = None  # the attested statement, when valid
    signed_stake: int = 0  # tokens held by the signers
    total_stake: int = 0  # tokens held by the committee


def compute_attestation_json(attestation: Attestation) -> dict[str, Any]:
    return {
        "statement": compute_statement_json(attestation.statement),
        "epoch": attestation.epoch,
        "committee": bytes(attestation.committee).hex(),
        "signers": list(attestation.signers),
        "signature": bytes(attestation.signature).hex(),
    }


def parse_attestation_json(value: Any, *, max_members: int) -> Attestation:
    """An attestation from its JSON; ParseError on any deviation from the format."""
    body = parse_object(value, ("statement", "epoch", "committee", "signers", "signature"), "attestation")
    signers = parse_list(body["signers"], "attestation.signers", max_length=max_members)
    return Attestation(
        statement=parse_statement_json(body["statement"]),
        epoch=parse_int(body["epoch"], "attestation.epoch", low=0, high=MAX_EPOCH),
        committee=Root(parse_hex(body["committee"], "attestation.committee", size=DIGEST_SIZE)),
        signers=tuple(parse_int(seat, f"attestation.signers[{i}]", low=0, high=max_members - 1)
                      for i, seat in enumerate(signers)),
        signature=BLSSignature(parse_hex(body["signature"], "attestation.signature", size=SIGNATURE_SIZE)),
    )


def sign_verdict(secret: BLSSecretKey, statement: VerdictStatement, backend: BLSBackend = DEFAULT_BACKEND) -> BLSSignature:
    """A member's signature of a verdict statement (its share of an attestation)."""
    return sign_bls(secret, compute_statement_message(statement), backend)


def compute_attestation(committee: Committee, statement: VerdictStatement, shares: Mapping[int, bytes],
                        backend: BLSBackend = DEFAULT_BACKEND) -> Attestation:
    """Aggregate the members' signatures (by seat) of one statement. The shares are not checked here: a
    collector checks each share as it arrives (`is_valid_share`), or the aggregate once."""
    seats = tuple(sorted(shares))
    if not seats or seats[0] < 0 or seats[-1] >= len(committee.members):
        raise ValueError(f"shares must come from seats 0 … {len(committee.members) - 1}")
    return Attestation(statement, committee.epoch, compute_committee_root(committee), seats,
                       aggregate_signatures([shares[seat] for seat in seats], backend))


def is_valid_share(committee: Committee, seat: int, statement: VerdictStatement, share: bytes,
                   backend: BLSBackend = DEFAULT_BACKEND) -> bool:
    """One member's signature of the statement; never raises."""
    try:
        if type(seat) is not int or not 0 <= seat < len(committee.members):
            return False
        return is_valid_aggregate([committee.members[seat].key], compute_statement_message(statement), share, backend)
    except Exception:
        return False


def get_signed_stake(committee: Committee, signers: Sequence[int]) -> int:
    return sum(committee.members[seat].stake for seat in signers)


def is_quorum(committee: Committee, signed_stake: int, config: CommitteeConfig) -> bool:
    """signed / total >= numerator / denominator, in integers (no rounding to argue about)."""
    return signed_stake * config.quorum_denominator >= config.quorum_numerator * committee.total_stake


def get_signers_problem(attestation: Attestation, committee: Committee) -> str | None:
    """Why the attestation is not about this committee or names its signers wrongly; None when it is fine."""
    if attestation.epoch != committee.epoch:
        return f"the attestation is for epoch {attestation.epoch}, the committee is epoch {committee.epoch}'s"
    if bytes(attestation.committee) != compute_committee_root(committee):
        return "the attestation names another committee (its committee root differs)"
    signers = attestation.signers
    if not signers:
        return "the attestation names no signer"
    if any(type(seat) is not int for seat in signers) or list(signers) != sorted(set(signers)):
        return "the signers must be distinct seats in increasing order"
    if signers[0] < 0 or signers[-1] >= len(committee.members):
        return f"a signer's seat is outside 0 … {len(committee.members) - 1}"
    return None


def is_signed_by(attestation: Attestation, committee: Committee, backend: BLSBackend = DEFAULT_BACKEND) -> bool:
    """The aggregate signature holds for the named signers of this committee, whatever their weight (what a
    fault proof needs: a minority's signature is as binding as a quorum's). Never raises."""
    try:
        if get_signers_problem(attestation, committee) is not None:
            return False
        keys = [committee.members[seat].key for seat in attestation.signers]
        return is_valid_aggregate(keys, compute_statement_message(attestation.statement), attestation.signature,
                                  backend)
    except Exception:
        return False


def verify_attestation(attestation: Attestation | Any, committee: Committee, config: CommitteeConfig, *,
                       game_id: bytes | None = None, backend: BLSBackend = DEFAULT_BACKEND) -> AttestationCheck:
    """Accept a committee verdict (an Attestation or its JSON) for `game_id` (any game when None): about this
    committee, signed by members holding a quorum of its stake, the aggregate signature valid. Never raises."""
    total = committee.total_stake
    try:
        parsed = attestation if isinstance(attestation, Attestation) else parse_attestation_json(
            attestation, max_members=config.max_members)
        problem = get_signers_problem(parsed, committee)
        if problem is not None:
            return AttestationCheck(False, problem, total_stake=total)
        if game_id is not None and bytes(parsed.statement.game_id) != bytes(game_id):
            return AttestationCheck(False, f"the attestation is about game {bytes(parsed.statement.game_id).hex()}, "
                                    f"not {bytes(game_id).hex()}", total_stake=total)
        signed = get_signed_stake(committee, parsed.signers)
        if not is_quorum(committee, signed, config):
            return AttestationCheck(False, f"under-weight: the signers hold {signed} of {total} staked, less than "
                                    f"{config.quorum_numerator}/{config.quorum_denominator}", signed_stake=signed,
                                    total_stake=total)
        if len(parsed.signature) != SIGNATURE_SIZE:
            return AttestationCheck(False, f"the signature must be {SIGNATURE_SIZE} bytes", signed_stake=signed,
                                    total_stake=total)
        if not is_signed_by(parsed, committee, backend):
            return AttestationCheck(False, "the aggregate signature does not verify for the signers' keys and the "
                                    "statement", signed_stake=signed, total_stake=total)
        return AttestationCheck(True, f"signed by {len(parsed.signers)} of {len(committee.members)} members holding "
                                f"{signed} of {total} staked", parsed.statement, signed, total)
    except (ParseError, ValueError, TypeError, KeyError, AttributeError) as error:
        return AttestationCheck(False, f"malformed attestation: {error}", total_stake=total)
