"""Attacks on the economy that need no won game: griefing (losing disputes that delay an honest
worker's payment), collusion (a challenger that opens first on its partner's cheat and throws its
game) and guessing which jobs carry a secret forced error."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pinpoint.simulation import (
    Simulation,
    build_config,
    compute_experiment,
    compute_summary,
    load_experiment,
    run_serial,
)
from pinpoint.simulation.agents import USER
from protocol.economy import get_stake_at_risk, get_vesting_held
from tests.simulation.configs import GRIEFING, table


def _scenario(name: str, **sections: Any) -> dict[str, Any]:
    """GRIEFING's scenario `name` as a plain config (its overrides applied), with sections replaced."""
    experiment = compute_experiment(table(GRIEFING, scenarios={name: GRIEFING["scenarios"][name]}, **sections))
    base = table(GRIEFING, **sections)
    del base["scenarios"]
    for key, value in GRIEFING["scenarios"][name].items():
        population, group, field = key.split(".")
        base[population][group][field] = value
    assert build_config(base) == experiment.runs[0].config
    return base


@pytest.fixture(scope="module")
def attacks() -> dict[str, dict[str, Any]]:
    experiment = compute_experiment(GRIEFING)
    summary = compute_summary(experiment, run_serial(experiment.runs), 0.0)
    return {m["scenario"]: m for m in summary["mechanisms"]}


def test_griefers_burn_their_bonds_and_only_delay_honest_pay(attacks: dict[str, dict[str, Any]]) -> None:
    base, grief = attacks["baseline"]["attacks"], attacks["griefing"]["attacks"]
    assert base["grief_disputes_per_run"] == 0 and grief["grief_disputes_per_run"] > 100
    # every settled griefing game cost the griefer its whole bond (20 tokens); those opened in the last
    # 4 epochs (a game's length) of the 40 are still running
    lost = grief["grief_bonds_lost_per_run"]
    assert lost % 20 == 0 and 0.8 * 20 * grief["grief_disputes_per_run"] <= lost < 20 * grief["grief_disputes_per_run"]
    assert attacks["griefing"]["metrics"]["profit_griefer"]["mean"] < 0
    # honest workers are still paid, later: a dispute opened in a window's last epoch (window 2) holds
    # the job for the 4 epochs of its game, 3 epochs past the window
    assert grief["honest_paid"] > 0.8 * base["honest_paid"]
    assert grief["honest_delay_mean"] > base["honest_delay_mean"] + 1.0
    assert grief["honest_delayed_share"] > base["honest_delayed_share"] + 0.3
    assert grief["vs_baseline"]["honest_delay_extra"] == grief["honest_delay_mean"] - base["honest_delay_mean"]
    # each lost bond pays the disputed worker half (challenger_reward_bps), more than its game costs: with
    # these parameters griefing raises honest income, and only delays it
    assert grief["vs_baseline"]["honest_profit"] > grief["vs_baseline"]["honest_profit_baseline"]
    assert grief["bonds_burned_per_run"] == lost - grief["bond_shares_to_workers_per_run"] > 0
    # the lost bonds' worker shares went to the workers disputed, and cheaters are never paid
    assert grief["bond_shares_to_workers_per_run"] > 0
    assert base["cheats_paid"] == grief["cheats_paid"] == 0 and grief["cheats_caught"] > 0


def test_chained_griefing_buys_delay_at_a_bond_a_game(attacks: dict[str, dict[str, Any]]) -> None:
    """Griefers who dispute a job three times in a row, each opening as the previous game ends, hold it
    3 x 4 - 1 = 11 epochs past its window for three bonds: the delay has no bound but the griefers' money."""
    grief, chain = attacks["griefing"]["attacks"], attacks["chain"]["attacks"]
    assert chain["grief_disputes_per_run"] > 2.5 * grief["grief_disputes_per_run"]
    assert chain["honest_delay_mean"] > grief["honest_delay_mean"] + 2.0
    assert chain["grief_bonds_lost_per_run"] > 2.5 * grief["grief_bonds_lost_per_run"]
    assert chain["cheats_paid"] == 0 and attacks["chain"]["metrics"]["profit_griefer"]["mean"] < 0


def test_colluders_never_save_a_cheater(attacks: dict[str, dict[str, Any]]) -> None:
    collusion = attacks["collusion"]["attacks"]
    assert collusion["collusion_disputes_per_run"] > 20 and collusion["collusion_bonds_lost_per_run"] > 0
    # every cheat resolved was slashed (these cheaters never guess right), none paid
    assert collusion["cheats_paid"] == 0 and collusion["cheats_resolved"] > 20
    assert attacks["collusion"]["metrics"]["profit_colluder"]["mean"] < 0


@pytest.mark.parametrize("game_epochs", [0, 3])
def test_colluders_lose_whether_games_are_instant_or_long(game_epochs: int) -> None:
    """A thrown game settles before the watcher's (instant games) or runs beside it (long ones): either
    way the watcher's game proves the cheat wrong and the cheater is slashed, never paid."""
    config = build_config(_scenario("collusion", dispute={"game_epochs": game_epochs},
                                    run=dict(GRIEFING["run"], epochs=20, invariants="transition")))
    simulation = Simulation(config, seed=4)
    columns = simulation.run()
    assert columns["collusion_disputes"].sum() > 5
    # every cheated job resolved was slashed (these cheaters never guess right), none paid
    assert columns["cheats_paid"].sum() == 0 and columns["cheat_jobs"].sum() > 5
    assert columns["jobs_slashed"].sum() == columns["cheat_jobs"].sum()


def test_guessing_forced_errors_is_no_better_than_chance(attacks: dict[str, dict[str, Any]]) -> None:
    """Guessers verify only jobs they guess are tests from the ledger's data; with the draw hidden
    behind the worker's salt their guesses are tests at the base rate, and the cheats they skip are paid."""
    guess = attacks["guessing"]["attacks"]
    assert guess["guess_checks"] > 30
    assert 0.05 < guess["forced_rate"] < 0.15
    assert abs(guess["guess_z"]) < 3.5
    assert guess["cheats_paid"] > 0  # the measurement can fail: checking by guess lets cheats through
    assert attacks["guessing"]["metrics"]["detection_rate"]["mean"] < 0.3
    assert attacks["baseline"]["metrics"]["detection_rate"]["mean"] == 1.0  # watchers who verify every job


def test_books_match_the_ledger_with_games_in_play() -> None:
    """With griefers and colluders and games that take epochs, every agent's recorded ledger income
    equals the change of its holdings, bonds of games still running counted as held; invariants hold
    after every transition; honest workers are never slashed."""
    config = build_config(_scenario("griefing", challengers=dict(
        GRIEFING["challengers"], colluders=dict(GRIEFING["challengers"]["colluders"], count=1)),
        run=dict(GRIEFING["run"], epochs=25, invariants="transition")))
    simulation = Simulation(config, seed=9)
    columns = simulation.run()
    st, a = simulation.state, simulation.agents
    assert columns["grief_disputes"].sum() > 0 and columns["collusion_disputes"].sum() > 0
    assert st.disputes, "some games are still running at the end"
    for i, name in enumerate(a.names):
        if a.kind[i] == USER:
            continue
        bonds = sum(d.bond for d in st.disputes.values() if d.challenger == name)
        held = st.accounts[name].balance + get_stake_at_risk(st, name) + get_vesting_held(st, name) + bonds
        assert held - int(a.initial_balance[i]) == pytest.approx(simulation.income_total[i], abs=1e-6), name
    honest = [i for i, n in enumerate(a.names) if n.startswith("honest")]
    assert simulation.slashes[honest].sum() == 0


def test_the_example_config_is_the_tested_one_at_full_size() -> None:
    example = load_experiment(Path(__file__).parents[2] / "examples" / "simulations" / "griefing.toml")
    assert example.scenarios == tuple(GRIEFING["scenarios"]) and len(example.runs) == 5 * 3
    config = example.runs[0].config
    assert config.dispute.game_epochs == GRIEFING["dispute"]["game_epochs"] and config.params.challenge_window_epochs == 2
    assert {name: c.strategy for name, c in config.challengers.items()} == {
        "watchers": "fixed", "griefers": "griefer", "colluders": "colluder", "guessers": "guesser"}
