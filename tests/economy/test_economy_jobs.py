"""Jobs: escrow and tax, the reverse and batch auctions, commitments, settlement with vesting,
missed deadlines and cancellations."""

from __future__ import annotations

from protocol.economy import (
    AuctionFull,
    AuctionStillOpen,
    ChallengeWindowOpen,
    DeadlineNotPassed,
    DeadlinePassed,
    DuplicateBid,
    InsufficientFunds,
    InsufficientStake,
    InvalidAmount,
    InvalidBid,
    InvalidCommitment,
    JobAlreadySettled,
    JobNotAssigned,
    JobNotCommitted,
    JobNotOpen,
    JobStatus,
    NoBids,
    NotAWorker,
    NothingToClaim,
    NotJobOwner,
    NotJobWorker,
    StakeLocked,
    UnknownJob,
    WrongAuctionMode,
    check_invariants,
    compute_job_tax,
    compute_tax_bps,
    get_balance,
    get_reputation,
    get_stake,
    get_vesting_held,
    process_batch_auction,
    process_bid,
    process_cancel_job,
    process_claim_vesting,
    process_close_auction,
    process_deregister_worker,
    process_epoch,
    process_post_ask,
    process_post_job,
    process_settle_job,
    process_stake,
    process_submit_commitment,
    process_unbond,
    process_withdraw_unbonded,
    slash_missed_deadline,
)
from protocol.economy.helpers import increase_reputation

from .actors import (
    GENESIS,
    advance,
    compute_commitment_json,
    compute_training_job,
    expect_unchanged,
    make_committed_job,
    make_market,
    make_worker,
)


def test_posting_escrows_price_and_tax() -> None:
    s = make_market(forced_error_rate_bps=2_000)
    tax = compute_job_tax(200, compute_tax_bps(s.params))
    job = process_post_job(s, "carol", 200, 10, compute_training_job(s.next_job_id))
    assert s.escrow[job] == 200 + tax and get_balance(s, "carol") == GENESIS - 200 - tax
    expect_unchanged(s, InvalidAmount, process_post_job, "carol", s.params.min_job_payment - 1, 10, compute_training_job(s.next_job_id))
    expect_unchanged(s, InvalidAmount, process_post_job, "carol", 100, 0, compute_training_job(s.next_job_id))
    expect_unchanged(s, InsufficientFunds, process_post_job, "carol", GENESIS, 10, compute_training_job(s.next_job_id))
    expect_unchanged(s, WrongAuctionMode, process_post_job, "carol", 100, 10, compute_training_job(s.next_job_id), "dutch")
    check_invariants(s)


def test_reverse_auction_lowest_price_wins_and_refunds_the_rest() -> None:
    s = make_market(forced_error_rate_bps=2_000)
    job = process_post_job(s, "carol", 200, 10, compute_training_job(s.next_job_id))
    process_bid(s, "alice", job, 150)
    process_bid(s, "bob", job, 120)
    won = process_close_auction(s, job)
    assert (won.worker, won.price) == ("bob", 120)
    tax = compute_job_tax(120, compute_tax_bps(s.params))
    assert s.escrow[job] == 120 and s.jackpot == tax
    assert get_balance(s, "carol") == GENESIS - 120 - tax
    assert s.jobs[job].status == JobStatus.ASSIGNED and s.workers["bob"].open_jobs == 1
    check_invariants(s)


def test_reputation_breaks_price_ties_then_name() -> None:
    s = make_market()
    job = process_post_job(s, "carol", 200, 10, compute_training_job(s.next_job_id))
    process_bid(s, "alice", job, 150)
    process_bid(s, "bob", job, 150)
    assert process_close_auction(s, job).worker == "alice"  # equal reputation: name order
    s = make_market()
    increase_reputation(s, "bob", 50)
    job = process_post_job(s, "carol", 200, 10, compute_training_job(s.next_job_id))
    process_bid(s, "alice", job, 150)
    process_bid(s, "bob", job, 150)
    assert process_close_auction(s, job).worker == "bob"


def test_bid_rejections() -> None:
    s = make_market(max_bids_per_job=2, auction_duration_epochs=1)
    make_worker(s, "erin")
    job = process_post_job(s, "carol", 200, 10, compute_training_job(s.next_job_id))
    expect_unchanged(s, InvalidBid, process_bid, "alice", job, 201)
    expect_unchanged(s, InvalidBid, process_bid, "alice", job, s.params.min_job_payment - 1)
    expect_unchanged(s, NotAWorker, process_bid, "dave", job, 100)
    expect_unchanged(s, UnknownJob, process_bid, "alice", 99, 100)
    expect_unchanged(s, AuctionStillOpen, process_close_auction, job)
    process_bid(s, "alice", job, 100)
    expect_unchanged(s, DuplicateBid, process_bid, "alice", job, 90)
    process_bid(s, "bob", job, 100)
    expect_unchanged(s, AuctionFull, process_bid, "erin", job, 90)
    batch = process_post_job(s, "carol", 200, 10, compute_training_job(s.next_job_id), "batch")
    expect_unchanged(s, WrongAuctionMode, process_bid, "alice", batch, 100)
    advance(s, 2)
    expect_unchanged(s, JobNotOpen, process_bid, "erin", job, 90)  # bidding is over
    process_close_auction(s, job)
    expect_unchanged(s, JobNotOpen, process_close_auction, job)


def test_no_eligible_bid_leaves_job_open_for_cancellation() -> None:
    s = make_market()
    job = process_post_job(s, "carol", 200, 10, compute_training_job(s.next_job_id))
    expect_unchanged(s, NoBids, process_close_auction, job)
    process_bid(s, "alice", job, 100)
    process_deregister_worker(s, "alice")  # no longer eligible
    expect_unchanged(s, NoBids, process_close_auction, job)
    expect_unchanged(s, NotJobOwner, process_cancel_job, "dave", job)
    assert process_cancel_job(s, "carol", job) == 200 + compute_job_tax(200, compute_tax_bps(s.params))
    assert get_balance(s, "carol") == GENESIS
    expect_unchanged(s, JobAlreadySettled, process_cancel_job, "carol", job)
    check_invariants(s)


def test_slashed_worker_below_its_stake_cannot_bid() -> None:
    s = make_market()
    late = process_post_job(s, "carol", 100, 10, compute_training_job(s.next_job_id))
    process_bid(s, "alice", late, 100)
    process_close_auction(s, late)
    advance(s, s.params.commit_deadline_epochs + 1)
    slash_missed_deadline(s, late)
    job = process_post_job(s, "carol", 200, 10, compute_training_job(s.next_job_id))
    expect_unchanged(s, InsufficientStake, process_bid, "alice", job, 100)
    process_stake(s, "alice", s.workers["alice"].required_stake - get_stake(s, "alice"))  # top up
    process_bid(s, "alice", job, 100)


def test_batch_auction_clears_at_uniform_marginal_price() -> None:
    s = make_market()
    make_worker(s, "erin")
    j_rich = process_post_job(s, "carol", 400, 10, compute_training_job(s.next_job_id), "batch")  # 40 per unit
    j_mid = process_post_job(s, "carol", 250, 10, compute_training_job(s.next_job_id), "batch")  # 25 per unit
    j_poor = process_post_job(s, "carol", 100, 10, compute_training_job(s.next_job_id), "batch")  # 10 per unit: below every ask
    process_post_ask(s, "alice", 20, 1)
    process_post_ask(s, "bob", 15, 1)
    process_post_ask(s, "erin", 30, 5)
    assignments = process_batch_auction(s)
    # demand 40, 25, 10 per unit; supply 15, 20, 30...: two trades, marginal ask 20
    assert [(a.job_id, a.worker, a.price) for a in assignments] == [
        (j_rich, "bob", 200),
        (j_mid, "alice", 200),
    ]
    assert s.batch_queue == [j_poor] and s.jobs[j_poor].status == JobStatus.OPEN
    assert s.escrow[j_rich] == 200
    check_invariants(s)
    report = process_epoch(s, b"next")  # the epoch transition runs the same auction
    assert report.assignments == []
    expect_unchanged(s, InvalidBid, process_post_ask, "alice", 0, 1)
    expect_unchanged(s, InvalidBid, process_post_ask, "alice", 5, 0)
    expect_unchanged(s, NotAWorker, process_post_ask, "dave", 5, 1)


def test_commitment_before_deadline_only() -> None:
    s = make_market()
    job = process_post_job(s, "carol", 100, 10, compute_training_job(s.next_job_id))
    process_bid(s, "alice", job, 100)
    process_close_auction(s, job)
    expect_unchanged(s, NotJobWorker, process_submit_commitment, "bob", job, compute_commitment_json("bob", s.jobs[job].training_job, 0))
    expect_unchanged(s, InvalidCommitment, process_submit_commitment, "alice", job, {"commitment": "AB" * 32})
    expect_unchanged(s, InvalidCommitment, process_submit_commitment, "alice", job, {"commitment": {}, "signature": "ab"})
    expect_unchanged(s, DeadlineNotPassed, slash_missed_deadline, job)
    advance(s, s.params.commit_deadline_epochs + 1)
    expect_unchanged(s, DeadlinePassed, process_submit_commitment, "alice", job, compute_commitment_json("alice", s.jobs[job].training_job, 0))


def test_missed_deadline_slashes_burns_and_refunds() -> None:
    s = make_market()
    job = process_post_job(s, "carol", 100, 10, compute_training_job(s.next_job_id))
    process_bid(s, "alice", job, 100)
    process_close_auction(s, job)
    carol_after_award = get_balance(s, "carol")
    stake = get_stake(s, "alice")
    advance(s, s.params.commit_deadline_epochs + 1)
    burned = s.burned
    taken = slash_missed_deadline(s, job)
    assert taken == stake * s.params.missed_deadline_slash_bps // 10_000
    assert s.burned - burned == taken and get_balance(s, "carol") == carol_after_award + 100
    assert s.jobs[job].status == JobStatus.EXPIRED and s.workers["alice"].open_jobs == 0
    expect_unchanged(s, JobAlreadySettled, slash_missed_deadline, job)
    expect_unchanged(s, JobAlreadySettled, process_submit_commitment, "alice", job, compute_commitment_json("alice", s.jobs[job].training_job, 0))
    check_invariants(s)


def test_settlement_after_window_pays_once_with_linear_vesting() -> None:
    s = make_market(vesting_share_bps=5_000, vesting_epochs=4, vesting_mode="linear")
    job = make_committed_job(s, price=101)
    expect_unchanged(s, ChallengeWindowOpen, process_settle_job, job)
    advance(s, s.params.challenge_window_epochs)
    before = get_balance(s, "alice")
    assert process_settle_job(s, job) == 101
    held = 101 * 5_000 // 10_000  # 50 held, 51 paid now
    assert get_balance(s, "alice") == before + 101 - held and get_vesting_held(s, "alice") == held
    assert get_reputation(s, "alice") == s.params.reputation_success_gain
    expect_unchanged(s, JobAlreadySettled, process_settle_job, job)
    expect_unchanged(s, NothingToClaim, process_claim_vesting, "alice")
    claimed = []
    for _ in range(4):
        advance(s, 1)
        claimed.append(process_claim_vesting(s, "alice"))
        check_invariants(s)
    assert claimed == [12, 13, 12, 13] and sum(claimed) == held and "alice" not in s.vesting


def test_cliff_vesting_releases_at_the_end() -> None:
    s = make_market(vesting_mode="cliff", vesting_epochs=3)
    job = make_committed_job(s, price=100)
    advance(s, s.params.challenge_window_epochs)
    process_settle_job(s, job)
    advance(s, 2)
    expect_unchanged(s, NothingToClaim, process_claim_vesting, "alice")
    advance(s, 1)
    assert process_claim_vesting(s, "alice") == 50


def test_settle_needs_a_commitment() -> None:
    s = make_market()
    job = process_post_job(s, "carol", 100, 10, compute_training_job(s.next_job_id))
    expect_unchanged(s, JobNotCommitted, process_settle_job, job)
    process_bid(s, "alice", job, 100)
    process_close_auction(s, job)
    expect_unchanged(s, JobNotCommitted, process_settle_job, job)
    expect_unchanged(s, JobNotOpen, process_cancel_job, "carol", job)
    process_submit_commitment(s, "alice", job, compute_commitment_json("alice", s.jobs[job].training_job, 0))
    expect_unchanged(s, JobNotAssigned, process_submit_commitment, "alice", job, compute_commitment_json("alice", s.jobs[job].training_job, 0))


def test_worker_with_open_jobs_cannot_withdraw_unbonded_stake() -> None:
    s = make_market()
    process_stake(s, "alice", 100)
    process_unbond(s, "alice", 100)
    job = make_committed_job(s)
    advance(s, s.params.unbonding_period_epochs)
    expect_unchanged(s, StakeLocked, process_withdraw_unbonded, "alice")
    process_settle_job(s, job)
    assert process_withdraw_unbonded(s, "alice") == 100
