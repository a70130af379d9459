"""The incentive conditions in closed form, so simulated results can be held against them.

All amounts are tokens per job (floats: these are expectations); probabilities are in [0, 1].

A worker doing a job at price P that costs it C to compute honestly can cheat and save s*C. If the
wrong result is caught (probability p_detect) the protocol refunds the user (the worker loses P),
slashes a fraction f of the worker's stake at risk S, forfeits its unreleased vesting V, and the
worker pays its side of the dispute game g_w. So, per job,

    honest:  P - C
    cheat:   (1 - p_detect) * P - (1 - s) * C - p_detect * (f * S + V + g_w)
    cheat - honest = s*C - p_detect * (P + f*S + V + g_w)

and cheating stops paying when p_detect * loss_if_caught >= gain (the issue's "p_detect * slash >=
gain from cheating", with the slash counted as everything a caught worker loses).

A challenger who verifies a job pays K. With probability rho the job is a real cheat: it wins the
challenger's share r of the slash, R = r * (f*S + V), and pays its side of the game g_c. With
probability phi the job carries a forced error, which pays a share J of the jackpot. So

    checking pays when  rho * (R - g_c) + phi * (J - g_c) >= K

(the issue's "p_detect * (slash reward + jackpot share) >= cost of checking"). Without forced
errors (phi = 0) checking stops paying once cheats are rarer than rho* = K / (R - g_c): the
verifier's dilemma. With them, a steady jackpot pays each caught forced error about
tax * P / (phi * p_check) (what the tax brings in per epoch divided by the errors caught), so the
forced errors alone pay tax * P / p_check per check, which covers K for any p_check <= tax * P / K.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def compute_detection_probability(verify_probability: float, coverage: float = 1.0) -> float:
    """Chance a wrong result is caught: the job is watched (probability `coverage`) and its watcher
    verifies it (probability `verify_probability`). Each job has at most one watcher here."""
    return min(1.0, max(0.0, coverage)) * min(1.0, max(0.0, verify_probability))


def compute_cheating_gain(compute_cost: float, cheat_saving: float = 1.0) -> float:
    """Tokens a cheat saves on a job whose honest compute costs `compute_cost`."""
    return compute_cost * cheat_saving


def compute_loss_if_caught(
    price: float, stake_at_risk: float, slash_fraction: float, unreleased_vesting: float = 0.0, game_cost: float = 0.0
) -> float:
    """Tokens a caught cheat loses compared with an uncaught one: the price (refunded to the user), the
    slashed share of its stake at risk, its unreleased vesting, and its side of the dispute game."""
    return price + slash_fraction * stake_at_risk + unreleased_vesting + game_cost


def compute_cheating_advantage(p_detect: float, gain: float, loss_if_caught: float) -> float:
    """Expected profit per job of cheating minus that of honest work: gain - p_detect * loss."""
    return gain - p_detect * loss_if_caught


def is_cheating_deterred(p_detect: float, loss_if_caught: float, gain: float) -> bool:
    """True when cheating does not pay: p_detect * loss_if_caught >= gain."""
    return p_detect * loss_if_caught >= gain


def compute_critical_detection_probability(gain: float, loss_if_caught: float) -> float:
    """Smallest detection probability at which cheating stops paying (1.0 if even certain detection
    does not deter, which happens only when the loss is below the gain)."""
    if loss_if_caught <= 0:
        return 1.0 if gain > 0 else 0.0
    return min(1.0, max(0.0, gain / loss_if_caught))


def compute_critical_slash_fraction(
    p_detect: float, gain: float, price: float, stake_at_risk: float, unreleased_vesting: float = 0.0,
    game_cost: float = 0.0,
) -> float:
    """Slash fraction f* at which cheating stops paying for a given detection probability:
    p_detect * (price + f*S + V + g) = gain. Below 0: cheating never pays; above 1: no slash deters it;
    +inf when nothing is ever detected or nothing is at stake."""
    if p_detect <= 0 or stake_at_risk <= 0:
        return math.inf
    return (gain / p_detect - price - unreleased_vesting - game_cost) / stake_at_risk


def compute_checking_payoff(
    cheat_rate: float, slash_reward: float, check_cost: float, game_cost: float = 0.0,
    forced_error_rate: float = 0.0, jackpot_share: float = 0.0,
) -> float:
    """Expected profit of verifying one job: rho * (R - g_c) + phi * (J - g_c) - K, where rho is the
    chance the job is a real cheat and phi the chance it carries a forced error."""
    real = cheat_rate * (1.0 - forced_error_rate)
    return real * (slash_reward - game_cost) + forced_error_rate * (jackpot_share - game_cost) - check_cost


def is_checking_profitable(
    cheat_rate: float, slash_reward: float, check_cost: float, game_cost: float = 0.0,
    forced_error_rate: float = 0.0, jackpot_share: float = 0.0,
) -> bool:
    """True when verifying a job pays in expectation (see `compute_checking_payoff`)."""
    return compute_checking_payoff(cheat_rate, slash_reward, check_cost, game_cost, forced_error_rate, jackpot_share) >= 0


def compute_critical_cheat_rate(
    slash_reward: float, check_cost: float, game_cost: float = 0.0, forced_error_rate: float = 0.0,
    jackpot_share: float = 0.0,
) -> float:
    """Cheat rate below which checking stops paying (0 when forced errors alone pay for checking; +inf
    when catching a cheat never covers its game)."""
    need = check_cost - forced_error_rate * (jackpot_share - game_cost)
    if need <= 0:
        return 0.0
    per_cheat = (1.0 - forced_error_rate) * (slash_reward - game_cost)
    return need / per_cheat if per_cheat > 0 else math.inf


def compute_steady_jackpot_share(job_tax_rate: float, price: float, forced_error_rate: float, p_check: float) -> float:
    """Jackpot paid per caught forced error once inflow and payouts balance: the tax on each job's
    price, tax * P, flows in per job; a fraction phi * p_check of jobs is a caught forced error."""
    caught = forced_error_rate * p_check
    return math.inf if caught <= 0 else job_tax_rate * price / caught


@dataclass(frozen=True, slots=True)
class MixedEquilibrium:
    """Where neither side wants to move: workers are indifferent at p_detect = gain / loss, and
    checkers at cheat rate rho* (see `compute_critical_cheat_rate`)."""

    detection_probability: float
    cheat_rate: float


def compute_mixed_equilibrium(
    gain: float, loss_if_caught: float, slash_reward: float, check_cost: float, game_cost: float = 0.0
) -> MixedEquilibrium:
    """The verifier's dilemma's resting point without forced errors: cheating never vanishes, it
    settles where checking just pays."""
    return MixedEquilibrium(
        compute_critical_detection_probability(gain, loss_if_caught),
        compute_critical_cheat_rate(slash_reward, check_cost, game_cost),
    )
