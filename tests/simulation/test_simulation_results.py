"""The results the simulation exists to show: the verifier's dilemma and its fix, and the measured
boundary of cheating's profitability against the analytic condition."""

from __future__ import annotations

import dataclasses

from pinpoint.simulation import compute_experiment, compute_summary, run_serial
from pinpoint.simulation.report import compute_cheating_comparison, group_mechanisms
from tests.simulation.configs import DILEMMA, PHASE


def test_verifiers_dilemma_and_forced_errors() -> None:
    """Without forced errors cheating is driven down, checking then stops paying and collapses, and
    cheating comes back; with forced errors and a jackpot, checking stays up and cheating stays low."""
    experiment = compute_experiment(DILEMMA)
    summary = compute_summary(experiment, run_serial(experiment.runs), 0.0)
    by = {m["scenario"]: m for m in summary["mechanisms"]}
    plain = by["no_forced_errors"]["cheat_dynamics"]
    fixed = by["forced_errors_jackpot"]["cheat_dynamics"]
    assert plain["cheat_rate_trough"] < 0.02  # cheating becomes rare...
    assert plain["check_rate_min_after_start"] < 0.05  # ...checking stops paying and falls...
    assert plain["cheat_rate_rebound"] > 0.15  # ...and cheating comes back
    assert fixed["check_rate_min_after_start"] > 0.2  # the jackpot keeps checkers checking
    assert fixed["cheat_rate_rebound"] < 0.06 and fixed["cheat_rate_final_quarter"] < 0.03
    plain_mean = by["no_forced_errors"]["metrics"]["cheat_rate"]["mean"]
    assert plain_mean > 4 * by["forced_errors_jackpot"]["metrics"]["cheat_rate"]["mean"]


def test_measured_boundary_matches_the_analytic_condition() -> None:
    """Each point's measured advantage of cheating lies within 3.5 standard errors of gain - p * loss,
    and each column's measured zero crossing within its Monte Carlo tolerance (2 SE / slope) of the
    analytic slash fraction f* = (10 / p - 20.2) / 100."""
    experiment = compute_experiment(PHASE)
    results = run_serial(experiment.runs)
    phase = compute_summary(experiment, results, 0.0)["phase"]["scenarios"]["base"]
    assert len(phase["points"]) == 8
    assert phase["max_abs_z"] < 3.5
    assert phase["boundary_within_tolerance"]
    boundary = {row["x"]: row for row in phase["boundary"]}
    assert abs(boundary[0.15]["analytic"] - (10 / 0.15 - 20.2) / 100) < 1e-9
    assert abs(boundary[0.3]["measured"] - 0.1313) < boundary[0.3]["tolerance"] < 0.05
    # the comparison can fail: an analytic loss that forgot the refunded price is many errors off
    wrong_z = []
    for mechanism in group_mechanisms(experiment.runs, results):
        c = compute_cheating_comparison(mechanism)
        assert c is not None
        wrong = dataclasses.replace(c, analytic=c.gain - c.p_detect * (c.slash_fraction * c.stake_at_risk))
        wrong_z.append(abs(wrong.z))
    assert min(wrong_z) > 3 and max(wrong_z) > 8
