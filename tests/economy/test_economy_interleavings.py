"""Random interleavings of commitments, seals, challenges, game outcomes, openings and settlements.

A seeded random actor drives many small economies (plain jobs with secret forced errors, and replicated
jobs) through the transitions a checked commitment and a checked game lead to; after every transition,
accepted or refused, every named invariant of the economy is checked (conservation, "a cheater proven
wrong is never paid", seals opened before pay, replicas agree, ...), and a refused one must have changed
nothing. The run reaches well over 100,000 transitions in a few seconds.
"""

from __future__ import annotations

import random

from protocol.economy import (
    BOTH_WRONG,
    CHALLENGER_WRONG,
    MINIMAL,
    WORKER_WRONG,
    CommitmentRecord,
    EconomyError,
    JobStatus,
    State,
    check_invariants,
    compute_changed_params,
    compute_seal,
    copy_state,
    create_state,
    get_required_worker_stake,
    process_bid,
    process_checked_commitment,
    process_checked_dispute,
    process_checked_open_seal,
    process_close_auction,
    process_dispute_verdict,
    process_epoch,
    process_genesis_allocation,
    process_post_job,
    process_register_worker,
    process_seal_result,
    process_settle_job,
    process_stake,
    slash_missed_deadline,
    slash_unopened_seal,
)
from protocol.economy.jobs import is_forced_error_opening

WORKERS = ("w0", "w1", "w2", "w3")
CHALLENGERS = ("c0", "c1")
ROOTS = tuple(f"{i:02x}" * 32 for i in range(1, 5))  # ROOTS[0] is every job's true result
OUTCOMES = (WORKER_WRONG, CHALLENGER_WRONG, BOTH_WRONG)
EPISODES = 600
STEPS = 200


def record(root: str) -> CommitmentRecord:
    return CommitmentRecord(root, "", 1, "model:" + root)


def make_economy(rng: random.Random) -> State:
    params = compute_changed_params(MINIMAL, "forced_error_rate_bps", rng.choice((0, 2_000, 5_000, 10_000)))
    state = create_state(params, rng.randbytes(8))
    for name in ("user", *WORKERS, *CHALLENGERS):
        process_genesis_allocation(state, name, 5_000)
    for worker in WORKERS:
        process_stake(state, worker, get_required_worker_stake(state) + 50)
        process_register_worker(state, worker)
    return state


def live(state: State, *statuses: JobStatus) -> list[int]:
    return [j for j, job in state.jobs.items() if job.status in statuses]


def step(state: State, rng: random.Random, salts: dict[int, str], truths: dict[int, str]) -> None:
    """One random transition; the actor plays every party, mostly by the rules, sometimes not."""
    kind = rng.randrange(12)
    jobs = list(state.jobs)
    job_id = rng.choice(jobs) if jobs and rng.random() < 0.9 else rng.randrange(100)
    job = state.jobs.get(job_id)
    if kind == 0:
        process_post_job(state, "user", rng.choice((20, 100, 300)), 5, f"{state.next_job_id:064x}",
                         replicas=rng.choice((1, 1, 2, 3)))
    elif kind == 1:
        open_jobs = live(state, JobStatus.OPEN) or [job_id]
        process_bid(state, rng.choice(WORKERS), rng.choice(open_jobs), rng.choice((10, 20, 100, 400)))
    elif kind == 2:
        process_close_auction(state, rng.choice(live(state, JobStatus.OPEN) or [job_id]))
    elif kind == 3:  # the worker seals what it computed (the truth, or a cheat)
        target = rng.choice(live(state, JobStatus.ASSIGNED) or [job_id])
        found = state.jobs.get(target)
        worker = found.worker if found is not None and found.worker and rng.random() < 0.9 else rng.choice(WORKERS)
        truths[target] = ROOTS[0] if rng.random() < 0.7 else ROOTS[1]
        salts[target] = rng.randbytes(32).hex()
        process_seal_result(state, worker or "w0", target, compute_seal(record(truths[target]).statement, salts[target]))
    elif kind == 4:  # the reveal (or the commitment of a job without forced errors): mostly obeying the draw
        target = rng.choice(live(state, JobStatus.ASSIGNED, JobStatus.SEALED) or [job_id])
        found = state.jobs.get(target)
        root = truths.get(target, ROOTS[0] if rng.random() < 0.7 else ROOTS[1])
        if found is not None and found.draw_seed and target in salts and is_forced_error_opening(found, salts[target]):
            root = ROOTS[2]
        if rng.random() < 0.1:
            root = rng.choice(ROOTS)
        worker = found.worker if found is not None and found.worker else "w0"
        process_checked_commitment(state, worker, target, record(root))
    elif kind == 5:
        target = rng.choice(live(state, JobStatus.COMMITTED) or [job_id])
        process_checked_dispute(state, rng.choice(CHALLENGERS + WORKERS), target, record(rng.choice(ROOTS)))
    elif kind == 6 and state.disputes:  # a game's checked outcome: honest sides win, with noise
        number = rng.choice(list(state.disputes))
        dispute = state.disputes[number]
        disputed = state.jobs[dispute.job_id]
        target = disputed.true_commitment if dispute.against_true else disputed.commitment
        right = ROOTS[0]
        outcome = WORKER_WRONG if target != right else CHALLENGER_WRONG
        if dispute.commitment != right and target != right:
            outcome = BOTH_WRONG if rng.random() < 0.3 else outcome
        if rng.random() < 0.05:
            outcome = rng.choice(OUTCOMES)
        process_dispute_verdict(state, number, outcome)
    elif kind == 7:
        target = rng.choice(live(state, JobStatus.COMMITTED) or [job_id])
        found = state.jobs.get(target)
        worker = found.worker if found is not None and found.worker else "w0"
        root = truths.get(target, ROOTS[0]) if rng.random() < 0.9 else rng.choice(ROOTS)
        process_checked_open_seal(state, worker, target, record(root), salts.get(target, "00" * 32))
    elif kind == 8:
        process_settle_job(state, rng.choice(live(state, JobStatus.COMMITTED) or [job_id]))
    elif kind == 9:
        slash_unopened_seal(state, rng.choice(live(state, JobStatus.COMMITTED) or [job_id]))
    elif kind == 10:
        slash_missed_deadline(state, rng.choice(live(state, JobStatus.ASSIGNED, JobStatus.SEALED) or [job_id]))
    else:
        process_epoch(state, rng.randbytes(8))
    del job


def test_random_interleavings_keep_every_invariant() -> None:
    transitions = accepted = 0
    reached: set[str] = set()
    for episode in range(EPISODES):
        rng = random.Random(episode)
        state = make_economy(rng)
        salts: dict[int, str] = {}
        truths: dict[int, str] = {}
        for _ in range(STEPS):
            before = copy_state(state) if rng.random() < 0.02 else None  # a sample of refusals is compared whole
            try:
                step(state, rng, salts, truths)
                accepted += 1
            except EconomyError:
                if before is not None:
                    assert state == before
            transitions += 1
            check_invariants(state)
        reached |= {job.status.value for job in state.jobs.values()}
        reached |= {"forced" for job in state.jobs.values() if job.forced_caught}
        reached |= {"replica-paid" for job in state.jobs.values() if job.replica_of >= 0 and job.status == JobStatus.SETTLED}
        reached |= {"opened" for job in state.jobs.values() if job.opened}
    assert transitions >= 100_000 and accepted > transitions // 5, (transitions, accepted)
    assert {"settled", "slashed", "expired", "forced", "replica-paid", "opened"} <= reached, reached
