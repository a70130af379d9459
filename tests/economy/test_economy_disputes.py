"""Disputes: the bond, the window, the three verdicts, refunds, forced errors and the jackpot.

The money side of settlement (`process_dispute_verdict`, what a checked transcript's verdict does);
the check itself, with real games, is in test_economy_settlement."""

from __future__ import annotations

from protocol.economy import (
    ChallengeWindowClosed,
    DisputeAlreadyOpen,
    InsufficientFunds,
    InvalidOutcome,
    JobAlreadySettled,
    JobNotCommitted,
    JobStatus,
    NoOpenDispute,
    SelfDispute,
    UnknownAccount,
    check_invariants,
    compute_share,
    get_balance,
    get_reputation,
    get_stake,
    get_stake_at_risk,
    get_vesting_held,
    process_deregister_worker,
    process_dispute_verdict,
    process_open_dispute,
    process_post_job,
    process_settle_job,
    process_transfer,
    process_unbond,
)

from .actors import (
    GENESIS,
    advance,
    compute_commitment_json,
    compute_training_job,
    expect_unchanged,
    make_challenge,
    make_committed_job,
    make_market,
)


def test_dispute_needs_bond_window_and_commitment() -> None:
    s = make_market()
    open_job = process_post_job(s, "carol", 100, 10, compute_training_job(s.next_job_id))
    challenge = compute_commitment_json("dave", compute_training_job(open_job), 1)
    expect_unchanged(s, JobNotCommitted, process_open_dispute, "dave", open_job, challenge)
    job = make_committed_job(s)
    challenge = compute_commitment_json("dave", s.jobs[job].training_job, 1)
    expect_unchanged(s, SelfDispute, process_open_dispute, "alice", job, challenge)
    expect_unchanged(s, UnknownAccount, process_open_dispute, "nobody", job, challenge)
    process_transfer(s, "erin", "carol", GENESIS - s.params.challenger_bond + 1)  # erin keeps bond - 1
    expect_unchanged(s, InsufficientFunds, process_open_dispute, "erin", job, challenge)
    number = make_challenge(s, "dave", job)
    assert s.disputes[number].bond == s.params.challenger_bond and s.jobs[job].open_disputes == 1
    assert get_balance(s, "dave") == GENESIS - s.params.challenger_bond
    expect_unchanged(s, DisputeAlreadyOpen, process_open_dispute, "dave", job, challenge)  # one each
    make_challenge(s, "carol", job)  # but any number of challengers: disputes run side by side
    assert s.jobs[job].open_disputes == 2 and s.jobs[job].status == JobStatus.COMMITTED
    expect_unchanged(s, DisputeAlreadyOpen, process_settle_job, job)
    check_invariants(s)


def test_dispute_after_window_is_refused() -> None:
    s = make_market()
    job = make_committed_job(s)
    advance(s, s.params.challenge_window_epochs)
    challenge = compute_commitment_json("dave", s.jobs[job].training_job, 1)
    expect_unchanged(s, ChallengeWindowClosed, process_open_dispute, "dave", job, challenge)


def test_worker_loses_slash_split_and_user_refund() -> None:
    s = make_market(slash_fraction_bps=5_000, challenger_reward_bps=3_000)
    earlier = make_committed_job(s, price=100)
    advance(s, s.params.challenge_window_epochs)
    process_settle_job(s, earlier)  # leaves 50 held in vesting, not yet released
    job = make_committed_job(s, price=120)
    at_risk = get_stake_at_risk(s, "alice")
    held = get_vesting_held(s, "alice")
    carol, dave, burned = get_balance(s, "carol"), get_balance(s, "dave"), s.burned
    number = make_challenge(s, "dave", job)
    result = process_dispute_verdict(s, number, "worker-wrong")
    slashed = at_risk * 5_000 // 10_000 + held
    reward = slashed * 3_000 // 10_000
    assert (result.kind, result.slashed, result.winner_reward, result.burned) == (
        "worker-slashed",
        slashed,
        reward,
        slashed - reward,
    )
    assert get_balance(s, "dave") == dave + reward  # the bond came back too
    assert s.burned - burned == slashed - reward
    assert get_balance(s, "carol") == carol + 120 and result.refunded == 120
    assert get_vesting_held(s, "alice") == 0 and get_stake_at_risk(s, "alice") == at_risk - at_risk // 2
    assert s.jobs[job].status == JobStatus.SLASHED
    assert get_reputation(s, "alice") < s.params.reputation_success_gain
    assert s.slash_events[-1].amount <= s.slash_events[-1].at_stake
    expect_unchanged(s, JobAlreadySettled, process_settle_job, job)
    expect_unchanged(s, NoOpenDispute, process_dispute_verdict, number, "worker-wrong")
    check_invariants(s)


def test_slash_reaches_unbonding_stake() -> None:
    s = make_market()
    job = make_committed_job(s)
    process_deregister_worker(s, "alice")
    process_unbond(s, "alice", get_stake(s, "alice"))  # tries to run with the stake
    assert get_stake(s, "alice") == 0
    at_risk = get_stake_at_risk(s, "alice")
    result = process_dispute_verdict(s, make_challenge(s, "dave", job), "worker-wrong")
    assert result.slashed == at_risk // 2 and get_stake_at_risk(s, "alice") == at_risk - at_risk // 2
    check_invariants(s)


def test_challenger_loses_bond_split_between_worker_and_burn() -> None:
    s = make_market(challenger_reward_bps=5_000)
    job = make_committed_job(s)
    alice, burned = get_balance(s, "alice"), s.burned
    stake = get_stake(s, "alice")
    result = process_dispute_verdict(s, make_challenge(s, "dave", job), "challenger-wrong")
    bond = s.params.challenger_bond
    assert (result.kind, result.slashed, result.winner_reward) == ("challenger-slashed", bond, bond // 2)
    # the worker's share is held with the job until it ends
    assert get_balance(s, "alice") == alice and s.jobs[job].held_share == bond // 2
    assert s.burned == burned + bond - bond // 2
    assert get_balance(s, "dave") == GENESIS - bond and get_stake(s, "alice") == stake
    assert s.jobs[job].status == JobStatus.COMMITTED
    advance(s, s.params.challenge_window_epochs)
    alice = get_balance(s, "alice")
    price = process_settle_job(s, job)  # the honest worker is still paid after the window, with the share
    held = compute_share(price, s.params.vesting_share_bps)
    assert get_balance(s, "alice") == alice + price - held + bond // 2 and s.jobs[job].held_share == 0
    check_invariants(s)


def test_a_bond_share_held_for_a_worker_later_proven_wrong_is_burned() -> None:
    """A challenger who throws its game to a cheater (it loses first, so the worker is not yet suspect)
    pays the cheater nothing: the share is held with the job and burned when another game slashes it."""
    s = make_market(challenger_reward_bps=5_000)
    job = make_committed_job(s)
    alice = get_balance(s, "alice")
    process_dispute_verdict(s, make_challenge(s, "dave", job), "challenger-wrong")
    burned = s.burned
    result = process_dispute_verdict(s, make_challenge(s, "erin", job), "worker-wrong")
    assert result.kind == "worker-slashed" and s.jobs[job].held_share == 0
    assert s.burned == burned + s.params.challenger_bond // 2 + result.burned
    assert get_balance(s, "alice") == alice
    check_invariants(s)


def test_outcome_must_be_one_of_the_three() -> None:
    s = make_market()
    job = make_committed_job(s)
    expect_unchanged(s, NoOpenDispute, process_dispute_verdict, 0, "worker-wrong")
    number = make_challenge(s, "dave", job)
    for outcome in ("dave", "worker", "", "WORKER-WRONG"):
        expect_unchanged(s, InvalidOutcome, process_dispute_verdict, number, outcome)
