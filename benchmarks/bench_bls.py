"""Committee signatures per BLS backend: what a verdict costs with py_ecc and with the optional fast one.

Run as pytest-benchmark suites (`make bench`) or as a script that prints one table and writes it as
JSON: `python benchmarks/bench_bls.py [--members N] [--rounds R] [--out FILE]`.

Measured, in seconds per call and for each installed backend of `protocol.committee.bls.BACKENDS`:
a member's signature of a verdict statement, the aggregate of a committee's N signatures, the one
FastAggregateVerify over N keys that accepts an attestation, and one signature's Verify. (Registration's
PopVerify runs on py_ecc in both: it is paid once per referee, not per verdict.)
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import measure  # noqa: E402

from protocol.committee.bls import (  # noqa: E402
    BACKENDS,
    BLSBackend,
    aggregate_signatures,
    generate_secret_key,
    get_bls_public_key,
    is_valid_aggregate,
    is_valid_bls_signature,
    sign_bls,
)

MESSAGE = b"pinpoint/v1/committee-verdict\n{}"


def measure_backend(backend: BLSBackend, members: int, rounds: int) -> dict[str, Any]:
    """Seconds per call of one backend over a committee of `members` distinct keys: the minimum over
    `rounds` interleaved rounds (the least disturbed by other work on the machine)."""
    secrets = [generate_secret_key(bytes([i + 1]) * 32) for i in range(members)]
    keys = [get_bls_public_key(secret, backend) for secret in secrets]
    shares = [sign_bls(secret, MESSAGE, backend) for secret in secrets]
    aggregate = aggregate_signatures(shares, backend)
    assert is_valid_aggregate(keys, MESSAGE, aggregate, backend)
    figures = measure({
        "sign_s": lambda: sign_bls(secrets[0], MESSAGE, backend),
        "aggregate_s": lambda: aggregate_signatures(shares, backend),
        "fast_aggregate_verify_s": lambda: is_valid_aggregate(keys, MESSAGE, aggregate, backend),
        "verify_s": lambda: is_valid_bls_signature(keys[0], MESSAGE, shares[0], backend),
    }, rounds=rounds, target_seconds=0.05)
    return {"backend": backend.name, "members": members, **{name: value["min"] for name, value in figures.items()}}


@pytest.mark.benchmark(group="bls-backends")
@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_sign(benchmark: Any, name: str) -> None:
    secret = generate_secret_key(bytes(32))
    benchmark.pedantic(sign_bls, args=(secret, MESSAGE, BACKENDS[name]), rounds=3)


@pytest.mark.benchmark(group="bls-backends")
@pytest.mark.parametrize("name", sorted(BACKENDS))
def test_fast_aggregate_verify(benchmark: Any, name: str) -> None:
    backend = BACKENDS[name]
    secrets = [generate_secret_key(bytes([i + 1]) * 32) for i in range(4)]
    aggregate = aggregate_signatures([sign_bls(secret, MESSAGE, backend) for secret in secrets], backend)
    keys = [get_bls_public_key(secret, backend) for secret in secrets]
    benchmark.pedantic(is_valid_aggregate, args=(keys, MESSAGE, aggregate, backend), rounds=3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=16, help="committee size (default 16)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per figure, the fastest kept (default 3)")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON here")
    args = parser.parse_args()
    figures = [measure_backend(BACKENDS[name], args.members, args.rounds) for name in sorted(BACKENDS)]
    print(json.dumps(figures, indent=1))
    if args.out is not None:
        args.out.write_text(json.dumps(figures, indent=1) + "\n")


if __name__ == "__main__":
    main()
