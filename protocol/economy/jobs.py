"""Jobs: posting with escrow, the reverse auction and the per-epoch batch auction, run commitments,
settlement with vesting, and the missed-deadline slash.

A job's life:  OPEN --(auction)--> ASSIGNED --(commitment)--> COMMITTED --(window over, no dispute open)--> SETTLED
                 \\--> CANCELLED        \\--(deadline missed)--> EXPIRED   \\--(worker proven wrong)--> SLASHED

Secret forced errors (Truebit's design, when `forced_error_rate_bps` > 0 at assignment):

    ASSIGNED --seal--> SEALED --(epoch tick: the draw's seed)--> --reveal--> COMMITTED --(window over)--> open seal
                          \\--(deadline + 1 missed)--> EXPIRED                  \\--(not opened)--> SLASHED

The worker first posts a seal: a hiding commitment to its true signed run commitment under a secret salt
(`evidence.compute_seal`). The seed of the next epoch, unknown to everyone when the seal is made, and the
salt decide whether the job is a forced-error test (`helpers.compute_is_forced_error`); only the worker,
who holds the salt, can tell. By the epoch after its deadline it reveals its public commitment: the true
one, or on a forced-error job a wrong one. Challengers cannot tell a test from another job while the
window runs, so checking pays on every job. Once the window is over the worker opens its seal: the
opening shows the draw, and on a forced-error job a true result that differs from the public one (open
to challenge for one more window); a worker that cannot open it is slashed. The first challenger who
proved a forced error's public commitment wrong is paid from the jackpot; one who proved an ordinary
job's wrong is paid from the worker's slash, as without forced errors.

Replicated jobs (Verde's "at least one honest"): a posting with `replicas` = n > 1 makes n jobs for the
same training job (ids first .. first + n - 1), each auctioned to a different worker and paid its own
price. Replicas carry no forced errors (replication is their check). Workers whose commitments differ
resolve it by games (a replica's worker challenges another replica with its own commitment); a replica
is paid only when every other replica is terminal or committed, and every one not slashed committed to
its root: with one honest worker among them, games remove every other root and the honest one stands.

A job names the training job it pays for (its id, the hash of the job spec, which binds the poster's
posting id), and each training job is posted once: a signed run commitment names its training job, so
it fits exactly one ledger job and cannot be replayed onto another.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from protocol.economy.errors import (
    AuctionFull,
    AuctionStillOpen,
    ChallengeWindowOpen,
    DeadlineNotPassed,
    DeadlinePassed,
    DisputeAlreadyOpen,
    DrawPending,
    DuplicateBid,
    DuplicatePosting,
    DuplicateReplica,
    InsufficientFunds,
    InvalidAmount,
    InvalidBid,
    InvalidCommitment,
    InvalidSeal,
    JobAlreadySettled,
    JobNotAssigned,
    JobNotCommitted,
    JobNotOpen,
    NoBids,
    NothingToClaim,
    NotJobOwner,
    NotJobWorker,
    ReplicasDisagree,
    SealNotOpened,
    SealRequired,
    WrongAuctionMode,
)
from protocol.economy.evidence import (
    CommitmentRecord,
    compute_commitment_record,
    is_salt,
    is_training_job_id,
)
from protocol.economy.helpers import (
    compute_is_forced_error,
    compute_job_tax,
    compute_share,
    compute_tax_bps,
    compute_vested_amount,
    decrease_balance,
    decrease_reputation,
    get_account,
    get_job,
    get_reputation,
    get_stake_at_risk,
    increase_balance,
    increase_burned,
    increase_reputation,
    is_eligible_worker,
    record_slash,
    require_eligible_worker,
    require_positive_amount,
    slash_stake,
)
from protocol.economy.state import TERMINAL_STATUSES, Ask, AuctionMode, Job, JobStatus, State, VestingEntry
from protocol.economy.units import JobId
from protocol.types import Tokens


@dataclass(frozen=True, slots=True)
class Assignment:
    """A job given to a worker at a price (what an auction returns)."""

    job_id: int
    worker: str
    price: int  # tokens


def require_not_terminal(job: Job) -> None:
    if job.status in TERMINAL_STATUSES:
        raise JobAlreadySettled(f"job {job.job_id} is already {job.status.value}")


def process_post_job(
    state: State,
    user: str,
    max_price: Tokens,
    work_units: int,
    training_job: str,
    mode: str = AuctionMode.REVERSE,
    replicas: int = 1,
) -> JobId:
    """Post a job paying for the training job whose id is `training_job` (64 lowercase hex characters,
    never posted before): `max_price` plus the jackpot tax on it go to escrow; returns the new job's id. A
    reverse-auction job takes bids now; a batch job waits for the end-of-epoch batch auction.

    `replicas` > 1 posts that many replicas of the training job (reverse auctions only), each escrowing
    its own price and tax, to be done by different workers; returns the first one's id."""
    p = state.params
    if type(replicas) is not int or not 1 <= replicas <= p.max_bids_per_job:
        raise InvalidAmount(f"replicas is an integer in 1..{p.max_bids_per_job}, got {replicas!r}")
    if replicas > 1 and mode != AuctionMode.REVERSE:
        raise WrongAuctionMode("replicated jobs clear in reverse auctions (each replica needs its own worker)")
    if not is_training_job_id(training_job):
        raise InvalidCommitment(f"a training job id is 64 lowercase hex characters, got {training_job!r}")
    if training_job in state.postings:
        raise DuplicatePosting(f"training job {training_job} is posted already, as job {state.postings[training_job]}")
    require_positive_amount(max_price, "a job's maximum price")
    if max_price < p.min_job_payment:
        raise InvalidAmount(f"a job pays at least {p.min_job_payment}, got {max_price}")
    if type(work_units) is not int or work_units <= 0:
        raise InvalidAmount(f"work units must be a positive integer, got {work_units!r}")
    if mode not in (AuctionMode.REVERSE, AuctionMode.BATCH):
        raise WrongAuctionMode(f"unknown auction mode {mode!r}")
    # replicas carry no forced errors, so no jackpot tax either
    tax = compute_job_tax(max_price, compute_tax_bps(p)) if replicas == 1 else 0
    acct = get_account(state, user)
    if acct.balance < (max_price + tax) * replicas:
        raise InsufficientFunds(
            f"{user!r} has {acct.balance}, posting needs {replicas} x ({max_price} plus tax {tax})"
        )
    first = state.next_job_id
    for job_id in range(first, first + replicas):
        decrease_balance(state, user, max_price + tax)
        state.escrow[job_id] = max_price + tax
        job = Job(job_id, user, max_price, work_units, AuctionMode(mode), state.epoch, tax)
        job.training_job = training_job
        job.replica_of = first if replicas > 1 else -1
        job.replicas = replicas
        state.jobs[job_id] = job
        if mode == AuctionMode.BATCH:
            state.batch_queue.append(job_id)
    state.postings[training_job] = first
    state.next_job_id += replicas
    return JobId(first)


def get_replicas(state: State, job: Job) -> list[Job]:
    """The other replicas of a replicated job that the state still holds (none for a plain job)."""
    if job.replica_of < 0:
        return []
    ids = range(job.replica_of, job.replica_of + job.replicas)
    return [state.jobs[j] for j in ids if j != job.job_id and j in state.jobs]


def is_holding_replica(state: State, job: Job, worker: str) -> bool:
    """True when `worker` was assigned another replica of `job`."""
    return any(other.worker == worker for other in get_replicas(state, job))


def process_cancel_job(state: State, user: str, job_id: JobId) -> Tokens:
    """The user withdraws a job nobody was assigned yet; its escrow (price and tax) comes back."""
    job = get_job(state, job_id)
    require_not_terminal(job)
    if job.user != user:
        raise NotJobOwner(f"job {job_id} belongs to {job.user!r}, not {user!r}")
    if job.status != JobStatus.OPEN:
        raise JobNotOpen(f"job {job_id} is {job.status.value}; only open jobs can be cancelled")
    refund = state.escrow.pop(job_id)
    increase_balance(state, user, refund)
    if job.mode == AuctionMode.BATCH:
        state.batch_queue.remove(job_id)
    job.status = JobStatus.CANCELLED
    job.settle_count += 1
    job.bids = {}
    return Tokens(refund)


def is_bidding_open(state: State, job: Job) -> bool:
    return (
        job.status == JobStatus.OPEN
        and state.epoch <= job.posted_epoch + state.params.auction_duration_epochs
    )


def process_bid(state: State, worker: str, job_id: JobId, price: Tokens) -> None:
    """An eligible worker offers to do a reverse-auction job for `price` (at most the job's maximum)."""
    p = state.params
    job = get_job(state, job_id)
    require_not_terminal(job)
    if job.mode != AuctionMode.REVERSE:
        raise WrongAuctionMode(f"job {job_id} clears in the batch auction; post an ask instead")
    if not is_bidding_open(state, job):
        raise JobNotOpen(f"job {job_id} takes no more bids")
    require_eligible_worker(state, worker)
    if type(price) is not int or not p.min_job_payment <= price <= job.max_price:
        raise InvalidBid(
            f"a bid on job {job_id} is between {p.min_job_payment} and {job.max_price}, got {price!r}"
        )
    if worker in job.bids:
        raise DuplicateBid(f"{worker!r} already bid on job {job_id}")
    if is_holding_replica(state, job, worker):
        raise DuplicateReplica(f"{worker!r} already holds a replica of job {job_id}'s training job")
    if len(job.bids) >= p.max_bids_per_job:
        raise AuctionFull(f"job {job_id} already has {len(job.bids)} bids")
    job.bids[worker] = price


def compute_bid_order(price: int, reputation: int, worker: str) -> tuple[int, int, str]:
    """Sort key of an offer: lowest price first, then highest reputation, then account name (so the
    order is total and every replica picks the same winner)."""
    return (price, -reputation, worker)


def process_close_auction(state: State, job_id: JobId) -> Assignment:
    """Close a reverse auction (from its last bidding epoch on): the lowest bid from a still eligible
    worker wins, reputation breaking ties. The price is the winning bid."""
    job = get_job(state, job_id)
    require_not_terminal(job)
    if job.mode != AuctionMode.REVERSE:
        raise WrongAuctionMode(f"job {job_id} clears in the batch auction")
    if job.status != JobStatus.OPEN:
        raise JobNotOpen(f"job {job_id} is {job.status.value}")
    if state.epoch < job.posted_epoch + state.params.auction_duration_epochs:
        raise AuctionStillOpen(
            f"job {job_id} takes bids until epoch {job.posted_epoch + state.params.auction_duration_epochs}"
        )
    offers = [
        compute_bid_order(price, get_reputation(state, worker), worker)
        for worker, price in job.bids.items()
        if is_eligible_worker(state, worker) and not is_holding_replica(state, job, worker)
    ]
    if not offers:
        raise NoBids(f"job {job_id} has no bid from an eligible worker")
    price, _, worker = min(offers)
    return process_assignment(state, job, worker, price)


def process_assignment(state: State, job: Job, worker: str, price: int) -> Assignment:
    """Give `job` to `worker` at `price`: the tax on the price goes to the jackpot, the rest of the
    escrow above the price goes back to the user. The forced-error rate in force is fixed for the job
    (a plain job's worker then seals its result first); whether the job is a test is drawn later."""
    p = state.params
    # never more than was taxed at posting (governance may have raised the rate since): refund >= 0
    tax = min(compute_job_tax(price, compute_tax_bps(p)), job.posting_tax)
    escrowed = state.escrow[job.job_id]
    refund = escrowed - price - tax
    state.jackpot += tax
    increase_balance(state, job.user, refund)
    state.escrow[job.job_id] = price
    job.status = JobStatus.ASSIGNED
    job.worker = worker
    job.price = price
    job.assigned_epoch = state.epoch
    job.commit_deadline = state.epoch + p.commit_deadline_epochs
    job.forced_rate_bps = p.forced_error_rate_bps if job.replica_of < 0 else 0
    job.bids = {}
    state.workers[worker].open_jobs += 1
    return Assignment(job.job_id, worker, price)


def process_post_ask(state: State, worker: str, unit_price: Tokens, capacity: int) -> None:
    """An eligible worker's standing offer in the batch auction: up to `capacity` jobs per epoch at
    `unit_price` tokens per work unit. Replaces its previous ask."""
    require_eligible_worker(state, worker)
    if type(unit_price) is not int or unit_price <= 0:
        raise InvalidBid(f"an ask's unit price is a positive integer, got {unit_price!r}")
    if type(capacity) is not int or capacity <= 0:
        raise InvalidBid(f"an ask's capacity is a positive integer, got {capacity!r}")
    state.asks[worker] = Ask(unit_price, capacity)


def process_withdraw_ask(state: State, worker: str) -> None:
    if worker not in state.asks:
        raise InvalidBid(f"{worker!r} has no ask")
    del state.asks[worker]


def process_batch_auction(state: State) -> list[Assignment]:
    """Clear every queued batch job against the eligible asks at one uniform price per work unit.

    Jobs are ranked by the most they pay per work unit (highest first), ask slots (one per unit of
    capacity) by price (lowest first, then reputation, then name). The first k pairs in which the job
    pays at least the ask trade; the clearing price is the k-th (marginal) ask, which every matched job
    can pay and every matched worker accepts. A job pays clearing price x its work units, raised to
    `min_job_payment` if lower (still within its maximum). Unmatched jobs wait for the next epoch.
    O(queued jobs + asks) per epoch."""
    if not state.batch_queue or not state.asks:
        return []
    queue = sorted(
        (state.jobs[j] for j in state.batch_queue),
        key=lambda j: (-Fraction(j.max_price, j.work_units), j.job_id),
    )
    slots: list[tuple[int, int, str]] = []
    for worker in sorted(state.asks):
        if is_eligible_worker(state, worker):
            ask = state.asks[worker]
            order = compute_bid_order(ask.unit_price, get_reputation(state, worker), worker)
            slots.extend([order] * min(ask.capacity, len(queue)))
    slots.sort()
    k = 0
    while k < min(len(queue), len(slots)) and queue[k].max_price >= slots[k][0] * queue[k].work_units:
        k += 1
    if k == 0:
        return []
    clearing = slots[k - 1][0]
    assignments = [
        process_assignment(state, job, slot[2], max(clearing * job.work_units, state.params.min_job_payment))
        for job, slot in zip(queue[:k], slots[:k], strict=True)
    ]
    matched = {a.job_id for a in assignments}
    state.batch_queue = [j for j in state.batch_queue if j not in matched]
    return assignments


def process_seal_result(state: State, worker: str, job_id: JobId, sealed: str) -> None:
    """With forced errors on, the assigned worker first seals its true result, no later than the job's
    deadline epoch: `sealed` is `evidence.compute_seal` of its true signed run commitment under a secret
    salt (hex32). The job waits for the next epoch's seed, its draw (`process_epoch` records it)."""
    job = get_job(state, job_id)
    require_not_terminal(job)
    if job.worker != worker:
        raise NotJobWorker(f"job {job_id} is assigned to {job.worker!r}, not {worker!r}")
    if job.status != JobStatus.ASSIGNED:
        raise JobNotAssigned(f"job {job_id} is {job.status.value}, not waiting for a seal")
    if job.forced_rate_bps == 0:
        raise InvalidSeal(f"job {job_id} carries no forced errors: its worker commits without a seal")
    if state.epoch > job.commit_deadline:
        raise DeadlinePassed(f"job {job_id}'s deadline was epoch {job.commit_deadline}")
    if not is_salt(sealed):
        raise InvalidSeal(f"a seal is 64 lowercase hex characters, got {sealed!r}")
    job.sealed = sealed
    job.status = JobStatus.SEALED
    state.draws.append(job.job_id)


def compute_reveal_deadline(job: Job) -> int:
    """Last epoch in which a job's public commitment is accepted: its deadline, or with a seal the epoch
    after it (the seal's draw is the seed of the epoch after the seal, at the latest deadline + 1)."""
    return job.commit_deadline + (1 if job.forced_rate_bps > 0 else 0)


def process_submit_commitment(state: State, worker: str, job_id: JobId, commitment: object) -> None:
    """The assigned worker posts its signed run commitment (its JSON) no later than the job's deadline
    epoch: checked on entry (evidence.compute_commitment_record) and kept verbatim, since every game
    over this job must be played against exactly it; the challenge window starts. With forced errors on
    this is the reveal, after the seal's draw: the true result, or on a forced-error job a wrong one."""
    job = get_job(state, job_id)
    require_not_terminal(job)
    if job.worker != worker:
        raise NotJobWorker(f"job {job_id} is assigned to {job.worker!r}, not {worker!r}")
    record = compute_commitment_record(commitment, job.training_job, worker)
    process_checked_commitment(state, worker, job_id, record)


def process_checked_commitment(state: State, worker: str, job_id: JobId, record: CommitmentRecord) -> None:
    """The commitment transition once the commitment itself is checked: what `process_submit_commitment`
    does after its check, and what a driver that models commitments instead of signing them (the
    simulation) calls directly. No message reaches it unchecked."""
    job = get_job(state, job_id)
    require_not_terminal(job)
    if job.worker != worker:
        raise NotJobWorker(f"job {job_id} is assigned to {job.worker!r}, not {worker!r}")
    if job.status == JobStatus.ASSIGNED and job.forced_rate_bps > 0:
        raise SealRequired(f"job {job_id} may carry a forced error: its worker seals its true result first")
    if job.status == JobStatus.SEALED and not job.draw_seed:
        raise DrawPending(f"job {job_id}'s draw is the next epoch's seed; reveal from the next epoch on")
    if job.status not in (JobStatus.ASSIGNED, JobStatus.SEALED):
        raise JobNotAssigned(f"job {job_id} is {job.status.value}, not waiting for a commitment")
    if state.epoch > compute_reveal_deadline(job):
        raise DeadlinePassed(f"job {job_id}'s deadline was epoch {compute_reveal_deadline(job)}")
    if not is_training_job_id(record.root):
        raise InvalidCommitment(f"a chain root is 64 lowercase hex characters, got {record.root!r}")
    job.commitment = record.root
    job.commitment_statement = record.statement
    job.commit_epoch = state.epoch
    job.window_end = state.epoch + state.params.challenge_window_epochs
    job.status = JobStatus.COMMITTED


def process_draws(state: State) -> None:
    """Give every job sealed in the epoch that ends its draw: the seed of the epoch that starts (called by
    `process_epoch` once the new seed is in). O(jobs sealed in the epoch)."""
    for job_id in state.draws:
        job = state.jobs.get(job_id)
        if job is not None and job.status == JobStatus.SEALED:
            job.draw_seed = state.seed
    state.draws = []


def is_forced_error_opening(job: Job, salt: str) -> bool:
    """Whether the seal of `job`, opened with `salt`, shows a forced error (see compute_is_forced_error)."""
    return compute_is_forced_error(job.draw_seed, salt, job.job_id, job.forced_rate_bps)


def get_replica_problem(state: State, job: Job) -> str | None:
    """Why a replica cannot be paid yet (None when it can): another replica not yet committed, or one
    that is not slashed and committed to another root."""
    for other in get_replicas(state, job):
        if other.status in (JobStatus.OPEN, JobStatus.ASSIGNED, JobStatus.SEALED):
            return f"replica {other.job_id} has not committed yet"
        if other.status in (JobStatus.COMMITTED, JobStatus.SETTLED) and other.commitment != job.commitment:
            return f"replica {other.job_id} committed to another result; a game must settle which stands"
    return None


def process_settle_job(state: State, job_id: JobId) -> Tokens:
    """Pay the worker once the challenge window is over with no dispute open (the window stays open while
    one is: every dispute is settled on its own before the job can be), its seal opened if it has one, and
    every other replica (if any) agreeing. `vesting_share_bps` of the price is held in a vesting entry;
    the rest is paid now, with the bond shares held for it (`Job.held_share`). Returns the price."""
    p = state.params
    job = get_job(state, job_id)
    require_not_terminal(job)
    if job.open_disputes > 0:
        raise DisputeAlreadyOpen(f"job {job_id} has {job.open_disputes} open dispute(s) awaiting settlement")
    if job.status != JobStatus.COMMITTED:
        raise JobNotCommitted(f"job {job_id} is {job.status.value}; nothing to settle")
    if state.epoch < job.window_end:
        raise ChallengeWindowOpen(f"job {job_id}'s challenge window runs until epoch {job.window_end}")
    if job.forced_rate_bps > 0 and not job.opened:
        raise SealNotOpened(f"job {job_id}'s worker has not opened its seal; it is paid once it does")
    problem = get_replica_problem(state, job)
    if problem is not None:
        raise ReplicasDisagree(f"job {job_id}: {problem}")
    worker = job.worker
    assert worker is not None
    price = state.escrow.pop(job_id)
    # floor (compute_share): the held part rounds down; the remainder is paid now, so all of `price` moves
    held = compute_share(price, p.vesting_share_bps)
    increase_balance(state, worker, price - held + job.held_share)
    job.held_share = 0
    if held > 0:
        state.vesting.setdefault(worker, []).append(
            VestingEntry(job_id, held, 0, state.epoch, state.epoch + p.vesting_epochs, p.vesting_mode)
        )
    job.status = JobStatus.SETTLED
    job.settle_count += 1
    state.workers[worker].open_jobs -= 1
    increase_reputation(state, worker, p.reputation_success_gain)
    state.epoch_work[worker] = state.epoch_work.get(worker, 0) + job.work_units
    state.epoch_tasks[worker] = state.epoch_tasks.get(worker, 0) + 1
    return Tokens(price)


def process_claim_vesting(state: State, account: str) -> Tokens:
    """Move every released, unclaimed vesting token of `account` to its balance; returns the amount."""
    get_account(state, account)
    entries = state.vesting.get(account, [])
    claimable = [(e, compute_vested_amount(e, state.epoch) - e.claimed) for e in entries]
    amount = sum(c for _, c in claimable)
    if amount == 0:
        raise NothingToClaim(f"{account!r} has nothing released to claim at epoch {state.epoch}")
    for entry, part in claimable:
        entry.claimed += part
    remaining = [e for e in entries if e.claimed < e.total]
    if remaining:
        state.vesting[account] = remaining
    else:
        del state.vesting[account]
    increase_balance(state, account, amount)
    return Tokens(amount)


def slash_missed_deadline(state: State, job_id: JobId) -> Tokens:
    """Anyone may report a worker that let its commitment deadline pass (its seal's, or its reveal's, the
    epoch after): `missed_deadline_slash_bps` of its stake at risk is burned, the user gets its payment
    back, the job expires. Returns the slash."""
    p = state.params
    job = get_job(state, job_id)
    require_not_terminal(job)
    if job.status not in (JobStatus.ASSIGNED, JobStatus.SEALED):
        raise JobNotAssigned(f"job {job_id} is {job.status.value}, not waiting for a commitment")
    deadline = job.commit_deadline if job.status == JobStatus.ASSIGNED else compute_reveal_deadline(job)
    if state.epoch <= deadline:
        raise DeadlineNotPassed(f"job {job_id}'s worker has until epoch {deadline}")
    worker = job.worker
    assert worker is not None
    at_stake = get_stake_at_risk(state, worker)
    # floor (compute_share): the slash rounds down in the worker's favour; all of it is burned
    taken = slash_stake(state, worker, compute_share(at_stake, p.missed_deadline_slash_bps))
    increase_burned(state, taken)
    record_slash(state, worker, "deadline", taken, at_stake, job_id)
    refund = state.escrow.pop(job_id)
    increase_balance(state, job.user, refund)
    state.totals.refunded += refund
    job.status = JobStatus.EXPIRED
    job.settle_count += 1
    state.workers[worker].open_jobs -= 1
    decrease_reputation(state, worker, p.reputation_fault_loss)
    return taken
