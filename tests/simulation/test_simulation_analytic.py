"""The closed-form conditions agree with themselves (the thresholds are where the payoffs cross zero)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from pinpoint.simulation.analytic import (
    compute_cheating_advantage,
    compute_checking_payoff,
    compute_critical_cheat_rate,
    compute_critical_detection_probability,
    compute_critical_slash_fraction,
    compute_detection_probability,
    compute_loss_if_caught,
    compute_mixed_equilibrium,
    compute_steady_jackpot_share,
    is_cheating_deterred,
    is_checking_profitable,
)

money = st.floats(min_value=0.1, max_value=1e4, allow_nan=False)
chance = st.floats(min_value=0.01, max_value=1.0, allow_nan=False)


@given(p=chance, gain=money, price=money, stake=money, vesting=money, game=money)
def test_critical_slash_fraction_zeroes_the_advantage(p: float, gain: float, price: float, stake: float, vesting: float,
                                                      game: float) -> None:
    f = compute_critical_slash_fraction(p, gain, price, stake, vesting, game)
    loss = compute_loss_if_caught(price, stake, f, vesting, game)
    assert math.isclose(compute_cheating_advantage(p, gain, loss), 0.0, abs_tol=1e-6 * (gain + p * loss))
    above = compute_loss_if_caught(price, stake, f + 0.01, vesting, game)
    assert is_cheating_deterred(p, above, gain)
    assert not is_cheating_deterred(p, compute_loss_if_caught(price, stake, f - 0.01, vesting, game), gain)


@given(gain=money, loss=money)
def test_critical_detection_probability(gain: float, loss: float) -> None:
    p = compute_critical_detection_probability(gain, loss)
    assert 0.0 <= p <= 1.0
    if gain < loss:
        assert math.isclose(p * loss, gain, rel_tol=1e-9)
        assert is_cheating_deterred(p + 1e-6, loss, gain) and not is_cheating_deterred(p * 0.99, loss, gain)
    else:
        assert p == 1.0


@given(reward=st.floats(min_value=1.0, max_value=1e3), cost=money, game=st.floats(min_value=0.0, max_value=0.5),
       phi=st.floats(min_value=0.0, max_value=0.5), jackpot=money)
def test_critical_cheat_rate_zeroes_the_checking_payoff(reward: float, cost: float, game: float, phi: float,
                                                       jackpot: float) -> None:
    rho = compute_critical_cheat_rate(reward, cost, game, phi, jackpot)
    if rho == 0.0:  # forced errors alone pay for checking
        assert is_checking_profitable(0.0, reward, cost, game, phi, jackpot)
    elif math.isfinite(rho):
        payoff = compute_checking_payoff(rho, reward, cost, game, phi, jackpot)
        assert math.isclose(payoff, 0.0, abs_tol=1e-6 * (cost + reward + jackpot))
        assert is_checking_profitable(rho * 1.01 + 1e-9, reward, cost, game, phi, jackpot)


def test_the_dilemma_numbers_of_the_example() -> None:
    """examples/simulations/verifiers-dilemma.toml: price 20, cost 10, stake 100, half slashed, check 3."""
    loss = compute_loss_if_caught(price=20, stake_at_risk=100, slash_fraction=0.5, game_cost=0.2)
    equilibrium = compute_mixed_equilibrium(gain=10, loss_if_caught=loss, slash_reward=25, check_cost=3, game_cost=0.2)
    assert math.isclose(equilibrium.detection_probability, 10 / 70.2)
    assert math.isclose(equilibrium.cheat_rate, 3 / 24.8)
    # forced errors: the steady jackpot pays checking at any p_check up to tax * price / cost = 1/3
    share = compute_steady_jackpot_share(job_tax_rate=0.05, price=20, forced_error_rate=0.1, p_check=0.3)
    assert is_checking_profitable(0.0, 25, 3, 0.2, forced_error_rate=0.1, jackpot_share=share)
    assert compute_detection_probability(0.3, coverage=0.5) == 0.15
