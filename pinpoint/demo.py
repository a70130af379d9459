"""The end-to-end demo: a small compute market on one machine, with one cheater.

A user posts training jobs on a durable ledger; three staked workers bid in reverse auctions; each
winner trains its job reproducibly and submits its signed run commitment; one of them cheats on a
random step (`--tamper`). Two challengers re-execute every job; the first to find a fault posts a
bond and plays the real dispute game against the cheater's run; the verdict slashes the cheater,
pays the challenger and refunds the user. Honest workers are paid once their challenge windows close.

Every economic step is a signed transaction applied by `pinpoint.ledger.Ledger` (one SQLite
transaction each); the ledger issues the dispute its id and is the game's time source (every move is
stamped by it, and the transcript carries its receipts); the verdict enters the ledger as the dispute
game's outcome.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pinpoint.ledger import Ledger
from pinpoint.presets import make_job
from protocol.economy import (
    MINIMAL,
    Action,
    check_invariants,
    compute_changed_params,
    get_balance,
    get_required_worker_stake,
    get_stake,
    is_supply_conserved,
    sign_transaction,
)
from protocol.job import JobSpec
from protocol.recording import Tamper
from protocol.signing import generate_private_key, get_public_key_bytes, private_key_to_bytes
from prover.files import write_atomic
from prover.presets import resolve_task
from prover.run import train
from verifier.dispute import dispute_runs
from verifier.referee import TraceReferee

# The demo's jobs: (model, optimizer, steps). Small enough that the whole demo takes well under two
# minutes on a laptop core, large enough to exercise forward, backward and optimizer of both models.
DEMO_JOBS: tuple[tuple[str, str, int], ...] = (("mlp", "sgd", 8), ("mlp", "adam", 8), ("transformer", "adamw", 4))
GENESIS = {"user": 5_000, "worker": 600, "challenger": 400}  # tokens allocated at epoch 0
JOB_PRICE = 400  # tokens a user is willing to pay per job (the auction's ceiling)


@dataclass
class Party:
    label: str
    key: Ed25519PrivateKey

    @property
    def account(self) -> str:
        return get_public_key_bytes(self.key).hex()


@dataclass
class DemoJob:
    ledger_id: int
    spec: JobSpec
    model: str = ""
    optimizer: str = ""
    worker: Party | None = None
    price: int = 0
    run: Path | None = None
    tamper: Tamper | None = None
    verdict: dict[str, Any] | None = None
    disputed_by: str | None = None


@dataclass
class DemoReport:
    jobs: list[DemoJob] = field(default_factory=list)
    before: dict[str, dict[str, int]] = field(default_factory=dict)
    after: dict[str, dict[str, int]] = field(default_factory=dict)
    slashed: int = 0
    challenger_rewards: int = 0
    burned: int = 0
    refunded: int = 0
    supply_conserved: bool = False
    seconds: float = 0.0


class Demo:
    """Drives the ledger and the parties; every decision is a signed transaction."""

    def __init__(self, folder: Path, seed: int, log: Callable[[str], None]) -> None:
        self.folder = folder
        self.rng = random.Random(seed)
        self.seed = seed
        self.log = log
        params = compute_changed_params(MINIMAL, "forced_error_rate_bps", 0)  # this demo shows real faults only
        self.ledger = Ledger.create(folder / "ledger.db", params, seed=f"pinpoint-demo-{seed}".encode(), check_each=True)
        self.user = Party("user", generate_private_key())
        self.workers = [Party(f"worker-{i + 1}", generate_private_key()) for i in range(3)]
        self.challengers = [Party(f"challenger-{i + 1}", generate_private_key()) for i in range(2)]
        self.epoch_tick = 0

    @property
    def parties(self) -> list[Party]:
        return [self.user, *self.workers, *self.challengers]

    def send(self, party: Party, kind: str, **fields: Any) -> Any:
        nonce = self.ledger.state.accounts[party.account].nonce if party.account in self.ledger.state.accounts else 0
        return self.ledger.apply(sign_transaction(party.key, kind, nonce, **fields))

    def tick(self) -> None:
        self.epoch_tick += 1
        self.ledger.apply(Action("epoch", {"seed": f"{self.seed:08x}{self.epoch_tick:08x}"}))

    def books(self) -> dict[str, dict[str, int]]:
        state = self.ledger.state
        return {
            party.label: {"balance": int(get_balance(state, party.account)), "stake": int(get_stake(state, party.account))}
            for party in self.parties
        }

    # --- the story ---------------------------------------------------------------------------------

    def genesis(self) -> None:
        for party in self.parties:
            amount = GENESIS[party.label.split("-")[0]]
            self.ledger.apply(Action("genesis_allocation", {"account": party.account, "amount": amount}))
        for worker in self.workers:
            self.send(worker, "stake", amount=int(get_required_worker_stake(self.ledger.state)) + 50)
            self.send(worker, "register_worker")

    def post_and_auction(self) -> list[DemoJob]:
        jobs = []
        for model, optimizer, steps in DEMO_JOBS:
            spec = make_job(model, optimizer, steps, seed=self.rng.randrange(2**31))
            ledger_id = self.send(self.user, "post_job", max_price=JOB_PRICE, work_units=steps)
            for worker in self.workers:
                self.send(worker, "bid", job_id=ledger_id, price=self.rng.randrange(JOB_PRICE // 2, JOB_PRICE))
            assignment = self.ledger.apply(Action("close_auction", {"job_id": ledger_id}))
            worker = next(w for w in self.workers if w.account == assignment.worker)
            jobs.append(DemoJob(ledger_id, spec, model, optimizer, worker, int(assignment.price)))
            self.log(f"job {ledger_id}: {model}/{optimizer}, {steps} steps -> {worker.label} at {assignment.price}")
        return jobs

    def choose_cheat(self, jobs: list[DemoJob]) -> DemoJob:
        job = self.rng.choice(jobs)
        step = self.rng.randrange(job.spec.steps)
        if self.rng.random() < 0.25:
            job.tamper = Tamper("state", step)
        else:
            skeleton = TraceReferee(job.spec, resolve_task(job.spec)).replay_skeleton(step)
            floating = [j for j, node in enumerate(skeleton.nodes) if node.outputs and node.outputs[0] is not None and node.outputs[0].dtype == 1]
            job.tamper = Tamper("output", step, self.rng.choice(floating))
        return job

    def work(self, jobs: list[DemoJob]) -> None:
        for job in jobs:
            assert job.worker is not None
            job.run = self.folder / "runs" / f"job-{job.ledger_id}-{job.worker.label}"
            self.log(f"{job.worker.label} trains job {job.ledger_id}" + (f" (cheating: {job.tamper})" if job.tamper else ""))
            write_atomic(self.folder / "keys" / f"{job.worker.label}.key", (private_key_to_bytes(job.worker.key).hex() + "\n").encode(), 0o600)
            run = train(job.spec, job.run, job.worker.key, tamper=job.tamper)
            self.send(job.worker, "submit_commitment", job_id=job.ledger_id, commitment=run.chain_root.hex())

    def check(self, jobs: list[DemoJob]) -> None:
        for challenger in self.challengers:
            write_atomic(self.folder / "keys" / f"{challenger.label}.key", (private_key_to_bytes(challenger.key).hex() + "\n").encode(), 0o600)
        for job in jobs:
            for challenger in self.challengers:
                own = self.folder / "runs" / f"job-{job.ledger_id}-{challenger.label}"
                run = train(job.spec, own, challenger.key)
                assert job.worker is not None and job.run is not None
                committed = self.ledger.state.jobs[job.ledger_id].commitment
                if run.chain_root.hex() == committed:
                    self.log(f"{challenger.label} re-executed job {job.ledger_id}: agrees")
                    continue
                if job.disputed_by is not None:
                    self.log(f"{challenger.label} re-executed job {job.ledger_id}: disagrees, already disputed")
                    continue
                self.log(f"{challenger.label} re-executed job {job.ledger_id}: DISAGREES, opens a dispute")
                self.send(challenger, "open_dispute", job_id=job.ledger_id)
                job.disputed_by = challenger.label
                dispute_id = self.ledger.issue_dispute_id(job.ledger_id)  # one game, one id, issued by the ledger
                report = dispute_runs(
                    job.run, own, worker_key=self.folder / "keys" / f"{job.worker.label}.key",
                    challenger_key=self.folder / "keys" / f"{challenger.label}.key",
                    transcript_path=self.folder / f"transcript-job-{job.ledger_id}.json",
                    on_progress=lambda message: self.log(f"  {message}"),
                    dispute_id=dispute_id, time_source=self.ledger,  # every move stamped by the ledger
                )
                job.verdict = report.to_json()
                winner, losers = job.verdict["winner"], job.verdict["loser"]
                loser = losers if isinstance(losers, dict) else losers[0]
                account = {"worker": job.worker.account, "challenger": challenger.account}
                self.ledger.apply(Action("settle_dispute", {
                    "job_id": job.ledger_id, "winner": account[winner["role"]] if winner else "", "loser": account[loser["role"]],
                }))
                self.log(f"  verdict: {winner['role'] if winner else 'nobody'} wins at step {job.verdict['step']}, "
                         f"{job.verdict['tree']} leaf {job.verdict['index']} ({job.verdict['op'] or 'state'}): {job.verdict['reason']}")

    def settle(self, jobs: list[DemoJob]) -> None:
        for _ in range(self.ledger.state.params.challenge_window_epochs):
            self.tick()
        for job in jobs:
            if job.disputed_by is None:
                self.ledger.apply(Action("settle_job", {"job_id": job.ledger_id}))
        for _ in range(self.ledger.state.params.vesting_epochs):
            self.tick()
        for worker in self.workers:
            if self.ledger.state.vesting.get(worker.account):
                self.send(worker, "claim_vesting")


def run_demo(folder: Path, seed: int = 0, log: Callable[[str], None] = print) -> DemoReport:
    """Run the whole story in `folder` (a new directory); returns what happened."""
    start = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=False)
    demo = Demo(folder, seed, log)
    report = DemoReport()
    demo.genesis()
    report.before = demo.books()
    jobs = demo.post_and_auction()
    demo.choose_cheat(jobs)
    demo.work(jobs)
    demo.check(jobs)
    demo.settle(jobs)
    state = demo.ledger.state
    check_invariants(state)
    report.jobs = jobs
    report.after = demo.books()
    report.slashed = state.totals.slashed
    report.challenger_rewards = state.totals.challenger_rewards
    report.burned = state.burned
    report.refunded = state.totals.refunded
    report.supply_conserved = is_supply_conserved(state)
    report.seconds = time.perf_counter() - start
    demo.ledger.close()
    return report


def report_json(report: DemoReport) -> dict[str, Any]:
    return {
        "jobs": [
            {
                "id": job.ledger_id, "model": job.model, "optimizer": job.optimizer, "steps": job.spec.steps,
                "worker": job.worker.label if job.worker else None, "price": job.price,
                "tamper": str(job.tamper) if job.tamper else None, "disputed_by": job.disputed_by, "verdict": job.verdict,
            }
            for job in report.jobs
        ],
        "cheaters": [job.worker.label for job in report.jobs if job.tamper and job.worker],
        "caught": [job.worker.label for job in report.jobs if job.verdict and job.worker and job.verdict.get("winner") and job.verdict["winner"]["role"] == "challenger"],
        "slashed": report.slashed,
        "challenger_rewards": report.challenger_rewards,
        "burned": report.burned,
        "refunded": report.refunded,
        "balances": {"before": report.before, "after": report.after},
        "supply_conserved": report.supply_conserved,
        "seconds": report.seconds,
    }
