"""Emission schedules, the four reward models, reputation decay and pro-rata splits."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.economy import (
    check_invariants,
    compute_decayed_reputation,
    compute_epoch_emission,
    compute_pro_rata,
    get_balance,
    get_reputation,
    get_stake,
    process_epoch,
    process_settle_job,
)
from protocol.economy.helpers import increase_reputation
from protocol.economy.state import State

from .actors import advance, make_committed_job, make_market, make_worker


def settle_in_one_epoch(state: State, work: dict[str, int]) -> None:
    """Commit one job per worker (work units given), let the windows pass, settle them all in the
    current epoch."""
    jobs = [make_committed_job(state, price=100, worker=w, units=units) for w, units in work.items()]
    advance(state, state.params.challenge_window_epochs)
    for job in jobs:
        process_settle_job(state, job)


def test_exponential_schedule_decays_each_epoch() -> None:
    s = make_market(emission_schedule="exponential", initial_emission=1_000, emission_retention_bps=9_000)
    emissions = [process_epoch(s, b"e").emission for _ in range(4)]
    assert emissions == [1_000, 900, 810, 729]


def test_disinflationary_schedule_follows_yearly_rate_to_its_floor() -> None:
    s = make_market(
        emission_schedule="disinflationary",
        epochs_per_year=2,
        initial_inflation_bps=1_000,
        disinflation_bps=5_000,
        terminal_inflation_bps=300,
    )
    rates = []
    for _ in range(8):
        rates.append(s.emission.inflation_bps)
        expected = (s.total_supply - s.burned) * s.emission.inflation_bps // (10_000 * 2)
        assert compute_epoch_emission(s) == expected
        process_epoch(s, b"e")
    assert rates == [1_000, 1_000, 500, 500, 300, 300, 300, 300]


def test_goal_schedule_steers_toward_network_compute() -> None:
    s = make_market(
        emission_schedule="goal",
        compute_goal=20,
        goal_adjust_bps=1_000,
        initial_emission=100,
        emission_floor=50,
        emission_cap=115,
    )
    process_epoch(s, b"e")  # no work at all: full step up
    assert s.emission.per_epoch == 110
    process_epoch(s, b"e")
    assert s.emission.per_epoch == 115  # capped
    job = make_committed_job(s, units=40)
    advance(s, s.params.challenge_window_epochs)
    process_settle_job(s, job)  # 40 units against a goal of 20: full step down
    process_epoch(s, b"e")
    assert s.emission.per_epoch == 115 * 9_000 // 10_000


def test_fixed_model_pays_per_task_within_emission() -> None:
    s = make_market(reward_model="fixed", fixed_reward_per_task=7, initial_emission=1_000)
    settle_in_one_epoch(s, {"alice": 10, "bob": 10})
    report = process_epoch(s, b"e")
    assert report.rewards == {"alice": 7, "bob": 7} and report.minted == 14
    s = make_market(
        reward_model="fixed", fixed_reward_per_task=700, initial_emission=90, emission_retention_bps=10_000
    )
    settle_in_one_epoch(s, {"alice": 10})
    assert process_epoch(s, b"e").rewards == {"alice": 90}  # capped by the emission


def test_stake_model_is_pro_rata_to_active_stake() -> None:
    s = make_market(reward_model="stake", initial_emission=1_000)
    make_worker(s, "erin", extra=300)
    stakes = {w: get_stake(s, w) for w in ("alice", "bob", "erin")}
    supply = s.total_supply
    report = process_epoch(s, b"e")
    total = sum(stakes.values())
    assert report.rewards == {w: 1_000 * v // total for w, v in stakes.items()}
    assert s.total_supply == supply + report.minted and report.minted <= 1_000
    check_invariants(s)


def test_performance_model_weighs_work_by_reputation() -> None:
    s = make_market(
        reward_model="performance",
        initial_emission=1_000,
        reputation_reward_scale=100,
        emission_retention_bps=10_000,
    )
    increase_reputation(s, "bob", 100)
    settle_in_one_epoch(s, {"alice": 10, "bob": 10})
    ra, rb = get_reputation(s, "alice"), get_reputation(s, "bob")
    wa, wb = 10 * (100 + ra), 10 * (100 + rb)
    report = process_epoch(s, b"e")
    assert rb > ra and report.rewards == {"alice": 1_000 * wa // (wa + wb), "bob": 1_000 * wb // (wa + wb)}


def test_hybrid_model_splits_emission_between_stake_and_work() -> None:
    s = make_market(
        reward_model="hybrid",
        initial_emission=1_000,
        hybrid_stake_share_bps=4_000,
        emission_retention_bps=10_000,
    )
    settle_in_one_epoch(s, {"alice": 10})
    before = {w: get_balance(s, w) for w in ("alice", "bob")}
    report = process_epoch(s, b"e")
    stake_a, stake_b = get_stake(s, "alice"), get_stake(s, "bob")
    expected_b = 400 * stake_b // (stake_a + stake_b)
    assert report.rewards["bob"] == expected_b
    assert report.rewards["alice"] == 400 * stake_a // (stake_a + stake_b) + 600
    assert get_balance(s, "bob") - before["bob"] == expected_b
    check_invariants(s)


def test_reputation_decays_each_epoch() -> None:
    s = make_market(reputation_retention_bps=5_000)
    increase_reputation(s, "alice", 1_000)
    advance(s, 3)
    assert get_reputation(s, "alice") == 125
    advance(s, 200)
    assert get_reputation(s, "alice") == 0


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.integers(0, 10**12), st.integers(0, 5_000), st.integers(1, 10_000))
def test_decay_never_exceeds_exact_value(score: int, epochs: int, retention: int) -> None:
    exact = Fraction(score) * Fraction(retention, 10_000) ** epochs
    decayed = compute_decayed_reputation(score, epochs, retention)
    assert decayed <= exact
    assert exact - decayed <= 1 + exact * epochs * Fraction(1, 2**40)  # rounding error is tiny


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(
    st.integers(0, 10**15), st.dictionaries(st.text("abcdef", min_size=1, max_size=3), st.integers(0, 10**9))
)
def test_pro_rata_never_exceeds_amount_and_loses_under_one_per_share(
    amount: int, weights: dict[str, int]
) -> None:
    shares = compute_pro_rata(amount, weights)
    assert sum(shares.values()) <= amount
    if any(w > 0 for w in weights.values()):
        assert amount - sum(shares.values()) < max(1, len(weights))
    assert all(v > 0 for v in shares.values())
