"""Named invariants of the economy (STYLE.md, item 8): each a name, a one-line rationale and a check.

A check returns None when its rule holds and a description of the breach otherwise. Tests and
simulations run `check_invariants` after every transition; `verify_invariants` returns the
violations and never raises. Every check is O(state); they are for tests, audits and ledgers, not
the hot path.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from protocol.economy.errors import InvariantViolation
from protocol.economy.helpers import get_total_vesting, is_amount
from protocol.economy.params import compute_params_problems
from protocol.economy.state import TERMINAL_STATUSES, AuctionMode, JobStatus, State


@dataclass(frozen=True, slots=True)
class Invariant:
    name: str
    rationale: str
    check: Callable[[State], str | None]


@dataclass(frozen=True, slots=True)
class Violation:
    name: str
    detail: str


def get_bucket_totals(state: State) -> dict[str, int]:
    """Tokens in each place they can be (the terms of the conservation law)."""
    return {
        "balances": sum(a.balance for a in state.accounts.values()),
        "stakes": sum(state.stakes.values()),
        "unbonding": sum(e.amount for entries in state.unbonding.values() for e in entries),
        "escrow": sum(state.escrow.values()),
        "held": sum(job.held_share for job in state.jobs.values()),
        "bonds": sum(d.bond for d in state.disputes.values()),
        "vesting": get_total_vesting(state),
        "jackpot": state.jackpot,
        "burned": state.burned,
    }


def check_supply_conserved(state: State) -> str | None:
    buckets = get_bucket_totals(state)
    total = sum(buckets.values())
    if total != state.total_supply:
        return f"total supply {state.total_supply} != sum of buckets {total} ({buckets})"
    return None


def is_supply_conserved(state: State) -> bool:
    """True when the books balance (the `supply_conserved` invariant); never raises."""
    try:
        return check_supply_conserved(state) is None
    except Exception:
        return False


def check_supply_sources(state: State) -> str | None:
    genesis, emitted = state.totals.genesis, state.totals.emitted
    if state.total_supply != genesis + emitted:
        return f"total supply {state.total_supply} != genesis {genesis} + emitted {emitted}"
    return None


def check_no_negative_amounts(state: State) -> str | None:
    amounts: list[tuple[str, object]] = [
        ("jackpot", state.jackpot),
        ("burned", state.burned),
        ("total_supply", state.total_supply),
        ("total_staked", state.total_staked),
        ("emission", state.emission.per_epoch),
    ]
    amounts += [(f"balance of {a}", acct.balance) for a, acct in state.accounts.items()]
    amounts += [(f"nonce of {a}", acct.nonce) for a, acct in state.accounts.items()]
    amounts += [(f"stake of {a}", s) for a, s in state.stakes.items()]
    amounts += [(f"unbonding of {a}", e.amount) for a, es in state.unbonding.items() for e in es]
    amounts += [(f"escrow of job {j}", v) for j, v in state.escrow.items()]
    amounts += [(f"bond on job {j}", d.bond) for j, d in state.disputes.items()]
    amounts += [(f"vesting of {a}", e.total - e.claimed) for a, es in state.vesting.items() for e in es]
    amounts += [(f"vested claim of {a}", e.claimed) for a, es in state.vesting.items() for e in es]
    amounts += [(f"reputation of {a}", r.score) for a, r in state.reputation.items()]
    for what, value in amounts:
        if not is_amount(value):
            return f"{what} is {value!r}"
    return None


def check_no_empty_entries(state: State) -> str | None:
    if any(s == 0 for s in state.stakes.values()):
        return "a zero stake entry is kept"
    if any(not es or any(e.amount == 0 for e in es) for es in state.unbonding.values()):
        return "an empty unbonding entry is kept"
    if any(not es for es in state.vesting.values()):
        return "an empty vesting list is kept"
    return None


def check_slash_within_stake(state: State) -> str | None:
    for event in state.slash_events:
        if not 0 <= event.amount <= event.at_stake:
            return f"slash of {event.amount} on {event.account} exceeds the {event.at_stake} at stake"
    return None


def check_jobs_settle_once(state: State) -> str | None:
    for job in state.jobs.values():
        terminal = job.status in TERMINAL_STATUSES
        if job.settle_count != (1 if terminal else 0):
            return f"job {job.job_id} is {job.status.value} with settle_count {job.settle_count}"
        if terminal and job.job_id in state.escrow:
            return f"job {job.job_id} is {job.status.value} but still holds escrow"
        if not terminal and job.job_id not in state.escrow:
            return f"job {job.job_id} is {job.status.value} but holds no escrow"
    return None


def check_escrow_matches_jobs(state: State) -> str | None:
    for job_id, amount in state.escrow.items():
        job = state.jobs.get(job_id)
        if job is None:
            return f"escrow for unknown job {job_id}"
        expected = job.max_price + job.posting_tax if job.status == JobStatus.OPEN else job.price
        if amount != expected:
            return f"job {job_id} ({job.status.value}) escrows {amount}, expected {expected}"
    queued = {
        j for j, job in state.jobs.items() if job.status == JobStatus.OPEN and job.mode == AuctionMode.BATCH
    }
    if set(state.batch_queue) != queued or len(state.batch_queue) != len(queued):
        return "the batch queue does not hold exactly the open batch jobs"
    return None


def check_bonds_match_disputes(state: State) -> str | None:
    counts: dict[int, int] = {}
    for number, dispute in state.disputes.items():
        if number != dispute.number or not 0 <= number < state.next_dispute:
            return f"dispute {number} is filed under another number or was never issued"
        counts[dispute.job_id] = counts.get(dispute.job_id, 0) + 1
        job = state.jobs.get(dispute.job_id)
        if job is not None and job.status not in (JobStatus.COMMITTED, JobStatus.SLASHED):
            return f"dispute {number} is open on job {job.job_id}, which is {job.status.value}"
    for job in state.jobs.values():
        if job.open_disputes != counts.get(job.job_id, 0):
            return f"job {job.job_id} counts {job.open_disputes} open disputes, has {counts.get(job.job_id, 0)}"
    return None


def check_cheater_never_paid(state: State) -> str | None:
    for job in state.jobs.values():
        if job.proven_wrong and job.status == JobStatus.SETTLED:
            return f"job {job.job_id}'s worker was proven wrong and was paid"
        if job.proven_wrong and job.status == JobStatus.COMMITTED:
            return f"job {job.job_id}'s worker was proven wrong but the job is not slashed"
        if job.public_wrong and job.status == JobStatus.SETTLED and not job.forced_error:
            return f"job {job.job_id}'s public commitment was proven wrong without a forced error, and was paid"
        if job.held_share and (job.status in TERMINAL_STATUSES or job.proven_wrong):
            return f"job {job.job_id} is {job.status.value} and still holds {job.held_share} in bond shares"
    return None


def check_postings_unique(state: State) -> str | None:
    for training_job, job_id in state.postings.items():
        job = state.jobs.get(job_id)
        if job is not None and job.training_job != training_job:
            return f"posting {training_job} names job {job_id}, which is for {job.training_job}"
    for job in state.jobs.values():
        posted_as = job.replica_of if job.replica_of >= 0 else job.job_id
        if state.postings.get(job.training_job) != posted_as:
            return f"job {job.job_id}'s training job {job.training_job} is not posted as it"
    return None


def check_seals(state: State) -> str | None:
    drawn = [j for j in state.draws if j in state.jobs]
    waiting = {j for j, job in state.jobs.items() if job.status == JobStatus.SEALED and not job.draw_seed}
    if set(drawn) != waiting or len(drawn) != len(set(drawn)):
        return f"jobs awaiting their draw {sorted(waiting)} are not the epoch's draws {sorted(drawn)}"
    for job in state.jobs.values():
        if job.status == JobStatus.SETTLED and job.forced_rate_bps > 0 and not job.opened:
            return f"job {job.job_id} was paid with its seal unopened"
        if job.forced_error and not job.opened:
            return f"job {job.job_id} is known to carry a forced error before its seal was opened"
        if job.status == JobStatus.SEALED and job.forced_rate_bps == 0:
            return f"job {job.job_id} is sealed without forced errors"
    return None


def check_replicas_agree(state: State) -> str | None:
    paid: dict[int, str] = {}
    for job in state.jobs.values():
        if job.replica_of >= 0 and job.status == JobStatus.SETTLED:
            if paid.setdefault(job.replica_of, job.commitment) != job.commitment:
                return f"replicas of job {job.replica_of} were paid for different results"
            if job.forced_rate_bps:
                return f"replica {job.job_id} carries forced errors"
    return None


def check_counters(state: State) -> str | None:
    if state.total_staked != sum(state.stakes.values()):
        return f"total_staked {state.total_staked} != sum of stakes {sum(state.stakes.values())}"
    active = sum(1 for w in state.workers.values() if w.active)
    if state.active_workers != active:
        return f"active_workers {state.active_workers} != {active} active records"
    open_jobs: dict[str, int] = {}
    for job in state.jobs.values():
        if job.worker is not None and job.status not in TERMINAL_STATUSES:
            open_jobs[job.worker] = open_jobs.get(job.worker, 0) + 1
    for account, record in state.workers.items():
        count = open_jobs.pop(account, 0)
        if record.open_jobs != count:
            return f"worker {account} counts {record.open_jobs} open jobs, has {count}"
    if open_jobs:
        return f"jobs assigned to accounts that are not workers: {sorted(open_jobs)}"
    return None


def check_vesting_entries(state: State) -> str | None:
    for account, entries in state.vesting.items():
        for e in entries:
            if not 0 <= e.claimed <= e.total or e.end_epoch < e.start_epoch:
                return f"vesting entry of {account} for job {e.job_id} is inconsistent"
    return None


def check_committees(state: State) -> str | None:
    for epoch, record in state.committees.items():
        if record.epoch != epoch or epoch > state.epoch:
            return f"the committee kept for epoch {epoch} says epoch {record.epoch} (now {state.epoch})"
        accounts = [seat.account for seat in record.seats]
        if not accounts or len(set(accounts)) != len(accounts) or len({seat.key for seat in record.seats}) != len(accounts):
            return f"epoch {epoch}'s committee seats an account or a key twice, or nobody"
        for seat in record.seats:
            if seat.account not in state.referees or seat.stake <= 0:
                return f"epoch {epoch}'s seat {seat.account} is not a registered referee with stake"
    keys = [referee.key for referee in state.referees.values()]
    if len(set(keys)) != len(keys):
        return "two referees registered one key"
    for fault, epoch in state.committee_faults.items():
        if epoch not in state.committees:
            return f"fault {fault} is remembered for a committee no longer kept"
    return None


def check_one_role(state: State) -> str | None:
    for account, referee in state.referees.items():
        worker = state.workers.get(account)
        if referee.active and worker is not None and worker.active:
            return f"{account} is both an active worker and an active referee"
    return None


def check_availability_challenges(state: State) -> str | None:
    for number, c in state.availability_challenges.items():
        stored = state.stored.get(c.commitment_id)
        if stored is None:
            return f"availability challenge {number} is about a commitment no longer stored"
        if not 0 <= c.index < len(stored.placement) or not stored.accepted[c.index]:
            return f"availability challenge {number} asks for shard {c.index}, which nobody accepted"
        if stored.placement[c.index] != c.holder:
            return f"availability challenge {number} names {c.holder!r}, the shard's holder is {stored.placement[c.index]!r}"
        if number >= state.next_availability_challenge or c.deadline_epoch < state.epoch - 1:
            return f"availability challenge {number} is open past its deadline or was never issued"
    for key, stored in state.stored.items():
        if len(stored.accepted) != len(stored.placement):
            return f"stored checkpoint {key} accepts {len(stored.accepted)} shards of {len(stored.placement)}"
    return None


def check_params_valid(state: State) -> str | None:
    problems = compute_params_problems(state.params)
    return "; ".join(problems) if problems else None


INVARIANTS: list[Invariant] = [
    Invariant(
        "supply_conserved",
        "tokens are never created or lost by a transition: supply = balances + stakes + unbonding + escrow "
        "+ held bond shares + bonds + vesting + jackpot + burned",
        check_supply_conserved,
    ),
    Invariant("supply_sources", "tokens come only from genesis and emission", check_supply_sources),
    Invariant(
        "no_negative_amounts",
        "no balance, stake, escrow, bond or score is negative",
        check_no_negative_amounts,
    ),
    Invariant(
        "no_empty_entries",
        "zero entries are removed, so per-account work stays bounded",
        check_no_empty_entries,
    ),
    Invariant("slash_within_stake", "a slash never takes more than was at stake", check_slash_within_stake),
    Invariant(
        "jobs_settle_once",
        "a job reaches a terminal status exactly once and then holds nothing",
        check_jobs_settle_once,
    ),
    Invariant("escrow_matches_jobs", "each live job escrows exactly what it owes", check_escrow_matches_jobs),
    Invariant(
        "bonds_match_disputes",
        "a bond is held exactly while its dispute is open, and each job counts its open disputes",
        check_bonds_match_disputes,
    ),
    Invariant(
        "cheater_never_paid",
        "a worker proven wrong by a verified game is slashed and never paid for the job",
        check_cheater_never_paid,
    ),
    Invariant(
        "postings_unique",
        "each training job is posted once, so a commitment fits exactly one ledger job",
        check_postings_unique,
    ),
    Invariant(
        "seals_opened_before_pay",
        "a sealed job is paid only once its seal is opened, and its draw is known to nobody before",
        check_seals,
    ),
    Invariant(
        "replicas_agree",
        "replicas of one job are paid only for one result (games remove every other)",
        check_replicas_agree,
    ),
    Invariant("counters_consistent", "cached totals agree with what they summarise", check_counters),
    Invariant(
        "vesting_consistent", "a vesting entry never releases more than it holds", check_vesting_entries
    ),
    Invariant(
        "committees_well_formed",
        "each epoch's committee seats distinct registered referees with stake, no two referees share a key, "
        "and a fault is remembered while its committee is kept",
        check_committees,
    ),
    Invariant(
        "one_bonded_role",
        "no account is an active worker and an active referee: its stake answers for one role",
        check_one_role,
    ),
    Invariant(
        "availability_challenges_answerable",
        "a sampling challenge names the holder of an accepted shard of a stored checkpoint, and stays open no "
        "longer than its deadline: nobody is slashed for a shard it never took",
        check_availability_challenges,
    ),
    Invariant("params_valid", "governance never leaves an inconsistent parameter table", check_params_valid),
]


def verify_invariants(state: State) -> list[Violation]:
    """Every invariant that does not hold; never raises (a check that crashes counts as violated)."""
    violations: list[Violation] = []
    for invariant in INVARIANTS:
        try:
            detail = invariant.check(state)
        except Exception as exc:  # a crash in a check is itself a breach of the state's shape
            detail = f"check crashed: {type(exc).__name__}: {exc}"
        if detail is not None:
            violations.append(Violation(invariant.name, detail))
    return violations


def check_invariants(state: State) -> None:
    """Raise InvariantViolation naming every invariant that does not hold."""
    violations = verify_invariants(state)
    if violations:
        raise InvariantViolation("; ".join(f"{v.name}: {v.detail}" for v in violations))
