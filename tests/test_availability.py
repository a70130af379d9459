"""Checkpoint availability: the Reed–Solomon code against galois as an independent reference, recovery
from every k-subset, shards that fail their proofs discarded with their holders named, a faulty encoding
proven, withholding below k detected, and sampling that catches a holder who dropped shards at the rate
its probability predicts."""

from __future__ import annotations

import itertools
import math
import random
from dataclasses import replace

import galois
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.availability import (
    AvailabilityCommitment,
    AvailabilityError,
    ChallengeClose,
    HeldShard,
    compute_availability_commitment,
    compute_challenges,
    compute_commitment_json,
    compute_generator,
    compute_inverse,
    compute_shard_tree,
    decode_shards,
    encode_shards,
    get_response_problem,
    get_unavailability_problem,
    is_encoding_fraud,
    is_valid_availability_commitment,
    parse_commitment_json,
    recover_blob,
    sign_availability_commitment,
    sign_challenge_close,
)
from protocol.game.codec import ParseError
from protocol.signing import private_key_from_bytes
from protocol.types import Root, Seconds
from prover.erasure import decode_shards_fast, encode_shards_fast
from tests.game.game_support import game_settings

GF = galois.GF(2**8)  # galois's default for 2**8 is the Conway polynomial x^8 + x^4 + x^3 + x^2 + 1 = 0x11d
JOB = bytes(range(32))
STATE = bytes([7]) * 32
WORKER = private_key_from_bytes(bytes(range(32)))
TIME_SOURCE = private_key_from_bytes(bytes(range(64, 96)))


def galois_encode(blob: bytes, k: int, n: int) -> np.ndarray:
    """The code as the page states it, in galois's field arithmetic."""
    assert GF.irreducible_poly == galois.Poly.Int(0x11D)
    size = max(1, -(-len(blob) // k))
    data = np.zeros(k * size, dtype=np.uint8)
    data[: len(blob)] = np.frombuffer(blob, dtype=np.uint8)
    cauchy = GF([[int(GF(1) / (GF(k + i) + GF(j))) for j in range(k)] for i in range(n - k)])
    parity = cauchy @ GF(data.reshape(k, size))
    return np.concatenate([data.reshape(k, size), np.asarray(parity, dtype=np.uint8)])


def held(shards: np.ndarray, indices: list[int], holder: str = "node") -> list[HeldShard]:
    tree = compute_shard_tree(shards)
    return [HeldShard(f"{holder}-{i}", i, shards[i].tobytes(), tree.prove(i)) for i in indices]


@given(blob=st.binary(min_size=0, max_size=200), k=st.integers(1, 5), extra=st.integers(1, 3))
@game_settings(60)
def test_the_code_is_galois_and_any_k_shards_recover_the_blob(blob: bytes, k: int, extra: int) -> None:
    n = k + extra
    commitment, shards = compute_availability_commitment(JOB, 3, STATE, blob, k, n)
    assert np.array_equal(shards, galois_encode(blob, k, n))
    assert np.array_equal(encode_shards_fast(blob, k, n), shards)
    for subset in itertools.combinations(range(n), k):
        recovery = recover_blob(commitment, held(shards, list(subset)))
        assert recovery.data == blob and recovery.used == subset, recovery.problem
        chosen = {i: shards[i].tobytes() for i in subset}
        assert decode_shards_fast(chosen, k, n) == decode_shards(chosen, k, n)


def test_the_inverse_and_the_generator_agree_with_galois() -> None:
    k, n = 6, 10
    generator = compute_generator(k, n)
    rows = [1, 3, 6, 7, 8, 9]
    assert np.array_equal(compute_inverse(generator[rows]), np.asarray(np.linalg.inv(GF(generator[rows])), dtype=np.uint8))
    with pytest.raises(AvailabilityError, match="singular"):
        compute_inverse(np.array([[1, 2], [2, 4]], dtype=np.uint8))  # row 2 = 2 · row 1
    for k_bad, n_bad in ((0, 2), (3, 3), (10, 257), (2.0, 4)):
        with pytest.raises(AvailabilityError, match="a code needs"):
            encode_shards(b"x", k_bad, n_bad)  # type: ignore[arg-type]


def test_larger_shards_agree_between_reference_and_fast_encoders() -> None:
    rng = np.random.default_rng(5)
    blob = rng.bytes(100_003)
    shards = encode_shards_fast(blob, 10, 16)
    assert np.array_equal(shards, encode_shards(blob, 10, 16))
    chosen = {i: shards[i].tobytes() for i in (0, 2, 5, 9, 10, 11, 12, 13, 14, 15)}
    assert decode_shards_fast(chosen, 10, 16)[: len(blob)] == blob


def test_a_shard_failing_its_proof_is_discarded_and_its_holder_named() -> None:
    blob = bytes(range(256)) * 3
    commitment, shards = compute_availability_commitment(JOB, 3, STATE, blob, 4, 7)
    items = held(shards, list(range(7)))
    corrupt = bytearray(items[0].shard)
    corrupt[5] ^= 1
    items[0] = replace(items[0], shard=bytes(corrupt))
    items[2] = replace(items[2], proof=items[3].proof)  # another shard's proof
    items[4] = replace(items[4], shard=items[4].shard[:-1])  # too short
    items.append(HeldShard("liar", 99, items[1].shard, items[1].proof))  # an index the code has not
    recovery = recover_blob(commitment, items)
    assert recovery.data == blob and recovery.used == (1, 3, 5, 6)
    named = {(d.holder, d.index): d.reason for d in recovery.discarded}
    assert set(named) == {("node-0", 0), ("node-2", 2), ("node-4", 4), ("liar", 99)}
    assert "inclusion proof" in named[("node-0", 0)] and "bytes" in named[("node-4", 4)]
    assert "outside" in named[("liar", 99)]


def test_withholding_below_k_is_detected() -> None:
    blob = b"a checkpoint" * 40
    commitment, shards = compute_availability_commitment(JOB, 3, STATE, blob, 4, 6)
    recovery = recover_blob(commitment, held(shards, [0, 4, 5]))
    assert recovery.data is None and recovery.problem is not None and "only 3 valid shards of the 4" in recovery.problem
    # three shards and a fourth that fails its proof are still three
    bad = held(shards, [1])[0]
    recovery = recover_blob(commitment, [*held(shards, [0, 4, 5]), replace(bad, shard=bytes(len(bad.shard)))])
    assert recovery.data is None and [d.holder for d in recovery.discarded] == ["node-1"]


def test_a_faulty_encoding_is_proven_by_k_valid_shards() -> None:
    """A worker commits to shards whose parity is not the data's: subsets with a parity shard decode to
    another blob, and those shards, each with a valid proof, are the proof of its fault."""
    blob = b"the true checkpoint bytes" * 8
    honest, shards = compute_availability_commitment(JOB, 3, STATE, blob, 3, 5)
    shards = shards.copy()
    shards[4, 0] ^= 0xFF  # a parity byte that is not the code's
    commitment = replace(honest, shards_root=compute_shard_tree(shards).root)
    assert recover_blob(commitment, held(shards, [0, 1, 2])).data == blob  # the data shards are fine
    recovery = recover_blob(commitment, held(shards, [0, 1, 4]))
    assert recovery.data is None and recovery.problem is not None and "encoding is faulty" in recovery.problem
    assert is_encoding_fraud(commitment, recovery.fraud)
    assert not is_encoding_fraud(commitment, held(shards, [0, 1, 2]))  # these decode to the committed blob
    assert not is_encoding_fraud(commitment, held(shards, [0, 1]))  # fewer than k prove nothing
    assert not is_encoding_fraud(honest, held(shards, [0, 1, 4]))  # shards not under the honest root


def test_the_commitment_is_signed_and_read_strictly() -> None:
    commitment, _ = compute_availability_commitment(JOB, 3, STATE, b"blob", 2, 4)
    signature = sign_availability_commitment(WORKER, commitment)
    public = WORKER.public_key().public_bytes_raw()
    assert is_valid_availability_commitment(public, commitment, signature)
    assert not is_valid_availability_commitment(public, replace(commitment, k=3), signature)
    body = compute_commitment_json(commitment)
    assert parse_commitment_json(body) == commitment
    for bad in ({**body, "shard_size": 3}, {**body, "k": 4}, {**body, "n": 257}, {**body, "size": -1},
                {**body, "extra": 0}, {**body, "shards_root": "00"}):
        with pytest.raises(ParseError):
            parse_commitment_json(bad)


def _placement(n: int, holders: int) -> list[str]:
    return [f"holder-{i % holders}" for i in range(n)]


def test_a_challenge_is_met_only_by_the_shard_and_its_proof_in_time() -> None:
    blob = bytes(range(200))
    commitment, shards = compute_availability_commitment(JOB, 3, STATE, blob, 4, 8)
    tree = compute_shard_tree(shards)
    (challenge,) = compute_challenges(bytes(32), commitment, _placement(8, 4), 1, Seconds(100.0), Seconds(60.0))
    i = challenge.index
    assert challenge.holder == f"holder-{i % 4}" and float(challenge.deadline) == 160.0
    assert get_response_problem(commitment, challenge, shards[i].tobytes(), tree.prove(i), Seconds(150.0)) is None
    late = get_response_problem(commitment, challenge, shards[i].tobytes(), tree.prove(i), Seconds(161.0))
    assert late is not None and "after the deadline" in late
    other = (i + 1) % 8
    wrong = get_response_problem(commitment, challenge, shards[other].tobytes(), tree.prove(other), Seconds(150.0))
    assert wrong is not None and "inclusion proof" in wrong
    elsewhere = replace(commitment, step=4)
    assert "another commitment" in str(get_response_problem(elsewhere, challenge, shards[i].tobytes(), tree.prove(i),
                                                            Seconds(150.0)))
    # an unanswered challenge, closed by the time source at its deadline, proves the holder's fault
    witness = TIME_SOURCE.public_key().public_bytes_raw()
    close = ChallengeClose(challenge, challenge.deadline, answered=False)
    assert get_unavailability_problem(close, sign_challenge_close(TIME_SOURCE, close), witness) is None
    early = replace(close, closed_at=Seconds(159.0))
    assert "before its deadline" in str(get_unavailability_problem(early, sign_challenge_close(TIME_SOURCE, early), witness))
    answered = replace(close, answered=True)
    assert "was answered" in str(get_unavailability_problem(answered, sign_challenge_close(TIME_SOURCE, answered), witness))
    assert "not the time source's" in str(get_unavailability_problem(close, sign_challenge_close(WORKER, close), witness))


def test_sampling_catches_a_holder_who_dropped_shards_at_the_expected_rate() -> None:
    """64 shards over 4 holders; holder-0 dropped 4 of its 16. Eight challenges an epoch catch it with
    probability 1 - (1 - 4/64)^8 ≈ 0.40; over 400 epochs (fixed seeds) the measured rate is within 4.5
    standard deviations of it."""
    commitment = AvailabilityCommitment(JOB, 3, Root(STATE), 64 * 10, Root(bytes(32)), 32, 64, 20, Root(bytes(32)))  # type: ignore[arg-type]
    placement = _placement(64, 4)
    dropped = set(random.Random(11).sample([i for i in range(64) if placement[i] == "holder-0"], 4))
    epochs, per_epoch = 400, 8
    caught = 0
    for epoch in range(epochs):
        challenges = compute_challenges(epoch.to_bytes(32, "little"), commitment, placement, per_epoch, Seconds(0.0),
                                        Seconds(60.0))
        caught += any(c.index in dropped for c in challenges)
        assert all(c.holder == placement[c.index] for c in challenges)
    p = 1 - (1 - len(dropped) / 64) ** per_epoch
    assert abs(caught - epochs * p) < 4.5 * math.sqrt(epochs * p * (1 - p)), (caught, epochs * p)


def test_the_benchmark_runs_at_a_tiny_size() -> None:
    """benchmarks/bench_availability.py's coding figures, on 20 kB, and its step figures on the small MLP
    (its BLS figures are the committee tests' operations)."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    from bench_availability import measure_coding, measure_step_overhead

    figures = measure_coding(0.02, repeats=1)
    assert set(figures) == {"megabytes", "encode_reference_mb_s", "encode_fast_mb_s", "decode_reference_mb_s",
                            "decode_fast_mb_s", "blake3_mb_s", "encode_fast_checkpoint_code_mb_s"}
    assert all(value > 0 for value in figures.values())
    step = measure_step_overhead("mlp", "small", steps=3, rounds=1)
    assert step["step_s_without_shards"] > 0 and step["step_s_with_shards"] > 0 and step["coding_s_per_checkpoint"] > 0
