"""Simulation configs: a commented dataclass schema read from TOML, validated with clear errors, and
expanded into runs (scenarios x sweep points x Monte Carlo repetitions).

A config file has one table per section below, plus two optional tables that make an experiment:

    [scenarios.NAME]   overrides that define a mechanism to compare, as dotted keys
                       ("protocol.params.forced_error_rate_bps" = 0) or nested tables
    [sweep]            dotted key -> list of values; every combination is run (Cartesian product)

Each run gets the seed `derive_seed(run.seed, repetition)`: repetition r uses the same seed in every
scenario and sweep point (common random numbers, so differences between mechanisms are not noise
from different draws), and different repetitions use independent streams. With
`run.common_seeds = false` every run uses `derive_seed(run.seed, run index)` instead, so the
points of a sweep are independent samples.

Units: amounts of the ledger are integer tokens (the protocol's `Tokens`); off-chain costs
(computing a job, checking it, playing a dispute game) are float tokens; probabilities are in [0, 1];
times are epochs.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import math
import tomllib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from protocol.economy import PRESETS, InvalidParameter, Params, get_parameter_names, validate_params
from prover.files import FileFormatError, read_bounded

MAX_CONFIG_BYTES = 1 << 20  # 1 MiB: a config is a page of settings; refused above this before reading
WORKER_STRATEGIES = ("honest", "cheater", "adaptive", "lazy")
"""honest: always computes; cheater: cheats with a fixed probability; adaptive: its cheating probability
moves toward what paid in recent epochs; lazy: never computes and submits a guess."""

CHALLENGER_STRATEGIES = ("fixed", "adaptive", "griefer", "colluder", "guesser")
"""fixed: verifies each job it watches with a fixed probability; adaptive: the probability moves toward
what checking paid in recent epochs; griefer: checks nothing, and disputes jobs it is dealt (with its
probability) in the last epoch of their window, to delay the worker's payment by a game it loses;
colluder: disputes every wrong cheat of its partner population first, as soon as it is committed, and
throws its game; guesser: a watcher that verifies (with its probability) only the jobs it guesses are
forced-error tests, guessing from what the ledger shows (the draw's seed and the seal in place of the
secret salt)."""

WATCHER_STRATEGIES = ("fixed", "adaptive", "guesser")
"""Challenger strategies that take watch slots (griefers and colluders act besides the watchers)."""

AUCTIONS = ("batch", "reverse")
"""batch: workers post asks and jobs clear in the protocol's end-of-epoch batch auction; reverse: a few
workers bid on each job and the protocol's reverse auction picks the winner."""

ASSIGNMENTS = ("price", "reputation")
"""price: asks are each worker's cost times a markup (the cheapest wins); reputation: every worker asks
the same posted price, so the protocol's tie-break by reputation decides who is assigned."""

INVARIANT_MODES = ("transition", "epoch", "end", "off")
"""When the economy's named invariants are checked: after every transition, after every epoch, once at
the end of a run, or never."""


class ConfigError(ValueError):
    """A simulation config breaks a rule; the message names the key (as a dotted path) and the rule."""


def doc(text: str) -> Any:
    """Field metadata: the comment a config key carries (shown by `describe_config`)."""
    return {"doc": text}


# -- sections -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RunSection:
    name: str = field(default="simulation", metadata=doc("label of the experiment in outputs"))
    epochs: int = field(default=200, metadata=doc("epochs per run"))
    repetitions: int = field(default=1, metadata=doc("Monte Carlo runs per scenario and sweep point"))
    seed: int = field(default=0, metadata=doc("base seed; repetition r runs with derive_seed(seed, r)"))
    invariants: str = field(default="epoch", metadata=doc("when to check the economy's invariants: " + "/".join(INVARIANT_MODES)))
    warmup_epochs: int = field(default=0, metadata=doc("epochs left out of summaries (the table keeps them)"))
    common_seeds: bool = field(default=True, metadata=doc(
        "repetition r uses the same seed in every scenario and sweep point (common random numbers: "
        "mechanisms differ by their rules, not by their draws); false: every run draws its own seed"))

    def validate(self, path: str) -> None:
        require(self.epochs >= 1, f"{path}.epochs", f"must be at least 1, got {self.epochs}")
        require(1 <= self.repetitions <= 100_000, f"{path}.repetitions", f"must be in 1..100000, got {self.repetitions}")
        require(0 <= self.seed < 2**63, f"{path}.seed", f"must be in 0..2**63-1, got {self.seed}")
        require_choice(self.invariants, INVARIANT_MODES, f"{path}.invariants")
        require(0 <= self.warmup_epochs < self.epochs, f"{path}.warmup_epochs", f"must be in 0..epochs-1, got {self.warmup_epochs}")


@dataclass(frozen=True)
class ProtocolSection:
    preset: str = field(default="minimal", metadata=doc("the economy's parameter preset: " + "/".join(PRESETS)))
    params: dict[str, Any] = field(default_factory=dict, metadata=doc("overrides of the preset's parameters"))

    def validate(self, path: str) -> None:
        require_choice(self.preset, tuple(PRESETS), f"{path}.preset")
        compute_protocol_params(self, path)


@dataclass(frozen=True)
class MarketSection:
    auction: str = field(default="batch", metadata=doc("how jobs meet workers: " + "/".join(AUCTIONS)))
    assignment: str = field(default="price", metadata=doc("what decides among offers: " + "/".join(ASSIGNMENTS)))
    posted_unit_price: int = field(default=0, metadata=doc("tokens per work unit every worker asks under 'reputation' assignment"))
    bidders_per_job: int = field(default=4, metadata=doc("reverse auction: workers that bid on each job"))
    user_patience: int = field(default=2, metadata=doc("batch auctions an unmatched job waits through after its first before its user cancels it"))

    def validate(self, path: str) -> None:
        require_choice(self.auction, AUCTIONS, f"{path}.auction")
        require_choice(self.assignment, ASSIGNMENTS, f"{path}.assignment")
        require(self.posted_unit_price >= 0, f"{path}.posted_unit_price", "must not be negative")
        require(self.assignment != "reputation" or self.posted_unit_price > 0, f"{path}.posted_unit_price",
                "must be positive under 'reputation' assignment")
        require(self.bidders_per_job >= 1, f"{path}.bidders_per_job", "must be at least 1")
        require(self.user_patience >= 0, f"{path}.user_patience", "must not be negative")


@dataclass(frozen=True)
class DisputeSection:
    game_cost_worker: float = field(default=0.2, metadata=doc(
        "tokens of compute one dispute game costs the worker (answering bisection queries, regenerating a "
        "step's trace); from benchmarks/bench_dispute.py: (dispute seconds / training-step seconds) x the "
        "tokens one step's compute costs"))
    game_cost_challenger: float = field(default=0.2, metadata=doc(
        "tokens of compute one dispute game costs the challenger (its side of the bisection plus the "
        "referee's one-operator re-execution)"))
    game_epochs: int = field(default=0, metadata=doc(
        "epochs a dispute game takes from its opening to its settlement (0: settled in the epoch it opens); "
        "while one runs the job's window stays open, so its worker is paid no earlier than its end"))

    def validate(self, path: str) -> None:
        require(self.game_epochs >= 0, f"{path}.game_epochs", "must not be negative")
        require(self.game_cost_worker >= 0, f"{path}.game_cost_worker", "must not be negative")
        require(self.game_cost_challenger >= 0, f"{path}.game_cost_challenger", "must not be negative")


@dataclass(frozen=True)
class ChurnSection:
    enabled: bool = field(default=False, metadata=doc("agents enter while their kind pays and leave while it does not"))
    memory: float = field(default=0.1, metadata=doc("weight of the latest epoch in each agent's profit average"))
    min_tenure: int = field(default=10, metadata=doc("epochs an agent stays before it may leave"))
    exit_below: float = field(default=0.0, metadata=doc("tokens per epoch: an agent whose average profit is below leaves"))
    enter_above: float = field(default=0.0, metadata=doc("tokens per epoch: idle agents enter while their population averages above"))
    entry_rate: float = field(default=0.05, metadata=doc("chance per epoch that an idle agent enters while its population pays"))

    def validate(self, path: str) -> None:
        require(0 < self.memory <= 1, f"{path}.memory", f"must be in (0, 1], got {self.memory}")
        require(self.min_tenure >= 0, f"{path}.min_tenure", "must not be negative")
        require(0 <= self.entry_rate <= 1, f"{path}.entry_rate", f"must be in [0, 1], got {self.entry_rate}")


@dataclass(frozen=True)
class UserSection:
    count: int = field(default=10, metadata=doc("users posting jobs"))
    jobs_per_epoch: float = field(default=1.0, metadata=doc("mean jobs each user posts per epoch (Poisson)"))
    work_units: list[int] = field(default_factory=lambda: [10, 10], metadata=doc("[low, high]: work units of a job, uniform"))
    max_unit_price: list[int] = field(default_factory=lambda: [3, 3], metadata=doc("[low, high]: tokens per work unit a user pays at most, uniform"))
    value_per_unit: float = field(default=4.0, metadata=doc("tokens a correct result is worth to its user, per work unit"))
    initial_balance: int = field(default=10_000_000, metadata=doc("tokens each user holds at genesis"))

    def validate(self, path: str) -> None:
        require(self.count >= 1, f"{path}.count", "must be at least 1")
        require(self.jobs_per_epoch >= 0, f"{path}.jobs_per_epoch", "must not be negative")
        require_range(self.work_units, 1, f"{path}.work_units")
        require_range(self.max_unit_price, 1, f"{path}.max_unit_price")
        require(self.value_per_unit >= 0, f"{path}.value_per_unit", "must not be negative")
        require(self.initial_balance >= 1, f"{path}.initial_balance", "must be positive")


@dataclass(frozen=True)
class WorkerPopulation:
    strategy: str = field(default="honest", metadata=doc("one of " + "/".join(WORKER_STRATEGIES)))
    count: int = field(default=10, metadata=doc("workers registered at genesis"))
    pool: int = field(default=0, metadata=doc("idle accounts that may enter later (churn)"))
    compute_cost: float = field(default=1.0, metadata=doc("tokens of compute per work unit of honest execution"))
    ask_markup: float = field(default=1.5, metadata=doc("ask = ceil(compute_cost x markup) tokens per work unit"))
    ask_spread: float = field(default=0.0, metadata=doc("asks vary by up to this fraction either way, per worker"))
    capacity: int = field(default=1, metadata=doc("jobs a worker takes per epoch"))
    stake_multiple: float = field(default=1.0, metadata=doc("stake bonded, as a multiple of the bonding curve's price at entry"))
    fixed_cost: float = field(default=0.0, metadata=doc("tokens per epoch of being active (hardware, the stake's cost of capital)"))
    cheat_probability: float = field(default=0.0, metadata=doc("cheater: chance of cheating on a job; adaptive: the starting chance"))
    cheat_saving: float = field(default=1.0, metadata=doc("part of the compute cost a cheat saves"))
    guess_accuracy: float = field(default=0.0, metadata=doc("lazy: chance that a guessed result is right"))
    learning_rate: float = field(default=0.02, metadata=doc("adaptive: largest change of the cheating chance per epoch"))
    min_probability: float = field(default=0.01, metadata=doc("adaptive: floor of the cheating chance (keeps exploring)"))
    max_probability: float = field(default=1.0, metadata=doc("adaptive: ceiling of the cheating chance"))
    memory: float = field(default=0.2, metadata=doc("adaptive: weight of the latest epoch in the payoff averages"))
    churn: bool = field(default=True, metadata=doc("takes part in churn when [churn] is enabled"))
    initial_balance: int = field(default=1_000_000, metadata=doc("tokens each worker holds at genesis"))

    def validate(self, path: str) -> None:
        require_choice(self.strategy, WORKER_STRATEGIES, f"{path}.strategy")
        require(self.count >= 0 and self.pool >= 0, f"{path}.count", "count and pool must not be negative")
        require(self.compute_cost >= 0, f"{path}.compute_cost", "must not be negative")
        require(self.ask_markup > 0, f"{path}.ask_markup", "must be positive")
        require(0 <= self.ask_spread < 1, f"{path}.ask_spread", f"must be in [0, 1), got {self.ask_spread}")
        require(self.capacity >= 1, f"{path}.capacity", "must be at least 1")
        require(self.stake_multiple >= 1, f"{path}.stake_multiple", f"must be at least 1, got {self.stake_multiple}")
        require(self.fixed_cost >= 0, f"{path}.fixed_cost", "must not be negative")
        for name in ("cheat_probability", "cheat_saving", "guess_accuracy", "min_probability", "max_probability", "learning_rate"):
            value = getattr(self, name)
            require(0 <= value <= 1, f"{path}.{name}", f"must be in [0, 1], got {value}")
        require(0 < self.memory <= 1, f"{path}.memory", f"must be in (0, 1], got {self.memory}")
        require(self.min_probability <= self.max_probability, f"{path}.min_probability", "must not exceed max_probability")
        require(self.initial_balance >= 1, f"{path}.initial_balance", "must be positive")


@dataclass(frozen=True)
class ChallengerPopulation:
    strategy: str = field(default="fixed", metadata=doc("one of " + "/".join(CHALLENGER_STRATEGIES)))
    count: int = field(default=5, metadata=doc("challengers active at genesis"))
    pool: int = field(default=0, metadata=doc("idle accounts that may enter later (churn)"))
    verify_probability: float = field(default=0.5, metadata=doc("chance of verifying a watched job; adaptive: the starting chance"))
    capacity: int = field(default=20, metadata=doc("jobs a challenger watches per epoch"))
    check_cost: float = field(default=0.2, metadata=doc("tokens of compute per work unit to verify a job"))
    fixed_cost: float = field(default=0.0, metadata=doc("tokens per epoch of being active"))
    learning_rate: float = field(default=0.02, metadata=doc("adaptive: largest change of the verifying chance per epoch"))
    min_probability: float = field(default=0.01, metadata=doc("adaptive: floor of the verifying chance"))
    max_probability: float = field(default=1.0, metadata=doc("adaptive: ceiling of the verifying chance"))
    memory: float = field(default=0.2, metadata=doc("adaptive: weight of the latest epoch in the payoff average"))
    churn: bool = field(default=True, metadata=doc("takes part in churn when [churn] is enabled"))
    initial_balance: int = field(default=100_000, metadata=doc("tokens each challenger holds at genesis (bonds come from it)"))
    partner: str = field(default="", metadata=doc("colluder: the worker population whose cheats it covers"))
    grief_chain: int = field(default=1, metadata=doc(
        "griefer: disputes in a row on a job it griefs, each opened by the next member of the population as "
        "the previous game ends (the window stays open while one runs): each adds game_epochs of delay"))

    def validate(self, path: str) -> None:
        require_choice(self.strategy, CHALLENGER_STRATEGIES, f"{path}.strategy")
        require(self.count >= 0 and self.pool >= 0, f"{path}.count", "count and pool must not be negative")
        for name in ("verify_probability", "min_probability", "max_probability", "learning_rate"):
            value = getattr(self, name)
            require(0 <= value <= 1, f"{path}.{name}", f"must be in [0, 1], got {value}")
        require(0 < self.memory <= 1, f"{path}.memory", f"must be in (0, 1], got {self.memory}")
        require(self.min_probability <= self.max_probability, f"{path}.min_probability", "must not exceed max_probability")
        require(self.capacity >= 1, f"{path}.capacity", "must be at least 1")
        require(self.check_cost >= 0 and self.fixed_cost >= 0, f"{path}.check_cost", "costs must not be negative")
        require(self.initial_balance >= 1, f"{path}.initial_balance", "must be positive")
        require(self.grief_chain >= 1, f"{path}.grief_chain", f"must be at least 1, got {self.grief_chain}")
        require((self.strategy == "colluder") == bool(self.partner), f"{path}.partner",
                "a colluder names its partner worker population, and only a colluder has one")


@dataclass(frozen=True)
class ReportSection:
    series: list[str] = field(
        default_factory=lambda: ["cheat_rate", "check_rate", "detection_rate", "verify_probability_mean", "supply", "gini_rewards"],
        metadata=doc("table columns drawn in the time-series plot, one panel each"),
    )
    phase_x: str = field(default="", metadata=doc("sweep key across the phase diagram (a verification probability)"))
    phase_y: str = field(default="", metadata=doc("sweep key up the phase diagram (a slash fraction, in basis points)"))
    max_series_lines: int = field(default=12, metadata=doc("more mechanisms than this and the time-series plot is left out"))

    def validate(self, path: str) -> None:
        require(bool(self.phase_x) == bool(self.phase_y), f"{path}.phase_x", "phase_x and phase_y go together")
        require(self.max_series_lines >= 1, f"{path}.max_series_lines", "must be at least 1")


@dataclass(frozen=True)
class SimulationConfig:
    """One run's complete description (scenarios and sweeps are applied before this is built)."""

    run: RunSection = field(default_factory=RunSection)
    protocol: ProtocolSection = field(default_factory=ProtocolSection)
    market: MarketSection = field(default_factory=MarketSection)
    dispute: DisputeSection = field(default_factory=DisputeSection)
    churn: ChurnSection = field(default_factory=ChurnSection)
    users: UserSection = field(default_factory=UserSection)
    workers: dict[str, WorkerPopulation] = field(default_factory=lambda: {"honest": WorkerPopulation()})
    challengers: dict[str, ChallengerPopulation] = field(default_factory=lambda: {"watchers": ChallengerPopulation()})
    report: ReportSection = field(default_factory=ReportSection)

    def validate(self, path: str) -> None:
        require(bool(self.workers), "workers", "at least one worker population is needed")
        for name in list(self.workers) + list(self.challengers):
            require(name.isidentifier(), join("workers" if name in self.workers else "challengers", name),
                    "population names are identifiers (letters, digits, _)")
        require(not set(self.workers) & set(self.challengers), "challengers",
                "a population name is used by both workers and challengers")
        require(sum(p.count for p in self.workers.values()) >= 1, "workers", "at least one worker must be active at genesis")
        for name, challengers in self.challengers.items():
            require(not challengers.partner or challengers.partner in self.workers, f"challengers.{name}.partner",
                    f"{challengers.partner!r} is not a worker population{compute_suggestion(challengers.partner, self.workers)}")
        params = self.params
        everyone = sum(p.count + p.pool for p in self.workers.values())
        # the bonding curve's price once every worker (pool included) is active: the most an entrant pays
        highest = params.base_worker_stake + params.worker_stake_increment * max(0, everyone - 1)
        for name, population in self.workers.items():
            need = math.ceil(highest * population.stake_multiple - 1e-9)
            require(population.initial_balance >= need, f"workers.{name}.initial_balance",
                    f"{population.initial_balance} tokens cannot bond the entry stake, up to {need} tokens under "
                    f"protocol preset {self.protocol.preset!r} (base_worker_stake + worker_stake_increment x workers, "
                    f"x stake_multiple)")
        if self.market.assignment == "price":
            return
        price = self.market.posted_unit_price
        require(price <= self.users.max_unit_price[1], "market.posted_unit_price",
                f"{price} exceeds every user's max_unit_price; no job would ever clear")

    @property
    def params(self) -> Params:
        """The economy's parameter table for this run."""
        return compute_protocol_params(self.protocol, "protocol")


@dataclass(frozen=True)
class RunSpec:
    """One run of an experiment: which scenario and sweep point, which repetition, which seed."""

    index: int  # position in the experiment's run list
    scenario: str
    point: tuple[tuple[str, Any], ...]  # (dotted key, value) of the sweep point
    repetition: int
    seed: int
    config: SimulationConfig


@dataclass(frozen=True)
class Experiment:
    """A config file: the base config, the scenarios and the sweep, and the runs they expand into."""

    base: SimulationConfig
    scenarios: tuple[str, ...]
    sweep: tuple[tuple[str, tuple[Any, ...]], ...]
    runs: tuple[RunSpec, ...]
    source: dict[str, Any]  # the file's tables as read


# -- validation helpers ---------------------------------------------------------------------------


def require(condition: bool, path: str, message: str) -> None:
    if not condition:
        raise ConfigError(f"{path}: {message}")


def require_choice(value: str, choices: tuple[str, ...], path: str) -> None:
    if value not in choices:
        raise ConfigError(f"{path}: {value!r} is not one of {', '.join(choices)}{compute_suggestion(value, choices)}")


def require_range(pair: list[int], low: int, path: str) -> None:
    require(len(pair) == 2, path, f"is a [low, high] pair, got {pair!r}")
    require(low <= pair[0] <= pair[1], path, f"needs {low} <= low <= high, got {pair!r}")


def compute_suggestion(word: str, choices: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def compute_protocol_params(section: ProtocolSection, path: str) -> Params:
    """The preset with the overrides applied and validated by the economy's own rules."""
    names = get_parameter_names()
    for name in section.params:
        if name not in names:
            raise ConfigError(f"{path}.params.{name}: not a parameter of the economy{compute_suggestion(name, names)}")
    base = PRESETS[section.preset]
    for name, value in section.params.items():
        expected = type(getattr(base, name))
        if type(value) is not expected:
            kind = "an integer" if expected is int else "a string"
            raise ConfigError(f"{path}.params.{name}: expected {kind}, got {type(value).__name__} {value!r}")
    try:
        return validate_params(dataclasses.replace(base, **section.params))
    except InvalidParameter as error:
        raise ConfigError(f"{path}.params: {error}") from None


# -- building dataclasses from tables --------------------------------------------------------------


def build_config(table: dict[str, Any]) -> SimulationConfig:
    """A validated SimulationConfig from a plain table (as `tomllib` returns it); ConfigError otherwise."""
    config = build_section(SimulationConfig, table, "")
    return config


def build_section(cls: type, table: Any, path: str) -> Any:
    where = path or "the config"
    if not isinstance(table, dict):
        raise ConfigError(f"{where}: expected a table, got {type(table).__name__} {table!r}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in table:
        if key not in fields:
            raise ConfigError(f"{join(path, key)}: unknown key{compute_suggestion(key, fields)}; known keys: {', '.join(fields)}")
    hints = typing.get_type_hints(cls)
    values = {key: convert(hints[key], value, join(path, key)) for key, value in table.items()}
    instance = cls(**values)
    instance.validate(path)
    return instance


def join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def convert(hint: Any, value: Any, path: str) -> Any:
    """`value` checked against the type `hint` (int, float, bool, str, list[int], list[str], dict of
    sections or dict of parameter values, or a section dataclass)."""
    origin = typing.get_origin(hint)
    if dataclasses.is_dataclass(hint):
        return build_section(typing.cast(type, hint), value, path)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{path}: expected a table, got {type(value).__name__} {value!r}")
        _, item = typing.get_args(hint)
        if dataclasses.is_dataclass(item):
            return {k: build_section(typing.cast(type, item), v, join(path, k)) for k, v in value.items()}
        return dict(value)  # protocol parameters: checked by name and type in compute_protocol_params
    if origin is list:
        (item,) = typing.get_args(hint)
        if not isinstance(value, list):
            raise ConfigError(f"{path}: expected a list, got {type(value).__name__} {value!r}")
        return [convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if hint is bool:
        if type(value) is not bool:
            raise ConfigError(f"{path}: expected true or false, got {value!r}")
        return value
    if hint is int:
        if type(value) is not int:
            raise ConfigError(f"{path}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if hint is float:
        if type(value) not in (int, float):
            raise ConfigError(f"{path}: expected a number, got {type(value).__name__} {value!r}")
        if not np.isfinite(value):
            raise ConfigError(f"{path}: expected a finite number, got {value!r}")
        return float(value)
    if hint is str:
        if type(value) is not str:
            raise ConfigError(f"{path}: expected a string, got {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"{path}: unsupported type {hint}")  # pragma: no cover - the schema has none


def describe_config() -> list[tuple[str, str, str]]:
    """(dotted key, default, comment) of every scalar key of the schema; the reference for config authors."""
    rows: list[tuple[str, str, str]] = []

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            hint = hints[f.name]
            item = typing.get_args(hint)[1] if typing.get_origin(hint) is dict else None
            if dataclasses.is_dataclass(hint):
                walk(typing.cast(type, hint), join(prefix, f.name))
            elif item is not None and dataclasses.is_dataclass(item):
                walk(typing.cast(type, item), join(prefix, f.name + ".NAME"))
            else:
                factory: Any = f.default_factory
                default = f.default if f.default is not dataclasses.MISSING else factory()
                rows.append((join(prefix, f.name), repr(default), f.metadata.get("doc", "")))

    walk(SimulationConfig, "")
    return rows


# -- overrides, scenarios and sweeps ----------------------------------------------------------------


def flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested tables as dotted keys: {"a": {"b": 1}} -> {"a.b": 1}. Quoted keys that already hold dots
    are taken as paths too. Population tables (workers, challengers) stay tables of dotted keys."""
    flat: dict[str, Any] = {}
    for key, value in table.items():
        path = join(prefix, key)
        if isinstance(value, dict) and value:
            flat.update(flatten(value, path))
        else:
            flat[path] = value
    return flat


def apply_override(table: dict[str, Any], dotted: str, value: Any, where: str) -> None:
    """Set `dotted` in the nested `table` (creating intermediate tables), checking the path against the
    schema so a typo fails with the name of the key it was meant to be."""
    parts = dotted.split(".")
    check_path(parts, where)
    node = table
    for part in parts[:-1]:
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise ConfigError(f"{where}: {dotted!r} goes through {part!r}, which is not a table")
        node = child
    node[parts[-1]] = value


def check_path(parts: list[str], where: str) -> None:
    cls: Any = SimulationConfig
    i = 0
    while i < len(parts):
        part = parts[i]
        if not dataclasses.is_dataclass(cls):
            raise ConfigError(f"{where}: {'.'.join(parts)!r} goes below a value")
        names = [f.name for f in dataclasses.fields(cls)]
        if part not in names:
            raise ConfigError(f"{where}: {'.'.join(parts)!r}: {part!r} is not a key here{compute_suggestion(part, names)}")
        hint = typing.get_type_hints(cls)[part]
        if typing.get_origin(hint) is dict:
            item = typing.get_args(hint)[1]
            if i + 1 >= len(parts):
                return
            i += 2  # skip the population or parameter name
            cls = item if dataclasses.is_dataclass(item) else None
            if cls is None:
                if i < len(parts):
                    raise ConfigError(f"{where}: {'.'.join(parts)!r} goes below a value")
                return
            continue
        cls = hint
        i += 1
    if dataclasses.is_dataclass(cls):
        raise ConfigError(f"{where}: {'.'.join(parts)!r} names a table; name a key inside it")


def derive_seed(base_seed: int, stream: int) -> int:
    """The 63-bit seed of stream `stream` (a repetition, or a run index without common seeds):
    independent streams for different numbers (numpy's SeedSequence spawn keys)."""
    sequence = np.random.SeedSequence(base_seed, spawn_key=(stream,))
    return int(sequence.generate_state(1, dtype=np.uint64)[0] >> np.uint64(1))


def load_experiment(path: str | Path) -> Experiment:
    """Read a TOML config file into an Experiment; ConfigError (naming the file and key) otherwise."""
    path = Path(path)
    try:
        text = read_bounded(path, "config", MAX_CONFIG_BYTES).decode("utf-8")
    except FileFormatError as error:
        raise ConfigError(str(error)) from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: not UTF-8 text: {error}") from None
    try:
        table = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: not valid TOML: {error}") from None
    except RecursionError:  # the parser recurses per level: the interpreter's stack bounds the nesting
        raise ConfigError(f"{path}: nests arrays or tables too deeply to be a config") from None
    try:
        return compute_experiment(table)
    except ConfigError as error:
        raise ConfigError(f"{path}: {error}") from None


def compute_experiment(table: dict[str, Any]) -> Experiment:
    """Expand a config table into its runs, in order: scenario, then sweep point (the last sweep key
    varies fastest), then repetition. Every variant is built and validated before any run starts."""
    table = dict(table)
    scenarios_table = table.pop("scenarios", {})
    sweep_table = table.pop("sweep", {})
    if not isinstance(scenarios_table, dict) or not isinstance(sweep_table, dict):
        raise ConfigError("scenarios and sweep are tables")
    base = build_config(table)
    scenarios: dict[str, dict[str, Any]] = {}
    for name, overrides in scenarios_table.items():
        if not isinstance(overrides, dict):
            raise ConfigError(f"scenarios.{name}: expected a table of overrides, got {overrides!r}")
        scenarios[name] = flatten(overrides)
    if not scenarios:
        scenarios = {"base": {}}
    sweep: list[tuple[str, tuple[Any, ...]]] = []
    for key, values in flatten(sweep_table).items():
        if not isinstance(values, list) or not values:
            raise ConfigError(f"sweep.{key}: expected a non-empty list of values, got {values!r}")
        check_path(key.split("."), f"sweep.{key}")
        sweep.append((key, tuple(values)))
    for axis in (base.report.phase_x, base.report.phase_y):
        if axis and axis not in dict(sweep):
            raise ConfigError(f"report: phase axis {axis!r} is not a sweep key ({', '.join(k for k, _ in sweep) or 'no sweep'})")
    runs: list[RunSpec] = []
    combos = list(itertools.product(*(values for _, values in sweep)))
    for scenario, overrides in scenarios.items():
        for combo in combos:
            variant = _deep_copy(table)
            for key, value in overrides.items():
                apply_override(variant, key, value, f"scenarios.{scenario}")
            point = tuple((key, value) for (key, _), value in zip(sweep, combo, strict=True))
            for key, value in point:
                apply_override(variant, key, value, f"sweep.{key}")
            label = scenario + "".join(f", {k}={v}" for k, v in point)
            try:
                config = build_config(variant)
            except ConfigError as error:
                raise ConfigError(f"[{label}] {error}") from None
            for repetition in range(config.run.repetitions):
                stream = repetition if config.run.common_seeds else len(runs)
                seed = derive_seed(config.run.seed, stream)
                runs.append(RunSpec(len(runs), scenario, point, repetition, seed, config))
    return Experiment(base, tuple(scenarios), tuple(sweep), tuple(runs), table)


def _deep_copy(table: dict[str, Any]) -> dict[str, Any]:
    return {k: _deep_copy(v) if isinstance(v, dict) else (list(v) if isinstance(v, list) else v) for k, v in table.items()}
