"""Checkpoint storage and availability sampling in the economy (protocol.economy.storage): referees hold a
worker's coded checkpoint, each epoch samples accepted shards, a holder answers with the shard and its
proof or is slashed when the deadline passes; a holder that dropped a fraction of its shards is caught at
the rate 1 - (1 - f)^c."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.availability import (
    CHECKPOINT_K,
    CHECKPOINT_N,
    compute_availability_commitment,
    compute_challenge_index,
    compute_commitment_json,
    compute_shard_tree,
    encode_shards,
)
from protocol.economy import (
    InvalidCommitment,
    InvalidShard,
    NotAReferee,
    NotJobWorker,
    State,
    check_invariants,
    get_stake,
    process_accept_shards,
    process_answer_availability,
    process_epoch,
    process_stake,
    process_store_checkpoint,
)
from protocol.economy.state import RefereeRecord

from .actors import expect_unchanged, make_committed_job, make_market

HOLDERS = ("dave", "erin")
BLOB = bytes(range(256)) * 5 + b"tail"


def make_stored(holders: tuple[str, ...] = HOLDERS, placement: list[str] | None = None, **params: Any) -> tuple[State, int, str]:
    """A market whose `holders` are referees with their stake bonded (their registration, with its BLS proof
    of possession, is tested in test_economy_committee), alice's committed job, and a checkpoint of it
    stored with shard i at placement[i] (default: the holders in turn) and accepted by every holder."""
    s = make_market(**params)
    for i, name in enumerate(holders):
        process_stake(s, name, s.params.referee_stake)
        s.referees[name] = RefereeRecord(bytes([i + 1]).hex() * 48, s.epoch)
    job = make_committed_job(s)
    commitment, _ = compute_availability_commitment(bytes.fromhex(s.jobs[job].training_job), 0, bytes(32), BLOB,
                                                    CHECKPOINT_K, CHECKPOINT_N)
    placement = placement or [holders[i % len(holders)] for i in range(CHECKPOINT_N)]
    key = process_store_checkpoint(s, "alice", job, compute_commitment_json(commitment), placement)
    for name in set(placement):
        process_accept_shards(s, name, key)
    return s, job, key


def answer_of(index: int) -> tuple[str, list[str]]:
    shards = encode_shards(BLOB, CHECKPOINT_K, CHECKPOINT_N)
    tree = compute_shard_tree(shards)
    return bytes(shards[index]).hex(), [bytes(step).hex() for step in tree.prove(index)]


def tick(s: State, seed: bytes) -> Any:
    report = process_epoch(s, seed)
    check_invariants(s)
    return report.sampling


def test_holders_who_answer_keep_their_stake_and_the_silent_one_is_slashed() -> None:
    s, _, key = make_stored()
    stakes = {name: get_stake(s, name) for name in HOLDERS}
    answered = {name: 0 for name in HOLDERS}
    slashed: dict[str, int] = {}
    for epoch in range(12):
        sampling = tick(s, epoch.to_bytes(4, "little"))
        for name, taken in sampling.slashed:
            slashed[name] = slashed.get(name, 0) + taken
        for number, challenge in sorted(s.availability_challenges.items()):
            assert challenge.commitment_id == key and challenge.holder == s.stored[key].placement[challenge.index]
            if challenge.holder == "dave":  # erin dropped everything and never answers
                process_answer_availability(s, "dave", number, *answer_of(challenge.index))
                answered["dave"] += 1
        check_invariants(s)
    assert answered["dave"] > 0 and "dave" not in slashed and get_stake(s, "dave") == stakes["dave"]
    assert slashed["erin"] > 0 and get_stake(s, "erin") == stakes["erin"] - slashed["erin"]


def test_wrong_or_misdirected_answers_change_nothing() -> None:
    s, _, _ = make_stored()
    for epoch in range(8):
        tick(s, bytes([epoch]))
        if s.availability_challenges:
            break
    number, challenge = next(iter(s.availability_challenges.items()))
    other = "erin" if challenge.holder == "dave" else "dave"
    shard, proof = answer_of(challenge.index)
    wrong_index = (challenge.index + 1) % CHECKPOINT_N
    expect_unchanged(s, NotAReferee, process_answer_availability, other, number, shard, proof)
    expect_unchanged(s, InvalidShard, process_answer_availability, challenge.holder, number, *answer_of(wrong_index))
    flipped = bytes([shard_byte ^ (1 if i == 0 else 0) for i, shard_byte in enumerate(bytes.fromhex(shard))]).hex()
    expect_unchanged(s, InvalidShard, process_answer_availability, challenge.holder, number, flipped, proof)
    expect_unchanged(s, InvalidShard, process_answer_availability, challenge.holder, number, "zz", proof)
    expect_unchanged(s, InvalidShard, process_answer_availability, challenge.holder, number + 1000, shard, proof)
    process_answer_availability(s, challenge.holder, number, shard, proof)
    expect_unchanged(s, InvalidShard, process_answer_availability, challenge.holder, number, shard, proof)  # replayed


def test_only_a_jobs_worker_stores_a_checkpoint_of_its_training_job_with_referees_holding_it() -> None:
    s, job, key = make_stored()
    commitment, _ = compute_availability_commitment(bytes.fromhex(s.jobs[job].training_job), 1, bytes(32), BLOB[:99],
                                                    CHECKPOINT_K, CHECKPOINT_N)
    body = compute_commitment_json(commitment)
    placement = [HOLDERS[i % 2] for i in range(CHECKPOINT_N)]
    expect_unchanged(s, NotJobWorker, process_store_checkpoint, "bob", job, body, placement)
    expect_unchanged(s, NotAReferee, process_store_checkpoint, "alice", job, body, ["bob"] * CHECKPOINT_N)
    expect_unchanged(s, InvalidCommitment, process_store_checkpoint, "alice", job, body, placement[:-1])
    expect_unchanged(s, InvalidCommitment, process_store_checkpoint, "alice", job, {**body, "k": 9}, placement)
    other, _ = compute_availability_commitment(b"\x07" * 32, 1, bytes(32), BLOB, CHECKPOINT_K, CHECKPOINT_N)
    expect_unchanged(s, InvalidCommitment, process_store_checkpoint, "alice", job,
                     compute_commitment_json(other), placement)  # another training job's checkpoint
    stored = json.loads(s.stored[key].commitment)
    expect_unchanged(s, InvalidCommitment, process_store_checkpoint, "alice", job, stored, placement)  # stored already
    expect_unchanged(s, NotAReferee, process_accept_shards, "bob", key)


def test_shards_nobody_accepted_are_never_sampled() -> None:
    """A worker can name any referee as a holder, but a holder answers only for the shards it took."""
    s, _, key = make_stored(placement=["dave"] * CHECKPOINT_N)
    s.stored[key].accepted = [False] * CHECKPOINT_N
    for epoch in range(10):
        assert not tick(s, bytes([epoch])).drawn
    assert get_stake(s, "dave") == s.params.referee_stake


def test_a_stored_checkpoint_is_sampled_for_its_retention_only() -> None:
    s, _, key = make_stored(availability_retention_epochs=3)
    epochs = 0
    while key in s.stored:
        sampling = tick(s, bytes([epochs]))
        for number, challenge in sorted(s.availability_challenges.items()):
            process_answer_availability(s, challenge.holder, number, *answer_of(challenge.index))
        epochs += 1
        assert epochs < 10
    assert epochs == 4 and not s.availability_challenges and not sampling.slashed  # sampled in epochs 1, 2 and 3


@settings(max_examples=6, deadline=None)
@given(st.integers(1, 3), st.integers(0, 2**32))
def test_a_holder_that_dropped_shards_is_caught_at_the_measured_rate(dropped: int, salt: int) -> None:
    """dave holds all 8 shards and dropped `dropped` of them (f = dropped / 8). Each epoch draws c = 2 shard
    indices from its seed; the share of epochs in which one of them is a dropped shard is 1 - (1 - f)^c
    within four standard errors over 400 epochs. Every drawn index becomes a challenge unless that shard is
    already challenged, and every challenge of a dropped shard costs dave a slash at its deadline."""
    c = 2
    s, _, key = make_stored(holders=("dave",), placement=["dave"] * CHECKPOINT_N, availability_samples=c,
                            availability_slash_bps=1, availability_retention_epochs=10_000)
    gone = set(range(dropped))
    caught = slashes = expected_slashes = 0
    epochs = 400
    for epoch in range(epochs):
        open_before = [(ch.index, ch.deadline_epoch) for ch in s.availability_challenges.values()]
        sampling = tick(s, (salt + epoch).to_bytes(8, "little"))
        slashes += len(sampling.slashed)
        seed = bytes.fromhex(s.seed)
        indices = [compute_challenge_index(seed, bytes.fromhex(key), number, CHECKPOINT_N) for number in range(c)]
        caught += any(index in gone for index in indices)
        still_open = {index for index, deadline in open_before if deadline >= s.epoch}  # not yet past its deadline
        assert sorted(s.availability_challenges[n].index for n in sampling.drawn) == sorted(
            set(indices) - (still_open & set(indices)))
        for number in sampling.drawn:
            challenge = s.availability_challenges[number]
            if challenge.index in gone:
                expected_slashes += 1
            else:
                process_answer_availability(s, "dave", number, *answer_of(challenge.index))
    s.params = dataclasses.replace(s.params, availability_samples=0)  # close what is open, draw nothing new
    for seed in (b"last", b"after"):
        slashes += len(tick(s, seed).slashed)
    assert slashes == expected_slashes > 0 and not s.availability_challenges
    rate = 1 - (1 - dropped / CHECKPOINT_N) ** c
    error = (rate * (1 - rate) / epochs) ** 0.5
    assert abs(caught / epochs - rate) <= 4 * error, (caught / epochs, rate)


@pytest.mark.parametrize("samples", [0])
def test_no_samples_means_no_challenges(samples: int) -> None:
    s, _, _ = make_stored(availability_samples=samples)
    for epoch in range(5):
        assert not tick(s, bytes([epoch])).drawn
