"""The epoch loop: determinism, the economy's invariants, and books that agree with the ledger."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pinpoint.simulation import Simulation, build_config, compute_experiment, run_serial
from pinpoint.simulation.agents import ACTIVE, CHALLENGER, USER, WORKER
from pinpoint.simulation.report import build_table
from protocol.economy import InvariantViolation, get_bucket_totals, get_stake_at_risk, get_vesting_held
from tests.simulation.configs import MIXED, table


def _frame(config_table: dict, seed: int) -> pd.DataFrame:
    experiment = compute_experiment(config_table)
    results = run_serial(experiment.runs)
    return build_table(results, [k for k, _ in experiment.sweep]).assign(seed=seed)


def test_same_config_and_seed_give_identical_tables() -> None:
    first = _frame(MIXED, 0)
    second = _frame(MIXED, 0)
    assert first.equals(second)
    other = _frame(table(MIXED, run=dict(MIXED["run"], seed=2)), 0)
    assert not first.drop(columns="seed").equals(other.drop(columns="seed"))


def test_invariants_hold_after_every_transition() -> None:
    config = build_config(table(MIXED, run=dict(MIXED["run"], epochs=25, invariants="transition")))
    simulation = Simulation(config, seed=5)
    columns = simulation.run()
    # the run reached the mechanisms the invariants guard
    assert columns["jobs_settled"].sum() > 0 and columns["jobs_slashed"].sum() > 0
    assert columns["forced_caught"].sum() > 0 and columns["entered"].sum() + columns["left"].sum() > 0
    assert simulation.invariant_checks == 25


def test_a_broken_invariant_stops_the_run() -> None:
    simulation = Simulation(build_config(MIXED), seed=1)
    simulation.step()
    simulation.state.burned += 1  # a token appears from nowhere
    with pytest.raises(InvariantViolation, match="supply_conserved"):
        simulation.step()


def test_agents_books_match_the_ledger() -> None:
    """Each worker's and challenger's recorded ledger income equals the change of its holdings
    (balance + stake + unbonding + vesting held): payments, rewards, slash shares and slashes are all
    accounted, nothing invented. Supply is genesis plus emission."""
    simulation = Simulation(build_config(table(MIXED, run=dict(MIXED["run"], epochs=60))), seed=3)
    columns = simulation.run()
    st, a = simulation.state, simulation.agents
    assert st.total_supply == st.totals.genesis + st.totals.emitted == columns["supply"][-1]
    assert sum(get_bucket_totals(st).values()) == st.total_supply
    for i, name in enumerate(a.names):
        if a.kind[i] == USER:
            continue
        held = st.accounts[name].balance + get_stake_at_risk(st, name) + get_vesting_held(st, name)
        assert held - int(a.initial_balance[i]) == pytest.approx(simulation.income_total[i], abs=1e-6), name
    assert columns["slashed"].sum() == st.totals.slashed
    assert columns["minted"].sum() == st.totals.emitted
    assert columns["burned"].sum() == st.burned


def test_lazy_workers_get_caught_and_honest_ones_never_slashed() -> None:
    simulation = Simulation(build_config(table(MIXED, run=dict(MIXED["run"], epochs=40))), seed=6)
    simulation.run()
    a, st = simulation.agents, simulation.state
    for i, name in enumerate(a.names):
        if a.kind[i] == WORKER and a.names[i].startswith("honest"):
            assert st.reputation.get(name) is None or st.reputation[name].score >= 0
            # an honest worker's holdings never fell: nothing was ever slashed from it
            held = st.accounts[name].balance + get_stake_at_risk(st, name) + get_vesting_held(st, name)
            assert held >= int(a.initial_balance[i])
    lazy = [i for i, n in enumerate(a.names) if n.startswith("lazy")]
    honest = [i for i, n in enumerate(a.names) if n.startswith("honest")]
    assert simulation.slashes[lazy].sum() > 0 and simulation.slashes[honest].sum() == 0  # a lazy worker was slashed


@pytest.mark.parametrize("market", [{"auction": "reverse", "bidders_per_job": 3},
                                    {"auction": "batch", "assignment": "reputation", "posted_unit_price": 2}])
def test_other_markets_run_through_the_protocol(market: dict) -> None:
    config = build_config(table(MIXED, market=market, run=dict(MIXED["run"], epochs=20, invariants="epoch")))
    columns = Simulation(config, seed=6).run()
    assert columns["jobs_assigned"].sum() > 0 and columns["jobs_settled"].sum() > 0


def test_assignment_modes_set_the_asks_the_protocol_clears() -> None:
    """Under 'reputation' every worker asks the posted price, so the batch auction clears at it and
    orders offers by reputation; under 'price' asks spread around cost x markup and the clearing price
    follows the marginal ask."""
    base = table(MIXED, churn={"enabled": False}, run=dict(MIXED["run"], epochs=15),
                 users=dict(MIXED["users"], work_units=[10, 10], max_unit_price=[4, 4]))
    for name in base["workers"]:
        base["workers"][name]["ask_markup"] = 2.5
    posted = Simulation(build_config(table(base, market={"assignment": "reputation", "posted_unit_price": 3})), seed=7)
    columns = posted.run()
    assert set(posted.agents.ask[posted.agents.kind == WORKER]) == {3}
    assert set(columns["price_mean"][np.isfinite(columns["price_mean"])]) == {30.0}
    priced = Simulation(build_config(base), seed=7)
    columns = priced.run()
    assert len(set(priced.agents.ask[priced.agents.kind == WORKER])) > 1
    assert np.nanmax(columns["price_mean"]) > np.nanmin(columns["price_mean"])


def test_churn_moves_agents_in_and_out() -> None:
    simulation = Simulation(build_config(table(MIXED, run=dict(MIXED["run"], epochs=60))), seed=8)
    columns = simulation.run()
    a = simulation.agents
    assert columns["left"].sum() > 0 and columns["entered"].sum() > 0
    active = (a.status == ACTIVE) & (a.kind == WORKER)
    assert columns["workers_active"][-1] == active.sum()
    assert columns["challengers_active"][-1] == ((a.status == ACTIVE) & (a.kind == CHALLENGER)).sum()
    assert simulation.state.active_workers == active.sum()
