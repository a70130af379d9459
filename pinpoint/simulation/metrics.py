"""Per-epoch metrics: the columns of the results table (one row per run x epoch) and the Gini
coefficient. Counts are per epoch unless named `_total`; amounts are tokens; rates are in [0, 1] and
NaN when their denominator is zero (e.g. no cheat happened, so no detection rate)."""

from __future__ import annotations

import numpy as np

from pinpoint.simulation.agents import TYPE_NAMES

EPOCH_COLUMNS: dict[str, str] = {
    "epoch": "epoch of the protocol the row describes (0-based)",
    "jobs_posted": "jobs users posted",
    "jobs_unfunded": "jobs users could not post for lack of balance",
    "jobs_assigned": "jobs the auctions assigned",
    "jobs_cancelled": "jobs users cancelled after waiting user_patience epochs unmatched",
    "jobs_executed": "jobs workers computed (or pretended to) and committed",
    "jobs_settled": "jobs paid out after their challenge window",
    "jobs_slashed": "jobs whose worker lost a dispute",
    "cheats": "executed jobs on which the worker skipped work",
    "wrong_results": "committed results that are wrong (cheats not guessed right, plus forced errors)",
    "forced_errors": "executed jobs carrying a protocol-ordered forced error",
    "watched": "newly committed jobs a challenger watched",
    "checks": "jobs a challenger verified",
    "disputes": "disputes opened",
    "cheats_caught": "wrong cheated results caught by a dispute",
    "forced_caught": "forced errors caught (jackpot paid)",
    "cheat_rate": "cheats / jobs_executed",
    "check_rate": "checks / jobs_executed (the measured verification probability)",
    "detection_rate": "share of the wrong cheated results resolved this epoch that were slashed rather than paid",
    "cheat_probability_mean": "mean cheating chance q of active cheater and adaptive workers",
    "verify_probability_mean": "mean verifying chance p of active challengers",
    "price_mean": "mean price of jobs executed (tokens)",
    "slash_events": "slashes of any kind (dispute, bond, deadline, downtime)",
    "slashed": "tokens slashed",
    "challenger_rewards": "tokens paid to challengers from slashes",
    "jackpot_paid": "tokens paid from the jackpot",
    "jackpot": "tokens in the jackpot at the end of the epoch",
    "minted": "tokens minted as rewards (emission actually paid)",
    "emission": "tokens the emission schedule offered",
    "burned": "tokens burned",
    "burned_total": "tokens burned since genesis",
    "supply": "total supply (genesis + emitted, burned included)",
    "circulating": "supply minus burned",
    "staked": "tokens bonded",
    "inflation": "minted / circulating supply at the start of the epoch",
    "inflation_yearly": "inflation x epochs_per_year",
    "workers_active": "active workers",
    "challengers_active": "active challengers",
    "entered": "agents that entered",
    "left": "agents that left",
    "retention": "share of agents active at the start of the epoch still active at its end",
    "retained_from_genesis": "share of agents active at genesis still active",
    "gini_rewards": "Gini coefficient of active workers' income this epoch (job payments + emission rewards)",
    "cheat_jobs": "resolved cheated jobs (settled or slashed) this epoch",
    "cheat_profit_sum": "sum of their profits to the worker (tokens)",
    "cheat_profit_sumsq": "sum of squared profits (for the Monte Carlo error)",
    "honest_jobs": "resolved honest jobs this epoch",
    "honest_profit_sum": "sum of their profits to the worker (tokens)",
    "honest_profit_sumsq": "sum of squared profits",
    "cheat_gain_sum": "tokens of compute saved by the cheats resolved this epoch",
    "cheat_price_sum": "their prices",
    "cheat_stake_sum": "their workers' stake at risk when they committed",
    "cheat_vesting_sum": "their workers' unreleased vesting when they committed",
    "cheat_pdetect_sum": "their watchers' verifying chances (0 when unwatched): expected detections",
    "check_profit_sum": "challengers' profit from this epoch's checks (rewards - check and game costs)",
    "sealed_committed": "public commitments of sealed jobs (forced errors on): the draws this epoch revealed",
    "grief_disputes": "disputes griefers opened (late in a window, without checking)",
    "collusion_disputes": "disputes colluders opened on their partners' cheats (games they throw)",
    "grief_bonds_lost": "tokens of griefers' bonds lost in settled games (a share to the worker, the rest burned)",
    "collusion_bonds_lost": "tokens of colluders' bonds lost in settled games",
    "bond_shares_to_workers": "tokens of griefers' and colluders' lost bonds paid to the workers they disputed",
    "cheats_paid": "cheated jobs paid although the result the worker claimed as true was wrong",
    "honest_paid": "honest jobs paid this epoch",
    "honest_delayed": "honest jobs paid after the end of their first challenge window",
    "honest_delay_sum": "epochs honest jobs paid this epoch waited past the end of their first window",
    "honest_delay_mean": "honest_delay_sum / honest_paid (epochs)",
    "guess_checks": "jobs guessers verified because they guessed a forced-error test",
    "guess_hits": "of those, jobs that carried a forced error",
    "guess_precision": "guess_hits / guess_checks (chance: forced_errors / sealed_committed)",
}
"""Every column a run's table has, besides the run's identifying columns and `profit_<type>`."""

PROFIT_COLUMNS: dict[str, str] = {f"profit_{t}": f"mean profit per active {t} agent this epoch (tokens)" for t in TYPE_NAMES}

RUN_COLUMNS: dict[str, str] = {
    "run": "index of the run in the experiment",
    "scenario": "name of the scenario (mechanism) of the run",
    "repetition": "Monte Carlo repetition",
    "seed": "the run's seed",
}


def compute_gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative `values` (shape (n,)): 0 when all equal, toward 1 when one holds
    everything; NaN for no values or a zero total."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    n = len(x)
    total = float(x.sum())
    if n == 0 or total <= 0:
        return float("nan")
    ranks = np.arange(1, n + 1, dtype=np.float64)
    return float(2.0 * np.dot(ranks, x) / (n * total) - (n + 1.0) / n)


def compute_rate(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator > 0 else float("nan")
