"""The fast BLS backend against the reference: the same keys, signatures, aggregates and proofs of
possession byte for byte, and the same verdict on every input, hostile encodings included (STYLE.md,
item 7). py_ecc takes ~0.5 s a signature and ~1 s a verification here, so the reference's calls are few;
the encodings that never reach a pairing are generated.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.committee.bls import (
    ARKWORKS,
    BACKENDS,
    PY_ECC,
    BLSBackend,
    BLSError,
    aggregate_signatures,
    generate_secret_key,
    get_bls_public_key,
    is_valid_aggregate,
    is_valid_bls_signature,
    is_valid_possession,
    is_valid_public_key,
    prove_possession,
    sign_bls,
)

pytestmark = pytest.mark.skipif(ARKWORKS is None, reason="the fast backend's wheel is not installed")
FAST: BLSBackend = ARKWORKS if ARKWORKS is not None else PY_ECC
MESSAGES = (b"", b"pinpoint/v1/committee-verdict\n{}")
IDENTITY_G1 = b"\xc0" + bytes(47)
IDENTITY_G2 = b"\xc0" + bytes(95)


def test_the_fast_backend_is_listed() -> None:
    assert BACKENDS["arkworks"] is ARKWORKS and BACKENDS["py_ecc"] is PY_ECC


def test_keys_signatures_aggregates_and_proofs_are_the_same_bytes() -> None:
    secrets = [generate_secret_key(bytes([i]) * 32) for i in (1, 2, 3)]
    keys = [get_bls_public_key(secret, PY_ECC) for secret in secrets]
    assert [get_bls_public_key(secret, FAST) for secret in secrets] == keys
    shares = [sign_bls(secret, MESSAGES[1], PY_ECC) for secret in secrets]
    assert [sign_bls(secret, MESSAGES[1], FAST) for secret in secrets] == shares
    assert sign_bls(secrets[0], MESSAGES[0], FAST) == sign_bls(secrets[0], MESSAGES[0], PY_ECC)
    aggregate = aggregate_signatures(shares, PY_ECC)
    assert aggregate_signatures(shares, FAST) == aggregate
    assert prove_possession(secrets[0], FAST) == prove_possession(secrets[0], PY_ECC)

    proof = prove_possession(secrets[0], FAST)
    for backend in (PY_ECC, FAST):  # the same verdicts: accepted, then each way of being wrong
        assert is_valid_aggregate(keys, MESSAGES[1], aggregate, backend)
        assert not is_valid_aggregate(keys[:2], MESSAGES[1], aggregate, backend)
        assert not is_valid_aggregate(keys, MESSAGES[0], aggregate, backend)
        assert not is_valid_aggregate([*keys[:2], IDENTITY_G1], MESSAGES[1], aggregate, backend)
        assert is_valid_bls_signature(keys[1], MESSAGES[1], shares[1], backend)
        assert not is_valid_bls_signature(keys[0], MESSAGES[1], shares[1], backend)
        assert not is_valid_bls_signature(keys[0], MESSAGES[1], IDENTITY_G2, backend)
        assert is_valid_possession(keys[0], proof, backend)
        assert not is_valid_possession(keys[1], proof, backend)  # a proof does not carry over to another key
        assert not is_valid_possession(keys[0], shares[0], backend)  # nor does a signature of something else


def test_both_backends_refuse_to_aggregate_the_same_encodings() -> None:
    share = sign_bls(generate_secret_key(bytes(32), FAST), MESSAGES[0], FAST)
    for bad in (b"\xff" * 96, bytes(96), bytes([share[0] ^ 0x20]) + share[1:], share[:95] + bytes([share[95] ^ 1])):
        outcomes = []
        for backend in (PY_ECC, FAST):
            try:
                outcomes.append(aggregate_signatures([share, bad], backend))
            except BLSError:
                outcomes.append(None)
        assert outcomes[0] == outcomes[1], bad.hex()


@settings(max_examples=60, deadline=None)
@given(data=st.binary(min_size=48, max_size=48), flags=st.sampled_from([0x80, 0xA0, 0xC0, 0xE0, 0x00, 0x40]))
def test_both_backends_accept_the_same_public_key_encodings(data: bytes, flags: int) -> None:
    candidate = bytes([flags | (data[0] & 0x1F)]) + data[1:]
    assert is_valid_public_key(candidate, FAST) == is_valid_public_key(candidate, PY_ECC)


def test_a_valid_key_and_its_mutations_are_judged_alike() -> None:
    key = get_bls_public_key(generate_secret_key(bytes(range(32)), FAST), FAST)
    mutations = [key, IDENTITY_G1, b"\xe0" + bytes(47), bytes([key[0] ^ 0x20]) + key[1:], key[:47] + bytes([key[47] ^ 1])]
    for candidate in mutations:
        assert is_valid_public_key(candidate, FAST) == is_valid_public_key(candidate, PY_ECC), candidate.hex()
