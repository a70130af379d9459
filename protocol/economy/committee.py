"""Referee committees in the economy: registration, one committee per epoch, settlement by a committee's
attestation, and the slashing of committee faults.

**Registration.** A referee registers its BLS public key with its proof of possession (checked on entry,
protocol.committee.selection) and keeps `referee_stake` bonded, like a worker keeps its required stake.
One bonded role per account: a referee is not a worker, so a committee never judges its own member's job
with that member's stake. A referee leaves with `process_deregister_referee` and is not drawn again.

**The committee of an epoch** is drawn when the epoch starts (`process_epoch` calls
`process_committee_rotation` once the epoch's seed is in) from the active referees with at least
`referee_stake` bonded, weighted by that stake, from the committee seed

    H("pinpoint/v1/committee-economy-seed\\n" || epoch (8 bytes, little-endian) || the economy's epoch seed)

The economy's seed is the same beacon that draws forced errors: it is given with the epoch, after the
candidates of the draw are fixed, so no referee can register, leave or restake knowing where the draw
lands. Committees rotate every epoch. A committee is kept `committee_retention_epochs` after its epoch,
and while a dispute opened in its epoch is still open, so its attestations settle and its faults are
proven against the stake it was drawn with.

**Settlement by attestation.** A dispute opened in epoch e is judged by e's committee. Its settlement may
carry, instead of the game's transcript, the committee's attestation of the verdict statement together
with the game's setup: the setup must bind the dispute exactly as a transcript's does (the registered
commitments, the issued dispute id, the economy's time source), the statement must be about that game
(its id is the setup's game id) and name the training job and the two parties' keys, and the attestation
must be signed by seats of e's committee holding at least 2/3 of its stake, its aggregate signature
verified once (FastAggregateVerify). The outcome follows from the statement's outcome and winner.

**Faults** are reported by anyone with the evidence that proves them (protocol.committee.faults):
two attestations of different statements about one game (equivocation), an attestation and the game's
transcript from which another statement follows (a wrong verdict), the time source's record of a round
that lasted the signing timeout (absence). Each offending seat loses its fault's share of the stake it
was drawn with (at most what is still at risk), burned: nobody profits from a fault, not even its
reporter, so reporting one is never a way to be paid for colluding with it. A seat is slashed once per
fault and game; a referee proven to have signed a falsehood (equivocation, wrong verdict) is deregistered.

The committee's cryptography and the game's modules load py_ecc and torch: they are imported on first
use, so a process that only runs the economy (the simulation) stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import blake3

from protocol.economy.errors import (
    AlreadyRegistered,
    InsufficientStake,
    InvalidEvidence,
    InvalidFaultProof,
    InvalidRegistration,
    NoCommittee,
    NoReferee,
    NotAReferee,
)
from protocol.economy.evidence import RefereeFactory, compute_outcome, require_dispute_setup
from protocol.economy.helpers import (
    get_account,
    get_stake,
    get_stake_at_risk,
    increase_burned,
    record_slash,
    slash_stake,
)
from protocol.economy.state import CommitteeRecord, CommitteeSeat, Dispute, Job, RefereeRecord, State

if TYPE_CHECKING:
    from protocol.committee import Committee, CommitteeConfig, FaultCheck

COMMITTEE_SEED_DOMAIN = b"pinpoint/v1/committee-economy-seed\n"


@dataclass(frozen=True, slots=True)
class FaultResult:
    """What a proven committee fault cost, in tokens."""

    kind: str  # protocol.committee.FaultKind value
    epoch: int  # of the committee
    game_id: str  # hex of the game the fault is about
    slashed: tuple[tuple[str, int], ...]  # (account, tokens taken), every token burned


def get_committee_config(state: State) -> CommitteeConfig:
    from protocol.committee import PRESETS

    return PRESETS[state.params.committee_preset]


def compute_committee_seed(epoch: int, seed: str) -> bytes:
    """The committee seed of `epoch` from the economy's epoch seed (hex)."""
    return blake3.blake3(COMMITTEE_SEED_DOMAIN + epoch.to_bytes(8, "little") + bytes.fromhex(seed)).digest()


# -- registration -----------------------------------------------------------------------------------


def process_register_referee(state: State, account: str, key: str, proof: str) -> None:
    """Register `account` as a referee with its BLS public key and proof of possession (hex). It must have
    `referee_stake` bonded, not be an active worker, and the key must be valid, proven and its own."""
    get_account(state, account)
    previous = state.referees.get(account)
    if previous is not None and previous.active:
        raise AlreadyRegistered(f"{account!r} is already an active referee")
    worker = state.workers.get(account)
    if worker is not None and worker.active:
        raise AlreadyRegistered(f"{account!r} is an active worker: one bonded role per account")
    if get_stake(state, account) < state.params.referee_stake:
        raise InsufficientStake(f"a referee keeps {state.params.referee_stake} staked; {account!r} has "
                                f"{get_stake(state, account)}")
    try:
        key_bytes, proof_bytes = bytes.fromhex(key), bytes.fromhex(proof)
    except ValueError:
        raise InvalidRegistration("a referee's key and proof of possession are hex") from None
    if any(other.key == key_bytes.hex() for name, other in state.referees.items() if name != account):
        raise InvalidRegistration("another referee registered this key: one key, one seat")
    from protocol.committee import Registration, get_registration_problem

    problem = get_registration_problem(Registration(account, key_bytes, proof_bytes))  # type: ignore[arg-type]
    if problem is not None:
        raise InvalidRegistration(problem)
    state.referees[account] = RefereeRecord(key_bytes.hex(), state.epoch, True)


def process_deregister_referee(state: State, account: str) -> None:
    """Stop being drawn into committees (from the next epoch's draw). Committees already drawn keep the
    seat, and its stake stays slashable for their faults while it unbonds."""
    record = state.referees.get(account)
    if record is None or not record.active:
        raise NotAReferee(f"{account!r} is not an active referee")
    record.active = False


def is_active_referee(state: State, account: str) -> bool:
    record = state.referees.get(account)
    return record is not None and record.active


# -- the committee of each epoch ----------------------------------------------------------------------


def process_committee_rotation(state: State) -> CommitteeRecord | None:
    """Draw the committee of the epoch that starts (called by `process_epoch` with its seed in place) and
    drop the committees no longer kept. Returns the new committee, or None when no referee can sit.
    O(referees · committee size + kept committees + open disputes)."""
    p = state.params
    needed = {dispute.opened_epoch for dispute in state.disputes.values()}
    for epoch in [e for e in state.committees if e < state.epoch - p.committee_retention_epochs and e not in needed]:
        del state.committees[epoch]
    state.committee_faults = {fault: e for fault, e in state.committee_faults.items() if e in state.committees}
    eligible = [(account, record.key) for account, record in sorted(state.referees.items())
                if record.active and get_stake(state, account) >= p.referee_stake]
    if not eligible:
        return None  # (before the import below: an economy without referees never loads the BLS code)
    from protocol.committee import Candidate, compute_committee, compute_committee_root

    candidates = [Candidate(account, bytes.fromhex(key), get_stake(state, account))  # type: ignore[arg-type]
                  for account, key in eligible]
    committee = compute_committee(state.epoch, compute_committee_seed(state.epoch, state.seed), candidates,
                                  get_committee_config(state).size)
    record = CommitteeRecord(state.epoch, bytes(committee.seed).hex(), bytes(compute_committee_root(committee)).hex(),
                             [CommitteeSeat(m.account, bytes(m.key).hex(), m.stake) for m in committee.members])
    state.committees[state.epoch] = record
    return record


def get_committee(state: State, epoch: object) -> Committee:
    """The committee drawn for `epoch`, as protocol.committee checks attestations against it."""
    from protocol.committee import BLSPublicKey, Committee, Member
    from protocol.types import Root

    record = state.committees.get(epoch) if type(epoch) is int else None
    if record is None:
        raise NoCommittee(f"no committee is kept for epoch {epoch!r}")
    return Committee(record.epoch, Root(bytes.fromhex(record.seed)),
                     tuple(Member(seat.account, BLSPublicKey(bytes.fromhex(seat.key)), seat.stake)
                           for seat in record.seats))


# -- settlement by attestation ------------------------------------------------------------------------


def compute_attested_outcome(state: State, job: Job, dispute: Dispute, attestation: object, setup: object) -> str:
    """The outcome (one of OUTCOMES) a committee's attestation proves for `dispute`, given its game's setup
    (both JSON, hostile), or InvalidEvidence saying why it proves nothing. The checks that cost nothing come
    first; the one pairing check comes last. Never changes `state`."""
    from protocol.committee import parse_attestation_json, verify_attestation
    from protocol.game.codec import ParseError
    from protocol.game.rules import compute_game_id
    from protocol.game.state import parse_setup_json

    where = f"dispute {dispute.number}"
    try:
        parsed_setup = parse_setup_json(setup)
    except (ParseError, TypeError, ValueError, KeyError, RecursionError) as exc:
        raise InvalidEvidence(f"{where}: not a game setup: {exc}") from None
    require_dispute_setup(state, job, dispute, parsed_setup)
    committee = get_committee(state, dispute.opened_epoch)
    config = get_committee_config(state)
    try:
        parsed = parse_attestation_json(attestation, max_members=config.max_members)
    except (ParseError, TypeError, ValueError, KeyError, RecursionError) as exc:
        raise InvalidEvidence(f"{where}: not a committee attestation: {exc}") from None
    statement = parsed.statement
    game_id = compute_game_id(parsed_setup)
    if bytes(statement.game_id) != game_id:
        raise InvalidEvidence(f"{where}: the attested statement is about game {bytes(statement.game_id).hex()}, "
                              f"not this dispute's game {game_id.hex()}")
    if bytes(statement.job_id).hex() != job.training_job:
        raise InvalidEvidence(f"{where}: the attested statement is about training job {bytes(statement.job_id).hex()}")
    parties = (bytes(parsed_setup.worker.commitment.worker_key), bytes(parsed_setup.challenger.commitment.worker_key))
    if (bytes(statement.worker), bytes(statement.challenger)) != parties:
        raise InvalidEvidence(f"{where}: the attested statement names other parties than the game's")
    if parsed.epoch != dispute.opened_epoch:
        raise InvalidEvidence(f"{where}: attested by epoch {parsed.epoch}'s committee; the dispute was opened in "
                              f"epoch {dispute.opened_epoch} and is judged by that epoch's committee")
    check = verify_attestation(parsed, committee, config, game_id=game_id)
    if not check.valid:
        raise InvalidEvidence(f"{where}: {check.reason}")
    outcome = compute_outcome(statement.outcome, statement.winner)
    if outcome is None:
        raise InvalidEvidence(f"{where}: the attested verdict decides nothing ({statement.outcome.value})")
    return outcome


# -- faults -----------------------------------------------------------------------------------------


def slash_committee_fault(state: State, epoch: int, game_id: bytes, check: FaultCheck) -> FaultResult:
    """Slash the offenders of a proven fault of `epoch`'s committee, once per seat, fault and game; every
    token taken is burned. InvalidFaultProof when the check proves nothing or every offender paid already."""
    from protocol.committee import FaultKind, compute_slashes

    if not check.valid or check.kind is None:
        raise InvalidFaultProof(check.reason)
    committee = get_committee(state, epoch)
    penalties = compute_slashes(committee, check, get_committee_config(state))
    fresh = [(seat, account, penalty) for seat, (account, penalty) in zip(check.offenders, penalties, strict=True)
             if f"{check.kind.value}:{epoch}:{bytes(game_id).hex()}:{seat}" not in state.committee_faults]
    if not fresh:
        raise InvalidFaultProof(f"every offender of this {check.kind.value} was slashed for it already")
    slashed: list[tuple[str, int]] = []
    for seat, account, penalty in fresh:
        state.committee_faults[f"{check.kind.value}:{epoch}:{bytes(game_id).hex()}:{seat}"] = epoch
        at_stake = get_stake_at_risk(state, account)
        taken = slash_stake(state, account, min(penalty, at_stake))
        increase_burned(state, taken)
        record_slash(state, account, f"committee-{check.kind.value}", taken, at_stake)
        slashed.append((account, taken))
        if check.kind is not FaultKind.ABSENCE and is_active_referee(state, account):
            state.referees[account].active = False  # it signed a falsehood: drawn no more
    return FaultResult(check.kind.value, epoch, bytes(game_id).hex(), tuple(slashed))


def _parse_attestation(state: State, value: object, what: str) -> Any:
    from protocol.committee import parse_attestation_json
    from protocol.game.codec import ParseError

    try:
        return parse_attestation_json(value, max_members=get_committee_config(state).max_members)
    except (ParseError, TypeError, ValueError, KeyError, RecursionError) as exc:
        raise InvalidFaultProof(f"{what}: not a committee attestation: {exc}") from None


def process_report_equivocation(state: State, reporter: str, epoch: int, first: object, second: object) -> FaultResult:
    """Anyone reports two attestations by `epoch`'s committee of different statements about one game: every
    seat that signed both is slashed `equivocation_slash_bps` of its drawn stake."""
    from protocol.committee import EquivocationProof, check_equivocation

    committee = get_committee(state, epoch)
    proof = EquivocationProof(_parse_attestation(state, first, "first"), _parse_attestation(state, second, "second"))
    return slash_committee_fault(state, epoch, proof.first.statement.game_id,
                                 check_equivocation(proof, committee))


def process_report_wrong_verdict(state: State, reporter: str, epoch: int, attestation: object, transcript: object,
                                 referees: RefereeFactory | None) -> FaultResult:
    """Anyone reports an attestation by `epoch`'s committee and the game's transcript, witnessed by this
    economy's time source, from which another statement follows (replayed with the referee of the
    statement's training job): every signer is slashed `wrong_verdict_slash_bps` of its drawn stake."""
    from protocol.committee import WrongVerdictProof, check_wrong_verdict
    from protocol.game.codec import ParseError
    from protocol.game.transcript import parse_transcript_json

    committee = get_committee(state, epoch)
    parsed = _parse_attestation(state, attestation, "attestation")
    try:
        game = parse_transcript_json(transcript)
    except (ParseError, TypeError, ValueError, KeyError, RecursionError) as exc:
        raise InvalidFaultProof(f"not a game transcript: {exc}") from None
    named = "" if game.setup.time_source is None else bytes(game.setup.time_source).hex()
    if not state.time_source or named != state.time_source:
        raise InvalidFaultProof("only a game witnessed by this economy's time source refutes a verdict here")
    if referees is None:
        raise NoReferee("no referee here to replay the transcript; nothing is taken on trust")
    training_job = bytes(game.setup.worker.commitment.job_id)
    try:
        referee = referees(training_job, game.setup.context)
    except Exception as exc:  # the factory refuses a context it cannot build that job's referee from
        raise InvalidFaultProof(f"no referee for training job {training_job.hex()} from the game's context: "
                                f"{type(exc).__name__}: {exc}") from None
    check = check_wrong_verdict(WrongVerdictProof(parsed, game), committee, referee)
    return slash_committee_fault(state, epoch, parsed.statement.game_id, check)


def process_report_absence(state: State, reporter: str, epoch: int, close: object, signature: str) -> FaultResult:
    """Anyone reports the time source's signed record of a verdict round of `epoch`'s committee that lasted
    the signing timeout: every seat it does not list is slashed `absence_slash_bps` of its drawn stake."""
    from protocol.committee import AbsenceProof, check_absence
    from protocol.committee.faults import parse_close_json
    from protocol.game.codec import ParseError

    committee = get_committee(state, epoch)
    config = get_committee_config(state)
    if not state.time_source:
        raise InvalidFaultProof("this economy names no time source: nobody witnesses its rounds")
    try:
        record = parse_close_json(close, max_members=config.max_members)
        signed = bytes.fromhex(signature)
    except (ParseError, TypeError, ValueError, KeyError, RecursionError) as exc:
        raise InvalidFaultProof(f"not a round's record: {exc}") from None
    check = check_absence(AbsenceProof(record, signed), committee, config,  # type: ignore[arg-type]
                          bytes.fromhex(state.time_source))
    return slash_committee_fault(state, epoch, record.game_id, check)
