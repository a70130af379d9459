"""Staking, unbonding, worker registration on the bonding curve, heartbeats and downtime slashing."""

from __future__ import annotations

from protocol.economy.errors import (
    AlreadyRegistered,
    HeartbeatsNotMissed,
    InsufficientFunds,
    InsufficientStake,
    NotAWorker,
    NothingToWithdraw,
    StakeLocked,
    TooManyUnbondingEntries,
)
from protocol.economy.helpers import (
    compute_share,
    decrease_balance,
    decrease_stake,
    get_account,
    get_required_worker_stake,
    get_stake,
    get_stake_at_risk,
    increase_balance,
    increase_burned,
    increase_stake,
    record_slash,
    require_positive_amount,
    slash_stake,
)
from protocol.economy.state import State, UnbondingEntry, WorkerRecord
from protocol.types import Tokens


def process_stake(state: State, account: str, amount: Tokens) -> None:
    """Bond `amount` liquid tokens; the resulting stake must reach `min_stake`."""
    require_positive_amount(amount, "a stake")
    acct = get_account(state, account)
    if acct.balance < amount:
        raise InsufficientFunds(f"{account!r} has {acct.balance} liquid, cannot stake {amount}")
    if get_stake(state, account) + amount < state.params.min_stake:
        raise InsufficientStake(
            f"a stake must reach {state.params.min_stake}; would be {get_stake(state, account) + amount}"
        )
    decrease_balance(state, account, amount)
    increase_stake(state, account, amount)


def process_unbond(state: State, account: str, amount: Tokens) -> None:
    """Start unbonding `amount` of stake; it can be withdrawn `unbonding_period_epochs` later and stays
    slashable until then. What remains staked must be zero or at least `min_stake`, and an active worker
    must keep its required stake, an active referee `referee_stake` (deregister first to leave)."""
    p = state.params
    require_positive_amount(amount, "an unbonding")
    get_account(state, account)
    stake = get_stake(state, account)
    if amount > stake:
        raise InsufficientStake(f"{account!r} has {stake} staked, cannot unbond {amount}")
    remaining = stake - amount
    if 0 < remaining < p.min_stake:
        raise InsufficientStake(
            f"stake left ({remaining}) would be below the minimum {p.min_stake}; unbond all"
        )
    record = state.workers.get(account)
    if record is not None and record.active and remaining < record.required_stake:
        raise InsufficientStake(
            f"an active worker must keep {record.required_stake} staked; deregister first"
        )
    referee = state.referees.get(account)
    if referee is not None and referee.active and remaining < p.referee_stake:
        raise InsufficientStake(f"an active referee must keep {p.referee_stake} staked; deregister first")
    entries = state.unbonding.get(account, [])
    if len(entries) >= p.max_unbonding_entries:
        raise TooManyUnbondingEntries(f"{account!r} already has {len(entries)} unbonding entries")
    decrease_stake(state, account, amount)
    state.unbonding.setdefault(account, []).append(
        UnbondingEntry(amount, state.epoch + p.unbonding_period_epochs)
    )


def process_withdraw_unbonded(state: State, account: str) -> Tokens:
    """Move every matured unbonding entry to the balance; returns the amount. Raises NothingToWithdraw
    when none has matured (so withdrawing the same entry twice fails the second time), and StakeLocked
    while the account still works on unsettled jobs."""
    get_account(state, account)
    entries = state.unbonding.get(account, [])
    matured = [e for e in entries if e.release_epoch <= state.epoch]
    if not matured:
        raise NothingToWithdraw(f"{account!r} has no matured unbonding entry at epoch {state.epoch}")
    record = state.workers.get(account)
    if record is not None and record.open_jobs > 0:
        raise StakeLocked(f"{account!r} still has {record.open_jobs} unsettled jobs")
    amount = sum(e.amount for e in matured)
    remaining = [e for e in entries if e.release_epoch > state.epoch]
    if remaining:
        state.unbonding[account] = remaining
    else:
        del state.unbonding[account]
    increase_balance(state, account, amount)
    return Tokens(amount)


def process_register_worker(state: State, account: str) -> Tokens:
    """Register `account` as an active worker. Its stake must reach the bonding curve's current price,
    which becomes its required stake; returns that price."""
    get_account(state, account)
    if account in state.workers and state.workers[account].active:
        raise AlreadyRegistered(f"{account!r} is already an active worker")
    if account in state.referees and state.referees[account].active:
        raise AlreadyRegistered(f"{account!r} is an active referee: one bonded role per account")
    required = get_required_worker_stake(state)
    if get_stake(state, account) < required:
        raise InsufficientStake(
            f"registering takes {required} staked; {account!r} has {get_stake(state, account)}"
        )
    previous = state.workers.get(account)
    open_jobs = previous.open_jobs if previous is not None else 0
    state.workers[account] = WorkerRecord(required, state.epoch, state.epoch, True, open_jobs)
    state.active_workers += 1
    return required


def process_deregister_worker(state: State, account: str) -> None:
    """Stop taking jobs. Jobs already assigned still have to be delivered."""
    record = state.workers.get(account)
    if record is None or not record.active:
        raise NotAWorker(f"{account!r} is not an active worker")
    record.active = False
    state.active_workers -= 1
    state.asks.pop(account, None)


def process_heartbeat(state: State, account: str) -> None:
    """An active worker signals it is reachable this epoch."""
    record = state.workers.get(account)
    if record is None or not record.active:
        raise NotAWorker(f"{account!r} is not an active worker")
    record.last_heartbeat_epoch = state.epoch


def is_missing_heartbeats(state: State, account: str) -> bool:
    record = state.workers.get(account)
    return (
        record is not None
        and record.active
        and state.epoch - record.last_heartbeat_epoch > state.params.heartbeat_grace_epochs
    )


def get_workers_missing_heartbeats(state: State) -> list[str]:
    """Active workers silent for longer than the grace period, sorted (O(workers); for reporters)."""
    return sorted(a for a in state.workers if is_missing_heartbeats(state, a))


def slash_missed_heartbeats(state: State, worker: str) -> Tokens:
    """Slash an active worker silent for more than `heartbeat_grace_epochs`: `downtime_slash_bps` of its
    stake at risk is burned (no one was paid for the downtime) and the worker is deregistered until it
    registers again. Returns the amount slashed."""
    if not is_missing_heartbeats(state, worker):
        raise HeartbeatsNotMissed(f"{worker!r} is not an active worker past its heartbeat grace period")
    at_stake = get_stake_at_risk(state, worker)
    # floor (compute_share): the slash rounds down in the worker's favour; nothing to redistribute
    taken = slash_stake(state, worker, compute_share(at_stake, state.params.downtime_slash_bps))
    increase_burned(state, taken)
    record_slash(state, worker, "downtime", taken, at_stake)
    record = state.workers[worker]
    record.active = False
    record.last_heartbeat_epoch = state.epoch
    state.active_workers -= 1
    state.asks.pop(worker, None)
    return taken
