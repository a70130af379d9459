"""The end-to-end demo: a small compute market on one machine, with one cheater and secret forced errors.

A user posts training jobs on a durable ledger, each naming its training job id; three staked workers
bid in reverse auctions; each winner trains its job reproducibly; one of them cheats on a random step
(`--tamper`). Forced errors are on (Truebit's design): every worker first seals the result it claims as
true under a secret salt; the next epoch's seed and that salt decide, for the worker's eyes only, whether
the job is a test. Each worker then registers its public signed run commitment (checked on entry): its
sealed result, or on a test a deliberately wrong run. A cheater whose job is a test hides nothing: it
reveals the honest result, and its sealed wrong one is open to challenge once the seal is opened.

A colluding challenger, in league with the cheater, opens a dispute on the cheater's job first, with a
commitment of its own, and throws its game (it never answers). Two honest challengers re-execute every
job; the first to find a fault opens its own dispute alongside, with its own run's commitment, and plays
the real dispute game. Each dispute is settled by its game's transcript, which the ledger replays with
the job's referee before it moves a token. Once the windows are over every worker opens its seal: a test
pays its catcher from the jackpot, a fault slashes the cheater once (the catcher paid from the slash, the
user refunded), and a test's true result gets a window of its own. Honest workers are paid once their
windows close, tests included (they erred on the protocol's order).

Every economic step is a signed transaction applied by `pinpoint.ledger.Ledger` (one SQLite
transaction each); the economy issues each dispute its id when it is opened; the ledger is the games'
time source (every move is stamped by it, and the transcripts carry its receipts). The books are kept
line by line from what each transition returned (jobs bought and paid, jackpot tax and payouts,
emission, refunds, dispute rewards, bond shares, bonds lost, slashes): every party's balance and stake
move by the sum of its lines.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from pinpoint.ledger import Ledger
from pinpoint.presets import make_job
from protocol.economy import (
    MINIMAL,
    Action,
    check_invariants,
    compute_changed_params,
    compute_is_forced_error,
    compute_seal,
    get_balance,
    get_bucket_totals,
    get_required_worker_stake,
    get_stake,
    is_supply_conserved,
    sign_transaction,
)
from protocol.encoding import DTYPE_CODES
from protocol.game.commitments import RunCommitment, compute_signed_run_commitment_json, sign_run_commitment
from protocol.game.transcript import compute_transcript_json
from protocol.job import JobSpec, compute_job_id
from protocol.recording import Tamper
from protocol.signing import (
    compute_canonical_json,
    generate_private_key,
    get_public_key_bytes,
    private_key_to_bytes,
)
from protocol.trace import compute_influential_outputs, is_derived
from protocol.types import Root
from prover.files import write_atomic
from prover.presets import resolve_task
from prover.provider import RunTraceProvider
from prover.run import Run, TamperError, load_run, train
from verifier.dispute import dispute_runs, make_game_config
from verifier.game.adversaries import Silent
from verifier.game.driver import play_game
from verifier.game.strategy import HonestStrategy
from verifier.referee import TraceReferee
from verifier.settlement import make_job_referees

# The demo's jobs: (model, optimizer, steps). Small enough that the whole demo takes well under two
# minutes on a laptop core, large enough to exercise forward, backward and optimizer of both models.
DEMO_JOBS: tuple[tuple[str, str, int], ...] = (("mlp", "sgd", 8), ("mlp", "adam", 8), ("transformer", "adamw", 4))
GENESIS = {"user": 5_000, "worker": 600, "challenger": 400, "colluder": 400}  # tokens allocated at epoch 0
JOB_PRICE = 400  # tokens a user is willing to pay per job (the auction's ceiling)
MAX_CHEAT_ATTEMPTS = 8  # nodes a cheater (or a worker making a forced error) tries before giving up
# Half the jobs are tests, so that one run of the demo usually shows one; a network sets a few percent
# (MAINNET: 0.5%), enough that checking pays on every job.
FORCED_ERROR_RATE_BPS = 5_000


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
    run: Path | None = None  # the run behind the public commitment
    sealed_run: Path | None = None  # the run behind the sealed one: the result the worker claims as true
    salt: str = ""  # the seal's secret salt (hex32), known to the worker alone until the opening
    forced: bool = False  # the draw made this job a test (only the worker knew, until the opening)
    forced_tamper: Tamper | None = None  # the deliberate error of a test's public run
    tamper: Tamper | None = None  # the cheater's fault, in its sealed run
    verdict: dict[str, Any] | None = None  # the game that proved a commitment of this job wrong
    disputed_by: str | None = None
    thrown: dict[str, Any] | None = None  # the colluder's settled dispute on this job, if it opened one
    opening: dict[str, Any] | None = None  # what opening the seal did
    status: str = ""  # the job's status on the ledger at the end
    checks: dict[str, Run] = field(default_factory=dict)  # each honest challenger's own run of the job


@dataclass
class DemoReport:
    jobs: list[DemoJob] = field(default_factory=list)
    before: dict[str, dict[str, int]] = field(default_factory=dict)
    after: dict[str, dict[str, int]] = field(default_factory=dict)
    slashed: int = 0
    challenger_rewards: int = 0
    burned: int = 0
    refunded: int = 0
    jackpot_paid: int = 0
    supply_conserved: bool = False
    books: dict[str, int] = field(default_factory=dict)  # supply's sources and where every token sits
    lines: dict[str, dict[str, int]] = field(default_factory=dict)  # party -> line -> tokens it moved (debits < 0)
    seconds: float = 0.0


class Demo:
    """Drives the ledger and the parties; every decision is a signed transaction."""

    def __init__(self, folder: Path, seed: int, log: Callable[[str], None],
                 jobs: tuple[tuple[str, str, int], ...] = DEMO_JOBS) -> None:
        self.folder = folder
        self.jobs = jobs
        self.rng = random.Random(seed)
        self.seed = seed
        self.log = log
        params = compute_changed_params(MINIMAL, "forced_error_rate_bps", FORCED_ERROR_RATE_BPS)
        self.ledger = Ledger.create(folder / "ledger.db", params, seed=f"pinpoint-demo-{seed}".encode(), check_each=True,
                                    referees=make_job_referees())  # settlements are replayed with the job's referee
        self.user = Party("user", generate_private_key())
        self.workers = [Party(f"worker-{i + 1}", generate_private_key()) for i in range(3)]
        self.challengers = [Party(f"challenger-{i + 1}", generate_private_key()) for i in range(2)]
        self.colluder = Party("colluder", generate_private_key())
        self.epoch_tick = 0
        self.lines: dict[str, dict[str, int]] = {}

    def credit(self, party: Party, line: str, amount: int) -> None:
        """Book `amount` tokens (negative: a debit) on `party`'s line `line`, from what a transition
        returned: each party's balance and stake must then move by the sum of its lines. A zero books
        nothing."""
        if amount:
            lines = self.lines.setdefault(party.label, {})
            lines[line] = lines.get(line, 0) + int(amount)

    def party(self, account: str) -> Party:
        return next(p for p in self.parties if p.account == account)

    @property
    def parties(self) -> list[Party]:
        return [self.user, *self.workers, *self.challengers, self.colluder]

    def send(self, party: Party, kind: str, **fields: Any) -> Any:
        nonce = self.ledger.state.accounts[party.account].nonce if party.account in self.ledger.state.accounts else 0
        return self.ledger.apply(sign_transaction(party.key, kind, nonce, **fields))

    def tick(self) -> None:
        self.epoch_tick += 1
        # the demo's seed as 8 bytes, whatever its sign or size (a negative seed once made no hex at all)
        beacon = f"{self.seed % 2**64:016x}{self.epoch_tick:08x}"
        report = self.ledger.apply(Action("epoch", {"seed": beacon}))
        for account, amount in report.rewards.items():
            self.credit(self.party(account), "emission", amount)

    def tick_until(self, epoch: int) -> None:
        while self.ledger.state.epoch < epoch:
            self.tick()

    def books(self) -> dict[str, dict[str, int]]:
        state = self.ledger.state
        return {
            party.label: {"balance": int(get_balance(state, party.account)), "stake": int(get_stake(state, party.account))}
            for party in self.parties
        }

    def save_key(self, party: Party) -> Path:
        path = self.folder / "keys" / f"{party.label}.key"
        if not path.exists():
            write_atomic(path, (private_key_to_bytes(party.key).hex() + "\n").encode(), 0o600)
        return path

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
        for model, optimizer, steps in self.jobs:
            spec = make_job(model, optimizer, steps, seed=self.rng.randrange(2**31))
            ledger_id = self.send(self.user, "post_job", max_price=JOB_PRICE, work_units=steps,
                                  training_job=compute_job_id(spec).hex())
            for worker in self.workers:
                self.send(worker, "bid", job_id=ledger_id, price=self.rng.randrange(JOB_PRICE // 2, JOB_PRICE))
            jackpot = self.ledger.state.jackpot
            assignment = self.ledger.apply(Action("close_auction", {"job_id": ledger_id}))
            worker = next(w for w in self.workers if w.account == assignment.worker)
            # the escrow above the price and its tax came back; the tax went to the jackpot
            self.credit(self.user, "jobs bought", -int(assignment.price))
            self.credit(self.user, "jackpot tax", -(self.ledger.state.jackpot - jackpot))
            jobs.append(DemoJob(ledger_id, spec, model, optimizer, worker, int(assignment.price)))
            self.log(f"job {ledger_id}: {model}/{optimizer}, {steps} steps -> {worker.label} at {assignment.price}")
        return jobs

    def choose_cheat(self, jobs: list[DemoJob]) -> DemoJob:
        job = self.rng.choice(jobs)
        job.tamper = self.draw_fault(job.spec, state_allowed=True)
        return job

    def draw_fault(self, spec: JobSpec, state_allowed: bool = False) -> Tamper:
        """A fault at a random step: the state after it, or the output of a random node that reaches it."""
        step = self.rng.randrange(spec.steps)
        if state_allowed and self.rng.random() < 0.25:
            return Tamper("state", step)
        return Tamper("output", step, self.rng.choice(get_tamperable_nodes(spec, step)))

    def work(self, jobs: list[DemoJob]) -> None:
        """Each worker trains the result it claims as true (the cheater: its faulty run) and seals it under
        a secret salt; the next epoch's seed is every seal's draw."""
        for job in jobs:
            worker = self.worker_party(job)
            job.sealed_run = self.folder / "runs" / f"job-{job.ledger_id}-{worker.label}"
            self.log(f"{worker.label} trains job {job.ledger_id}" + (f" (cheating: {job.tamper})" if job.tamper else ""))
            self.save_key(worker)
            run = self.train_faulty(job, job.sealed_run, "tamper") if job.tamper else train(job.spec, job.sealed_run, worker.key)
            job.salt = self.rng.randbytes(32).hex()
            statement = compute_canonical_json(compute_signed_run_commitment_json(run.commitment)).decode()
            self.send(worker, "seal_result", job_id=job.ledger_id, sealed=compute_seal(statement, job.salt))
            self.log(f"  {worker.label} seals its result for job {job.ledger_id}")
        self.tick()

    def reveal(self, jobs: list[DemoJob]) -> None:
        """Each worker reads its draw, which it alone can compute (it alone knows the salt), and registers
        its public commitment: its sealed result, or on a test a wrong run. A cheater drawn for a test
        reveals the honest result, hoping that nobody checks the sealed one once it is opened."""
        for job in jobs:
            worker = self.worker_party(job)
            on_ledger = self.ledger.state.jobs[job.ledger_id]
            job.forced = compute_is_forced_error(on_ledger.draw_seed, job.salt, job.ledger_id, on_ledger.forced_rate_bps)
            assert job.sealed_run is not None
            job.run = job.sealed_run
            if job.forced:
                job.run = self.folder / "runs" / f"job-{job.ledger_id}-{worker.label}-public"
                if job.tamper is None:
                    job.forced_tamper = self.draw_fault(job.spec)
                    self.log(f"  {worker.label} drew a forced error on job {job.ledger_id}: it reveals a wrong run ({job.forced_tamper})")
                    public = self.train_faulty(job, job.run, "forced_tamper")
                else:
                    self.log(f"  {worker.label} drew a forced error on job {job.ledger_id}: it reveals the honest run")
                    public = train(job.spec, job.run, worker.key)
            else:
                public = load_run(job.run)
            self.send(worker, "submit_commitment", job_id=job.ledger_id,
                      commitment=compute_signed_run_commitment_json(public.commitment))

    def collude(self, job: DemoJob) -> None:
        """The cheater's accomplice opens a dispute on its job first, with a commitment of its own, and
        throws the game: it never answers, so it loses on its clock. Had the job one dispute slot, or a
        window that closed under a running dispute, this would shut the honest challengers out."""
        assert job.worker is not None and job.run is not None
        run = load_run(job.run)
        fake = sign_run_commitment(self.colluder.key, RunCommitment(
            run.commitment.commitment.job_id, run.commitment.commitment.steps,
            Root(bytes(self.rng.randrange(256) for _ in range(32))), get_public_key_bytes(self.colluder.key)))
        opened = self.send(self.colluder, "open_dispute", job_id=job.ledger_id,
                           commitment=compute_signed_run_commitment_json(fake))
        self.log(f"colluder opens dispute {opened.number} on job {job.ledger_id} first, and throws its game")
        referee = TraceReferee(job.spec, resolve_task(job.spec))
        result = play_game(HonestStrategy(RunTraceProvider(run), job.worker.key, commitment=run.commitment),
                           Silent(RunTraceProvider(run), self.colluder.key, commitment=fake), referee, make_game_config(),
                           context={"job": job.spec.to_json()}, dispute_id=bytes.fromhex(opened.dispute_id),
                           time_source=self.ledger)
        settled = self.send(self.worker_party(job), "settle_dispute", dispute=opened.number,
                            transcript=compute_transcript_json(result.transcript))
        self.credit(self.colluder, "bonds lost", -settled.slashed)  # the worker's share is held with the job
        job.thrown = {"dispute": opened.number, "winner": result.verdict.winner.role.value if result.verdict.winner else None,
                      "reason": result.verdict.reason.value, "settled": settled.kind, "bond_share_held": settled.winner_reward}
        self.log(f"  dispute {opened.number} settled from its transcript: {settled.kind} ({result.verdict.reason.value})")

    def worker_party(self, job: DemoJob) -> Party:
        assert job.worker is not None
        return job.worker

    def train_faulty(self, job: DemoJob, out: Path, attribute: str) -> Run:
        """A run of `job` with the fault in `job.<attribute>` (the cheater's tamper, or a test's forced
        error). A fault whose change is masked downstream (a ReLU of a value that stays negative) leaves
        the state as it was, and `train` refuses it: the worker picks another node of the same step."""
        worker = self.worker_party(job)
        for _ in range(MAX_CHEAT_ATTEMPTS - 1):
            fault: Tamper = getattr(job, attribute)
            try:
                return train(job.spec, out, worker.key, tamper=fault)
            except TamperError as error:
                choices = [j for j in get_tamperable_nodes(job.spec, fault.step) if j != fault.node]
                setattr(job, attribute, Tamper("output", fault.step, self.rng.choice(choices)))
                self.log(f"  {error}; erring with {getattr(job, attribute)} instead")
        return train(job.spec, out, worker.key, tamper=getattr(job, attribute))

    def check(self, jobs: list[DemoJob]) -> None:
        """The colluder throws its game on the cheater's job; the honest challengers re-execute every job
        and dispute any public commitment that differs from their own result."""
        for challenger in self.challengers:
            self.save_key(challenger)
        for job in jobs:
            if job.tamper is not None:
                self.collude(job)
            for challenger in self.challengers:
                job.checks[challenger.label] = train(job.spec, self.folder / "runs" / f"job-{job.ledger_id}-{challenger.label}",
                                                     challenger.key)
            assert job.run is not None
            self.challenge(job, job.run, self.ledger.state.jobs[job.ledger_id].commitment, "public")

    def challenge(self, job: DemoJob, run: Path, committed: str, which: str) -> None:
        """Each honest challenger compares its own run with the job's `which` commitment (`committed`, the
        chain root behind `run`); the first that disagrees disputes it, plays the game and settles it from
        the verified transcript."""
        for challenger in self.challengers:
            own = job.checks[challenger.label]
            if own.chain_root.hex() == committed:
                self.log(f"{challenger.label} re-executed job {job.ledger_id}: agrees with its {which} result")
                continue
            if job.disputed_by is not None and which == "public":
                self.log(f"{challenger.label} re-executed job {job.ledger_id}: disagrees, already proven wrong")
                continue
            opened = self.send(challenger, "open_dispute", job_id=job.ledger_id,
                               commitment=compute_signed_run_commitment_json(own.commitment))
            self.log(f"{challenger.label} re-executed job {job.ledger_id}: DISAGREES with its {which} result, "
                     f"opens dispute {opened.number}")
            job.disputed_by = challenger.label
            report = dispute_runs(
                run, own.path, worker_key=self.save_key(self.worker_party(job)), challenger_key=self.save_key(challenger),
                transcript_path=self.folder / f"transcript-job-{job.ledger_id}-{which}.json",
                on_progress=lambda message: self.log(f"  {message}"),
                dispute_id=bytes.fromhex(opened.dispute_id), time_source=self.ledger,  # every move stamped by the ledger
            )
            job.verdict = report.to_json()
            assert report.result is not None
            settled = self.send(challenger, "settle_dispute", dispute=opened.number,
                                transcript=compute_transcript_json(report.result.transcript))
            self.credit(challenger, "dispute rewards", settled.winner_reward)
            self.credit(challenger, "jackpot", settled.jackpot_paid)
            self.credit(self.worker_party(job), "slashed", -settled.slashed)
            self.credit(self.user, "refunds", settled.refunded)
            winner = job.verdict["winner"]
            self.log(f"  verdict: {winner['role'] if winner else 'nobody'} wins at step {job.verdict['step']}, "
                     f"{job.verdict['tree']} leaf {job.verdict['index']} ({job.verdict['op'] or 'state'}): {job.verdict['reason']}")
            self.log(f"  dispute {opened.number} settled from its verified transcript: {settled.kind}")
            return

    def open_seals(self, jobs: list[DemoJob]) -> None:
        """Once its window is over each worker opens its seal. A test pays the challenger who caught it
        from the jackpot and puts the true result up for a window of its own, in which the honest
        challengers check it too; a fault proven before the opening slashes the worker now."""
        self.tick_until(max(self.ledger.state.jobs[job.ledger_id].window_end for job in jobs))
        for job in jobs:
            if self.ledger.state.jobs[job.ledger_id].status.value != "committed":
                continue
            assert job.sealed_run is not None
            sealed = load_run(job.sealed_run).commitment
            opened = self.send(self.worker_party(job), "open_seal", job_id=job.ledger_id,
                               commitment=compute_signed_run_commitment_json(sealed), salt=job.salt)
            catcher = self.ledger.state.jobs[job.ledger_id].catcher
            if catcher:
                self.credit(self.party(catcher), "jackpot", opened.jackpot_paid)
                self.credit(self.party(catcher), "dispute rewards", opened.reward)
            self.credit(self.worker_party(job), "slashed", -opened.slashed)
            self.credit(self.user, "refunds", opened.refunded)
            job.opening = {"kind": opened.kind, "jackpot_paid": opened.jackpot_paid, "slashed": opened.slashed,
                           "catcher": self.party(catcher).label if catcher else None}
            self.log(f"{self.worker_party(job).label} opens its seal of job {job.ledger_id}: {opened.kind}"
                     + (f", the jackpot pays {job.opening['catcher']} {opened.jackpot_paid}" if opened.jackpot_paid else ""))
            if opened.forced:
                self.challenge(job, job.sealed_run, sealed.commitment.chain_root.hex(), "sealed")

    def settle(self, jobs: list[DemoJob]) -> None:
        self.tick_until(max(self.ledger.state.jobs[job.ledger_id].window_end for job in jobs))
        for job in jobs:
            if self.ledger.state.jobs[job.ledger_id].status.value == "committed":
                held = self.ledger.state.jobs[job.ledger_id].held_share  # losing challengers' bond shares
                self.credit(self.worker_party(job), "jobs paid",
                            self.ledger.apply(Action("settle_job", {"job_id": job.ledger_id})))
                self.credit(self.worker_party(job), "bond shares", held)
        for _ in range(self.ledger.state.params.vesting_epochs):
            self.tick()
        for worker in self.workers:
            if self.ledger.state.vesting.get(worker.account):
                self.send(worker, "claim_vesting")
        for job in jobs:
            job.status = self.ledger.state.jobs[job.ledger_id].status.value


def get_tamperable_nodes(spec: JobSpec, step: int) -> list[int]:
    """Nodes of `step` a cheater can perturb to change s_{step+1}: not derived (a view's or a copy's
    bits are its input's), with a floating-point output 0 that reaches the state after the step
    (`compute_influential_outputs`)."""
    skeleton = TraceReferee(spec, resolve_task(spec)).replay_skeleton(step)
    influential = compute_influential_outputs(skeleton)
    return [
        j for j, node in enumerate(skeleton.nodes)
        if (j, 0) in influential and not is_derived(node) and node.outputs and node.outputs[0] is not None
        and node.outputs[0].dtype == DTYPE_CODES[torch.float32]
    ]


def run_demo(folder: Path, seed: int = 0, log: Callable[[str], None] = print,
             demo_jobs: tuple[tuple[str, str, int], ...] = DEMO_JOBS) -> DemoReport:
    """Run the whole story in `folder` (a new directory) with `demo_jobs` ((model, optimizer, steps)
    each); returns what happened."""
    start = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=False)
    demo = Demo(folder, seed, log, demo_jobs)
    report = DemoReport()
    demo.genesis()
    report.before = demo.books()
    jobs = demo.post_and_auction()
    demo.choose_cheat(jobs)
    demo.work(jobs)
    demo.reveal(jobs)
    demo.check(jobs)
    demo.open_seals(jobs)
    demo.settle(jobs)
    state = demo.ledger.state
    check_invariants(state)
    report.jobs = jobs
    report.after = demo.books()
    report.slashed = state.totals.slashed
    report.challenger_rewards = state.totals.challenger_rewards
    report.burned = state.burned
    report.refunded = state.totals.refunded
    report.jackpot_paid = state.totals.jackpot_paid
    report.supply_conserved = is_supply_conserved(state)
    report.books = compute_books(state)
    report.lines = {party.label: dict(demo.lines.get(party.label, {})) for party in demo.parties}
    report.seconds = time.perf_counter() - start
    demo.ledger.close()
    return report


def compute_books(state: Any) -> dict[str, int]:
    """The books line by line: where the supply came from (genesis, emission) and where every token
    sits now (balances, stakes, unbonding, escrow, bonds, vesting, jackpot, burned); the two sums agree."""
    buckets = get_bucket_totals(state)
    return {"genesis": state.totals.genesis, "emitted": state.totals.emitted, "supply": state.total_supply,
            **buckets, "sum_of_buckets": sum(buckets.values()), "jackpot_paid": state.totals.jackpot_paid,
            "slashed": state.totals.slashed, "challenger_rewards": state.totals.challenger_rewards,
            "refunded": state.totals.refunded}


def report_json(report: DemoReport) -> dict[str, Any]:
    return {
        "jobs": [
            {
                "id": job.ledger_id, "model": job.model, "optimizer": job.optimizer, "steps": job.spec.steps,
                "worker": job.worker.label if job.worker else None, "price": job.price,
                "tamper": str(job.tamper) if job.tamper else None, "forced": job.forced,
                "forced_tamper": str(job.forced_tamper) if job.forced_tamper else None, "disputed_by": job.disputed_by,
                "verdict": job.verdict, "thrown": job.thrown, "opening": job.opening, "status": job.status,
            }
            for job in report.jobs
        ],
        "cheaters": [job.worker.label for job in report.jobs if job.tamper and job.worker],
        "caught": [job.worker.label for job in report.jobs if job.status == "slashed" and job.worker],
        "forced_errors": [job.ledger_id for job in report.jobs if job.forced],
        "slashed": report.slashed,
        "challenger_rewards": report.challenger_rewards,
        "burned": report.burned,
        "refunded": report.refunded,
        "jackpot_paid": report.jackpot_paid,
        "balances": {"before": report.before, "after": report.after},
        "supply_conserved": report.supply_conserved,
        "books": report.books,
        "lines": report.lines,
        "seconds": report.seconds,
    }
