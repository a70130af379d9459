"""Checkpoint availability and committee signatures: what they cost.

Run as pytest-benchmark suites (`make bench`) or as a script that prints one table and writes it as
JSON: `python benchmarks/bench_availability.py [--mb N] [--model M --size S --steps T] [--out FILE]`.

Measured: Reed–Solomon encoding of an N MB checkpoint (k = 10, n = 16) with the reference
(`protocol.availability`, numpy table lookups) and the compiled encoder (`prover.erasure`), decoding from
the last k shards (six data shards recomputed), and BLAKE3 of the same bytes, each in MB/s of checkpoint;
the same for the code a run's checkpoints are put in (k = 4, n = 8, `protocol.availability.CHECKPOINT_K`,
`CHECKPOINT_N`); then what sharding costs a training step: the same job (a preset, the mid transformer
by default) trained with checkpoints every step, with and without coding them into shards, alternated
in one process, each side's step loop timed after the first step (the reproducible step, plus what the
loop waits for its commits: the snapshot and, when the background thread falls behind, its hashing,
checkpoint and shards) and the background thread's coding time per checkpoint (encoding, the shards'
tree and writing them); then py_ecc's BLS sign, aggregate (of a
committee's 64 signatures), FastAggregateVerify and PopVerify, in seconds per call.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import blake3
import numpy as np
import pytest

from protocol.availability import CHECKPOINT_K, CHECKPOINT_N, decode_shards, encode_shards
from protocol.committee.bls import (
    aggregate_signatures,
    generate_secret_key,
    get_bls_public_key,
    is_valid_aggregate,
    is_valid_possession,
    prove_possession,
    sign_bls,
)
from prover.erasure import decode_shards_fast, encode_shards_fast
from prover.shards import DEFAULT_CODE

K, N = 10, 16
MESSAGE = b"pinpoint/v1/committee-verdict\n{}"


def seconds(function: Callable[[], object], repeats: int = 1) -> float:
    """The best of `repeats` calls, in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        best = min(best, time.perf_counter() - start)
    return best


def measure_coding(megabytes: float, repeats: int = 3) -> dict[str, float]:
    """MB/s of checkpoint for each encoder, decoder and BLAKE3."""
    blob = np.random.default_rng(0).bytes(int(megabytes * 1e6))
    shards = encode_shards_fast(blob, K, N)
    last = {i: shards[i].tobytes() for i in range(N - K, N)}
    encode_shards_fast(blob[:100], K, N)  # compiled before it is timed
    decode_shards_fast({i: shards[i, :10].tobytes() for i in range(N - K, N)}, K, N)
    rate = len(blob) / 1e6
    return {
        "megabytes": rate,
        "encode_reference_mb_s": rate / seconds(lambda: encode_shards(blob, K, N), repeats),
        "encode_fast_mb_s": rate / seconds(lambda: encode_shards_fast(blob, K, N), repeats),
        "decode_reference_mb_s": rate / seconds(lambda: decode_shards(last, K, N), repeats),
        "decode_fast_mb_s": rate / seconds(lambda: decode_shards_fast(last, K, N), repeats),
        "blake3_mb_s": rate / seconds(lambda: blake3.blake3(blob).digest(), repeats),
        "encode_fast_checkpoint_code_mb_s": rate / seconds(lambda: encode_shards_fast(blob, CHECKPOINT_K, CHECKPOINT_N), repeats),
    }


def measure_step_overhead(model: str = "transformer", size: str = "mid", steps: int = 6, rounds: int = 2) -> dict[str, Any]:
    """Seconds per training step with and without sharding every checkpoint (checkpoint-every 1): the
    median time between one step's end and the next's (the first step, which warms the kernels up, is
    not counted), the best of `rounds` runs of each, alternated; and the background thread's coding
    seconds per checkpoint."""
    from pinpoint.presets import make_job
    from prover.run import checkpoint_path, train

    job = make_job(model, "adamw" if model == "transformer" else "adam", steps, 0, size)
    best = {"plain": float("inf"), "sharded": float("inf")}
    coding = float("inf")
    checkpoint_bytes = 0
    with tempfile.TemporaryDirectory() as folder:
        for number in range(rounds):
            for side, code in (("plain", None), ("sharded", DEFAULT_CODE)):
                ends: list[float] = []
                out = Path(folder) / f"{side}-{number}"
                train(job, out, checkpoint_every=1, code=code, on_step=lambda t, loss, ends=ends: ends.append(time.perf_counter()))
                best[side] = min(best[side], float(np.median(np.diff(ends))))
                if code is not None:
                    coding = min(coding, json.loads((out / "run.json").read_text())["seconds"]["shards"] / (steps + 1))
                    checkpoint_bytes = checkpoint_path(out, steps).stat().st_size
    return {
        "task": f"{model}/{size}",
        "checkpoint_mb": checkpoint_bytes / 1e6,
        "step_s_without_shards": best["plain"],
        "step_s_with_shards": best["sharded"],
        "overhead_per_step": best["sharded"] / best["plain"] - 1,
        "coding_s_per_checkpoint": coding,
        "coding_s_over_step_s": coding / best["plain"],
    }


def measure_bls(members: int = 64) -> dict[str, Any]:
    """Seconds per py_ecc call; the aggregate is of `members` copies of one signature (aggregating is
    adding points: their values do not change its cost)."""
    secret = generate_secret_key(bytes(32))
    public = get_bls_public_key(secret)
    signature = sign_bls(secret, MESSAGE)
    proof = prove_possession(secret)
    return {
        "backend": "py_ecc",
        "sign_s": seconds(lambda: sign_bls(secret, MESSAGE)),
        f"aggregate_{members}_s": seconds(lambda: aggregate_signatures([signature] * members)),
        "fast_aggregate_verify_s": seconds(lambda: is_valid_aggregate([public], MESSAGE, signature)),
        "pop_verify_s": seconds(lambda: is_valid_possession(public, proof)),
    }


@pytest.mark.benchmark(group="availability")
@pytest.mark.parametrize("encoder", ["reference", "fast"])
def test_encode_4mb(benchmark: Any, encoder: str) -> None:
    blob = np.random.default_rng(0).bytes(4_000_000)
    function = encode_shards if encoder == "reference" else encode_shards_fast
    function(blob[:100], K, N)
    benchmark(function, blob, K, N)


@pytest.mark.benchmark(group="availability")
def test_blake3_4mb(benchmark: Any) -> None:
    blob = np.random.default_rng(0).bytes(4_000_000)
    benchmark(lambda: blake3.blake3(blob).digest())


@pytest.mark.benchmark(group="bls")
def test_bls_sign(benchmark: Any) -> None:
    secret = generate_secret_key(bytes(32))
    benchmark.pedantic(sign_bls, args=(secret, MESSAGE), rounds=3)


@pytest.mark.benchmark(group="bls")
def test_bls_fast_aggregate_verify(benchmark: Any) -> None:
    secret = generate_secret_key(bytes(32))
    signature = sign_bls(secret, MESSAGE)
    benchmark.pedantic(is_valid_aggregate, args=([get_bls_public_key(secret)], MESSAGE, signature), rounds=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=float, default=16.0, help="checkpoint size in MB (default 16)")
    parser.add_argument("--model", default="transformer", help="the preset whose step sharding is timed")
    parser.add_argument("--size", default="mid", help="its size (default mid)")
    parser.add_argument("--steps", type=int, default=6, help="steps per timed run (default 6)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    figures = {"coding": measure_coding(args.mb), "step": measure_step_overhead(args.model, args.size, args.steps),
               "bls": measure_bls()}
    print(json.dumps(figures, indent=1))
    if args.out is not None:
        args.out.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
