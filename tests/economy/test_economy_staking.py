"""Accounts, transfers, staking with a minimum, unbonding, the bonding curve, heartbeats."""

from __future__ import annotations

from protocol.economy import (
    AccountExists,
    AlreadyRegistered,
    GenesisClosed,
    HeartbeatsNotMissed,
    InsufficientFunds,
    InsufficientStake,
    InvalidAccountName,
    InvalidAmount,
    NotAWorker,
    NothingToWithdraw,
    TooManyUnbondingEntries,
    UnknownAccount,
    check_invariants,
    get_balance,
    get_required_worker_stake,
    get_stake,
    get_workers_missing_heartbeats,
    process_deregister_worker,
    process_genesis_allocation,
    process_heartbeat,
    process_open_account,
    process_register_worker,
    process_stake,
    process_transfer,
    process_unbond,
    process_withdraw_unbonded,
    slash_missed_heartbeats,
)

from .actors import GENESIS, advance, expect_unchanged, make_economy, make_worker


def test_genesis_and_transfer() -> None:
    s = make_economy()
    assert s.total_supply == 5 * GENESIS
    process_transfer(s, "alice", "bob", 300)
    assert get_balance(s, "alice") == GENESIS - 300 and get_balance(s, "bob") == GENESIS + 300
    check_invariants(s)


def test_transfer_rejections_leave_state_unchanged() -> None:
    s = make_economy()
    expect_unchanged(s, InsufficientFunds, process_transfer, "alice", "bob", GENESIS + 1)
    expect_unchanged(s, UnknownAccount, process_transfer, "alice", "nobody", 1)
    expect_unchanged(s, UnknownAccount, process_transfer, "nobody", "alice", 1)
    expect_unchanged(s, InvalidAmount, process_transfer, "alice", "bob", 0)
    expect_unchanged(s, InvalidAmount, process_transfer, "alice", "bob", -3)
    expect_unchanged(s, InvalidAmount, process_transfer, "alice", "bob", True)
    expect_unchanged(s, InvalidAmount, process_transfer, "alice", "alice", 1)


def test_accounts_open_once_and_genesis_closes() -> None:
    s = make_economy()
    process_open_account(s, "frank")
    expect_unchanged(s, AccountExists, process_open_account, "frank")
    expect_unchanged(s, InvalidAccountName, process_open_account, "")
    expect_unchanged(s, InvalidAccountName, process_open_account, "x" * 65)
    advance(s, 1)
    expect_unchanged(s, GenesisClosed, process_genesis_allocation, "alice", 5)


def test_stake_respects_minimum_and_balance() -> None:
    s = make_economy()
    expect_unchanged(s, InsufficientStake, process_stake, "alice", s.params.min_stake - 1)
    expect_unchanged(s, InsufficientFunds, process_stake, "alice", GENESIS + 1)
    process_stake(s, "alice", s.params.min_stake)
    process_stake(s, "alice", 1)  # a top-up may be small once the minimum is reached
    assert get_stake(s, "alice") == s.params.min_stake + 1
    assert s.total_staked == s.params.min_stake + 1
    check_invariants(s)


def test_unbonding_waits_for_its_period_and_withdraws_once() -> None:
    s = make_economy()
    process_stake(s, "alice", 500)
    expect_unchanged(s, InsufficientStake, process_unbond, "alice", 501)
    expect_unchanged(s, InsufficientStake, process_unbond, "alice", 500 - s.params.min_stake + 1)
    process_unbond(s, "alice", 200)
    assert get_stake(s, "alice") == 300 and get_balance(s, "alice") == GENESIS - 500
    expect_unchanged(s, NothingToWithdraw, process_withdraw_unbonded, "alice")
    advance(s, s.params.unbonding_period_epochs - 1)
    expect_unchanged(s, NothingToWithdraw, process_withdraw_unbonded, "alice")
    advance(s, 1)
    assert process_withdraw_unbonded(s, "alice") == 200
    assert get_balance(s, "alice") == GENESIS - 300  # not a worker: no emission reward
    expect_unchanged(s, NothingToWithdraw, process_withdraw_unbonded, "alice")  # double withdrawal
    check_invariants(s)


def test_unbonding_entries_are_bounded() -> None:
    s = make_economy()
    process_stake(s, "alice", 1_000)
    for _ in range(s.params.max_unbonding_entries):
        process_unbond(s, "alice", 10)
    expect_unchanged(s, TooManyUnbondingEntries, process_unbond, "alice", 10)


def test_bonding_curve_raises_entry_stake_per_active_worker() -> None:
    s = make_economy()
    p = s.params
    prices = []
    for name in ("alice", "bob", "carol"):
        prices.append(get_required_worker_stake(s))
        make_worker(s, name)
    assert prices == [p.base_worker_stake + p.worker_stake_increment * n for n in range(3)]
    assert s.active_workers == 3
    process_deregister_worker(s, "carol")
    assert get_required_worker_stake(s) == prices[2]
    process_stake(s, "dave", prices[2] - 1)
    expect_unchanged(s, InsufficientStake, process_register_worker, "dave")
    expect_unchanged(s, AlreadyRegistered, process_register_worker, "alice")
    check_invariants(s)


def test_active_worker_keeps_required_stake() -> None:
    s = make_economy()
    make_worker(s, "alice", extra=50)
    expect_unchanged(s, InsufficientStake, process_unbond, "alice", 51)
    process_unbond(s, "alice", 50)
    process_deregister_worker(s, "alice")
    process_unbond(s, "alice", get_stake(s, "alice"))
    expect_unchanged(s, NotAWorker, process_deregister_worker, "alice")


def test_missed_heartbeats_are_slashed_and_burned() -> None:
    s = make_economy()
    make_worker(s, "alice")
    make_worker(s, "bob")
    stake = get_stake(s, "alice")
    advance(s, s.params.heartbeat_grace_epochs)
    process_heartbeat(s, "bob")
    expect_unchanged(s, HeartbeatsNotMissed, slash_missed_heartbeats, "alice")
    advance(s, 1)
    assert get_workers_missing_heartbeats(s) == ["alice"]
    burned_before = s.burned
    taken = slash_missed_heartbeats(s, "alice")
    assert taken == stake * s.params.downtime_slash_bps // 10_000 > 0
    assert s.burned - burned_before == taken
    assert get_stake(s, "alice") == stake - taken
    assert not s.workers["alice"].active and s.active_workers == 1
    expect_unchanged(s, HeartbeatsNotMissed, slash_missed_heartbeats, "alice")
    expect_unchanged(s, NotAWorker, process_heartbeat, "alice")
    check_invariants(s)
