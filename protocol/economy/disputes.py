"""Disputes: any number of challenges against one commitment, each settled on its own by the evidence of
its game.

A challenge is the challenger's own signed run commitment for the same training job, with another
chain root, and a bond. Disputes on a job run concurrently, and the job's challenge window stays open
while any of them is open, so a challenger who opens first and then stalls or throws its game cannot
shut anyone else out: one honest challenger suffices, whatever the others do and in whatever order
they arrive.

Each dispute is settled by its game's transcript, which anyone may submit (evidence.py checks it
against the two registered commitments, the issued dispute id and the economy's time source, and
replays it with the job's referee). What the verified verdict does:

    worker wrong       first such verdict on the job: the worker is slashed once, this challenger paid
                       from the slash, the user refunded, the job SLASHED; a forced-error job instead pays
                       the jackpot to the first challenger who catches it. Any later one: the bond back.
    challenger wrong   the bond is slashed: the worker's share to it (burned whole if the worker was
                       proven wrong by another game: a cheater is never paid), the rest burned.
    both wrong         the bond is burned whole, and the worker is slashed with all of it burned, once
                       (unless the job carries a forced error, which the worker made on order).
"""

from __future__ import annotations

from dataclasses import dataclass

from protocol.economy.errors import (
    ChallengeWindowClosed,
    DisputeAlreadyOpen,
    InsufficientFunds,
    InvalidCommitment,
    InvalidOutcome,
    JobNotCommitted,
    NoOpenDispute,
    NothingToDispute,
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
    compute_settlement_outcome,
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
from protocol.economy.jobs import require_not_terminal
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
    timing can close the window on another); one open dispute per challenger and job."""
    p = state.params
    get_account(state, challenger)
    job = get_job(state, job_id)
    require_not_terminal(job)
    if job.status != JobStatus.COMMITTED:
        raise JobNotCommitted(f"job {job_id} is {job.status.value}; there is no commitment to challenge")
    if state.epoch >= job.window_end and job.open_disputes == 0:
        raise ChallengeWindowClosed(f"job {job_id}'s challenge window ended at epoch {job.window_end}")
    if challenger == job.worker:
        raise SelfDispute(f"{challenger!r} cannot challenge its own job")
    if not is_training_job_id(record.root):
        raise InvalidCommitment(f"a chain root is 64 lowercase hex characters, got {record.root!r}")
    if record.root == job.commitment:
        raise NothingToDispute(f"the challenge's chain root is job {job_id}'s own: there is nothing to dispute")
    if any(d.job_id == job_id and d.challenger == challenger for d in state.disputes.values()):
        raise DisputeAlreadyOpen(f"{challenger!r} already has an open dispute on job {job_id}")
    if state.accounts[challenger].balance < p.challenger_bond:
        raise InsufficientFunds(f"a dispute takes a bond of {p.challenger_bond}; {challenger!r} has less")
    number = state.next_dispute
    dispute_id = compute_dispute_id(state.time_source, job_id, number)
    decrease_balance(state, challenger, p.challenger_bond)
    state.disputes[number] = Dispute(
        number, job_id, challenger, p.challenger_bond, state.epoch, record.root, record.statement, dispute_id
    )
    state.next_dispute += 1
    job.disputes += 1
    job.open_disputes += 1
    return OpenedDispute(number, dispute_id)


def process_settle_dispute(
    state: State, settler: str, dispute: int, transcript: object, referees: RefereeFactory | None
) -> DisputeResult:
    """Anyone (`settler`, who only pays its nonce) submits the transcript of dispute `dispute`'s game; it is
    accepted only if it verifies (evidence.compute_settlement_outcome), and then its verdict is applied.
    A forged, truncated or mismatched transcript raises InvalidEvidence and changes nothing."""
    record = get_dispute(state, dispute)
    job = get_job(state, record.job_id)
    outcome = compute_settlement_outcome(state, job, record, transcript, referees)
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
        job.proven_wrong = job.proven_wrong or not job.forced_error
        if job.forced_error:
            return process_forced_error_caught(state, job, record)
        if job.status == JobStatus.SLASHED:
            increase_balance(state, record.challenger, record.bond)
            return DisputeResult(job.job_id, dispute, outcome, "bond-refunded", 0, 0, 0, 0, 0)
        slashed, refund = slash_proven_worker(state, job)
        # floor (compute_share): the winner's share rounds down; the remainder is burned
        reward = compute_share(slashed, state.params.challenger_reward_bps)
        increase_balance(state, record.challenger, record.bond + reward)
        increase_burned(state, slashed - reward)
        state.totals.challenger_rewards += reward
        return DisputeResult(job.job_id, dispute, outcome, "worker-slashed", slashed, reward, slashed - reward, 0, refund)
    challenger_at_fault = record.bond
    record_slash(state, record.challenger, "bond", challenger_at_fault, challenger_at_fault, job.job_id)
    if outcome == CHALLENGER_WRONG:
        # floor (compute_share): the worker's share of the bond rounds down; the remainder is burned.
        # A worker proven wrong by another game is paid nothing from this job, not even a bond share.
        share = 0 if job.proven_wrong else int(compute_share(record.bond, state.params.challenger_reward_bps))
        if share:
            assert job.worker is not None
            increase_balance(state, job.worker, share)
        increase_burned(state, record.bond - share)
        return DisputeResult(job.job_id, dispute, outcome, "challenger-slashed", record.bond, share,
                             record.bond - share, 0, 0)
    assert outcome == BOTH_WRONG
    increase_burned(state, record.bond)
    slashed = refund = 0
    if not job.forced_error:
        job.proven_wrong = True
        if job.status != JobStatus.SLASHED:
            slashed, refund = slash_proven_worker(state, job)
            increase_burned(state, slashed)  # nobody won: all of the worker's slash is burned
    total = slashed + record.bond
    return DisputeResult(job.job_id, dispute, outcome, "both-slashed", total, 0, total, 0, refund)


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
    refund = state.escrow.pop(job.job_id)
    increase_balance(state, job.user, refund)
    state.totals.refunded += refund
    job.status = JobStatus.SLASHED
    job.settle_count += 1
    state.workers[worker].open_jobs -= 1
    decrease_reputation(state, worker, p.reputation_fault_loss)
    return slashed, refund


def process_forced_error_caught(state: State, job: Job, record: Dispute) -> DisputeResult:
    """A challenger proved a forced-error job's commitment wrong: the first to do so gets its bond back
    and `jackpot_payout_bps` of the jackpot, and the window closes (the job settles once no dispute is
    open); a later one gets its bond back. The worker, who erred on the protocol's order, is not punished."""
    if job.forced_caught or job.status != JobStatus.COMMITTED:
        increase_balance(state, record.challenger, record.bond)
        return DisputeResult(job.job_id, record.number, WORKER_WRONG, "bond-refunded", 0, 0, 0, 0, 0)
    # floor (compute_share): the payout rounds down; the remainder stays in the jackpot
    payout = compute_share(state.jackpot, state.params.jackpot_payout_bps)
    state.jackpot -= payout
    increase_balance(state, record.challenger, record.bond + payout)
    state.totals.jackpot_paid += payout
    job.forced_caught = True
    job.window_end = min(job.window_end, state.epoch)
    return DisputeResult(job.job_id, record.number, WORKER_WRONG, "forced-error-caught", 0, 0, 0, payout, 0)
