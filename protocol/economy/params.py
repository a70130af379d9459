"""The economy's constants: one table, two presets (STYLE.md, item 3).

`Params` is a frozen dataclass; each field carries its unit and the reason for it in its metadata
(`get_parameter_unit`, `get_parameter_reason`). `MAINNET` is a realistic preset (one-hour epochs,
a token of 10**9 base units); `MINIMAL` is tiny and fast so tests reach every mechanism within a
few epochs. The live parameters are part of the state (`state.params`) because governance changes
them; `validate_params` states the consistency rules every preset and every change must keep.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from protocol.economy.errors import InvalidParameter
from protocol.economy.units import BPS_DENOMINATOR

VESTING_MODES = ("linear", "cliff")
"""linear: the held part is released pro rata over `vesting_epochs`; cliff: all of it at the end."""

EMISSION_SCHEDULES = ("exponential", "disinflationary", "goal")
"""How per-epoch emission evolves: decays geometrically; follows a yearly inflation rate that falls to a
floor; or steers toward a goal of network compute."""

COMMITTEE_PRESETS = ("mainnet", "minimal")
"""Names of `protocol.committee.PRESETS`: the committee's own table (size, quorum, timeouts, fault slashes)."""

REWARD_MODELS = ("fixed", "stake", "performance", "hybrid")
"""How an epoch's emission is split: a fixed amount per settled task; pro rata to active workers' stake;
pro rata to reputation-weighted settled work; or a stake part and a performance part."""

TOKEN = 10**9
"""Base units in one whole token in the MAINNET preset (amounts in the table are in base units)."""


def param(unit: str, reason: str) -> Any:
    """A parameter field: no default (a preset names every value), with its unit and reason."""
    return field(metadata={"unit": unit, "reason": reason})


@dataclass(frozen=True, slots=True)
class Params:
    """Every constant of the economy. Amounts in base token units, durations in epochs."""

    # -- time -------------------------------------------------------------------------------------
    epochs_per_year: int = param("epochs", "converts yearly inflation rates into per-epoch emission")

    # -- staking ----------------------------------------------------------------------------------
    min_stake: int = param(
        "tokens", "smallest non-zero stake an account may hold; keeps dust out of the stake set"
    )
    base_worker_stake: int = param("tokens", "stake the first worker must hold to register")
    worker_stake_increment: int = param(
        "tokens per active worker",
        "bonding curve: each active worker raises the entry stake, so many Sybil workers cost quadratically",
    )
    unbonding_period_epochs: int = param(
        "epochs", "unbonding stake stays slashable this long, longer than a job's deadline plus window"
    )
    max_unbonding_entries: int = param("entries", "bounds the work a slash or a withdrawal does per account")

    # -- liveness ---------------------------------------------------------------------------------
    heartbeat_grace_epochs: int = param(
        "epochs", "a worker silent for longer than this may be slashed for downtime"
    )
    downtime_slash_bps: int = param("basis points of stake", "price of being unreachable while registered")
    missed_deadline_slash_bps: int = param(
        "basis points of stake", "price of taking a job and not delivering"
    )

    # -- jobs and auctions ------------------------------------------------------------------------
    min_job_payment: int = param("tokens", "smallest job price; keeps jobs worth a dispute's cost")
    auction_duration_epochs: int = param("epochs", "bids are taken from posting until this many epochs later")
    max_bids_per_job: int = param("bids", "bounds the work of closing one auction")
    commit_deadline_epochs: int = param("epochs", "time from assignment to the worker's run commitment")
    challenge_window_epochs: int = param(
        "epochs", "time after the commitment during which anyone may dispute"
    )
    job_tax_bps: int = param("basis points of price", "tax on every job that funds the forced-error jackpot")

    # -- vesting ----------------------------------------------------------------------------------
    vesting_share_bps: int = param("basis points of payment", "part of a worker's pay held back and at risk")
    vesting_mode: str = param("one of VESTING_MODES", "linear release, or held whole for a penalty period")
    vesting_epochs: int = param("epochs", "length of the linear release or of the penalty period")

    # -- disputes ---------------------------------------------------------------------------------
    challenger_bond: int = param("tokens", "a challenger's skin in the game; lost to a frivolous dispute")
    slash_fraction_bps: int = param("basis points of stake", "part of a losing worker's stake taken")
    challenger_reward_bps: int = param(
        "basis points of slashed amount",
        "the winner's share of a slash; the rest is burned so no one profits from colluding with themselves",
    )

    # -- referee committees ------------------------------------------------------------------------
    referee_stake: int = param(
        "tokens", "stake a referee must keep bonded to be drawn: what its faults can cost it"
    )
    committee_preset: str = param(
        "one of COMMITTEE_PRESETS", "the committee's table: size, 2/3 quorum, signing timeout, fault slashes"
    )
    committee_retention_epochs: int = param(
        "epochs",
        "a committee is kept this long after its epoch (and while a dispute of its epoch is open), so its "
        "faults can still be proven; shorter than unbonding, so an offender's stake is still there",
    )

    # -- checkpoint storage ------------------------------------------------------------------------
    availability_samples: int = param("challenges per epoch", "shards of stored checkpoints sampled each epoch")
    availability_answer_epochs: int = param(
        "epochs", "a sampled shard's holder answers with it and its proof within this many epochs after the draw"
    )
    availability_slash_bps: int = param(
        "basis points of stake", "part of a holder's stake at risk burned for each challenge it leaves unanswered"
    )
    availability_retention_epochs: int = param(
        "epochs", "a stored checkpoint is sampled this long after it was stored (longer while challenged)"
    )

    # -- reputation -------------------------------------------------------------------------------
    reputation_success_gain: int = param("reputation points", "earned by each settled job")
    reputation_fault_loss: int = param("reputation points", "lost by a lost dispute or a missed deadline")
    reputation_retention_bps: int = param(
        "basis points per epoch", "reputation kept each epoch; old merit fades"
    )
    reputation_reward_scale: int = param(
        "reputation points", "reputation at which a worker's performance weight doubles"
    )

    # -- forced errors ----------------------------------------------------------------------------
    forced_error_rate_bps: int = param("basis points of jobs", "share of jobs that carry a forced error")
    jackpot_payout_bps: int = param(
        "basis points of jackpot", "part of the jackpot paid for one caught error"
    )

    # -- emission and rewards ---------------------------------------------------------------------
    emission_schedule: str = param("one of EMISSION_SCHEDULES", "how per-epoch emission evolves")
    reward_model: str = param("one of REWARD_MODELS", "how each epoch's emission is shared")
    initial_emission: int = param("tokens per epoch", "emission of epoch 0 (exponential and goal schedules)")
    emission_retention_bps: int = param(
        "basis points per epoch", "exponential schedule: emission kept each epoch"
    )
    initial_inflation_bps: int = param("basis points per year", "disinflationary schedule: first year's rate")
    disinflation_bps: int = param(
        "basis points per year", "disinflationary schedule: relative fall of the rate"
    )
    terminal_inflation_bps: int = param(
        "basis points per year", "disinflationary schedule: floor of the rate"
    )
    compute_goal: int = param("work units per epoch", "goal schedule: network compute emission steers toward")
    goal_adjust_bps: int = param(
        "basis points per epoch", "goal schedule: largest change of emission per epoch"
    )
    emission_floor: int = param("tokens per epoch", "goal schedule: emission never falls below this")
    emission_cap: int = param("tokens per epoch", "goal schedule: emission never rises above this")
    fixed_reward_per_task: int = param("tokens", "fixed model: reward for each task settled in the epoch")
    hybrid_stake_share_bps: int = param("basis points of emission", "hybrid model: part shared by stake")

    # -- governance -------------------------------------------------------------------------------
    proposal_min_stake: int = param("tokens", "stake needed to make a proposal; keeps spam out")
    voting_period_epochs: int = param("epochs", "how long a proposal takes votes")
    quorum_bps: int = param("basis points of total stake", "votes needed for a result to count")
    approval_bps: int = param("basis points of votes cast", "yes votes must exceed this share")
    execution_delay_epochs: int = param(
        "epochs", "time between a vote's end and its effect, to exit if unhappy"
    )


MAINNET = Params(
    epochs_per_year=8760,
    min_stake=10 * TOKEN,
    base_worker_stake=1_000 * TOKEN,
    worker_stake_increment=10 * TOKEN,
    unbonding_period_epochs=336,
    max_unbonding_entries=16,
    heartbeat_grace_epochs=6,
    downtime_slash_bps=10,
    missed_deadline_slash_bps=500,
    min_job_payment=1 * TOKEN,
    auction_duration_epochs=1,
    max_bids_per_job=32,
    commit_deadline_epochs=24,
    challenge_window_epochs=24,
    job_tax_bps=100,
    vesting_share_bps=2_500,
    vesting_mode="linear",
    vesting_epochs=168,
    challenger_bond=50 * TOKEN,
    slash_fraction_bps=5_000,
    challenger_reward_bps=5_000,
    referee_stake=100 * TOKEN,
    committee_preset="mainnet",
    committee_retention_epochs=168,
    availability_samples=64,
    availability_answer_epochs=6,
    availability_slash_bps=100,
    availability_retention_epochs=720,
    reputation_success_gain=100,
    reputation_fault_loss=1_000,
    reputation_retention_bps=9_990,
    reputation_reward_scale=1_000,
    forced_error_rate_bps=50,
    jackpot_payout_bps=5_000,
    emission_schedule="exponential",
    reward_model="hybrid",
    initial_emission=1_000 * TOKEN,
    emission_retention_bps=9_999,
    initial_inflation_bps=800,
    disinflation_bps=1_500,
    terminal_inflation_bps=150,
    compute_goal=10_000,
    goal_adjust_bps=200,
    emission_floor=10 * TOKEN,
    emission_cap=10_000 * TOKEN,
    fixed_reward_per_task=10 * TOKEN,
    hybrid_stake_share_bps=5_000,
    proposal_min_stake=1_000 * TOKEN,
    voting_period_epochs=168,
    quorum_bps=3_333,
    approval_bps=5_000,
    execution_delay_epochs=48,
)
"""A realistic preset: one-hour epochs, day-long deadlines and windows, two-week unbonding."""

MINIMAL = Params(
    epochs_per_year=12,
    min_stake=10,
    base_worker_stake=100,
    worker_stake_increment=10,
    unbonding_period_epochs=6,
    max_unbonding_entries=4,
    heartbeat_grace_epochs=2,
    downtime_slash_bps=500,
    missed_deadline_slash_bps=1_000,
    min_job_payment=10,
    auction_duration_epochs=0,
    max_bids_per_job=8,
    commit_deadline_epochs=2,
    challenge_window_epochs=2,
    job_tax_bps=500,
    vesting_share_bps=5_000,
    vesting_mode="linear",
    vesting_epochs=3,
    challenger_bond=20,
    slash_fraction_bps=5_000,
    challenger_reward_bps=5_000,
    referee_stake=50,
    committee_preset="minimal",
    committee_retention_epochs=4,
    availability_samples=4,
    availability_answer_epochs=1,
    availability_slash_bps=1_000,
    availability_retention_epochs=8,
    reputation_success_gain=100,
    reputation_fault_loss=300,
    reputation_retention_bps=9_500,
    reputation_reward_scale=100,
    forced_error_rate_bps=2_000,
    jackpot_payout_bps=5_000,
    emission_schedule="exponential",
    reward_model="hybrid",
    initial_emission=100,
    emission_retention_bps=9_500,
    initial_inflation_bps=1_000,
    disinflation_bps=2_000,
    terminal_inflation_bps=200,
    compute_goal=20,
    goal_adjust_bps=1_000,
    emission_floor=10,
    emission_cap=1_000,
    fixed_reward_per_task=10,
    hybrid_stake_share_bps=5_000,
    proposal_min_stake=100,
    voting_period_epochs=2,
    quorum_bps=5_000,
    approval_bps=5_000,
    execution_delay_epochs=1,
)
"""A tiny preset for tests: epochs are short, amounts small, every mechanism reachable in a few epochs."""

PRESETS: dict[str, Params] = {"mainnet": MAINNET, "minimal": MINIMAL}

_CHOICES: dict[str, tuple[str, ...]] = {
    "vesting_mode": VESTING_MODES,
    "emission_schedule": EMISSION_SCHEDULES,
    "reward_model": REWARD_MODELS,
    "committee_preset": COMMITTEE_PRESETS,
}


def get_parameter_names() -> tuple[str, ...]:
    """Names of every parameter, in table order."""
    return tuple(f.name for f in dataclasses.fields(Params))


def get_parameter_unit(name: str) -> str:
    return _get_field(name).metadata["unit"]


def get_parameter_reason(name: str) -> str:
    return _get_field(name).metadata["reason"]


def _get_field(name: str) -> dataclasses.Field[Any]:
    for f in dataclasses.fields(Params):
        if f.name == name:
            return f
    raise InvalidParameter(f"unknown parameter {name!r}")


def compute_params_problems(params: Params) -> list[str]:
    """Every consistency rule `params` breaks, as readable lines (empty when the table is valid)."""
    problems: list[str] = []
    for f in dataclasses.fields(params):
        value = getattr(params, f.name)
        if f.name in _CHOICES:
            if value not in _CHOICES[f.name]:
                problems.append(f"{f.name}={value!r} is not one of {_CHOICES[f.name]}")
        elif type(value) is not int:
            problems.append(f"{f.name} must be an int, got {type(value).__name__}")
        elif value < 0:
            problems.append(f"{f.name}={value} is negative")
        elif f.name.endswith("_bps") and value > BPS_DENOMINATOR:
            problems.append(f"{f.name}={value} exceeds {BPS_DENOMINATOR} basis points")
    if problems:
        return problems
    positive = (
        "epochs_per_year",
        "min_stake",
        "base_worker_stake",
        "min_job_payment",
        "max_bids_per_job",
        "max_unbonding_entries",
        "challenge_window_epochs",
        "vesting_epochs",
        "challenger_bond",
        "voting_period_epochs",
        "compute_goal",
        "reputation_reward_scale",
        "referee_stake",
        "availability_answer_epochs",
    )
    problems += [f"{name} must be positive" for name in positive if getattr(params, name) <= 0]
    if params.base_worker_stake < params.min_stake:
        problems.append("base_worker_stake must be at least min_stake")
    if params.unbonding_period_epochs <= params.commit_deadline_epochs + params.challenge_window_epochs:
        problems.append(
            "unbonding_period_epochs must exceed commit_deadline_epochs + challenge_window_epochs"
        )
    if params.unbonding_period_epochs < params.voting_period_epochs:
        problems.append("unbonding_period_epochs must be at least voting_period_epochs (no double votes)")
    if params.committee_retention_epochs >= params.unbonding_period_epochs:
        problems.append("committee_retention_epochs must be below unbonding_period_epochs (a fault finds its stake)")
    if params.referee_stake < params.min_stake:
        problems.append("referee_stake must be at least min_stake")
    if params.emission_floor > params.emission_cap:
        problems.append("emission_floor must not exceed emission_cap")
    if params.terminal_inflation_bps > params.initial_inflation_bps:
        problems.append("terminal_inflation_bps must not exceed initial_inflation_bps")
    return problems


def is_valid_params(params: Params) -> bool:
    return not compute_params_problems(params)


def validate_params(params: Params) -> Params:
    """`params` unchanged, or InvalidParameter naming every broken rule."""
    problems = compute_params_problems(params)
    if problems:
        raise InvalidParameter("; ".join(problems))
    return params


def compute_changed_params(params: Params, name: str, value: object) -> Params:
    """`params` with one parameter changed, validated; InvalidParameter if the change is not allowed."""
    current = getattr(params, _get_field(name).name)
    if type(value) is not type(current):
        raise InvalidParameter(f"{name} takes a {type(current).__name__}, got {type(value).__name__}")
    changes: dict[str, Any] = {name: value}
    return validate_params(dataclasses.replace(params, **changes))
