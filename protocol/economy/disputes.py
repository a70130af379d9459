"""Disputes: any number of challenges against one commitment, each settled on its own by the evidence of
its game.

A challenge is the challenger's own signed run commitment for the same training job, with another
chain root, and a bond. Disputes on a job run concurrently, and the job's challenge window stays open
while any of them is open, so a challenger who opens first and then stalls or throws its game cannot
shut anyone else out: one honest challenger suffices, whatever the others do and in whatever order
they arrive.

Each dispute is settled by its game's transcript or by the attestation of its epoch's referee committee
(committee.py), which anyone may submit (evidence.py checks it
against the two registered commitments, the issued dispute id and the economy's time source, and
replays it with the job's referee). What the verified verdict does:

    worker wrong       first such verdict on the job: the worker is slashed once, this challenger paid
                       from the slash, the user refunded, the job SLASHED; a forced-error job instead pays
                       the jackpot to the first challenger who catches it. Any later one: the bond back.
                       Against a sealed job's public commitment before the seal is opened, nobody can
                       tell which it is: the bond comes back, the first such challenger is the job's
                       catcher, and the opening (or the slash for not opening) pays it one or the other.
    challenger wrong   the bond is slashed: the worker's share is held with the job and paid when the job
                       settles (burned if the job is slashed: a cheater is never paid, not even by a
                       challenger who threw its game to it), the rest burned.
    both wrong         the bond is burned whole, and the worker is slashed with all of it burned, once
                       (unless the job carries a forced error, which the worker made on order).

A sealed job's worker has two commitments: the public one, and once its seal is opened on a forced-error
job, the true one (`Job.true_statement`). A dispute opened after the opening is played against the true
one, unless the challenger's root is that true root (then it disputes the public, forced-wrong one).
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.economy.committee import compute_attested_outcome
from protocol.economy.errors import (
    ChallengeWindowClosed,
    ChallengeWindowOpen,
    DisputeAlreadyOpen,
    InsufficientFunds,
    InvalidCommitment,
    InvalidEvidence,
    InvalidOutcome,
    InvalidSeal,
    JobNotCommitted,
    NoOpenDispute,
    NothingToDispute,
    NotJobWorker,
    SealNotDue,
    SelfDispute,
)
from protocol.economy.evidence import (
    BOTH_WRONG,
    CHALLENGER_WRONG,
    OUTCOMES,
    WORKER_WRONG,
    CommitmentRecord,
    RefereeFactory,
    compute_commitment_record,
    compute_dispute_id,
    compute_seal,
    compute_settlement_outcome,
    is_salt,
    is_training_job_id,
)
from protocol.economy.helpers import (
    compute_share,
    decrease_balance,
    decrease_reputation,
    get_account,
    get_job,
    get_stake_at_risk,
    get_vesting_unreleased,
    increase_balance,
    increase_burned,
    record_slash,
    slash_stake,
    slash_unreleased_vesting,
)
from protocol.economy.jobs import get_replica_problem, is_forced_error_opening, require_not_terminal
from protocol.economy.state import Dispute, Job, JobStatus, State
from protocol.economy.units import JobId


@dataclass(frozen=True, slots=True)
class OpenedDispute:
    """What opening a dispute returns: its number and the id its game must bind."""

    number: int
    dispute_id: str  # hex32


@dataclass(frozen=True, slots=True)
class DisputeResult:
    """What settling a dispute moved, in tokens."""

    job_id: int
    dispute: int  # the dispute's number
    outcome: str  # one of evidence.OUTCOMES
    kind: str  # "worker-slashed", "forced-error-caught", "bond-refunded", "challenger-slashed", "both-slashed"
    slashed: int  # taken from the worker's stake and vesting, and from the bond
    winner_reward: int  # the winner's share of `slashed`
    burned: int  # the rest of `slashed`
    jackpot_paid: int  # paid to a challenger who caught a forced error
    refunded: int  # returned to the user when the worker was proven wrong


def get_dispute(state: State, number: int) -> Dispute:
    dispute = state.disputes.get(number) if type(number) is int else None
    if dispute is None:
        raise NoOpenDispute(f"no open dispute {number!r}")
    return dispute


def process_open_dispute(state: State, challenger: str, job_id: JobId, commitment: object) -> OpenedDispute:
    """Challenge a committed job with the challenger's own signed run commitment for the same training
    job (its JSON), posting `challenger_bond`; returns the dispute's number and id."""
    job = get_job(state, job_id)
    require_not_terminal(job)
    record = compute_commitment_record(commitment, job.training_job, challenger)
    return process_checked_dispute(state, challenger, job_id, record)


def process_checked_dispute(state: State, challenger: str, job_id: JobId, record: CommitmentRecord) -> OpenedDispute:
    """The dispute transition once the challenger's commitment is checked (what `process_open_dispute`
    does after its check; a driver that models commitments, the simulation, calls it directly).

    Open while the job's window runs, or while any dispute on it is still open (so no challenger's
    timing can close the window on another), or for a replica while its replicas disagree (games must
    settle which result stands); one open dispute per challenger and job."""
    p = state.params
    get_account(state, challenger)
    job = get_job(state, job_id)
    require_not_terminal(job)
    if job.status != JobStatus.COMMITTED:
        raise JobNotCommitted(f"job {job_id} is {job.status.value}; there is no commitment to challenge")
    disagreeing = job.replica_of >= 0 and get_replica_problem(state, job) is not None
    if state.epoch >= job.window_end and job.open_disputes == 0 and not disagreeing:
        raise ChallengeWindowClosed(f"job {job_id}'s challenge window ended at epoch {job.window_end}")
    if challenger == job.worker:
        raise SelfDispute(f"{challenger!r} cannot challenge its own job")
    if not is_training_job_id(record.root):
        raise InvalidCommitment(f"a chain root is 64 lowercase hex characters, got {record.root!r}")
    against_true = bool(job.true_statement) and record.root != job.true_commitment
    target = job.true_commitment if against_true else job.commitment
    if record.root == target:
        raise NothingToDispute(f"the challenge's chain root is job {job_id}'s own: there is nothing to dispute")
    if any(d.job_id == job_id and d.challenger == challenger for d in state.disputes.values()):
        raise DisputeAlreadyOpen(f"{challenger!r} already has an open dispute on job {job_id}")
    if state.accounts[challenger].balance < p.challenger_bond:
        raise InsufficientFunds(f"a dispute takes a bond of {p.challenger_bond}; {challenger!r} has less")
    number = state.next_dispute
    dispute_id = compute_dispute_id(state.time_source, job_id, number)
    decrease_balance(state, challenger, p.challenger_bond)
    state.disputes[number] = Dispute(
        number, job_id, challenger, p.challenger_bond, state.epoch, record.root, record.statement, dispute_id,
        job.true_statement if against_true else job.commitment_statement, against_true,
    )
    state.next_dispute += 1
    job.disputes += 1
    job.open_disputes += 1
    return OpenedDispute(number, dispute_id)


def process_settle_dispute(
    state: State,
    settler: str,
    dispute: int,
    transcript: object = None,
    referees: RefereeFactory | None = None,
    attestation: object = None,
    setup: object = None,
) -> DisputeResult:
    """Anyone (`settler`, who only pays its nonce) submits the evidence of dispute `dispute`'s verdict: its
    game's transcript (evidence.compute_settlement_outcome), or the attestation of the committee of the
    epoch the dispute was opened in with the game's setup (committee.compute_attested_outcome). It is
    accepted only if it verifies, and then its verdict is applied. Forged, under-weight, mismatched or
    replayed evidence raises InvalidEvidence (or NoOpenDispute) and changes nothing."""
    record = get_dispute(state, dispute)
    job = get_job(state, record.job_id)
    if transcript and not attestation and not setup:
        outcome = compute_settlement_outcome(state, job, record, transcript, referees)
    elif attestation and setup and not transcript:
        outcome = compute_attested_outcome(state, job, record, attestation, setup)
    else:
        raise InvalidEvidence(f"dispute {dispute}: a settlement carries its game's transcript, or a committee "
                              "attestation with its game's setup, and nothing else")
    return process_dispute_verdict(state, dispute, outcome)


def process_dispute_verdict(state: State, dispute: int, outcome: str) -> DisputeResult:
    """Apply a checked verdict to dispute `dispute` (see the module docstring for what each does).

    This is the money side of a settlement, after its evidence was checked: `process_settle_dispute`
    calls it with the outcome the transcript proves, and a driver that models games instead of playing
    them (the simulation) calls it with the outcome it modelled. No message reaches it unchecked."""
    record = get_dispute(state, dispute)
    if outcome not in OUTCOMES:
        raise InvalidOutcome(f"a dispute's outcome is one of {OUTCOMES}, got {outcome!r}")
    job = get_job(state, record.job_id)
    del state.disputes[dispute]
    job.open_disputes -= 1
    if outcome == WORKER_WRONG:
        return process_worker_wrong(state, job, record)
    challenger_at_fault = record.bond
    record_slash(state, record.challenger, "bond", challenger_at_fault, challenger_at_fault, job.job_id)
    if outcome == CHALLENGER_WRONG:
        # floor (compute_share): the worker's share of the bond rounds down; the remainder is burned.
        # The share is held with the job until it ends (paid with the price, burned with a slash); a
        # worker already proven wrong by another game (or whose public commitment was, pending its
        # seal's opening) is owed nothing from this job.
        suspect = job.proven_wrong or job.public_wrong
        share = 0 if suspect else int(compute_share(record.bond, state.params.challenger_reward_bps))
        job.held_share += share
        increase_burned(state, record.bond - share)
        return DisputeResult(job.job_id, dispute, outcome, "challenger-slashed", record.bond, share,
                             record.bond - share, 0, 0)
    assert outcome == BOTH_WRONG
    increase_burned(state, record.bond)
    slashed = refund = 0
    if is_public_of_sealed(job, record) and not job.opened:
        job.public_wrong = True  # which it is (a forced error or a fault) is known once the seal is opened
    elif not (is_public_of_sealed(job, record) and job.forced_error):
        job.proven_wrong = True
        if job.status != JobStatus.SLASHED:
            slashed, refund = slash_proven_worker(state, job)
            increase_burned(state, slashed)  # nobody won: all of the worker's slash is burned
    total = slashed + record.bond
    return DisputeResult(job.job_id, dispute, outcome, "both-slashed", total, 0, total, 0, refund)


def is_public_of_sealed(job: Job, dispute: Dispute) -> bool:
    """True when `dispute` is against the public commitment of a job that sealed its result (the public
    commitment of a forced-error job is wrong on the protocol's order)."""
    return job.forced_rate_bps > 0 and not dispute.against_true


def process_worker_wrong(state: State, job: Job, record: Dispute) -> DisputeResult:
    """A verified game proved the worker's commitment of dispute `record` wrong (its bond is out of escrow)."""
    if job.status == JobStatus.SLASHED:
        increase_balance(state, record.challenger, record.bond)
        return DisputeResult(job.job_id, record.number, WORKER_WRONG, "bond-refunded", 0, 0, 0, 0, 0)
    if is_public_of_sealed(job, record):
        if not job.opened:
            increase_balance(state, record.challenger, record.bond)
            first = not job.catcher
            if first:
                job.catcher = record.challenger
            job.public_wrong = True
            return DisputeResult(job.job_id, record.number, WORKER_WRONG, "caught-pending-seal" if first
                                 else "bond-refunded", 0, 0, 0, 0, 0)
        if job.forced_error:
            return process_forced_error_caught(state, job, record)
    increase_balance(state, record.challenger, record.bond)
    slashed, refund, reward = slash_and_reward(state, job, record.challenger)
    return DisputeResult(job.job_id, record.number, WORKER_WRONG, "worker-slashed", slashed, reward,
                         slashed - reward, 0, refund)


def slash_and_reward(state: State, job: Job, winner: str) -> tuple[int, int, int]:
    """The worker of `job` is proven wrong: slash it once (slash_proven_worker), pay `winner` (if any) its
    share of the slash and burn the rest. Returns (slashed, refund, reward)."""
    job.proven_wrong = True
    slashed, refund = slash_proven_worker(state, job)
    # floor (compute_share): the winner's share rounds down; the remainder is burned
    reward = int(compute_share(slashed, state.params.challenger_reward_bps)) if winner else 0
    if reward:
        increase_balance(state, winner, reward)
    increase_burned(state, slashed - reward)
    state.totals.challenger_rewards += reward
    return slashed, refund, reward


@dataclass(frozen=True, slots=True)
class SealResult:
    """What opening a seal (or slashing one left unopened) did."""

    job_id: int
    kind: str  # "forced-error", "no-forced-error", "worker-slashed"
    forced: bool
    jackpot_paid: int  # paid to the job's catcher, if it caught a forced error
    slashed: int  # taken from the worker when its claim failed
    reward: int  # the catcher's share of that slash
    refunded: int = 0  # returned to the user when the worker was slashed


def process_open_seal(state: State, worker: str, job_id: JobId, commitment: object, salt: str) -> SealResult:
    """The worker opens its seal once the challenge window is over: its true signed run commitment (its
    JSON, checked on entry like any commitment) and the salt. See `process_checked_open_seal`."""
    job = get_job(state, job_id)
    require_not_terminal(job)
    if job.worker != worker:
        raise NotJobWorker(f"job {job_id} is assigned to {job.worker!r}, not {worker!r}")
    record = compute_commitment_record(commitment, job.training_job, worker)
    return process_checked_open_seal(state, worker, job_id, record, salt)


def process_checked_open_seal(
    state: State, worker: str, job_id: JobId, record: CommitmentRecord, salt: str
) -> SealResult:
    """The opening once the commitment is checked. It must open the seal (compute_seal), and the draw it
    shows must have been obeyed: on a forced-error job the public commitment differs from the true one, on
    any other it is the true one; otherwise it raises InvalidSeal (the worker cannot open its true result,
    and is slashed for it: `slash_unopened_seal`).

    A forced-error opening pays the job's catcher (if a game proved the public commitment wrong) from the
    jackpot, and puts the true result up for challenge for one more window. Any other opening stands on
    the public commitment: if a game proved it wrong, the worker is slashed and the catcher paid from it."""
    p = state.params
    job = get_job(state, job_id)
    require_not_terminal(job)
    if job.worker != worker:
        raise NotJobWorker(f"job {job_id} is assigned to {job.worker!r}, not {worker!r}")
    if job.forced_rate_bps == 0 or not job.sealed:
        raise InvalidSeal(f"job {job_id} has no seal to open")
    if job.status != JobStatus.COMMITTED:
        raise JobNotCommitted(f"job {job_id} is {job.status.value}; a seal is opened after the reveal")
    if job.opened:
        raise InvalidSeal(f"job {job_id}'s seal is open already")
    if state.epoch < job.window_end:
        raise ChallengeWindowOpen(f"job {job_id}'s seal opens once its window is over, at epoch {job.window_end}")
    if not is_salt(salt) or compute_seal(record.statement, salt) != job.sealed:
        raise InvalidSeal(f"this commitment and salt do not open job {job_id}'s seal")
    forced = is_forced_error_opening(job, salt)
    if forced and record.root == job.commitment:
        raise InvalidSeal(f"job {job_id} carries a forced error, but its public commitment is its true result")
    if not forced and record.root != job.commitment:
        raise InvalidSeal(f"job {job_id} carries no forced error, but its public commitment is not its sealed result")
    job.opened = True
    job.forced_error = forced
    if forced:
        job.true_commitment = record.root
        job.true_statement = record.statement
        # the true result is open to challenge for a full window from now
        job.window_end = max(job.window_end, state.epoch + p.challenge_window_epochs)
        payout = pay_jackpot(state, job, job.catcher) if job.catcher else 0
        return SealResult(job.job_id, "forced-error", True, payout, 0, 0)
    if job.public_wrong:  # the public commitment is the worker's own claim, and a game proved it wrong
        slashed, refund, reward = slash_and_reward(state, job, job.catcher)
        return SealResult(job.job_id, "worker-slashed", False, 0, slashed, reward, refund)
    return SealResult(job.job_id, "no-forced-error", False, 0, 0, 0)


def slash_unopened_seal(state: State, job_id: JobId) -> SealResult:
    """Anyone may report a sealed job whose window is over (no dispute open) and whose worker left its seal
    unopened past the window's last epoch: the worker cannot show it knew its true result, so it is
    slashed as proven wrong (the catcher, if any, paid its share, the rest burned, the user refunded)."""
    job = get_job(state, job_id)
    require_not_terminal(job)
    if job.forced_rate_bps == 0 or job.status != JobStatus.COMMITTED or job.opened:
        raise SealNotDue(f"job {job_id} has no unopened seal after its reveal")
    if job.open_disputes > 0 or state.epoch <= job.window_end:
        raise SealNotDue(f"job {job_id}'s seal may be opened until epoch {job.window_end} (and while disputes run)")
    slashed, refund, reward = slash_and_reward(state, job, job.catcher)
    return SealResult(job.job_id, "worker-slashed", False, 0, slashed, reward, refund)


def slash_proven_worker(state: State, job: Job) -> tuple[int, int]:
    """Slash the worker of `job` once for a commitment proven wrong: `slash_fraction_bps` of its stake at
    risk and all its unreleased vesting; refund the user; the job ends SLASHED. Returns (slashed, refund);
    the caller decides where the slashed tokens go."""
    p = state.params
    worker = job.worker
    assert worker is not None
    at_risk = get_stake_at_risk(state, worker)
    at_stake = at_risk + get_vesting_unreleased(state, worker)
    # floor (compute_share): the stake slash rounds down in the worker's favour
    slashed = slash_stake(state, worker, compute_share(at_risk, p.slash_fraction_bps)) + slash_unreleased_vesting(
        state, worker
    )
    record_slash(state, worker, "dispute", slashed, at_stake, job.job_id)
    increase_burned(state, job.held_share)  # bond shares it was owed from this job: a cheater is never paid
    job.held_share = 0
    refund = state.escrow.pop(job.job_id)
    increase_balance(state, job.user, refund)
    state.totals.refunded += refund
    job.status = JobStatus.SLASHED
    job.settle_count += 1
    state.workers[worker].open_jobs -= 1
    decrease_reputation(state, worker, p.reputation_fault_loss)
    return slashed, refund


def process_forced_error_caught(state: State, job: Job, record: Dispute) -> DisputeResult:
    """A challenger proved an opened forced-error job's public commitment wrong: the first to do so (if
    nobody caught it before the opening) gets its bond back and `jackpot_payout_bps` of the jackpot; a
    later one gets its bond back. The worker, who erred on the protocol's order, is not punished."""
    increase_balance(state, record.challenger, record.bond)
    if job.forced_caught:
        return DisputeResult(job.job_id, record.number, WORKER_WRONG, "bond-refunded", 0, 0, 0, 0, 0)
    payout = pay_jackpot(state, job, record.challenger)
    return DisputeResult(job.job_id, record.number, WORKER_WRONG, "forced-error-caught", 0, 0, 0, payout, 0)


def pay_jackpot(state: State, job: Job, challenger: str) -> int:
    """Pay `challenger` `jackpot_payout_bps` of the jackpot for catching `job`'s forced error (once)."""
    # floor (compute_share): the payout rounds down; the remainder stays in the jackpot
    payout = int(compute_share(state.jackpot, state.params.jackpot_payout_bps))
    state.jackpot -= payout
    increase_balance(state, challenger, payout)
    state.totals.jackpot_paid += payout
    job.forced_caught = True
    return payout
