"""Shared builders and the random actor that drives property tests and the ledger crash test.

`compute_action(state, template)` turns a tuple of small integers into one transition against the
current state: mostly plausible (existing accounts, live jobs, amounts around the preset's scale) and
often invalid (unknown job, too much money, wrong party, wrong time), so random sequences reach every
mechanism and every rejection path. Hypothesis generates the templates (and shrinks them); the crash
test draws them from a seeded `random.Random`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import random
from collections.abc import Callable
from typing import Any

import pytest

from protocol.economy import (
    MINIMAL,
    Action,
    EconomyError,
    JobStatus,
    Params,
    State,
    apply_action,
    copy_state,
    create_state,
    get_required_worker_stake,
    process_bid,
    process_close_auction,
    process_epoch,
    process_genesis_allocation,
    process_post_job,
    process_register_worker,
    process_stake,
    process_submit_commitment,
)
from protocol.game.commitments import RunCommitment, compute_signed_run_commitment_json, sign_run_commitment
from protocol.signing import compute_canonical_json, get_public_key_bytes, private_key_from_bytes
from protocol.types import Root

ACCOUNTS = ("alice", "bob", "carol", "dave", "erin")
"""Directly named accounts of the property tests (unsigned actions, trusted driver)."""

GENESIS = 2_000
"""Tokens each of ACCOUNTS starts with (MINIMAL scale)."""

ACCOUNT_KEYS = {name: private_key_from_bytes(bytes([0x60 + i]) * 32) for i, name in enumerate(ACCOUNTS)}
"""The keys the accounts sign their run commitments with (their names are free: any key of theirs goes)."""

ROOTS = tuple(bytes([0xA0 + i]) * 32 for i in range(3))
"""Chain roots the actor's commitments name: few, so challenges often agree with the worker's."""


def compute_training_job(number: int) -> str:
    """The actor's made-up training job ids (a small set, so postings sometimes repeat one)."""
    return f"{number % 40:064x}"


@functools.lru_cache(maxsize=4096)
def compute_commitment_json(account: str, training_job: str, root: int) -> dict[str, Any]:
    """`account`'s signed run commitment to ROOTS[root] for the training job (cached: signing costs)."""
    key = ACCOUNT_KEYS.get(account, ACCOUNT_KEYS["alice"])
    commitment = RunCommitment(bytes.fromhex(training_job), 4, Root(ROOTS[root]), get_public_key_bytes(key))
    return compute_signed_run_commitment_json(sign_run_commitment(key, commitment))


def compute_job_commitment(account: str, training_job: str, root: int, variant: int) -> dict[str, Any]:
    """A commitment for the job, or (variant 0) one for another training job: a replay that must fail."""
    target = training_job if variant else compute_training_job(int(training_job, 16) + 1)
    return dict(compute_commitment_json(account, target, root))

KINDS = (
    "transfer",
    "stake",
    "unbond",
    "withdraw_unbonded",
    "register_worker",
    "deregister_worker",
    "heartbeat",
    "post_job",
    "cancel_job",
    "bid",
    "close_auction",
    "post_ask",
    "withdraw_ask",
    "submit_commitment",
    "seal_result",
    "open_seal",
    "slash_unopened_seal",
    "settle_job",
    "claim_vesting",
    "open_dispute",
    "settle_dispute",
    "verdict",
    "slash_missed_deadline",
    "slash_missed_heartbeats",
    "propose",
    "vote",
    "execute_proposal",
    "epoch",
    "genesis_allocation",
    "open_account",
)
"""Action kinds the random actor picks from; "epoch" appears with extra weight below. "verdict" is no
message: it stands for a dispute whose game was played and checked, and the property tests apply its
outcome with `process_dispute_verdict` (settling with real games is tested in test_economy_settlement);
"settle_dispute" carries a transcript that is not a game's, which every settlement must refuse."""

WEIGHTED_KINDS = KINDS + (
    "post_job",
    "post_job",
    "bid",
    "bid",
    "bid",
    "close_auction",
    "close_auction",
    "submit_commitment",
    "submit_commitment",
    "submit_commitment",
    "seal_result",
    "seal_result",
    "open_seal",
    "open_seal",
    "open_seal",
    "slash_unopened_seal",
    "settle_job",
    "settle_job",
    "claim_vesting",
    "settle_job",
    "open_dispute",
    "open_dispute",
    "open_dispute",
    "verdict",
    "verdict",
    "heartbeat",
    "register_worker",
    "claim_vesting",
    "epoch",
)

GOVERNABLE_SAMPLES: tuple[tuple[str, int | str], ...] = (
    ("slash_fraction_bps", 7_000),
    ("challenger_reward_bps", 2_500),
    ("reward_model", "stake"),
    ("emission_schedule", "goal"),
    ("vesting_mode", "cliff"),
    ("job_tax_bps", 20_000),
    ("min_stake", 0),
)
"""Parameter changes proposals try (the last two are invalid)."""


def make_params(**overrides: Any) -> Params:
    return dataclasses.replace(MINIMAL, **overrides)


def make_economy(
    params: Params | None = None, accounts: tuple[str, ...] = ACCOUNTS, amount: int = GENESIS
) -> State:
    """A MINIMAL-scale economy with `accounts` funded at genesis."""
    state = create_state(params or MINIMAL, b"genesis")
    for name in accounts:
        process_genesis_allocation(state, name, amount)
    return state


def make_worker(state: State, name: str, extra: int = 0) -> None:
    """Stake what the bonding curve asks (plus `extra`) and register `name` as a worker."""
    process_stake(state, name, get_required_worker_stake(state) + extra)
    process_register_worker(state, name)


def make_active_economy(params: Params | None = None) -> State:
    """Funded accounts with alice and bob already working: random sequences start mid-game."""
    state = make_economy(params)
    make_worker(state, "alice")
    make_worker(state, "bob")
    return state


_WANTED_STATUS = {
    "cancel_job": (JobStatus.OPEN,),
    "bid": (JobStatus.OPEN,),
    "close_auction": (JobStatus.OPEN,),
    "seal_result": (JobStatus.ASSIGNED,),
    "submit_commitment": (JobStatus.ASSIGNED, JobStatus.SEALED),
    "slash_missed_deadline": (JobStatus.ASSIGNED, JobStatus.SEALED),
    "open_dispute": (JobStatus.COMMITTED,),
    "settle_job": (JobStatus.COMMITTED,),
    "open_seal": (JobStatus.COMMITTED,),
    "slash_unopened_seal": (JobStatus.COMMITTED,),
}


def compute_actor_salt(job_id: int) -> str:
    """The salt the actor's workers seal job `job_id` with (the actor plays every worker)."""
    return f"{job_id + 1:064x}"


def _sealed_root(job: Any, worker: str, job_id: int) -> int:
    """Which of ROOTS the actor's worker sealed for the job (0 when none fits)."""
    from protocol.economy import compute_seal

    for root in range(len(ROOTS)):
        statement = compute_canonical_json(compute_commitment_json(worker, job.training_job, root)).decode()
        if compute_seal(statement, compute_actor_salt(job_id)) == job.sealed:
            return root
    return 0


def _pick_job(state: State, kind: str, j: int) -> int:
    """Usually a job in the status `kind` needs; sometimes any job or an unknown id."""
    wanted = _WANTED_STATUS.get(kind, ())
    fitting = sorted(job_id for job_id, job in state.jobs.items() if job.status in wanted)
    if fitting and j % 8 != 7:
        return fitting[j % len(fitting)]
    return (sorted(state.jobs) + [10_000])[j % (len(state.jobs) + 1)]


def compute_action(state: State, template: tuple[int, int, int, int]) -> Action:
    """One transition chosen by four small integers: kind, two selectors and an amount."""
    kind_index, i, j, k = template
    kind = WEIGHTED_KINDS[kind_index % len(WEIGHTED_KINDS)]
    a, b = ACCOUNTS[i % len(ACCOUNTS)], ACCOUNTS[j % len(ACCOUNTS)]
    amount = k - 5  # -5 .. : zero and negatives are invalid amounts
    job_id = _pick_job(state, kind, j)
    job = state.jobs.get(job_id)
    workers = sorted(w for w, record in state.workers.items() if record.active)
    worker = workers[i % len(workers)] if workers and i % 3 else a  # usually an active worker
    if kind == "transfer":
        return Action(kind, {"recipient": b if j % 7 else "nobody", "amount": amount}, a)
    if kind in ("stake", "unbond"):
        return Action(kind, {"amount": amount}, a)
    if kind in ("heartbeat", "withdraw_ask"):
        return Action(kind, {}, worker)
    if kind in ("withdraw_unbonded", "register_worker", "deregister_worker", "claim_vesting"):
        return Action(kind, {}, a)
    if kind == "post_job":
        return Action(
            kind,
            {
                "max_price": amount,
                "work_units": 1 + j % 20,
                "training_job": compute_training_job(state.next_job_id + (k % 5 == 0)),
                "mode": "batch" if k % 3 == 0 else "reverse",
            },
            a,
        )
    if kind == "cancel_job":
        sender = job.user if (job is not None and i % 3) else a
        return Action(kind, {"job_id": job_id}, sender)
    if kind == "open_dispute":
        training_job = job.training_job if job is not None else compute_training_job(0)
        return Action(kind, {"job_id": job_id, "commitment": compute_job_commitment(a, training_job, k % 3, k % 9)}, a)
    if kind == "bid":
        price = job.max_price * (k % 12) // 10 if job is not None else amount
        return Action(kind, {"job_id": job_id, "price": price}, worker)
    if kind in ("seal_result", "open_seal"):
        sender = job.worker if (job is not None and job.worker and i % 4) else a
        training_job = job.training_job if job is not None else compute_training_job(0)
        root = k % 3
        if kind == "open_seal" and job is not None and k % 5:  # the worker knows what it sealed
            root = _sealed_root(job, sender, job_id)
        true = compute_job_commitment(sender, training_job, root, k % 11)
        salt = compute_actor_salt(job_id) if k % 7 else "00" * 32
        if kind == "open_seal":
            return Action(kind, {"job_id": job_id, "commitment": true, "salt": salt}, sender)
        from protocol.economy import compute_seal

        sealed = compute_seal(compute_canonical_json(true).decode(), salt) if k % 13 else "zz"
        return Action(kind, {"job_id": job_id, "sealed": sealed}, sender)
    if kind in ("close_auction", "settle_job", "slash_missed_deadline", "slash_unopened_seal"):
        return Action(kind, {"job_id": job_id})
    if kind == "post_ask":
        return Action(kind, {"unit_price": amount // 10, "capacity": j % 4}, worker)
    if kind == "submit_commitment":
        sender = job.worker if (job is not None and job.worker and i % 4) else a
        training_job = job.training_job if job is not None else compute_training_job(0)
        root = k % 3
        if job is not None and job.status == JobStatus.SEALED and job.draw_seed and k % 5:  # obey the draw
            from protocol.economy.jobs import is_forced_error_opening

            root = _sealed_root(job, sender, job_id)
            root = (root + 1) % 3 if is_forced_error_opening(job, compute_actor_salt(job_id)) else root
        commitment = compute_job_commitment(sender, training_job, root, k % 11) if k % 13 else {"commitment": "zz"}
        return Action(kind, {"job_id": job_id, "commitment": commitment}, sender)
    if kind in ("settle_dispute", "verdict"):
        disputes = sorted(state.disputes)
        number = disputes[j % len(disputes)] if disputes and j % 8 != 7 else state.next_dispute + j
        if kind == "settle_dispute":  # a transcript no game produced: refused, whoever sends it
            return Action(kind, {"dispute": number, "transcript": {"format": "pinpoint-game-transcript/2"}})
        outcomes = ("worker-wrong", "challenger-wrong", "both-wrong", "worker-wrong", "nobody-wrong")
        return Action(kind, {"dispute": number, "outcome": outcomes[k % len(outcomes)]})
    if kind == "slash_missed_heartbeats":
        return Action(kind, {"worker": a})
    if kind == "propose":
        name, value = GOVERNABLE_SAMPLES[k % len(GOVERNABLE_SAMPLES)]
        return Action(kind, {"parameter": name, "value": value}, a)
    if kind == "vote":
        return Action(kind, {"proposal_id": j % (state.next_proposal_id + 1), "support": k % 4 != 0}, a)
    if kind == "execute_proposal":
        return Action(kind, {"proposal_id": j % (state.next_proposal_id + 1)})
    if kind == "epoch":
        return Action(kind, {"seed": f"{k:08x}"})
    if kind == "genesis_allocation":
        return Action(kind, {"account": a, "amount": amount})
    assert kind == "open_account"
    return Action(kind, {"account": f"user{k % 3}"})


def draw_template(rng: random.Random) -> tuple[int, int, int, int]:
    """A template from a seeded generator (the crash test's actor)."""
    return (rng.randrange(len(WEIGHTED_KINDS)), rng.randrange(16), rng.randrange(16), rng.randrange(400))


def advance(state: State, epochs: int, seed: bytes = b"tick") -> None:
    """Run `epochs` epoch transitions with a fixed seed."""
    for _ in range(epochs):
        process_epoch(state, seed)


def expect_unchanged(state: State, error: type[Exception], call: Callable[..., object], *args: Any) -> None:
    """`call(state, *args)` raises exactly `error` and leaves `state` as it was."""
    before = copy_state(state)
    with pytest.raises(error) as info:
        call(state, *args)
    assert type(info.value) is error, f"expected {error.__name__}, got {type(info.value).__name__}"
    assert state == before


def make_market(**overrides: Any) -> State:
    """alice and bob work, carol posts jobs, dave challenges; no forced errors unless asked."""
    overrides.setdefault("forced_error_rate_bps", 0)
    state = make_economy(make_params(**overrides))
    make_worker(state, "alice")
    make_worker(state, "bob")
    return state


def make_committed_job(state: State, price: int = 100, worker: str = "alice", units: int = 10) -> int:
    """A reverse-auction job of carol's won by `worker` at `price` and committed; returns its id."""
    job_id = process_post_job(state, "carol", price, units, compute_training_job(state.next_job_id))
    process_bid(state, worker, job_id, price)
    process_close_auction(state, job_id)
    process_submit_commitment(
        state, worker, job_id, compute_commitment_json(worker, state.jobs[job_id].training_job, 0)
    )
    return job_id


def find_salt(seed: bytes, job_id: int, rate_bps: int, forced: bool) -> str:
    """A salt whose draw under `seed` is (or is not) a forced error: what a test that controls the beacon
    may choose (a worker cannot: it seals its salt before the seed exists)."""
    from protocol.economy.helpers import compute_is_forced_error

    for i in range(100_000):
        salt = hashlib.sha256(b"salt-%d" % i).hexdigest()
        if compute_is_forced_error(seed.hex(), salt, job_id, rate_bps) == forced:
            return salt
    raise AssertionError("no salt found")


def make_sealed_job(state: State, forced: bool, price: int = 100, worker: str = "alice", public: int | None = None,
                    seed: bytes = b"draw") -> tuple[int, str, dict[str, Any]]:
    """A job of carol's won by `worker`, sealed (its true result is ROOTS[0]), drawn with the next epoch's
    `seed` (a forced error or not, as asked) and revealed: by default, as the draw orders (ROOTS[0], or
    ROOTS[2] on a forced error); `public` picks the revealed root instead. Returns (job, salt, the true
    commitment's JSON)."""
    from protocol.economy import compute_seal, process_seal_result

    job_id = process_post_job(state, "carol", price, 10, compute_training_job(state.next_job_id))
    process_bid(state, worker, job_id, price)
    process_close_auction(state, job_id)
    true = compute_commitment_json(worker, state.jobs[job_id].training_job, 0)
    salt = find_salt(seed, job_id, state.jobs[job_id].forced_rate_bps, forced)
    process_seal_result(state, worker, job_id, compute_seal(compute_canonical_json(true).decode(), salt))
    process_epoch(state, seed)
    root = public if public is not None else (2 if forced else 0)
    process_submit_commitment(state, worker, job_id, compute_commitment_json(worker, state.jobs[job_id].training_job, root))
    return job_id, salt, dict(true)


def make_challenge(state: State, challenger: str, job_id: int, root: int = 1) -> int:
    """`challenger` opens a dispute on the job with its commitment to ROOTS[root]; returns its number."""
    from protocol.economy import process_open_dispute

    commitment = compute_commitment_json(challenger, state.jobs[job_id].training_job, root)
    return process_open_dispute(state, challenger, job_id, commitment).number


LEDGER_SETUP: tuple[Action, ...] = tuple(
    [Action("genesis_allocation", {"account": name, "amount": GENESIS}) for name in ACCOUNTS]
    + [Action("stake", {"amount": 200}, "alice"), Action("register_worker", {}, "alice")]
    + [Action("stake", {"amount": 200}, "bob"), Action("register_worker", {}, "bob")]
)
"""What a crash-test ledger starts with (as actions, so the ledger logs them like any other)."""


def compute_ledger_action(state: State, seed: int, sequence: int, attempt: int) -> Action:
    """The `attempt`-th candidate for log entry `sequence` of run `seed`: a pure function of its
    arguments and the state, so a killed run, a resumed run and an in-memory reference agree."""
    return compute_action(state, draw_template(random.Random(f"{seed}:{sequence}:{attempt}")))


def compute_reference_state(params: Params, seed: int, entries: int, time_source: bytes = b"") -> State:
    """The state after `entries` committed log entries of run `seed`, computed in memory (for a ledger
    whose time source key is `time_source`)."""
    state = create_state(params, b"genesis", time_source=time_source)
    for action in LEDGER_SETUP[:entries]:
        apply_action(state, action, trust_unsigned=True)
    for sequence in range(len(LEDGER_SETUP) + 1, entries + 1):
        attempt = 0
        while True:
            try:
                apply_action(
                    state, compute_ledger_action(state, seed, sequence, attempt), trust_unsigned=True
                )
                break
            except EconomyError:
                attempt += 1
    return state
