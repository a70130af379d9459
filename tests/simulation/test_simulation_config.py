"""Config files: the schema's validation errors, scenario and sweep expansion, seeds."""

from __future__ import annotations

from pathlib import Path

import pytest

from pinpoint.simulation.config import (
    ConfigError,
    SimulationConfig,
    build_config,
    compute_experiment,
    derive_seed,
    describe_config,
    load_experiment,
)
from tests.simulation.configs import MIXED, PHASE, table, toml_text

EXAMPLES = Path(__file__).resolve().parents[2] / "examples" / "simulations"


def test_examples_load_and_expand() -> None:
    dilemma = load_experiment(EXAMPLES / "verifiers-dilemma.toml")
    assert dilemma.scenarios == ("no_forced_errors", "forced_errors_jackpot")
    assert len(dilemma.runs) == 2 * 3
    assert {r.config.params.forced_error_rate_bps for r in dilemma.runs} == {0, 1000}
    phase = load_experiment(EXAMPLES / "phase-diagram.toml")
    assert len(phase.runs) == 6 * 9 * 3
    rewards = load_experiment(EXAMPLES / "reward-models.toml")
    assert {(r.config.params.reward_model, r.config.params.emission_schedule) for r in rewards.runs} == {
        (m, e) for m in ("fixed", "stake", "performance", "hybrid") for e in ("exponential", "disinflationary", "goal")
    }


def test_sweep_is_a_cartesian_product_in_order_with_seeds_per_repetition() -> None:
    experiment = compute_experiment(PHASE)
    points = [r.point for r in experiment.runs]
    assert len(points) == 2 * 4 * 2
    assert points[0] == (("challengers.watchers.verify_probability", 0.15), ("protocol.params.slash_fraction_bps", 0))
    assert points[2] == (("challengers.watchers.verify_probability", 0.15), ("protocol.params.slash_fraction_bps", 2000))
    assert points[-1] == (("challengers.watchers.verify_probability", 0.3), ("protocol.params.slash_fraction_bps", 6000))
    for run in experiment.runs:
        point = dict(run.point)
        assert run.config.challengers["watchers"].verify_probability == point["challengers.watchers.verify_probability"]
        assert run.config.params.slash_fraction_bps == point["protocol.params.slash_fraction_bps"]
        assert run.seed == derive_seed(11, run.index)  # common_seeds = false: a stream per run
    common = compute_experiment(table(PHASE, run=dict(PHASE["run"], common_seeds=True)))
    assert [r.seed for r in common.runs] == [derive_seed(11, r.repetition) for r in common.runs]
    assert len({r.seed for r in common.runs}) == 2 and len({r.seed for r in experiment.runs}) == len(experiment.runs)
    assert derive_seed(11, 0) != derive_seed(11, 1) != derive_seed(12, 1)
    assert derive_seed(11, 1) == derive_seed(11, 1) and 0 <= derive_seed(11, 1) < 2**63


def test_defaults_build_and_every_key_is_commented() -> None:
    assert isinstance(build_config({}), SimulationConfig)
    rows = describe_config()
    assert {"run.epochs", "workers.NAME.cheat_probability", "challengers.NAME.verify_probability"} <= {r[0] for r in rows}
    assert all(comment for _, _, comment in rows)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"run": {"epoch": 10}}, "run.epoch: unknown key (did you mean 'epochs'?)"),
        ({"run": {"epochs": "ten"}}, "run.epochs: expected an integer, got str 'ten'"),
        ({"run": {"epochs": 0}}, "run.epochs: must be at least 1"),
        ({"run": {"invariants": "always"}}, "run.invariants: 'always' is not one of"),
        ({"workers": {"w": {"strategy": "cheat"}}}, "workers.w.strategy: 'cheat' is not one of honest, cheater, adaptive, lazy (did you mean 'cheater'?)"),
        ({"workers": {"w": {"cheat_probability": 1.5}}}, "workers.w.cheat_probability: must be in [0, 1], got 1.5"),
        ({"workers": {"w": {"count": 0}}}, "workers: at least one worker must be active at genesis"),
        ({"workers": {"w": {"churn": 1}}}, "workers.w.churn: expected true or false, got 1"),
        ({"challengers": {"c": {"capacity": 0}}}, "challengers.c.capacity: must be at least 1"),
        ({"users": {"work_units": [5]}}, "users.work_units: is a [low, high] pair"),
        ({"users": {"work_units": [9, 3]}}, "users.work_units: needs 1 <= low <= high"),
        ({"protocol": {"preset": "tiny"}}, "protocol.preset: 'tiny' is not one of"),
        ({"protocol": {"params": {"slash_fraction": 10}}}, "protocol.params.slash_fraction: not a parameter of the economy (did you mean 'slash_fraction_bps'?)"),
        ({"protocol": {"params": {"slash_fraction_bps": 0.5}}}, "protocol.params.slash_fraction_bps: expected an integer, got float 0.5"),
        ({"protocol": {"params": {"slash_fraction_bps": 20_000}}}, "protocol.params: slash_fraction_bps=20000 exceeds 10000 basis points"),
        ({"market": {"assignment": "reputation"}}, "market.posted_unit_price: must be positive under 'reputation' assignment"),
        ({"report": {"phase_x": "challengers.c.verify_probability"}}, "report.phase_x: phase_x and phase_y go together"),
    ],
)
def test_validation_errors_name_the_key_and_the_rule(change: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        compute_experiment(table({}, **change))
    assert message in str(caught.value)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"sweep": {"run.epoch": [1, 2]}}, "sweep.run.epoch: 'run.epoch': 'epoch' is not a key here (did you mean 'epochs'?)"),
        ({"sweep": {"run.epochs": 5}}, "sweep.run.epochs: expected a non-empty list of values, got 5"),
        ({"sweep": {"run": [1]}}, "names a table"),
        ({"sweep": {"workers.honest.cheat_probability": [0.1, 2.0]}}, "[base, workers.honest.cheat_probability=2.0] workers.honest.cheat_probability: must be in [0, 1]"),
        ({"scenarios": {"x": {"market.auctions": "batch"}}}, "scenarios.x: 'market.auctions': 'auctions' is not a key here (did you mean 'auction'?)"),
        ({"scenarios": {"x": 3}}, "scenarios.x: expected a table of overrides"),
        ({"report": {"phase_x": "run.epochs", "phase_y": "run.seed"}}, "report: phase axis 'run.epochs' is not a sweep key"),
    ],
)
def test_scenario_and_sweep_errors(extra: dict, message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        compute_experiment(table(MIXED, **extra))
    assert message in str(caught.value)


def test_files_bad_toml_and_missing(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="config not found"):
        load_experiment(tmp_path / "missing.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("[run\nepochs = 3\n")
    with pytest.raises(ConfigError, match="broken.toml: not valid TOML"):
        load_experiment(broken)
    bad = tmp_path / "bad.toml"
    bad.write_text(toml_text(table(MIXED, run={"epochs": -1})))
    with pytest.raises(ConfigError, match=r"bad.toml: run.epochs: must be at least 1"):
        load_experiment(bad)
    good = tmp_path / "good.toml"
    good.write_text(toml_text(MIXED))
    assert load_experiment(good).runs[0].config.workers["lazy"].strategy == "lazy"
