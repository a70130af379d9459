"""Secret forced errors (Truebit's commit-then-draw): the worker seals its true result before the draw's
seed exists; only it can tell a test while the window runs; the opening afterwards shows the draw, pays
the jackpot to whoever caught a forced error, and slashes a worker that cannot open its true result.

The money side, with signed commitments and modelled verdicts (`process_dispute_verdict`); real games
against a sealed job are in test_economy_settlement."""

from __future__ import annotations

import pytest

from protocol.economy import (
    ChallengeWindowOpen,
    DeadlineNotPassed,
    DrawPending,
    InvalidSeal,
    JobStatus,
    SealNotDue,
    SealNotOpened,
    SealRequired,
    check_invariants,
    compute_seal,
    get_balance,
    get_stake,
    process_bid,
    process_close_auction,
    process_dispute_verdict,
    process_epoch,
    process_open_seal,
    process_post_job,
    process_seal_result,
    process_settle_job,
    process_submit_commitment,
    slash_missed_deadline,
    slash_unopened_seal,
)
from protocol.economy.helpers import compute_is_forced_error
from protocol.signing import compute_canonical_json

from .actors import (
    advance,
    compute_commitment_json,
    compute_training_job,
    expect_unchanged,
    find_salt,
    make_challenge,
    make_market,
    make_sealed_job,
)

RATE = 5_000


def fund_jackpot(s: object) -> None:
    """A few honest sealed jobs whose tax feeds the jackpot."""
    for _ in range(3):
        make_sealed_job(s, forced=False, price=200, worker="bob")  # type: ignore[arg-type]


def test_the_draw_is_unknown_when_the_seal_is_made() -> None:
    """The seal precedes its draw: the commitment is refused until the next epoch's seed is in, and the
    draw then depends on the worker's secret salt, so the public seed alone tells a challenger nothing."""
    s = make_market(forced_error_rate_bps=RATE)
    job = process_post_job(s, "carol", 100, 10, compute_training_job(0))
    process_bid(s, "alice", job, 100)
    process_close_auction(s, job)
    true = compute_commitment_json("alice", s.jobs[job].training_job, 0)
    expect_unchanged(s, SealRequired, process_submit_commitment, "alice", job, true)
    expect_unchanged(s, InvalidSeal, process_seal_result, "alice", job, "AB" * 32)
    expect_unchanged(s, InvalidSeal, process_seal_result, "alice", job, "ab" * 31)
    salt = "5a" * 32
    process_seal_result(s, "alice", job, compute_seal(compute_canonical_json(true).decode(), salt))
    assert s.jobs[job].status == JobStatus.SEALED and s.draws == [job]
    expect_unchanged(s, DrawPending, process_submit_commitment, "alice", job, true)
    check_invariants(s)
    process_epoch(s, b"beacon")
    assert s.jobs[job].draw_seed == b"beacon".hex() and s.draws == []
    # the same public seed with different salts: both outcomes occur, so only the salt's holder knows
    draws = {compute_is_forced_error(s.jobs[job].draw_seed, f"{i:064x}", job, RATE) for i in range(64)}
    assert draws == {True, False}
    check_invariants(s)


def test_a_worker_that_never_reveals_is_slashed_after_the_epoch_after_its_deadline() -> None:
    s = make_market(forced_error_rate_bps=RATE)
    job = process_post_job(s, "carol", 100, 10, compute_training_job(0))
    process_bid(s, "alice", job, 100)
    process_close_auction(s, job)
    process_seal_result(s, "alice", job, "11" * 32)
    advance(s, s.params.commit_deadline_epochs + 1)
    expect_unchanged(s, DeadlineNotPassed, slash_missed_deadline, job)
    advance(s, 1)
    assert slash_missed_deadline(s, job) > 0 and s.jobs[job].status == JobStatus.EXPIRED
    check_invariants(s)


def test_a_caught_forced_error_pays_the_jackpot_once_the_seal_is_opened() -> None:
    s = make_market(forced_error_rate_bps=RATE, jackpot_payout_bps=5_000)
    fund_jackpot(s)
    job, salt, true = make_sealed_job(s, forced=True)
    stake, dave = get_stake(s, "alice"), get_balance(s, "dave")
    first, late = make_challenge(s, "dave", job), make_challenge(s, "erin", job, root=0)
    result = process_dispute_verdict(s, first, "worker-wrong")
    assert result.kind == "caught-pending-seal" and s.jobs[job].catcher == "dave"  # nobody can tell yet
    assert process_dispute_verdict(s, late, "worker-wrong").kind == "bond-refunded"
    assert get_balance(s, "dave") == dave and not s.jobs[job].forced_error
    expect_unchanged(s, ChallengeWindowOpen, process_open_seal, "alice", job, true, salt)
    advance(s, s.params.challenge_window_epochs)
    expect_unchanged(s, SealNotOpened, process_settle_job, job)
    expect_unchanged(s, InvalidSeal, process_open_seal, "alice", job, true, "00" * 32)
    wrong_true = compute_commitment_json("alice", s.jobs[job].training_job, 1)
    expect_unchanged(s, InvalidSeal, process_open_seal, "alice", job, wrong_true, salt)
    jackpot = s.jackpot
    opened = process_open_seal(s, "alice", job, true, salt)
    assert opened.forced and opened.jackpot_paid == jackpot // 2 > 0
    assert get_balance(s, "dave") == dave + jackpot // 2 and get_stake(s, "alice") == stake
    # the true result is open to challenge for one more window; then the worker is paid
    expect_unchanged(s, ChallengeWindowOpen, process_settle_job, job)
    advance(s, s.params.challenge_window_epochs)
    assert process_settle_job(s, job) == 100
    check_invariants(s)


def test_a_forced_errors_true_result_can_be_proven_wrong() -> None:
    """After a forced-error opening, a challenger whose root differs from the true one disputes the true
    one; winning it slashes the worker as a cheater (it sealed a result it did not compute)."""
    s = make_market(forced_error_rate_bps=RATE)
    job, salt, true = make_sealed_job(s, forced=True)
    advance(s, s.params.challenge_window_epochs)
    process_open_seal(s, "alice", job, true, salt)
    assert s.jobs[job].true_commitment and s.jobs[job].forced_error
    number = make_challenge(s, "dave", job, root=1)
    assert s.disputes[number].against_true
    result = process_dispute_verdict(s, number, "worker-wrong")
    assert result.kind == "worker-slashed" and s.jobs[job].status == JobStatus.SLASHED
    check_invariants(s)


def test_an_ordinary_job_caught_is_slashed_when_opened_or_left_unopened() -> None:
    for opens in (True, False):
        s = make_market(forced_error_rate_bps=RATE)
        job, salt, _ = make_sealed_job(s, forced=False, public=1)  # a cheat: the sealed "true" root is its own
        true = compute_commitment_json("alice", s.jobs[job].training_job, 1)
        job_salt = salt
        # the seal bound ROOTS[0]: the cheater revealed ROOTS[1], which is not its sealed result
        number = make_challenge(s, "dave", job, root=0)
        assert process_dispute_verdict(s, number, "worker-wrong").kind == "caught-pending-seal"
        dave = get_balance(s, "dave")  # its bond is back; its reward waits for the seal
        advance(s, s.params.challenge_window_epochs)
        expect_unchanged(s, InvalidSeal, process_open_seal, "alice", job, true, job_salt)
        if opens:
            sealed = compute_commitment_json("alice", s.jobs[job].training_job, 0)
            expect_unchanged(s, InvalidSeal, process_open_seal, "alice", job, sealed, job_salt)
        expect_unchanged(s, SealNotDue, slash_unopened_seal, job)
        advance(s, 1)
        result = slash_unopened_seal(s, job)
        assert result.kind == "worker-slashed" and result.reward > 0
        assert get_balance(s, "dave") == dave + result.reward and s.jobs[job].status == JobStatus.SLASHED
        check_invariants(s)


def test_an_honest_ordinary_job_opens_and_is_paid() -> None:
    s = make_market(forced_error_rate_bps=RATE)
    job, salt, true = make_sealed_job(s, forced=False)
    advance(s, s.params.challenge_window_epochs)
    opened = process_open_seal(s, "alice", job, true, salt)
    assert opened.kind == "no-forced-error" and not s.jobs[job].true_commitment
    assert process_settle_job(s, job) == 100
    check_invariants(s)


def test_a_forced_error_that_was_not_made_cannot_be_opened() -> None:
    """A worker that ignores its draw (reveals its true result on a forced-error job, hoping to be paid
    without the test) cannot open its seal, and is slashed for it."""
    s = make_market(forced_error_rate_bps=RATE)
    job, salt, true = make_sealed_job(s, forced=True, public=0)
    advance(s, s.params.challenge_window_epochs)
    expect_unchanged(s, InvalidSeal, process_open_seal, "alice", job, true, salt)
    advance(s, 1)
    assert slash_unopened_seal(s, job).kind == "worker-slashed"
    check_invariants(s)


def test_the_tax_stops_when_forced_errors_are_off() -> None:
    on, off = make_market(forced_error_rate_bps=RATE), make_market(forced_error_rate_bps=0)
    for s in (on, off):
        job = process_post_job(s, "carol", 100, 10, compute_training_job(0))
        process_bid(s, "alice", job, 100)
        process_close_auction(s, job)
    assert on.jackpot > 0 and off.jackpot == 0 and off.jobs[0].posting_tax == 0
    assert get_balance(off, "carol") == get_balance(on, "carol") + on.jackpot


@pytest.mark.parametrize("forced", [True, False])
def test_the_salt_decides_with_the_seed(forced: bool) -> None:
    salt = find_salt(b"draw", 3, RATE, forced)
    assert compute_is_forced_error(b"draw".hex(), salt, 3, RATE) is forced
    assert compute_is_forced_error(b"draw".hex(), salt, 3, 0) is False
