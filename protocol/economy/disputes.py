"""Disputes: a challenger's bond inside the challenge window, and settlement by the dispute game's
verdict (taken as input: the economy does not play the game, it only acts on who won)."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.economy.errors import (
    ChallengeWindowClosed,
    DisputeAlreadyOpen,
    InsufficientFunds,
    InvalidOutcome,
    JobNotCommitted,
    NoOpenDispute,
    SelfDispute,
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
from protocol.economy.state import Dispute, JobStatus, State
from protocol.economy.units import JobId


@dataclass(frozen=True, slots=True)
class DisputeOutcome:
    """The verdict of a job's dispute game: who won and who lost (the job's worker and challenger)."""

    job_id: int
    winner: str
    loser: str


@dataclass(frozen=True, slots=True)
class DisputeResult:
    """What settling a dispute moved, in tokens."""

    job_id: int
    kind: str  # "worker-slashed", "challenger-slashed" or "forced-error-caught"
    slashed: int  # taken from the loser (stake, unbonding, unreleased vesting, or the bond)
    winner_reward: int  # the winner's share of `slashed`
    burned: int  # the rest of `slashed`
    jackpot_paid: int  # paid to a challenger who caught a forced error
    refunded: int  # returned to the user when the worker lost


def process_open_dispute(state: State, challenger: str, job_id: JobId) -> None:
    """Challenge a committed job before its window ends, posting `challenger_bond`."""
    p = state.params
    get_account(state, challenger)
    job = get_job(state, job_id)
    require_not_terminal(job)
    if job.status == JobStatus.DISPUTED:
        raise DisputeAlreadyOpen(f"job {job_id} is already under dispute")
    if job.status != JobStatus.COMMITTED:
        raise JobNotCommitted(f"job {job_id} is {job.status.value}; there is no commitment to challenge")
    if state.epoch >= job.window_end:
        raise ChallengeWindowClosed(f"job {job_id}'s challenge window ended at epoch {job.window_end}")
    if challenger == job.worker:
        raise SelfDispute(f"{challenger!r} cannot challenge its own job")
    if state.accounts[challenger].balance < p.challenger_bond:
        raise InsufficientFunds(f"a dispute takes a bond of {p.challenger_bond}; {challenger!r} has less")
    decrease_balance(state, challenger, p.challenger_bond)
    state.disputes[job_id] = Dispute(job_id, challenger, p.challenger_bond, state.epoch)
    job.status = JobStatus.DISPUTED
    job.disputes += 1


def process_settle_dispute(state: State, outcome: DisputeOutcome) -> DisputeResult:
    """Act on a dispute's verdict.

    - The challenger caught a forced error: it gets its bond back and `jackpot_payout_bps` of the
      jackpot; the worker, who erred on the protocol's order, is not punished; the window closes and the
      job settles as usual.
    - The challenger caught a real fault: the worker loses `slash_fraction_bps` of its stake at risk and
      all its unreleased vesting; the challenger gets its bond back and `challenger_reward_bps` of the
      slash, the rest is burned; the user is refunded; the job ends SLASHED.
    - The worker won: the challenger's bond is slashed, `challenger_reward_bps` of it to the worker and
      the rest burned; the job goes back to COMMITTED and settles after its window.
    """
    p = state.params
    job = get_job(state, outcome.job_id)
    require_not_terminal(job)
    dispute = state.disputes.get(job.job_id)
    if dispute is None:
        raise NoOpenDispute(f"job {job.job_id} has no open dispute")
    worker, challenger = job.worker, dispute.challenger
    assert worker is not None
    if {outcome.winner, outcome.loser} != {worker, challenger} or outcome.winner == outcome.loser:
        raise InvalidOutcome(
            f"job {job.job_id}'s dispute is between worker {worker!r} and challenger {challenger!r}; "
            f"the outcome names winner {outcome.winner!r} and loser {outcome.loser!r}"
        )
    del state.disputes[job.job_id]
    if outcome.winner == challenger and job.forced_error:
        # floor (compute_share): the payout rounds down; the remainder stays in the jackpot
        payout = compute_share(state.jackpot, p.jackpot_payout_bps)
        state.jackpot -= payout
        increase_balance(state, challenger, dispute.bond + payout)
        state.totals.jackpot_paid += payout
        job.status = JobStatus.COMMITTED
        job.window_end = min(job.window_end, state.epoch)
        return DisputeResult(job.job_id, "forced-error-caught", 0, 0, 0, payout, 0)
    if outcome.winner == challenger:
        at_risk = get_stake_at_risk(state, worker)
        at_stake = at_risk + get_vesting_unreleased(state, worker)
        # floor (compute_share): the stake slash rounds down in the worker's favour
        slashed = slash_stake(
            state, worker, compute_share(at_risk, p.slash_fraction_bps)
        ) + slash_unreleased_vesting(state, worker)
        # floor (compute_share): the winner's share rounds down; the remainder is burned
        reward = compute_share(slashed, p.challenger_reward_bps)
        increase_balance(state, challenger, dispute.bond + reward)
        increase_burned(state, slashed - reward)
        record_slash(state, worker, "dispute", slashed, at_stake, job.job_id)
        state.totals.challenger_rewards += reward
        refund = state.escrow.pop(job.job_id)
        increase_balance(state, job.user, refund)
        state.totals.refunded += refund
        job.status = JobStatus.SLASHED
        job.settle_count += 1
        state.workers[worker].open_jobs -= 1
        decrease_reputation(state, worker, p.reputation_fault_loss)
        return DisputeResult(job.job_id, "worker-slashed", slashed, reward, slashed - reward, 0, refund)
    # floor (compute_share): the worker's share of the bond rounds down; the remainder is burned
    reward = compute_share(dispute.bond, p.challenger_reward_bps)
    increase_balance(state, worker, reward)
    increase_burned(state, dispute.bond - reward)
    record_slash(state, challenger, "bond", dispute.bond, dispute.bond, job.job_id)
    job.status = JobStatus.COMMITTED
    return DisputeResult(job.job_id, "challenger-slashed", dispute.bond, reward, dispute.bond - reward, 0, 0)
