"""Shared builders and the random actor that drives property tests and the ledger crash test.

`compute_action(state, template)` turns a tuple of small integers into one transition against the
current state: mostly plausible (existing accounts, live jobs, amounts around the preset's scale) and
often invalid (unknown job, too much money, wrong party, wrong time), so random sequences reach every
mechanism and every rejection path. Hypothesis generates the templates (and shrinks them); the crash
test draws them from a seeded `random.Random`.
"""

from __future__ import annotations

import dataclasses
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

ACCOUNTS = ("alice", "bob", "carol", "dave", "erin")
"""Directly named accounts of the property tests (unsigned actions, trusted driver)."""

GENESIS = 2_000
"""Tokens each of ACCOUNTS starts with (MINIMAL scale)."""

COMMITMENT = "ab" * 32
"""A well-formed run commitment root."""

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
    "settle_job",
    "claim_vesting",
    "open_dispute",
    "settle_dispute",
    "slash_missed_deadline",
    "slash_missed_heartbeats",
    "propose",
    "vote",
    "execute_proposal",
    "epoch",
    "genesis_allocation",
    "open_account",
)
"""Action kinds the random actor picks from; "epoch" appears with extra weight below."""

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
    "settle_job",
    "settle_job",
    "open_dispute",
    "open_dispute",
    "settle_dispute",
    "settle_dispute",
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
    "cancel_job": JobStatus.OPEN,
    "bid": JobStatus.OPEN,
    "close_auction": JobStatus.OPEN,
    "submit_commitment": JobStatus.ASSIGNED,
    "slash_missed_deadline": JobStatus.ASSIGNED,
    "open_dispute": JobStatus.COMMITTED,
    "settle_job": JobStatus.COMMITTED,
    "settle_dispute": JobStatus.DISPUTED,
}


def _pick_job(state: State, kind: str, j: int) -> int:
    """Usually a job in the status `kind` needs; sometimes any job or an unknown id."""
    wanted = _WANTED_STATUS.get(kind)
    fitting = sorted(job_id for job_id, job in state.jobs.items() if job.status == wanted)
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
            {"max_price": amount, "work_units": 1 + j % 20, "mode": "batch" if k % 3 == 0 else "reverse"},
            a,
        )
    if kind in ("cancel_job", "open_dispute"):
        sender = job.user if (job is not None and kind == "cancel_job" and i % 3) else a
        return Action(kind, {"job_id": job_id}, sender)
    if kind == "bid":
        price = job.max_price * (k % 12) // 10 if job is not None else amount
        return Action(kind, {"job_id": job_id, "price": price}, worker)
    if kind in ("close_auction", "settle_job", "slash_missed_deadline"):
        return Action(kind, {"job_id": job_id})
    if kind == "post_ask":
        return Action(kind, {"unit_price": amount // 10, "capacity": j % 4}, worker)
    if kind == "submit_commitment":
        sender = job.worker if (job is not None and job.worker and i % 4) else a
        return Action(kind, {"job_id": job_id, "commitment": COMMITMENT if k % 11 else "zz"}, sender)
    if kind == "settle_dispute":
        dispute = state.disputes.get(job_id)
        defender = job.worker if job is not None and job.worker else a
        challenger = dispute.challenger if dispute is not None else b
        winner, loser = (challenger, defender) if i % 2 else (defender, challenger)
        if k % 13 == 0:
            loser = "nobody"
        return Action(kind, {"job_id": job_id, "winner": winner, "loser": loser})
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
    job_id = process_post_job(state, "carol", price, units)
    process_bid(state, worker, job_id, price)
    process_close_auction(state, job_id)
    process_submit_commitment(state, worker, job_id, COMMITMENT)
    return job_id


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


def compute_reference_state(params: Params, seed: int, entries: int) -> State:
    """The state after `entries` committed log entries of run `seed`, computed in memory."""
    state = create_state(params, b"genesis")
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
