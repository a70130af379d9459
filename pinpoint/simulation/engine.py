"""The epoch loop: agents' decisions (agents.py) carried out through the protocol's own transitions
(protocol.economy), in memory, one run at a time.

One epoch, top to bottom:

    1. users post jobs                        process_post_job
    2. reverse auctions (if configured)       process_bid, process_close_auction
    3. assigned workers execute and commit    process_submit_commitment   (cheat or not: agents decide)
    4. challengers watch and verify; a wrong  process_checked_dispute, process_dispute_verdict
       result is disputed and the game's      (the honest side wins; each side pays its game cost)
       verdict settled after game_epochs      process_settle_job for a caught forced error
       (at once when 0); colluders open
       first on their partners' cheats and
       throw their games; griefers open
       losing disputes in a window's last
       epoch; games due are settled
    5. jobs whose window is over are paid     process_settle_job
    6. upkeep: stake top-ups after a slash,   process_stake, process_heartbeat, process_claim_vesting,
       heartbeats, vesting claims, leaving    process_deregister_worker, process_unbond,
       and entering (churn), stale jobs       process_withdraw_unbonded, process_register_worker,
                                              process_post_ask, process_cancel_job
    7. the epoch ends: batch auction,         process_epoch
       emission and rewards
    8. adaptive agents move toward what paid; metrics; the economy's invariants

Off-chain costs (compute, checking, dispute games) never touch the ledger; profits are ledger income
(payments, rewards, slash shares, minus slashes) minus those costs.

The simulation models commitments and games rather than signing and playing them: it calls the
transitions a checked commitment and a checked settlement lead to (`process_checked_commitment`,
`process_checked_dispute`, `process_dispute_verdict` with the outcome of a game the honest side
wins), the same state changes the ledger makes after checking the evidence. A game's outcome follows
from the two roots alone: a challenger that computed the true result wins against a wrong one; a
griefer's made-up root loses against a true result, and against a wrong one both lose; a colluder
throws its game (its partner's cheat is proven wrong only by someone else's game).

Terminal jobs are archived (dropped from `state.jobs`) at the end of each epoch once the run has
recorded them: the economy keeps every job forever, which would make each epoch's invariant check
cost O(all jobs ever). Archiving keeps every invariant true (a terminal job holds no escrow, bond or
open-job count) and the per-epoch cost O(live state).
"""

from __future__ import annotations

import contextlib
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from pinpoint.simulation.agents import (
    ACTIVE,
    CHALLENGER,
    IDLE,
    LEAVING,
    T_ADAPTIVE,
    T_CHALLENGER_ADAPTIVE,
    T_CHEATER,
    T_COLLUDER,
    T_GRIEFER,
    T_GUESSER,
    TYPE_NAMES,
    USER,
    WATCHER_TYPES,
    WORKER,
    PayoffMemory,
    compute_adapted_probability,
    compute_average,
    create_agents,
    decide_checks,
    decide_churn,
    decide_executions,
    decide_griefs,
    decide_guesses,
    decide_job_requests,
)
from pinpoint.simulation.config import RunSpec, SimulationConfig
from pinpoint.simulation.metrics import EPOCH_COLUMNS, PROFIT_COLUMNS, compute_gini, compute_rate
from protocol.economy import (
    BOTH_WRONG,
    CHALLENGER_WRONG,
    WORKER_WRONG,
    AuctionMode,
    ChallengeWindowClosed,
    CommitmentRecord,
    DisputeAlreadyOpen,
    InsufficientFunds,
    JobStatus,
    NoBids,
    NothingToClaim,
    NothingToWithdraw,
    StakeLocked,
    State,
    check_invariants,
    compute_is_forced_error,
    compute_job_tax,
    compute_seal,
    compute_tax_bps,
    create_state,
    get_required_worker_stake,
    get_stake_at_risk,
    is_eligible_worker,
    process_bid,
    process_cancel_job,
    process_checked_commitment,
    process_checked_dispute,
    process_checked_open_seal,
    process_claim_vesting,
    process_close_auction,
    process_deregister_worker,
    process_dispute_verdict,
    process_epoch,
    process_genesis_allocation,
    process_heartbeat,
    process_post_ask,
    process_post_job,
    process_register_worker,
    process_seal_result,
    process_settle_job,
    process_stake,
    process_unbond,
    process_withdraw_unbonded,
)
from protocol.economy.helpers import get_vesting_unreleased
from protocol.economy.jobs import is_forced_error_opening

COMMIT_RIGHT = "c0" * 32
"""Chain root of a true result's modelled run commitment."""

COMMIT_WRONG = "ba" * 32
"""Chain root of a wrong result's modelled run commitment."""

COMMIT_CHECK = "c1" * 32
"""Chain root a challenger's modelled commitment names (anything but the worker's)."""

COMMIT_FORCED = "fe" * 32
"""Chain root of the public commitment a worker reveals on a forced-error job (wrong on order)."""

COMMIT_GRIEF = "9e" * 32
"""Chain root a griefer's modelled commitment names (made up: it computed nothing)."""

COMMIT_COLLUDE = "c0" * 31 + "de"
"""Chain root a colluder's modelled commitment names (another wrong root, for a game it throws)."""

CHECK, CATCH, GRIEF, COLLUDE = "check", "catch", "grief", "collude"
"""Roles of a modelled game: a watcher's dispute of a wrong result, a forced error's catcher disputing
the true result the opening showed, a griefer's dispute, a colluder's thrown game."""


def compute_training_job(job_number: int) -> str:
    """The modelled training job id of the simulation's `job_number`-th posting (unique per posting)."""
    return f"{job_number:064x}"


def compute_record(root: str) -> CommitmentRecord:
    """A modelled run commitment: its root only (the simulation signs nothing); its statement names the
    root, so a seal over it binds the root."""
    return CommitmentRecord(root, "", 1, "model:" + root)

COUNTERS = (
    "jobs_posted", "jobs_unfunded", "jobs_assigned", "jobs_cancelled", "jobs_executed", "jobs_settled", "jobs_slashed",
    "cheats", "wrong_results", "forced_errors", "watched", "checks", "disputes", "cheats_caught", "forced_caught",
    "wrong_cheats", "entered", "left", "cheat_jobs", "honest_jobs", "sealed_committed", "grief_disputes",
    "collusion_disputes", "guess_checks", "guess_hits", "cheats_paid", "honest_paid", "honest_delayed",
    "wrong_cheats_resolved",
)
SUMS = (
    "price_sum", "cheat_profit_sum", "cheat_profit_sumsq", "honest_profit_sum", "honest_profit_sumsq", "cheat_gain_sum",
    "cheat_price_sum", "cheat_stake_sum", "cheat_vesting_sum", "cheat_pdetect_sum", "check_profit_sum",
    "grief_bonds_lost", "collusion_bonds_lost", "bond_shares_to_workers", "honest_delay_sum",
)


class Transitions:
    """The protocol transitions the engine calls; with `check_each`, every call is followed by the
    economy's `check_invariants` (for tests: slow, but it names the first transition that breaks one)."""

    def __init__(self, check_each: bool) -> None:
        def wrap(function: Callable[..., Any]) -> Callable[..., Any]:
            if not check_each:
                return function

            def checked(state: State, *args: Any) -> Any:
                try:
                    return function(state, *args)
                finally:
                    check_invariants(state)

            checked.__name__ = function.__name__
            return checked

        self.post_job = wrap(process_post_job)
        self.bid = wrap(process_bid)
        self.close_auction = wrap(process_close_auction)
        self.cancel_job = wrap(process_cancel_job)
        self.submit_commitment = wrap(process_checked_commitment)
        self.seal_result = wrap(process_seal_result)
        self.open_seal = wrap(process_checked_open_seal)
        self.open_dispute = wrap(process_checked_dispute)
        self.settle_dispute = wrap(process_dispute_verdict)
        self.settle_job = wrap(process_settle_job)
        self.stake = wrap(process_stake)
        self.unbond = wrap(process_unbond)
        self.withdraw_unbonded = wrap(process_withdraw_unbonded)
        self.register_worker = wrap(process_register_worker)
        self.deregister_worker = wrap(process_deregister_worker)
        self.post_ask = wrap(process_post_ask)
        self.heartbeat = wrap(process_heartbeat)
        self.claim_vesting = wrap(process_claim_vesting)
        self.epoch = wrap(process_epoch)
        self.genesis_allocation = wrap(process_genesis_allocation)


class JobRecord:
    """What the run knows about one live job beyond the ledger (who cheated, what it cost)."""

    __slots__ = ("user", "work_units", "posted", "worker", "price", "cheated", "wrong", "forced", "cost", "gain",
                 "stake", "vesting", "p_watch", "game_cost", "salt", "sealed_root", "catcher", "due")

    def __init__(self, user: int, work_units: int, posted: int) -> None:
        self.user = user
        self.work_units = work_units
        self.posted = posted
        self.worker = -1
        self.price = 0
        self.cheated = False
        self.wrong = False
        self.forced = False
        self.cost = 0.0  # tokens of compute the worker spent
        self.gain = 0.0  # tokens a cheat saved
        self.stake = 0  # worker's stake at risk when it committed
        self.vesting = 0  # worker's unreleased vesting when it committed
        self.p_watch = 0.0  # the watcher's verifying chance
        self.game_cost = 0.0  # the worker's dispute-game cost on this job
        self.salt = ""  # the seal's secret salt (forced errors on)
        self.sealed_root = COMMIT_RIGHT  # the result the worker sealed as its true one
        self.catcher = -1  # the challenger whose game proved the public commitment wrong, pending the seal
        self.due = -1  # epoch the job's first challenge window ended: payment after it is delayed


@dataclass(frozen=True, slots=True)
class Game:
    """A modelled dispute game in play: the dispute's number, its job, the challenger and the worker
    (agent indices), the outcome its transcript will prove, the challenger's role (CHECK, CATCH, GRIEF,
    COLLUDE) and the bond the challenger posted."""

    number: int
    job_id: int
    challenger: int
    worker: int
    outcome: str
    role: str
    bond: int


@dataclass
class RunResult:
    """One run's outcome: its identity, the per-epoch table columns (shape (epochs,) each) and totals."""

    index: int
    scenario: str
    point: tuple[tuple[str, Any], ...]
    repetition: int
    seed: int
    columns: dict[str, np.ndarray]
    final: dict[str, Any]
    seconds: float  # wall time of the run (kept out of the table so tables compare bit for bit)


class Simulation:
    """One run: the economy's state, the agents, and the loop that joins them."""

    def __init__(self, config: SimulationConfig, seed: int) -> None:
        self.config = config
        self.rng = np.random.Generator(np.random.PCG64(seed))
        self.params = config.params
        mode = config.run.invariants
        self.tx = Transitions(check_each=mode == "transition")
        self.check_epochs = mode in ("epoch", "transition")
        self.state = create_state(self.params, seed=self.rng.bytes(32))
        n_workers = sum(p.count + p.pool for p in config.workers.values())
        self.agents = create_agents(config, self.rng.uniform(-1.0, 1.0, n_workers))
        a = self.agents
        self.names = a.names
        self.index = {name: i for i, name in enumerate(a.names)}
        self.users = np.flatnonzero(a.kind == USER)
        self.mode = AuctionMode.BATCH if config.market.auction == "batch" else AuctionMode.REVERSE
        self.records: dict[int, JobRecord] = {}
        self.pending: list[tuple[int, int, int]] = []  # (job, worker agent, price) assigned, not yet executed
        self.to_reveal: list[int] = []  # jobs sealed last epoch: their draw is in, they reveal this epoch
        self.games: dict[int, list[Game]] = {}  # epoch -> games whose settlement is due then
        self.griefs: dict[int, list[tuple[int, int, int]]] = {}  # epoch -> (job, griefer, links left) disputes to open then
        self.game_epochs = config.dispute.game_epochs
        self.settle_due: dict[int, list[int]] = {}
        self.close_due: dict[int, list[int]] = {}
        self.withdraw_due: dict[int, list[int]] = {}
        self.open_jobs: deque[tuple[int, int]] = deque()  # (posted epoch, job) of open batch jobs
        self.archive: list[int] = []
        self.slashed_workers: list[int] = []
        self.held_shares: dict[int, int] = {}  # job -> losing challengers' bond shares held for its worker
        # this epoch's ledger flows and outcomes, reset at the start of every step
        self.income: list[tuple[int, float]] = []  # (agent, tokens) ledger income (negative for slashes)
        self.cost: list[tuple[int, float]] = []  # (agent, tokens) off-chain cost
        self.pay: list[tuple[int, float]] = []  # (agent, tokens) job payments and rewards (Gini)
        self.worker_outcomes: list[tuple[int, bool, float, int]] = []  # (population, cheated, profit, price) resolved jobs
        self.check_outcomes: list[tuple[int, float, float, int]] = []  # (population, profit, check cost, checks)
        self.memories = [PayoffMemory(p.memory) for p in a.populations]
        self.heartbeat_every = max(1, self.params.heartbeat_grace_epochs)
        self.claim_every = max(1, self.params.vesting_epochs)
        self.phase = np.arange(a.size, dtype=np.int64)
        self.genesis_active = a.status == ACTIVE
        self.columns: dict[str, list[float]] = {name: [] for name in list(EPOCH_COLUMNS) + list(PROFIT_COLUMNS)}
        self.invariant_checks = 0
        self.slashes = np.zeros(a.size, dtype=np.int64)  # disputes each agent lost as a worker since genesis
        self.income_total = np.zeros(a.size)  # tokens of ledger income per agent since genesis (users: value - payments)
        self._genesis()

    # -- genesis ----------------------------------------------------------------------------------

    def _genesis(self) -> None:
        a, st = self.agents, self.state
        for i, name in enumerate(self.names):
            self.tx.genesis_allocation(st, name, int(a.initial_balance[i]))
        for i in np.flatnonzero((a.kind == WORKER) & (a.status == ACTIVE)).tolist():
            if not self._enter_worker(i):
                raise ValueError(f"worker {self.names[i]} cannot afford the stake to register at genesis")

    def _enter_worker(self, i: int) -> bool:
        """Bond the target stake, register, post an ask (batch auctions). False if it cannot afford it."""
        a, st, name = self.agents, self.state, self.names[i]
        required = get_required_worker_stake(st)
        # ceil: the target stake is never below multiple x price, so it always covers the required stake
        target = math.ceil(required * float(a.stake_multiple[i]) - 1e-9)
        held = st.stakes.get(name, 0)
        if target > held and st.accounts[name].balance < target - held:
            return False
        if target > held:
            self.tx.stake(st, name, target - held)
        self.tx.register_worker(st, name)
        if self.mode == AuctionMode.BATCH:
            self.tx.post_ask(st, name, int(a.ask[i]), int(a.capacity[i]))
        a.target_stake[i] = max(target, held)
        return True

    # -- the loop -----------------------------------------------------------------------------------

    def run(self) -> dict[str, np.ndarray]:
        for _ in range(self.config.run.epochs):
            self.step()
        if self.config.run.invariants == "end":
            self._check_invariants()
        return {k: np.asarray(v) for k, v in self.columns.items()}

    def step(self) -> None:
        """Play one epoch (see the module docstring for the order)."""
        a, st = self.agents, self.state
        e = st.epoch
        c = dict.fromkeys(COUNTERS, 0)
        s = dict.fromkeys(SUMS, 0.0)
        self.income, self.cost, self.pay, self.worker_outcomes, self.check_outcomes = [], [], [], [], []
        self.slashed_workers = []
        active_before = a.status == ACTIVE
        supply_before = st.total_supply - st.burned
        burned_before = st.burned
        slashed_before = st.totals.slashed
        rewards_before = st.totals.challenger_rewards
        jackpot_before = st.totals.jackpot_paid

        self._post_jobs(c)
        if self.mode == AuctionMode.REVERSE:
            self._close_auctions(e, c)
        committed = self._execute(c, s)
        self._collude(committed, c, s)
        self._check(committed, c, s)
        self._grief(e, committed, c, s)
        self._settle_games(e, c, s)
        self._settle_due(e, c, s)
        self._top_up(c)
        self._heartbeats(e)
        self._claim_vesting(e)
        self._withdraw(e)
        if self.config.churn.enabled:
            self._churn(e, c)
        self._cancel_stale(e, c)
        report = self.tx.epoch(st, self.rng.bytes(32))
        for assignment in report.assignments:
            self._assigned(assignment.job_id, assignment.worker, assignment.price, c)
        for name, amount in report.rewards.items():
            i = self.index[name]
            self.income.append((i, amount))
            self.pay.append((i, amount))
        self._adapt()
        self._record(c, s, report, active_before, supply_before, burned_before, slashed_before, rewards_before,
                     jackpot_before)
        for job_id in self.archive:
            del st.postings[st.jobs.pop(job_id).training_job]
        self.archive = []
        if self.check_epochs:
            self._check_invariants()

    def _check_invariants(self) -> None:
        check_invariants(self.state)
        self.invariant_checks += 1

    # -- 1, 2: jobs and auctions ----------------------------------------------------------------------

    def _post_jobs(self, c: dict[str, int]) -> None:
        st, names, records, tx = self.state, self.names, self.records, self.tx
        e = st.epoch
        requests = decide_job_requests(self.config.users, self.users, self.params.min_job_payment, self.rng)
        mode = self.mode
        bidders = self.config.market.bidders_per_job
        a = self.agents
        candidates = np.flatnonzero((a.kind == WORKER) & (a.status == ACTIVE))
        duration = self.params.auction_duration_epochs
        for user, units, max_price in zip(requests.users.tolist(), requests.work_units.tolist(),
                                          requests.max_prices.tolist(), strict=True):
            try:
                job_id = tx.post_job(st, names[user], max_price, units, compute_training_job(st.next_job_id), mode)
            except InsufficientFunds:
                c["jobs_unfunded"] += 1
                continue
            c["jobs_posted"] += 1
            records[job_id] = JobRecord(user, units, e)
            if mode == AuctionMode.BATCH:
                self.open_jobs.append((e, job_id))
            else:
                self._bid(job_id, units, max_price, bidders, candidates)
                self.close_due.setdefault(e + duration, []).append(job_id)

    def _bid(self, job_id: int, units: int, max_price: int, bidders: int, candidates: np.ndarray) -> None:
        """Reverse auction: a few random active, eligible workers bid their ask for the job's size."""
        a, st = self.agents, self.state
        if not len(candidates):
            return
        chosen = self.rng.choice(candidates, size=min(bidders, len(candidates)), replace=False)
        floor = self.params.min_job_payment
        for i in chosen.tolist():
            price = max(floor, int(a.ask[i]) * units)
            name = self.names[i]
            if price <= max_price and is_eligible_worker(st, name):
                self.tx.bid(st, name, job_id, price)

    def _close_auctions(self, e: int, c: dict[str, int]) -> None:
        for job_id in self.close_due.pop(e, []):
            try:
                assignment = self.tx.close_auction(self.state, job_id)
            except NoBids:
                self._cancel(job_id, c)
                continue
            self._assigned(assignment.job_id, assignment.worker, assignment.price, c)

    def _assigned(self, job_id: int, worker: str, price: int, c: dict[str, int]) -> None:
        c["jobs_assigned"] += 1
        self.pending.append((job_id, self.index[worker], price))

    def _cancel(self, job_id: int, c: dict[str, int]) -> None:
        record = self.records.pop(job_id)
        self.tx.cancel_job(self.state, self.names[record.user], job_id)
        self.archive.append(job_id)
        c["jobs_cancelled"] += 1

    def _cancel_stale(self, e: int, c: dict[str, int]) -> None:
        """Users cancel batch jobs that stayed unmatched through `user_patience` more auctions."""
        limit = e - self.config.market.user_patience - 1
        jobs = self.state.jobs
        while self.open_jobs and self.open_jobs[0][0] <= limit:
            _, job_id = self.open_jobs.popleft()
            job = jobs.get(job_id)
            if job is not None and job.status == JobStatus.OPEN:
                self._cancel(job_id, c)

    # -- 3: execution -----------------------------------------------------------------------------------

    def _execute(self, c: dict[str, int], s: dict[str, float]) -> list[int]:
        """Workers carry out the jobs assigned to them and commit; returns the jobs committed this epoch.

        With forced errors on a worker seals its result (under a secret salt) and reveals it the next
        epoch, once the draw's seed is in: its sealed result, or on a forced-error job a wrong one."""
        a, st, records, names, tx = self.agents, self.state, self.records, self.names, self.tx
        jobs = st.jobs
        window = self.params.challenge_window_epochs
        due = self.settle_due.setdefault(st.epoch + window, [])
        committed: list[int] = []
        reveals, self.to_reveal = self.to_reveal, []
        for job_id in reveals:
            job, r = jobs[job_id], records[job_id]
            if job.status != JobStatus.SEALED:
                continue
            r.forced = is_forced_error_opening(job, r.salt)
            public = COMMIT_FORCED if r.forced else r.sealed_root
            r.wrong = public != COMMIT_RIGHT
            tx.submit_commitment(st, names[r.worker], job_id, compute_record(public))
            self._committed(job_id, r, c)
            due.append(job_id)
            committed.append(job_id)
        pending, self.pending = self.pending, []
        if not pending:
            return committed
        job_ids = [p[0] for p in pending]
        workers = np.array([p[1] for p in pending], dtype=np.int64)
        units = np.array([records[j].work_units for j in job_ids], dtype=np.int64)
        ex = decide_executions(a, workers, units, np.zeros(len(pending), dtype=bool), self.rng)
        costs = ex.cost.tolist()
        for k, (job_id, worker, price), cheated, wrong, gain in zip(
            range(len(pending)), pending, ex.cheated.tolist(), ex.wrong.tolist(), ex.gain.tolist(), strict=True,
        ):
            name = names[worker]
            r = records[job_id]
            r.worker, r.price, r.cheated, r.wrong = worker, price, cheated, wrong
            r.cost, r.gain = costs[k], gain
            r.sealed_root = COMMIT_WRONG if wrong else COMMIT_RIGHT
            if cheated:
                r.stake = get_stake_at_risk(st, name)
                r.vesting = get_vesting_unreleased(st, name)
            self.cost.append((worker, costs[k]))
            if jobs[job_id].forced_rate_bps > 0:
                r.salt = self.rng.bytes(32).hex()
                tx.seal_result(st, name, job_id, compute_seal(compute_record(r.sealed_root).statement, r.salt))
                self.to_reveal.append(job_id)
                continue
            tx.submit_commitment(st, name, job_id, compute_record(r.sealed_root))
            self._committed(job_id, r, c)
            due.append(job_id)
            committed.append(job_id)
        c["jobs_executed"] += len(pending)
        c["cheats"] += int(ex.cheated.sum())
        s["price_sum"] += float(sum(p[2] for p in pending))
        return committed

    def _committed(self, job_id: int, r: JobRecord, c: dict[str, int]) -> None:
        """Count a public commitment: wrong or not, forced or not; note when its window ends."""
        job = self.state.jobs[job_id]
        r.due = job.window_end
        c["sealed_committed"] += int(job.forced_rate_bps > 0)
        c["wrong_results"] += int(r.wrong)
        c["wrong_cheats"] += int(r.wrong and r.cheated and not r.forced)
        c["forced_errors"] += int(r.forced)

    # -- 4: checks and disputes ---------------------------------------------------------------------------

    def _check(self, committed: list[int], c: dict[str, int], s: dict[str, float]) -> None:
        if not committed:
            return
        a, st, records, names, tx = self.agents, self.state, self.records, self.names, self.tx
        challengers = np.flatnonzero((a.kind == CHALLENGER) & (a.status == ACTIVE) & np.isin(a.type_code, WATCHER_TYPES))
        units = np.array([records[j].work_units for j in committed], dtype=np.int64)
        checks = decide_checks(a, challengers, units, self.rng)
        guessing = (checks.watcher >= 0) & (a.type_code[np.where(checks.watcher >= 0, checks.watcher, 0)] == T_GUESSER)
        if guessing.any():
            guesses = np.array([self._guess(job_id) for job_id in committed], dtype=bool)
            checks = decide_guesses(checks, guessing, guesses, units, a.unit_cost)
            c["guess_checks"] += int((checks.verify & guessing).sum())
            c["guess_hits"] += sum(records[committed[k]].forced for k in np.flatnonzero(checks.verify & guessing).tolist())
        c["watched"] += int((checks.watcher >= 0).sum())
        c["checks"] += int(checks.verify.sum())
        p_watch = checks.p_watch.tolist()
        for k, job_id in enumerate(committed):
            records[job_id].p_watch = p_watch[k]
        game_w = self.config.dispute.game_cost_worker
        game_c = self.config.dispute.game_cost_challenger
        population = a.population
        for k in np.flatnonzero(checks.verify).tolist():
            job_id = committed[k]
            watcher: int = checks.watcher[k].item()
            check_cost = float(checks.cost[k])
            self.cost.append((watcher, check_cost))
            r = records.get(job_id)
            profit = -check_cost
            if r is not None and r.wrong:
                try:
                    opened = tx.open_dispute(st, names[watcher], job_id, compute_record(COMMIT_CHECK))
                except InsufficientFunds:
                    self.check_outcomes.append((int(population[watcher]), profit, check_cost, 1))
                    s["check_profit_sum"] += profit
                    continue
                c["disputes"] += 1
                self.cost.append((watcher, game_c))
                self.cost.append((r.worker, game_w))
                r.game_cost += game_w
                # the dispute game: the honest side (the challenger, since the result is wrong) wins
                game = Game(opened.number, job_id, watcher, r.worker, WORKER_WRONG, CHECK, st.params.challenger_bond)
                profit += self._play(game, c, s) - game_c
            self.check_outcomes.append((int(population[watcher]), profit, check_cost, 1))
            s["check_profit_sum"] += profit

    def _guess(self, job_id: int) -> bool:
        """A guesser's guess that `job_id` is a forced-error test, from what the ledger shows: the draw's
        seed, with the public seal in place of the worker's secret salt (the draw needs the salt, so the
        guess should be right no more often than chance)."""
        job = self.state.jobs[job_id]
        if job.forced_rate_bps == 0 or not job.draw_seed:
            return False
        return compute_is_forced_error(job.draw_seed, job.sealed, job.job_id, job.forced_rate_bps)

    def _collude(self, committed: list[int], c: dict[str, int], s: dict[str, float]) -> None:
        """Colluders open first on their partner population's wrong cheats, as soon as they are committed,
        and throw their games (the game proves the colluder wrong)."""
        a, st, records = self.agents, self.state, self.records
        colluders = np.flatnonzero((a.kind == CHALLENGER) & (a.status == ACTIVE) & (a.type_code == T_COLLUDER))
        if not len(colluders) or not committed:
            return
        game_w = self.config.dispute.game_cost_worker
        game_c = self.config.dispute.game_cost_challenger
        for job_id in committed:
            r = records[job_id]
            if not (r.cheated and r.wrong):
                continue
            partners = colluders[a.partner[colluders] == a.population[r.worker]]
            if not len(partners):
                continue
            colluder = int(partners[job_id % len(partners)])  # spread over the partner's colluders
            try:
                opened = self.tx.open_dispute(st, self.names[colluder], job_id, compute_record(COMMIT_COLLUDE))
            except InsufficientFunds:
                continue
            c["disputes"] += 1
            c["collusion_disputes"] += 1
            self.cost.append((colluder, game_c))
            self.cost.append((r.worker, game_w))
            r.game_cost += game_w
            self._play(Game(opened.number, job_id, colluder, r.worker, CHALLENGER_WRONG, COLLUDE,
                            st.params.challenger_bond), c, s)

    def _grief(self, e: int, committed: list[int], c: dict[str, int], s: dict[str, float]) -> None:
        """Griefers are dealt this epoch's commitments and dispute the ones they pick in the last epoch of
        the window (the latest a dispute can open, so the longest delay); the disputes due now open. A
        chain's next link is opened by the next member of the griefer's population in the epoch the
        previous game settles (before it does: the window is still open), while links are left."""
        a, st, records = self.agents, self.state, self.records
        griefers = np.flatnonzero((a.kind == CHALLENGER) & (a.status == ACTIVE) & (a.type_code == T_GRIEFER))
        griefs = decide_griefs(a, griefers, len(committed), self.rng)
        for k, griefer in zip(griefs.job.tolist(), griefs.griefer.tolist(), strict=True):
            job_id = committed[k]
            if job_id in records:
                links = int(a.grief_chain[griefer])
                self.griefs.setdefault(max(e, st.jobs[job_id].window_end - 1), []).append((job_id, griefer, links))
        game_w = self.config.dispute.game_cost_worker
        for job_id, griefer, links in self.griefs.pop(e, []):
            r = records.get(job_id)
            if r is None:
                continue  # resolved already (a cheat proven wrong): nothing left to delay
            try:
                opened = self.tx.open_dispute(st, self.names[griefer], job_id, compute_record(COMMIT_GRIEF))
            except (InsufficientFunds, ChallengeWindowClosed, DisputeAlreadyOpen):
                continue
            c["disputes"] += 1
            c["grief_disputes"] += 1
            self.cost.append((griefer, self.config.dispute.game_cost_challenger))
            self.cost.append((r.worker, game_w))
            r.game_cost += game_w
            # a made-up root loses to a true result; against a wrong one both lose
            outcome = BOTH_WRONG if r.wrong else CHALLENGER_WRONG
            self._play(Game(opened.number, job_id, griefer, r.worker, outcome, GRIEF, st.params.challenger_bond), c, s)
            if links > 1 and self.game_epochs > 0:
                members = a.populations[int(a.population[griefer])].members
                following = int(members[(int(np.flatnonzero(members == griefer)[0]) + 1) % len(members)])
                self.griefs.setdefault(e + self.game_epochs, []).append((job_id, following, links - 1))

    def _play(self, game: Game, c: dict[str, int], s: dict[str, float]) -> float:
        """A game starts: settled now when games take no epochs (returns what the challenger was paid),
        else its settlement is due `game_epochs` from now (returns 0: the pay comes then)."""
        if self.game_epochs == 0:
            return self._finish(game, c, s, now=True)
        self.games.setdefault(self.state.epoch + self.game_epochs, []).append(game)
        return 0.0

    def _settle_games(self, e: int, c: dict[str, int], s: dict[str, float]) -> None:
        """Settle the games due this epoch, in the order they were opened."""
        for game in self.games.pop(e, []):
            self._finish(game, c, s, now=False)

    def _finish(self, game: Game, c: dict[str, int], s: dict[str, float], now: bool) -> float:
        """Apply a game's verdict (process_dispute_verdict) and book what it moved; returns the tokens the
        challenger was paid. A delayed watcher's pay counts toward its checks when it arrives."""
        st = self.state
        result = self.tx.settle_dispute(st, game.number, game.outcome)
        r = self.records.get(game.job_id)
        if game.role in (GRIEF, COLLUDE):
            # the bond is lost: a share to the worker unless it was proven wrong, the rest burned
            self.income.append((game.challenger, -game.bond))
            share = result.winner_reward if result.kind == "challenger-slashed" else 0
            if share:  # held with the job: the worker gets it if the job settles (`_resolve`)
                self.held_shares[game.job_id] = self.held_shares.get(game.job_id, 0) + share
            key = "grief_bonds_lost" if game.role == GRIEF else "collusion_bonds_lost"
            s[key] += game.bond
            if result.kind == "both-slashed" and result.slashed > game.bond and r is not None:
                c["cheats_caught"] += int(r.cheated)
                self.slashed_workers.append(r.worker)
                self._resolve(game.job_id, r, -(result.slashed - game.bond), True, c, s)
            return 0.0
        if game.role == CATCH:
            if r is not None:
                self._pay_catcher(r, result.winner_reward, s)
                if result.kind == "worker-slashed":
                    c["cheats_caught"] += 1
                    self.slashed_workers.append(r.worker)
                    self._resolve(game.job_id, r, -result.slashed, True, c, s)
            return float(result.winner_reward)
        reward = result.winner_reward + result.jackpot_paid
        self.income.append((game.challenger, reward))
        if not now and reward:
            self.check_outcomes.append((int(self.agents.population[game.challenger]), float(reward), 0.0, 0))
            s["check_profit_sum"] += reward
        if r is not None:
            if result.kind == "caught-pending-seal":
                r.catcher = game.challenger  # paid once the seal is opened: the jackpot, or a share of the slash
            elif result.kind == "worker-slashed":
                c["cheats_caught"] += 1
                self.slashed_workers.append(r.worker)
                self._resolve(game.job_id, r, -result.slashed, True, c, s)
        return float(reward)

    def _pay_catcher(self, r: JobRecord, amount: int, s: dict[str, float]) -> None:
        """A catch paid after the seal's opening: income to the catcher, and to its check's payoff."""
        if r.catcher < 0 or amount <= 0:
            return
        self.income.append((r.catcher, amount))
        self.check_outcomes.append((int(self.agents.population[r.catcher]), float(amount), 0.0, 0))
        s["check_profit_sum"] += amount

    # -- 5: settlement --------------------------------------------------------------------------------

    def _settle_due(self, e: int, c: dict[str, int], s: dict[str, float]) -> None:
        """Jobs whose window is over: a sealed job's worker opens its seal first (a forced error's true
        result then stands one more window), then the job is paid or, if its claim failed, slashed."""
        st, records, tx = self.state, self.records, self.tx
        jobs = st.jobs
        for job_id in self.settle_due.pop(e, []):
            r = records.get(job_id)
            job = jobs.get(job_id)
            if r is None or job is None or job.status != JobStatus.COMMITTED:
                continue
            if job.open_disputes > 0:
                # the window stays open while a game runs: the worker opens its seal and is paid after it
                self.settle_due.setdefault(e + 1, []).append(job_id)
                continue
            if job.forced_rate_bps > 0 and not job.opened:
                opened = tx.open_seal(st, self.names[r.worker], job_id, compute_record(r.sealed_root), r.salt)
                if opened.kind == "worker-slashed":
                    c["cheats_caught"] += 1
                    self.slashed_workers.append(r.worker)
                    self._pay_catcher(r, opened.reward, s)
                    self._resolve(job_id, r, -opened.slashed, True, c, s)
                    continue
                if opened.forced:
                    if r.catcher >= 0:
                        c["forced_caught"] += 1
                        self._pay_catcher(r, opened.jackpot_paid, s)
                        if r.sealed_root != COMMIT_RIGHT and self._catch_true_result(job_id, r, c, s):
                            continue
                    self.settle_due.setdefault(job.window_end, []).append(job_id)
                    continue
            price = tx.settle_job(st, job_id)
            self._resolve(job_id, r, price, False, c, s)

    def _catch_true_result(self, job_id: int, r: JobRecord, c: dict[str, int], s: dict[str, float]) -> bool:
        """The catcher of a forced error computed the true result: a sealed result that is wrong too (a
        cheater's) it disputes at once and wins. True when the worker was slashed (at once: games that take
        no epochs)."""
        st, tx = self.state, self.tx
        try:
            opened = tx.open_dispute(st, self.names[r.catcher], job_id, compute_record(COMMIT_RIGHT))
        except InsufficientFunds:
            return False
        c["disputes"] += 1
        self.cost.append((r.catcher, self.config.dispute.game_cost_challenger))
        self.cost.append((r.worker, self.config.dispute.game_cost_worker))
        r.game_cost += self.config.dispute.game_cost_worker
        self._play(Game(opened.number, job_id, r.catcher, r.worker, WORKER_WRONG, CATCH, st.params.challenger_bond), c, s)
        return job_id not in self.records

    def _resolve(self, job_id: int, r: JobRecord, received: int, slashed: bool, c: dict[str, int],
                 s: dict[str, float]) -> None:
        """A job reached its end: score it for the worker (cheat or honest) and the user, archive it. The bond
        shares held with the job are paid with its price, or burned with a slash."""
        held = self.held_shares.pop(job_id, 0)
        if not slashed:
            received += held
            s["bond_shares_to_workers"] += held
        profit = received - r.cost - r.game_cost
        self.income.append((r.worker, received))
        if not slashed:
            self.pay.append((r.worker, received))
            c["jobs_settled"] += 1
            if r.cheated and r.sealed_root != COMMIT_RIGHT:
                c["cheats_paid"] += 1  # a wrong result the worker claimed as true was paid
            elif not r.cheated:
                delay = self.state.epoch - r.due  # epochs past the end of the job's first window
                c["honest_paid"] += 1
                c["honest_delayed"] += int(delay > 0)
                s["honest_delay_sum"] += delay
        else:
            c["jobs_slashed"] += 1
        if r.cheated:
            c["cheat_jobs"] += 1
            c["wrong_cheats_resolved"] += int(r.sealed_root != COMMIT_RIGHT)
            s["cheat_profit_sum"] += profit
            s["cheat_profit_sumsq"] += profit * profit
            s["cheat_gain_sum"] += r.gain
            s["cheat_price_sum"] += r.price
            s["cheat_stake_sum"] += r.stake
            s["cheat_vesting_sum"] += r.vesting
            s["cheat_pdetect_sum"] += r.p_watch
        else:
            c["honest_jobs"] += 1
            s["honest_profit_sum"] += profit
            s["honest_profit_sumsq"] += profit * profit
        self.worker_outcomes.append((int(self.agents.population[r.worker]), r.cheated, profit, r.price))
        # the user paid the price and its tax; a slashed job's price came back; a wrong result is worth nothing
        tax = compute_job_tax(r.price, compute_tax_bps(self.params))
        useful = not slashed and not (r.cheated and r.wrong and not r.forced)
        value = float(self.agents.unit_cost[r.user]) * r.work_units if useful else 0.0
        self.income.append((r.user, value - tax - (0 if slashed else r.price)))
        del self.records[job_id]
        self.archive.append(job_id)

    # -- 6: upkeep ---------------------------------------------------------------------------------------

    def _top_up(self, c: dict[str, int]) -> None:
        """A slashed worker bonds back up to its target stake, or leaves if it cannot afford to."""
        a, st = self.agents, self.state
        for i in self.slashed_workers:
            self.slashes[i] += 1
        for i in dict.fromkeys(self.slashed_workers):
            if a.status[i] != ACTIVE:
                continue
            name = self.names[i]
            missing = int(a.target_stake[i]) - st.stakes.get(name, 0)
            if missing <= 0:
                continue
            if st.accounts[name].balance >= missing:
                self.tx.stake(st, name, missing)
            else:
                self._leave(i)
                c["left"] += 1

    def _heartbeats(self, e: int) -> None:
        a = self.agents
        due = np.flatnonzero((a.kind == WORKER) & (a.status == ACTIVE) & (self.phase % self.heartbeat_every == e % self.heartbeat_every))
        for i in due.tolist():
            self.tx.heartbeat(self.state, self.names[i])

    def _claim_vesting(self, e: int) -> None:
        a, st = self.agents, self.state
        due = np.flatnonzero((a.kind == WORKER) & (self.phase % self.claim_every == e % self.claim_every))
        for i in due.tolist():
            name = self.names[i]
            if name in st.vesting:
                with contextlib.suppress(NothingToClaim):  # a cliff entry may have nothing released yet
                    self.tx.claim_vesting(st, name)

    def _withdraw(self, e: int) -> None:
        for i in self.withdraw_due.pop(e, []):
            try:
                self.tx.withdraw_unbonded(self.state, self.names[i])
            except (StakeLocked, NothingToWithdraw):
                self.withdraw_due.setdefault(e + 1, []).append(i)
                continue
            self.agents.status[i] = IDLE

    def _leave(self, i: int) -> None:
        a, st, name = self.agents, self.state, self.names[i]
        a.status[i] = IDLE
        if a.kind[i] != WORKER:
            return
        self.tx.deregister_worker(st, name)
        stake = st.stakes.get(name, 0)
        if stake > 0:
            self.tx.unbond(st, name, stake)
            a.status[i] = LEAVING
            self.withdraw_due.setdefault(st.epoch + self.params.unbonding_period_epochs, []).append(i)

    def _churn(self, e: int, c: dict[str, int]) -> None:
        a = self.agents
        churn = decide_churn(a, self.config.churn, self.rng)
        for i in churn.leave.tolist():
            self._leave(i)
            c["left"] += 1
        for i in churn.enter.tolist():
            if a.kind[i] == WORKER and not self._enter_worker(i):
                continue
            a.status[i] = ACTIVE
            a.tenure[i] = 0
            a.ema_profit[i] = 0.0
            c["entered"] += 1

    # -- 8: adaptation and metrics --------------------------------------------------------------------

    def _adapt(self) -> None:
        """Adaptive populations move their probability toward what paid their members this epoch."""
        a = self.agents
        for k, pop in enumerate(a.populations):
            if pop.type_code not in (T_ADAPTIVE, T_CHALLENGER_ADAPTIVE):
                continue
            m = self.memories[k]
            if pop.type_code == T_ADAPTIVE:
                mine = [o for o in self.worker_outcomes if o[0] == k]
                cheat = [o[2] for o in mine if o[1]]
                honest = [o[2] for o in mine if not o[1]]
                m.chosen = compute_average(m.chosen, sum(cheat), len(cheat), m.memory)
                m.other = compute_average(m.other, sum(honest), len(honest), m.memory)
                # the step is scaled by the price of a job: a gap of one price moves q by ~0.76 x rate
                m.scale = compute_average(m.scale, float(sum(o[3] for o in mine)), len(mine), m.memory)
            else:
                checks = [o for o in self.check_outcomes if o[0] == k]
                # rewards paid after a seal's opening count toward the checks of the epoch they arrive in
                m.chosen = compute_average(m.chosen, sum(o[1] for o in checks), sum(o[3] for o in checks), m.memory)
                m.other = 0.0  # not verifying costs and pays nothing
                # the step is scaled by the cost of a check
                m.scale = compute_average(m.scale, sum(o[2] for o in checks), len(checks), m.memory)
            if m.chosen is None or m.other is None:
                continue
            members = pop.members
            a.probability[members] = compute_adapted_probability(
                a.probability[members], m.chosen - m.other, m.scale or 0.0, a.learning_rate[members],
                a.min_probability[members], a.max_probability[members],
            )

    def _record(self, c: dict[str, int], s: dict[str, float], report: Any, active_before: np.ndarray,
                supply_before: int, burned_before: int, slashed_before: int, rewards_before: int,
                jackpot_before: int) -> None:
        a, st = self.agents, self.state
        n = a.size
        active = a.status == ACTIVE
        income = _total(self.income, n)
        cost = _total(self.cost, n) + np.where(active, a.fixed_cost, 0.0)
        profit = income - cost
        self.income_total += income
        a.ema_profit[active] += self.config.churn.memory * (profit[active] - a.ema_profit[active])
        a.tenure[active] += 1
        row: dict[str, float] = {"epoch": float(report.epoch)}
        for key in ("jobs_posted", "jobs_unfunded", "jobs_assigned", "jobs_cancelled", "jobs_executed", "jobs_settled",
                    "jobs_slashed", "cheats", "wrong_results", "forced_errors", "watched", "checks", "disputes",
                    "cheats_caught", "forced_caught", "entered", "left", "cheat_jobs", "honest_jobs", "sealed_committed",
                    "grief_disputes", "collusion_disputes", "guess_checks", "guess_hits", "cheats_paid", "honest_paid",
                    "honest_delayed"):
            row[key] = c[key]
        for key in ("cheat_profit_sum", "cheat_profit_sumsq", "honest_profit_sum", "honest_profit_sumsq", "cheat_gain_sum",
                    "cheat_price_sum", "cheat_stake_sum", "cheat_vesting_sum", "cheat_pdetect_sum", "check_profit_sum",
                    "grief_bonds_lost", "collusion_bonds_lost", "bond_shares_to_workers", "honest_delay_sum"):
            row[key] = s[key]
        row["honest_delay_mean"] = compute_rate(s["honest_delay_sum"], c["honest_paid"])
        row["guess_precision"] = compute_rate(c["guess_hits"], c["guess_checks"])
        executed = c["jobs_executed"]
        row["cheat_rate"] = compute_rate(c["cheats"], executed)
        row["check_rate"] = compute_rate(c["checks"], executed)
        # of the wrong cheats resolved this epoch, those slashed rather than paid (a catch may come epochs
        # after the cheat: a game's length, or a seal's opening)
        row["detection_rate"] = compute_rate(c["wrong_cheats_resolved"] - c["cheats_paid"], c["wrong_cheats_resolved"])
        row["price_mean"] = compute_rate(s["price_sum"], executed)
        cheaters = active & np.isin(a.type_code, (T_CHEATER, T_ADAPTIVE))
        row["cheat_probability_mean"] = float(a.probability[cheaters].mean()) if cheaters.any() else float("nan")
        checkers = active & (a.kind == CHALLENGER)
        row["verify_probability_mean"] = float(a.probability[checkers].mean()) if checkers.any() else float("nan")
        row["slash_events"] = len(report.slash_events)
        row["slashed"] = st.totals.slashed - slashed_before
        row["challenger_rewards"] = st.totals.challenger_rewards - rewards_before
        row["jackpot_paid"] = st.totals.jackpot_paid - jackpot_before
        row["jackpot"] = st.jackpot
        row["minted"] = report.minted
        row["emission"] = report.emission
        row["burned"] = st.burned - burned_before
        row["burned_total"] = st.burned
        row["supply"] = st.total_supply
        row["circulating"] = st.total_supply - st.burned
        row["staked"] = st.total_staked
        row["inflation"] = compute_rate(report.minted, supply_before)
        row["inflation_yearly"] = row["inflation"] * self.params.epochs_per_year
        row["workers_active"] = int((active & (a.kind == WORKER)).sum())
        row["challengers_active"] = int(checkers.sum())
        row["retention"] = compute_rate(float((active_before & active).sum()), float(active_before.sum()))
        row["retained_from_genesis"] = compute_rate(float((self.genesis_active & active).sum()), float(self.genesis_active.sum()))
        pay = _total(self.pay, n)
        workers = active & (a.kind == WORKER)
        row["gini_rewards"] = compute_gini(np.maximum(pay[workers], 0.0))
        sums = np.bincount(a.type_code[active], weights=profit[active], minlength=len(TYPE_NAMES))
        counts = np.bincount(a.type_code[active], minlength=len(TYPE_NAMES))
        for t, name in enumerate(TYPE_NAMES):
            row[f"profit_{name}"] = float(sums[t] / counts[t]) if counts[t] else float("nan")
        for key, column in self.columns.items():
            column.append(row[key])


def _total(entries: list[tuple[int, float]], n: int) -> np.ndarray:
    """Per-agent sums of (agent, amount) entries, shape (n,)."""
    if not entries:
        return np.zeros(n)
    index, amount = zip(*entries, strict=True)
    return np.bincount(np.asarray(index, dtype=np.int64), weights=np.asarray(amount, dtype=np.float64), minlength=n)


def execute_run(spec: RunSpec) -> RunResult:
    """Run one RunSpec to the end (the function executors are given; top level, so it pickles)."""
    start = time.perf_counter()
    simulation = Simulation(spec.config, spec.seed)
    columns = simulation.run()
    st = simulation.state
    final = {
        "epochs": st.epoch,
        "supply": st.total_supply,
        "burned": st.burned,
        "jackpot": st.jackpot,
        "staked": st.total_staked,
        "genesis": st.totals.genesis,
        "emitted": st.totals.emitted,
        "slashed": st.totals.slashed,
        "invariant_checks": simulation.invariant_checks,
        "live_jobs": len(st.jobs),
    }
    return RunResult(spec.index, spec.scenario, spec.point, spec.repetition, spec.seed, columns, final,
                     time.perf_counter() - start)


def run_config(config: SimulationConfig, seed: int) -> dict[str, np.ndarray]:
    """The per-epoch columns of one run of `config` with `seed` (a convenience for scripts and tests)."""
    return Simulation(config, seed).run()


__all__ = ["COMMIT_RIGHT", "COMMIT_WRONG", "RunResult", "Simulation", "Transitions", "execute_run", "run_config"]
