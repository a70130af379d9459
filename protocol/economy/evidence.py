"""Evidence the economy checks itself: signed run commitments, dispute ids and game transcripts.

Nothing that decides who is paid is taken on trust. A worker's commitment and a challenger's are the
signed run commitments of the game (`protocol.game.commitments`), checked on entry: signed by their
key, for the ledger job's training job, by the sender's own key. A settlement is a game's transcript,
and the economy replays it through the game's pure rules (`protocol.game.transcript`) against exactly
the two registered commitments, the dispute id the economy issued and the time source it trusts.

Where the referee comes from (STYLE.md, item 5: Optimism's `FaultDisputeGame` with an injected
`IBigStepper`): re-executing an operator of a training step needs the job's task and data, which the
pure economy neither holds nor may import (prover/, verifier/ are layers above). So the driver passes a
`RefereeFactory` in; the economy asks it for the referee of the ledger job's training job id, given the
context the game bound, and does every other check itself. The factory is trusted to build the
referee of *that* job id (the verifier's checks the context's job spec hashes to it), nothing more:
the replay, the bindings and the verdict are the economy's. A driver without a factory cannot settle
(`NoReferee`): no verdict is ever accepted unchecked.

The game's modules load torch (tensor encodings); they are imported here on first use, so a process
that only runs the economy (the simulation) stays light.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import blake3

from protocol.economy.errors import InvalidCommitment, InvalidEvidence, NoReferee
from protocol.economy.helpers import is_signer_name
from protocol.signing import compute_canonical_json

if TYPE_CHECKING:
    from protocol.economy.state import Dispute, Job, State
    from protocol.game.enums import Outcome, Role
    from protocol.game.interfaces import Referee
    from protocol.game.state import GameSetup

DISPUTE_ID_DOMAIN = b"pinpoint/v1/dispute-id\n"
SEAL_DOMAIN = b"pinpoint/v1/sealed-result\n"

WORKER_WRONG = "worker-wrong"  # the challenger won: the worker's commitment is wrong
CHALLENGER_WRONG = "challenger-wrong"  # the worker won: the challenge was wrong
BOTH_WRONG = "both-wrong"  # neither claim holds (e.g. a fact both withheld)
OUTCOMES = (WORKER_WRONG, CHALLENGER_WRONG, BOTH_WRONG)


class RefereeFactory(Protocol):
    """Builds the referee of one training job: `training_job` is its 32-byte id, `context` the JSON the
    game bound (a transcript's setup context, hostile like every byte of it). Raises when it cannot
    build that job's referee from it (unknown task, a context naming another job)."""

    def __call__(self, training_job: bytes, context: Any) -> Referee: ...


@dataclass(frozen=True, slots=True)
class CommitmentRecord:
    """A checked signed run commitment, as the economy keeps it."""

    root: str  # hex of the chain root
    key: str  # hex of the signer's public key
    steps: int  # T
    statement: str  # canonical JSON of the signed commitment (what a game's setup must carry verbatim)


def is_training_job_id(value: object) -> bool:
    return type(value) is str and is_signer_name(value)  # 64 lowercase hex characters, like a key's name


def compute_commitment_record(value: object, training_job: str, account: str) -> CommitmentRecord:
    """Check a signed run commitment (its JSON: {"commitment": body, "signature": hex}) sent by `account`
    for the ledger job of `training_job`: well-formed, signed by the key it names, for that training job,
    and that key is the account's own when the account is named by a key (an account with a free name
    has no key, and is only ever driven by a driver that vouches for it). InvalidCommitment otherwise."""
    from protocol.game.codec import ParseError
    from protocol.game.commitments import (
        compute_signed_run_commitment_json,
        is_valid_run_commitment,
        parse_signed_run_commitment_json,
    )

    try:
        signed = parse_signed_run_commitment_json(value)
    except (ParseError, TypeError, ValueError) as exc:
        raise InvalidCommitment(f"not a signed run commitment: {exc}") from None
    if not is_valid_run_commitment(signed):
        raise InvalidCommitment("the run commitment is not signed by the key it names")
    commitment = signed.commitment
    if bytes(commitment.job_id).hex() != training_job:
        raise InvalidCommitment(
            f"the run commitment is for training job {bytes(commitment.job_id).hex()}, "
            f"this ledger job is for {training_job}"
        )
    key = bytes(commitment.worker_key).hex()
    if is_signer_name(account) and key != account:
        raise InvalidCommitment(f"the run commitment is signed by {key}, not by the sender {account}")
    statement = compute_canonical_json(compute_signed_run_commitment_json(signed)).decode()
    return CommitmentRecord(bytes(commitment.chain_root).hex(), key, commitment.steps, statement)


def is_salt(value: object) -> bool:
    """True for the hex of 32 bytes (64 lowercase hex characters): a seal's salt."""
    return type(value) is str and is_signer_name(value)


def compute_seal(statement: str, salt: str) -> str:
    """The hiding commitment a worker posts before any forced error is drawn (hex):
    BLAKE3("pinpoint/v1/sealed-result\\n" || salt || canonical JSON of its true signed run commitment).
    `salt` is 32 secret random bytes (hex): it hides the result (the commitment is guessable, the salt is
    not) and, revealed with the opening, is half of the forced-error draw (`compute_is_forced_error`)."""
    return blake3.blake3(SEAL_DOMAIN + bytes.fromhex(salt) + statement.encode()).hexdigest()


def compute_dispute_id(time_source: str, job_id: int, number: int) -> str:
    """The id of dispute `number` (opened on ledger job `job_id`) in an economy whose time source key is
    `time_source` (hex): H("pinpoint/v1/dispute-id\\n" || canonical JSON of {"job", "ledger", "number"}),
    so no two disputes of one ledger, nor of two ledgers with different keys, share a game id."""
    body = {"job": job_id, "ledger": time_source, "number": number}
    return blake3.blake3(DISPUTE_ID_DOMAIN + compute_canonical_json(body)).hexdigest()


def require_dispute_setup(state: State, job: Job, dispute: Dispute, setup: GameSetup) -> None:
    """InvalidEvidence unless `setup` is the game of `dispute`: the registered worker and challenger
    commitments verbatim, the issued dispute id, the economy's time source (so a timeout counts only with
    that source's receipts). What binds a transcript, or a committee's statement, to one dispute."""
    from protocol.game.commitments import compute_signed_run_commitment_json

    worker_statement = compute_canonical_json(compute_signed_run_commitment_json(setup.worker)).decode()
    challenger_statement = compute_canonical_json(compute_signed_run_commitment_json(setup.challenger)).decode()
    if worker_statement != dispute.worker_statement:
        raise InvalidEvidence(
            f"dispute {dispute.number}: the game's worker commitment is not the one of job {job.job_id} it was opened against"
        )
    if challenger_statement != dispute.commitment_statement:
        raise InvalidEvidence(
            f"dispute {dispute.number}: the game's challenger commitment is not the one this dispute registered"
        )
    if bytes(setup.dispute_id).hex() != dispute.dispute_id:
        raise InvalidEvidence(
            f"dispute {dispute.number}: the game binds dispute id {bytes(setup.dispute_id).hex()}, "
            f"not the id {dispute.dispute_id} issued when it was opened"
        )
    named = "" if setup.time_source is None else bytes(setup.time_source).hex()
    if named != state.time_source:
        raise InvalidEvidence(
            f"dispute {dispute.number}: the game's times are witnessed by {named or 'no time source'}, "
            f"not by this economy's time source {state.time_source or '(none)'}"
        )


def compute_outcome(outcome: Outcome, winner: Role | None) -> str | None:
    """The economy's outcome (one of OUTCOMES) of a game's verdict, or None for a verdict that decides nothing."""
    from protocol.game.enums import Outcome, Role

    if outcome is Outcome.BOTH_LOSE:
        return BOTH_WRONG
    if outcome is Outcome.DECIDED and winner is not None:
        return WORKER_WRONG if winner is Role.CHALLENGER else CHALLENGER_WRONG
    return None


def compute_settlement_outcome(
    state: State, job: Job, dispute: Dispute, transcript: object, referees: RefereeFactory | None
) -> str:
    """The outcome (one of OUTCOMES) a game's transcript proves for `dispute`, or InvalidEvidence saying
    why it proves nothing. Checks, in order: the transcript's form; that its game is this dispute's
    (`require_dispute_setup`); then replays every event through the rules with the job's referee and
    requires exactly the recorded verdict. Never changes `state`."""
    from protocol.game.codec import ParseError
    from protocol.game.state import compute_verdict_json
    from protocol.game.transcript import parse_transcript_json, replay_transcript

    try:
        parsed = parse_transcript_json(transcript)
    except (ParseError, TypeError, ValueError, KeyError, RecursionError) as exc:
        raise InvalidEvidence(f"dispute {dispute.number}: not a game transcript: {exc}") from None
    setup = parsed.setup
    require_dispute_setup(state, job, dispute, setup)
    if referees is None:
        raise NoReferee(f"dispute {dispute.number}: no referee here to check its transcript; nothing is taken on trust")
    try:
        referee = referees(bytes.fromhex(job.training_job), setup.context)
    except Exception as exc:  # the factory refuses a context it cannot build this job's referee from
        raise InvalidEvidence(
            f"dispute {dispute.number}: no referee for training job {job.training_job} from the game's context: "
            f"{type(exc).__name__}: {exc}"
        ) from None
    try:
        replayed = replay_transcript(parsed, referee)
    except Exception as exc:  # every byte is hostile: any failure to replay is a transcript that proves nothing
        raise InvalidEvidence(f"dispute {dispute.number}: the transcript does not replay: {type(exc).__name__}: {exc}") from None
    verdict = replayed.verdict
    if verdict is None:
        raise InvalidEvidence(f"dispute {dispute.number}: the transcript ends before the game is decided")
    if compute_canonical_json(compute_verdict_json(verdict)) != compute_canonical_json(compute_verdict_json(parsed.verdict)):
        raise InvalidEvidence(f"dispute {dispute.number}: the recorded verdict does not follow from the events")
    outcome = compute_outcome(verdict.outcome, None if verdict.winner is None else verdict.winner.role)
    if outcome is not None:
        return outcome
    raise InvalidEvidence(f"dispute {dispute.number}: the game decided nothing ({verdict.outcome.value})")
