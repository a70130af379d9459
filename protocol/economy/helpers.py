"""Predicates (`is_`), pure computations (`compute_`), state readers (`get_`) and the primitive
mutators (`increase_`, `decrease_`, `slash_`) every mechanism is built from.

The mutators assume their caller has checked the rules; the `decrease_` ones still refuse to go
negative, so a bug shows up as an error rather than as broken books.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import lru_cache

from protocol.economy.errors import (
    InsufficientFunds,
    InsufficientStake,
    InvalidAccountName,
    InvalidAmount,
    NotAWorker,
    UnknownAccount,
    UnknownJob,
)
from protocol.economy.params import Params
from protocol.economy.state import Account, Job, ReputationRecord, SlashEvent, State, VestingEntry
from protocol.economy.units import BPS_DENOMINATOR, AccountId, JobId, ReputationPoints
from protocol.types import Tokens

MAX_ACCOUNT_NAME = 64
"""Longest account name: the hex of an Ed25519 public key."""

DECAY_FIXED_POINT_BITS = 48
"""Fractional bits of the fixed-point decay factor (2**-48 is far below one reputation point)."""


# -- pure computations ----------------------------------------------------------------------------


def is_amount(value: object) -> bool:
    """True for an int (not a bool) that is zero or more."""
    return type(value) is int and value >= 0


def require_positive_amount(value: object, what: str) -> int:
    """`value` if it is a positive int token amount; InvalidAmount otherwise."""
    if type(value) is not int or value <= 0:
        raise InvalidAmount(f"{what} must be a positive integer number of tokens, got {value!r}")
    return value


def is_signer_name(name: str) -> bool:
    """True when `name` is the lowercase hex of a 32-byte key (the form signed transactions use)."""
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def require_account_name(name: object) -> AccountId:
    if type(name) is not str or not name or len(name) > MAX_ACCOUNT_NAME or not name.isprintable():
        raise InvalidAccountName(
            f"an account name is 1..{MAX_ACCOUNT_NAME} printable characters, got {name!r}"
        )
    return AccountId(name)


def compute_share(amount: int, bps: int) -> Tokens:
    """`bps` basis points of `amount`, rounded down: a share never exceeds its fraction; the caller
    keeps the remainder `amount - share` in the other part of its split."""
    return Tokens(amount * bps // BPS_DENOMINATOR)  # floor: the remainder stays with the caller's other part


def compute_job_tax(price: int, tax_bps: int) -> Tokens:
    """The jackpot tax on a job price, rounded down in the user's favour (no remainder: only the
    rounded tax is ever moved)."""
    return Tokens(price * tax_bps // BPS_DENOMINATOR)  # floor: the user keeps the fraction of a token


def compute_pro_rata(amount: int, weights: Mapping[str, int]) -> dict[str, Tokens]:
    """Split `amount` in proportion to positive `weights`, each share rounded down so the shares never
    add up to more than `amount`; the caller mints or moves only their sum (the remainder is dust that
    stays where it was). Accounts with zero weight get nothing; no weights, no shares."""
    total = sum(w for w in weights.values() if w > 0)
    if total == 0 or amount <= 0:
        return {}
    shares: dict[str, Tokens] = {}
    for account, weight in weights.items():
        # floor: the sum of shares never exceeds `amount`; the remainder is not moved (see above), and the
        # order of iteration cannot matter because each share is computed on its own
        share = amount * weight // total if weight > 0 else 0
        if share > 0:
            shares[account] = Tokens(share)
    return shares


@lru_cache(maxsize=4096)
def compute_decay_factor(retention_bps: int, epochs: int) -> int:
    """(retention_bps / 10,000) ** epochs in Q48 fixed point, by square-and-multiply with every product
    rounded down: never above the exact value, so reputation never decays slower than specified."""
    one = 1 << DECAY_FIXED_POINT_BITS
    result = one
    base = retention_bps * one // BPS_DENOMINATOR  # floor: same direction as every step below
    while epochs > 0 and result > 0:
        if epochs & 1:
            result = result * base >> DECAY_FIXED_POINT_BITS  # floor (shift): never above the exact value
        base = base * base >> DECAY_FIXED_POINT_BITS  # floor (shift): likewise
        epochs >>= 1
    return result


def compute_decayed_reputation(score: int, elapsed_epochs: int, retention_bps: int) -> ReputationPoints:
    """`score` after `elapsed_epochs` of decay, rounded down (fractions of a point are forgotten)."""
    if elapsed_epochs <= 0 or score == 0:
        return ReputationPoints(score)
    # floor (shift): the fraction of a point is forgotten; reputation is not money, nothing to conserve
    return ReputationPoints(
        score * compute_decay_factor(retention_bps, elapsed_epochs) >> DECAY_FIXED_POINT_BITS
    )


def compute_is_forced_error(seed_hex: str, salt_hex: str, job_id: int, rate_bps: int) -> bool:
    """Whether job `job_id` carries a forced error (Truebit's commit-then-draw): SHA-256 of a domain tag,
    the seed of the epoch after the worker sealed its result, the seal's secret salt and the job id, read
    as a number, falls below the rate. Neither half is known to anyone when the seal is made (the seed is
    a beacon's future output, the salt is bound by the seal), so the worker cannot choose its draw; and
    until the worker opens its seal after the challenge window only it knows the draw, so no challenger
    can tell a tested job from another. The protocol has no randomness of its own: the seed comes from
    the driver (a randomness beacon), the salt from the worker."""
    digest = hashlib.sha256(
        b"pinpoint/v1/forced-error\n" + bytes.fromhex(seed_hex) + bytes.fromhex(salt_hex) + job_id.to_bytes(8, "big")
    )
    return int.from_bytes(digest.digest()[:8], "big") % BPS_DENOMINATOR < rate_bps


def compute_tax_bps(params: Params) -> int:
    """The jackpot tax in force: `job_tax_bps` while forced errors are on, none while they are off (the
    jackpot pays only for caught forced errors, so with none to catch it takes nothing)."""
    return params.job_tax_bps if params.forced_error_rate_bps > 0 else 0


def compute_vested_amount(entry: VestingEntry, epoch: int) -> Tokens:
    """Tokens of `entry` released by `epoch` (claimed or not)."""
    if epoch >= entry.end_epoch:
        return Tokens(entry.total)
    if entry.mode == "cliff" or epoch <= entry.start_epoch:
        return Tokens(0)
    # floor: the part not yet released stays held; the last epoch releases the remainder
    return Tokens(entry.total * (epoch - entry.start_epoch) // (entry.end_epoch - entry.start_epoch))


# -- readers --------------------------------------------------------------------------------------


def get_account(state: State, account: str) -> Account:
    try:
        return state.accounts[account]
    except KeyError:
        raise UnknownAccount(f"no account named {account!r}") from None


def is_account(state: State, account: str) -> bool:
    return account in state.accounts


def get_balance(state: State, account: str) -> Tokens:
    return Tokens(get_account(state, account).balance)


def get_stake(state: State, account: str) -> Tokens:
    return Tokens(state.stakes.get(account, 0))


def get_unbonding_total(state: State, account: str) -> Tokens:
    return Tokens(sum(e.amount for e in state.unbonding.get(account, ())))


def get_vesting_held(state: State, account: str) -> Tokens:
    """Tokens of `account` still in vesting entries (released or not, but not yet claimed)."""
    return Tokens(sum(e.total - e.claimed for e in state.vesting.get(account, ())))


def get_vesting_unreleased(state: State, account: str) -> Tokens:
    """Tokens of `account` not yet released by its vesting schedule: what a fraud forfeits."""
    return Tokens(
        sum(e.total - compute_vested_amount(e, state.epoch) for e in state.vesting.get(account, ()))
    )


def get_stake_at_risk(state: State, account: str) -> Tokens:
    """Bonded plus unbonding stake: what a slash may take a fraction of."""
    return Tokens(get_stake(state, account) + get_unbonding_total(state, account))


def get_required_worker_stake(state: State) -> Tokens:
    """Bonding curve: the stake a new worker needs, rising linearly with the number of active workers
    (so the n-th Sybil identity costs O(n) and n of them cost O(n**2))."""
    p = state.params
    return Tokens(p.base_worker_stake + p.worker_stake_increment * state.active_workers)


def is_active_worker(state: State, account: str) -> bool:
    record = state.workers.get(account)
    return record is not None and record.active


def is_eligible_worker(state: State, account: str) -> bool:
    """Active and holding at least the stake it registered with (a slashed worker must top up)."""
    record = state.workers.get(account)
    return record is not None and record.active and state.stakes.get(account, 0) >= record.required_stake


def require_eligible_worker(state: State, account: str) -> None:
    record = state.workers.get(account)
    if record is None or not record.active:
        raise NotAWorker(f"{account!r} is not an active worker")
    stake = state.stakes.get(account, 0)
    if stake < record.required_stake:
        raise InsufficientStake(f"{account!r} holds {stake}, below its required {record.required_stake}")


def get_reputation(state: State, account: str) -> ReputationPoints:
    """Reputation now, with decay since the last update applied."""
    record = state.reputation.get(account)
    if record is None:
        return ReputationPoints(0)
    return compute_decayed_reputation(
        record.score, state.epoch - record.epoch, state.params.reputation_retention_bps
    )


def get_job(state: State, job_id: int) -> Job:
    job = state.jobs.get(job_id) if type(job_id) is int else None
    if job is None:
        raise UnknownJob(f"no job {job_id!r}")
    return job


def get_total_vesting(state: State) -> Tokens:
    return Tokens(sum(e.total - e.claimed for entries in state.vesting.values() for e in entries))


def get_circulating_supply(state: State) -> Tokens:
    """Every token not burned."""
    return Tokens(state.total_supply - state.burned)


# -- primitive mutators ---------------------------------------------------------------------------


def increase_balance(state: State, account: str, amount: int) -> None:
    state.accounts[account].balance += amount


def decrease_balance(state: State, account: str, amount: int) -> None:
    acct = get_account(state, account)
    if acct.balance < amount:
        raise InsufficientFunds(f"{account!r} has {acct.balance}, needs {amount}")
    acct.balance -= amount


def increase_stake(state: State, account: str, amount: int) -> None:
    state.stakes[account] = state.stakes.get(account, 0) + amount
    state.total_staked += amount


def decrease_stake(state: State, account: str, amount: int) -> None:
    stake = state.stakes.get(account, 0)
    if stake < amount:
        raise InsufficientStake(f"{account!r} has {stake} staked, needs {amount}")
    if stake == amount:
        del state.stakes[account]
    else:
        state.stakes[account] = stake - amount
    state.total_staked -= amount


def increase_reputation(state: State, account: str, points: int) -> None:
    state.reputation[account] = ReputationRecord(get_reputation(state, account) + points, state.epoch)


def decrease_reputation(state: State, account: str, points: int) -> None:
    state.reputation[account] = ReputationRecord(max(0, get_reputation(state, account) - points), state.epoch)


def increase_burned(state: State, amount: int) -> None:
    state.burned += amount


def slash_stake(state: State, account: str, amount: int) -> Tokens:
    """Take up to `amount` from `account`'s stake, then from its unbonding entries (latest release
    first, since they would have left soonest last); returns what was taken, never more than at risk.
    The caller decides where the taken tokens go."""
    taken = min(amount, state.stakes.get(account, 0))
    if taken:
        decrease_stake(state, account, taken)
    entries = state.unbonding.get(account)
    while entries and taken < amount:
        entry = entries[-1]
        part = min(entry.amount, amount - taken)
        entry.amount -= part
        taken += part
        if entry.amount == 0:
            entries.pop()
    if entries is not None and not entries:
        del state.unbonding[account]
    return Tokens(taken)


def slash_unreleased_vesting(state: State, account: str) -> Tokens:
    """Forfeit every vesting token of `account` not yet released; released ones stay claimable."""
    taken = 0
    for entry in state.vesting.get(account, ()):
        released = compute_vested_amount(entry, state.epoch)
        taken += entry.total - released
        entry.total = released
        entry.end_epoch = min(entry.end_epoch, state.epoch)
    remaining = [e for e in state.vesting.get(account, ()) if e.claimed < e.total]
    if remaining:
        state.vesting[account] = remaining
    else:
        state.vesting.pop(account, None)
    return Tokens(taken)


def record_slash(
    state: State, account: str, reason: str, amount: int, at_stake: int, job_id: JobId | int | None = None
) -> None:
    """Log a slash for this epoch's report and the slash-bound invariant; keep the running total."""
    state.slash_events.append(SlashEvent(state.epoch, account, reason, amount, at_stake, job_id))
    state.totals.slashed += amount
