"""The constants table: presets are valid, every constant has a unit and a reason, bad tables fail."""

from __future__ import annotations

import dataclasses

import pytest

from protocol.economy import (
    MAINNET,
    MINIMAL,
    PRESETS,
    InvalidParameter,
    compute_changed_params,
    get_parameter_names,
    get_parameter_reason,
    get_parameter_unit,
    is_valid_params,
    validate_params,
)


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_are_valid(name: str) -> None:
    assert is_valid_params(PRESETS[name])


def test_every_constant_has_unit_and_reason() -> None:
    names = get_parameter_names()
    assert len(names) > 30
    for name in names:
        assert get_parameter_unit(name).strip()
        assert len(get_parameter_reason(name)) > 10


def test_minimal_is_smaller_than_mainnet() -> None:
    assert MINIMAL.unbonding_period_epochs < MAINNET.unbonding_period_epochs
    assert MINIMAL.base_worker_stake < MAINNET.base_worker_stake


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("slash_fraction_bps", 10_001, "exceeds"),
        ("min_stake", -1, "negative"),
        ("reward_model", "lottery", "not one of"),
        ("unbonding_period_epochs", 3, "unbonding_period_epochs must exceed"),
        ("emission_floor", 2_000, "emission_floor"),
        ("challenger_bond", 0, "positive"),
    ],
)
def test_inconsistent_tables_are_rejected(name: str, value: object, message: str) -> None:
    bad = dataclasses.replace(MINIMAL, **{name: value})
    with pytest.raises(InvalidParameter, match=message):
        validate_params(bad)
    with pytest.raises(InvalidParameter):
        compute_changed_params(MINIMAL, name, value)


def test_changed_params_checks_name_and_type() -> None:
    assert compute_changed_params(MINIMAL, "slash_fraction_bps", 7_000).slash_fraction_bps == 7_000
    with pytest.raises(InvalidParameter, match="unknown parameter"):
        compute_changed_params(MINIMAL, "no_such_thing", 1)
    with pytest.raises(InvalidParameter, match="takes a int"):
        compute_changed_params(MINIMAL, "slash_fraction_bps", "7000")
    with pytest.raises(InvalidParameter, match="takes a int"):
        compute_changed_params(MINIMAL, "slash_fraction_bps", True)


def test_package_usage_example_runs() -> None:
    """The example in protocol.economy's docstring is real code that keeps the books balanced."""
    import protocol.economy as economy

    assert economy.__doc__ is not None
    code = "\n".join(line[4:] for line in economy.__doc__.splitlines() if line.startswith("    "))
    namespace: dict[str, object] = {name: getattr(economy, name) for name in economy.__all__}
    exec(code, namespace)
    state = namespace["state"]
    assert isinstance(state, economy.State) and state.epoch == 4 and state.totals.slashed > 0
    assert economy.is_supply_conserved(state)
