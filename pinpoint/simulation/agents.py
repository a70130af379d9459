"""Agent policies: pure functions that return decisions as data (STYLE.md, item 6).

Agents live in one `Agents` table of numpy arrays (one entry per account: users, then worker
populations, then challenger populations); a policy reads the table and a random generator and
returns what the agents want to do. The engine (engine.py) is the responder: it carries the decisions
out through the protocol's transitions and nothing else.

Strategies:
- users post jobs at a Poisson rate, with a work size and a maximum price per work unit;
- workers: honest (always computes), cheater (cheats with probability q, saving a share of the
  compute), adaptive (q moves toward what paid), lazy (never computes, submits a guess that is right
  with a small probability);
- challengers: each job is watched by at most one challenger (while they have capacity left) who
  verifies it with probability p at a cost per work unit; fixed or adaptive p. A guesser is a watcher
  that verifies only the jobs it guesses are forced-error tests. Besides the watchers, griefers
  dispute jobs they are dealt (with probability p) without checking them, late in their window, to
  delay the worker's payment; colluders dispute their partner population's wrong cheats first and
  throw their games.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from pinpoint.simulation.config import (
    ChallengerPopulation,
    ChurnSection,
    SimulationConfig,
    UserSection,
    WorkerPopulation,
)

USER, WORKER, CHALLENGER = 0, 1, 2
"""Agent kinds."""

IDLE, ACTIVE, LEAVING = 0, 1, 2
"""Agent status: outside the market (may enter), in it, or on its way out (stake unbonding)."""

TYPE_NAMES = ("user", "honest", "cheater", "adaptive", "lazy", "challenger_fixed", "challenger_adaptive", "griefer",
              "colluder", "guesser")
"""Agent types, the groups profits are reported by (`profit_<type>` columns)."""

(T_USER, T_HONEST, T_CHEATER, T_ADAPTIVE, T_LAZY, T_CHALLENGER_FIXED, T_CHALLENGER_ADAPTIVE, T_GRIEFER, T_COLLUDER,
 T_GUESSER) = range(len(TYPE_NAMES))

_WORKER_TYPES = {"honest": T_HONEST, "cheater": T_CHEATER, "adaptive": T_ADAPTIVE, "lazy": T_LAZY}
_CHALLENGER_TYPES = {"fixed": T_CHALLENGER_FIXED, "adaptive": T_CHALLENGER_ADAPTIVE, "griefer": T_GRIEFER,
                     "colluder": T_COLLUDER, "guesser": T_GUESSER}
WATCHER_TYPES = (T_CHALLENGER_FIXED, T_CHALLENGER_ADAPTIVE, T_GUESSER)
"""Challenger types dealt watch slots (griefers and colluders act besides them)."""


@dataclass(frozen=True, slots=True)
class PopulationInfo:
    """One population of the config: its name, kind, type and members (agent indices)."""

    name: str
    kind: int
    type_code: int
    members: np.ndarray  # agent indices, shape (size,)
    churns: bool
    memory: float  # adaptive payoff memory


@dataclass(slots=True)
class Agents:
    """Every agent's fixed traits and changing state, as arrays of shape (n,)."""

    names: list[str]
    kind: np.ndarray  # int8: USER, WORKER or CHALLENGER
    type_code: np.ndarray  # int8: index into TYPE_NAMES
    population: np.ndarray  # int16: index into `populations`
    populations: list[PopulationInfo]
    status: np.ndarray  # int8: IDLE, ACTIVE or LEAVING
    probability: np.ndarray  # float: workers' cheating chance q, challengers' verifying chance p
    min_probability: np.ndarray  # float: adaptive floor
    max_probability: np.ndarray  # float: adaptive ceiling
    learning_rate: np.ndarray  # float: adaptive step per epoch
    unit_cost: np.ndarray  # float tokens per work unit: compute (workers), checking (challengers), value (users)
    cheat_saving: np.ndarray  # float: share of compute a cheat saves
    guess_accuracy: np.ndarray  # float: lazy workers' chance of guessing right
    ask: np.ndarray  # int64 tokens per work unit a worker asks
    capacity: np.ndarray  # int64: jobs per epoch (workers take, challengers watch)
    stake_multiple: np.ndarray  # float: stake bonded / bonding-curve price at entry
    fixed_cost: np.ndarray  # float tokens per epoch while active
    initial_balance: np.ndarray  # int64 tokens at genesis
    ema_profit: np.ndarray  # float tokens per epoch: each agent's recent profit (churn)
    tenure: np.ndarray  # int64 epochs since the agent last entered
    target_stake: np.ndarray  # int64 tokens a worker keeps bonded (topped up after a slash)
    pop_signal: np.ndarray = field(default_factory=lambda: np.zeros(0))  # float per population: churn entry signal
    partner: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int16))  # int16: a colluder's partner population, else -1
    grief_chain: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))  # int64: a griefer's disputes in a row per job

    @property
    def size(self) -> int:
        return len(self.names)


def create_agents(config: SimulationConfig, ask_noise: np.ndarray | None = None) -> Agents:
    """The agent table of `config`: users `u0..`, then each worker population's members (`<pop>0..`,
    the first `count` active, the `pool` after them idle), then the challengers likewise. `ask_noise`
    (shape (workers,), values in [-1, 1]) spreads asks; None means no spread."""
    rows: list[dict[str, float | int | str]] = []
    populations: list[PopulationInfo] = []

    def add_population(name: str, kind: int, type_code: int, count: int, pool: int, churns: bool, memory: float,
                       traits: dict[str, float | int]) -> None:
        start = len(rows)
        for i in range(count + pool):
            rows.append(dict(traits, name=f"{name}{i}", kind=kind, type_code=type_code, population=len(populations),
                             status=ACTIVE if i < count else IDLE))
        populations.append(PopulationInfo(name, kind, type_code, np.arange(start, len(rows)), churns, memory))

    users: UserSection = config.users
    add_population("u", USER, T_USER, users.count, 0, False, 1.0, {
        "probability": 0.0, "min_probability": 0.0, "max_probability": 0.0, "learning_rate": 0.0,
        "unit_cost": users.value_per_unit, "cheat_saving": 0.0, "guess_accuracy": 0.0, "ask": 0, "capacity": 0,
        "stake_multiple": 1.0, "fixed_cost": 0.0, "initial_balance": users.initial_balance,
    })
    for name, w in config.workers.items():
        wp: WorkerPopulation = w
        lazy = wp.strategy == "lazy"
        add_population(name, WORKER, _WORKER_TYPES[wp.strategy], wp.count, wp.pool, wp.churn, wp.memory, {
            "probability": 1.0 if lazy else (wp.cheat_probability if wp.strategy != "honest" else 0.0),
            "min_probability": wp.min_probability, "max_probability": wp.max_probability,
            "learning_rate": wp.learning_rate if wp.strategy == "adaptive" else 0.0,
            "unit_cost": wp.compute_cost, "cheat_saving": 1.0 if lazy else wp.cheat_saving,
            "guess_accuracy": wp.guess_accuracy if lazy else 0.0,
            "ask": 0, "capacity": wp.capacity, "stake_multiple": wp.stake_multiple, "fixed_cost": wp.fixed_cost,
            "initial_balance": wp.initial_balance, "markup": wp.ask_markup, "spread": wp.ask_spread,
        })
    worker_population = {name: k + 1 for k, name in enumerate(config.workers)}  # users are population 0
    for name, c in config.challengers.items():
        cp: ChallengerPopulation = c
        add_population(name, CHALLENGER, _CHALLENGER_TYPES[cp.strategy], cp.count, cp.pool, cp.churn, cp.memory, {
            "probability": cp.verify_probability, "min_probability": cp.min_probability,
            "max_probability": cp.max_probability,
            "learning_rate": cp.learning_rate if cp.strategy == "adaptive" else 0.0,
            "unit_cost": cp.check_cost, "cheat_saving": 0.0, "guess_accuracy": 0.0, "ask": 0,
            "capacity": cp.capacity, "stake_multiple": 1.0, "fixed_cost": cp.fixed_cost,
            "initial_balance": cp.initial_balance, "partner": worker_population.get(cp.partner, -1),
            "grief_chain": cp.grief_chain,
        })
    n = len(rows)

    def column(key: str, dtype: type) -> np.ndarray:
        return np.array([r.get(key, 0) for r in rows], dtype=dtype)

    kind = column("kind", np.int8)
    ask = np.zeros(n, dtype=np.int64)
    workers = np.flatnonzero(kind == WORKER)
    noise = np.zeros(len(workers)) if ask_noise is None else ask_noise
    for j, i in enumerate(workers):
        r = rows[i]
        if config.market.assignment == "reputation":
            ask[i] = config.market.posted_unit_price
        else:
            # ceil: an ask never falls below cost x markup; at least one token per work unit
            raw = float(r["unit_cost"]) * float(r["markup"]) * (1.0 + float(r["spread"]) * float(noise[j]))
            ask[i] = max(1, math.ceil(raw - 1e-9))
    return Agents(
        names=[str(r["name"]) for r in rows], kind=kind, type_code=column("type_code", np.int8),
        population=column("population", np.int16), populations=populations, status=column("status", np.int8),
        probability=column("probability", np.float64), min_probability=column("min_probability", np.float64),
        max_probability=column("max_probability", np.float64), learning_rate=column("learning_rate", np.float64),
        unit_cost=column("unit_cost", np.float64), cheat_saving=column("cheat_saving", np.float64),
        guess_accuracy=column("guess_accuracy", np.float64), ask=ask, capacity=column("capacity", np.int64),
        stake_multiple=column("stake_multiple", np.float64), fixed_cost=column("fixed_cost", np.float64),
        initial_balance=column("initial_balance", np.int64), ema_profit=np.zeros(n), tenure=np.zeros(n, dtype=np.int64),
        target_stake=np.zeros(n, dtype=np.int64), pop_signal=np.full(len(populations), np.inf),
        partner=np.array([r.get("partner", -1) for r in rows], dtype=np.int16),
        grief_chain=np.array([r.get("grief_chain", 1) for r in rows], dtype=np.int64),
    )


# -- decisions ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class JobRequests:
    """Jobs users want to post this epoch, shape (jobs,) each."""

    users: np.ndarray  # agent index of the poster
    work_units: np.ndarray  # int64
    max_prices: np.ndarray  # int64 tokens


def decide_job_requests(users: UserSection, user_index: np.ndarray, min_payment: int, rng: np.random.Generator) -> JobRequests:
    """Each user posts Poisson(jobs_per_epoch) jobs with uniform work units and maximum unit price; a
    maximum price below the protocol's minimum payment is raised to it (the user would not post less)."""
    counts = rng.poisson(users.jobs_per_epoch, len(user_index))
    posters = np.repeat(user_index, counts)
    n = len(posters)
    units = rng.integers(users.work_units[0], users.work_units[1] + 1, n)
    unit_prices = rng.integers(users.max_unit_price[0], users.max_unit_price[1] + 1, n)
    return JobRequests(posters, units, np.maximum(units * unit_prices, min_payment))


@dataclass(frozen=True, slots=True)
class Executions:
    """How assigned workers carry out their jobs, shape (jobs,) each."""

    cheated: np.ndarray  # bool: skipped (some of) the work
    wrong: np.ndarray  # bool: the committed result is not the true one (a cheat not guessed right, or a forced error)
    cost: np.ndarray  # float tokens of compute spent
    gain: np.ndarray  # float tokens saved by cheating (0 for honest work)


def decide_executions(
    agents: Agents, workers: np.ndarray, work_units: np.ndarray, forced: np.ndarray, rng: np.random.Generator
) -> Executions:
    """Each worker cheats with its probability q (honest: 0, lazy: 1); a cheat saves `cheat_saving` of
    the compute cost; a lazy guess is right with `guess_accuracy`. A forced error makes the result wrong
    whatever the worker did (the protocol ordered it)."""
    n = len(workers)
    draws = rng.random((2, n))
    cheated = draws[0] < agents.probability[workers]
    honest_cost = agents.unit_cost[workers] * work_units
    gain = np.where(cheated, honest_cost * agents.cheat_saving[workers], 0.0)
    guessed = cheated & (draws[1] < agents.guess_accuracy[workers])
    wrong = (cheated & ~guessed) | forced
    return Executions(cheated, wrong, honest_cost - gain, gain)


@dataclass(frozen=True, slots=True)
class Checks:
    """Who watches each newly committed job and whether it verifies it, shape (jobs,) each."""

    watcher: np.ndarray  # agent index of the watching challenger, -1 if nobody had capacity
    verify: np.ndarray  # bool: the watcher re-executes and compares
    cost: np.ndarray  # float tokens the verification costs the watcher
    p_watch: np.ndarray  # float: the watcher's verifying chance (0 when unwatched): the expected detection


def decide_checks(agents: Agents, challengers: np.ndarray, work_units: np.ndarray, rng: np.random.Generator) -> Checks:
    """Active challengers' watch slots (capacity each) are dealt to the jobs at random; a watcher
    verifies its job with its probability p, paying its check cost per work unit."""
    n = len(work_units)
    watcher = np.full(n, -1, dtype=np.int64)
    slots = np.repeat(challengers, agents.capacity[challengers])
    if len(slots) and n:
        if len(slots) >= n:
            watcher = rng.choice(slots, size=n, replace=False)
        else:
            watcher[rng.choice(n, size=len(slots), replace=False)] = rng.permutation(slots)
    watched = watcher >= 0
    p_watch = np.where(watched, agents.probability[np.where(watched, watcher, 0)], 0.0)
    verify = rng.random(n) < p_watch
    cost = np.where(verify, agents.unit_cost[np.where(watched, watcher, 0)] * work_units, 0.0)
    return Checks(watcher, verify, cost, p_watch)


def decide_guesses(checks: Checks, guessing: np.ndarray, guesses: np.ndarray, work_units: np.ndarray,
                   unit_cost: np.ndarray) -> Checks:
    """A guesser verifies a job it watches only if it guesses the job is a forced-error test: where
    `guessing` (the job's watcher is a guesser), `verify` keeps only the jobs `guesses` names, and the
    detection chance of the others is 0. Shapes (jobs,); `unit_cost` per agent."""
    verify = checks.verify & (~guessing | guesses)
    p_watch = np.where(guessing & ~guesses, 0.0, checks.p_watch)
    cost = np.where(verify, unit_cost[np.where(checks.watcher >= 0, checks.watcher, 0)] * work_units, 0.0)
    return Checks(checks.watcher, verify, cost, p_watch)


@dataclass(frozen=True, slots=True)
class Griefs:
    """Jobs griefers will dispute without checking them, shape (griefs,) each."""

    job: np.ndarray  # index into the epoch's committed jobs
    griefer: np.ndarray  # agent index of the griefer


def decide_griefs(agents: Agents, griefers: np.ndarray, jobs: int, rng: np.random.Generator) -> Griefs:
    """Griefers' slots (capacity each) are dealt to the jobs at random, as watchers' are; a griefer
    disputes a job it is dealt with its probability p."""
    if not len(griefers) or not jobs:
        return Griefs(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64))
    dealt = decide_checks(agents, griefers, np.zeros(jobs, dtype=np.int64), rng)
    chosen = np.flatnonzero(dealt.verify)
    return Griefs(chosen, dealt.watcher[chosen])


@dataclass(frozen=True, slots=True)
class Churn:
    """Agents that leave and agents that enter this epoch (agent indices)."""

    leave: np.ndarray
    enter: np.ndarray


def decide_churn(agents: Agents, churn: ChurnSection, rng: np.random.Generator) -> Churn:
    """Active agents whose recent profit is below `exit_below` leave (after `min_tenure`); idle agents of
    a population whose active members average above `enter_above` enter with chance `entry_rate`. A
    population with nobody active keeps the last signal it had (at first: enter)."""
    churns = np.array([p.churns for p in agents.populations])[agents.population] & (agents.kind != USER)
    active = agents.status == ACTIVE
    leave = np.flatnonzero(churns & active & (agents.tenure >= churn.min_tenure) & (agents.ema_profit < churn.exit_below))
    for k, pop in enumerate(agents.populations):
        members = pop.members[active[pop.members]]
        if len(members):
            agents.pop_signal[k] = float(agents.ema_profit[members].mean())
    paying = agents.pop_signal[agents.population] > churn.enter_above
    candidates = np.flatnonzero(churns & (agents.status == IDLE) & paying)
    enter = candidates[rng.random(len(candidates)) < churn.entry_rate]
    return Churn(leave, enter)


# -- adaptation ------------------------------------------------------------------------------------


@dataclass(slots=True)
class PayoffMemory:
    """Exponential averages of what two actions paid, per job or per check, in tokens (None until the
    action has been seen), and of a payoff scale (tokens) that makes the step size unit-free."""

    memory: float
    chosen: float | None = None  # average payoff of the action the probability is about (cheat / verify)
    other: float | None = None  # average payoff of the alternative (honest work / not verifying: 0)
    scale: float | None = None


def compute_average(previous: float | None, total: float, count: int, memory: float) -> float | None:
    """Exponential average updated with this epoch's mean (unchanged when there were no samples)."""
    if count == 0:
        return previous
    mean = total / count
    return mean if previous is None else (1.0 - memory) * previous + memory * mean


def compute_adapted_probability(
    probability: np.ndarray, advantage: float, scale: float, rate: np.ndarray, low: np.ndarray, high: np.ndarray
) -> np.ndarray:
    """Move toward what paid: p + rate * tanh(advantage / scale), kept within [low, high]. `advantage`
    is the average payoff of the action minus that of the alternative (tokens)."""
    step = math.tanh(advantage / scale) if scale > 0 else float(np.sign(advantage))
    return np.clip(probability + rate * step, low, high)
