"""Canonical encodings, digests, Merkle proofs, state roots and signed statements."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.encoding import EncodingError, compute_digest, decode_tensor, encode_tensor
from protocol.merkle import (
    EMPTY,
    compute_subtree_root,
    compute_tree,
    hash_leaf,
    hash_node,
    verify_inclusion,
)
from protocol.signing import (
    compute_signing_payload,
    generate_private_key,
    get_public_key_bytes,
    sign_statement,
    verify_statement,
)
from protocol.state import StateLeafError, compute_state_leaf, compute_state_root, decode_state_leaf

VECTORS = json.loads((Path(__file__).parent / "vectors" / "commitments.json").read_text())

DTYPES = [torch.float32, torch.float64, torch.int64, torch.int32, torch.uint8, torch.bool, torch.bfloat16, torch.float16]


@st.composite
def tensors(draw: st.DrawFn) -> torch.Tensor:
    dtype = draw(st.sampled_from(DTYPES))
    shape = tuple(draw(st.lists(st.integers(0, 5), max_size=3)))
    count = int(np.prod(shape)) if shape else 1
    raw = draw(st.binary(min_size=count * torch.empty((), dtype=dtype).element_size(), max_size=count * 8))
    flat = torch.frombuffer(bytearray(raw[: count * torch.empty((), dtype=dtype).element_size()]) or bytearray(1), dtype=torch.uint8)
    if count == 0:
        return torch.zeros(shape, dtype=dtype)
    return flat.view(dtype)[:count].reshape(shape).clone()


def test_vectors_encodings_and_digests() -> None:
    from tests.vectors.generate import tensors as vector_tensors

    for name, tensor in vector_tensors().items():
        assert encode_tensor(tensor).hex() == VECTORS["encodings"][name]["encoding"], name
        assert compute_digest(tensor).hex() == VECTORS["encodings"][name]["digest"], name


def test_vectors_merkle_and_state() -> None:
    from tests.vectors.generate import build

    assert build() == VECTORS


@given(tensors())
def test_encoding_round_trips_bit_for_bit(tensor: torch.Tensor) -> None:
    decoded = decode_tensor(encode_tensor(tensor))
    assert decoded.dtype == tensor.dtype and decoded.shape == tensor.shape
    assert encode_tensor(decoded) == encode_tensor(tensor)


@given(tensors())
def test_digest_ignores_layout(tensor: torch.Tensor) -> None:
    if tensor.dim() < 2:
        return
    strided = tensor.transpose(0, 1).contiguous().transpose(0, 1)  # same values, transposed memory
    assert compute_digest(strided) == compute_digest(tensor)


def test_digest_distinguishes_dtype_shape_and_negative_zero() -> None:
    base = torch.zeros(4, dtype=torch.float32)
    assert compute_digest(base) != compute_digest(torch.zeros(4, dtype=torch.int32))
    assert compute_digest(base) != compute_digest(base.reshape(2, 2))
    assert compute_digest(base) != compute_digest(-base)


@given(st.binary(max_size=64))
def test_decode_rejects_garbage_with_a_clear_error(data: bytes) -> None:
    try:
        decode_tensor(data)
    except EncodingError:
        return


def test_decode_rejects_truncation() -> None:
    data = encode_tensor(torch.arange(10, dtype=torch.float32))
    for cut in (1, 5, 10, len(data) - 1):
        with pytest.raises(EncodingError):
            decode_tensor(data[:cut])


@given(st.lists(st.binary(max_size=20), min_size=1, max_size=40), st.data())
@settings(max_examples=60)
def test_every_inclusion_proof_verifies(leaves: list[bytes], data: st.DataObject) -> None:
    tree = compute_tree(leaves)
    index = data.draw(st.integers(0, len(leaves) - 1))
    assert verify_inclusion(tree.root, len(leaves), index, hash_leaf(leaves[index]), tree.prove(index))


@given(st.lists(st.binary(max_size=20), min_size=2, max_size=40), st.data())
@settings(max_examples=60)
def test_forged_proofs_fail_without_raising(leaves: list[bytes], data: st.DataObject) -> None:
    tree = compute_tree(leaves)
    index = data.draw(st.integers(0, len(leaves) - 1))
    proof = list(tree.prove(index))
    leaf = hash_leaf(leaves[index])
    for other in range(len(leaves)):
        if other != index and leaves[other] != leaves[index]:
            assert not verify_inclusion(tree.root, len(leaves), other, leaf, proof)
    position = data.draw(st.integers(0, len(proof) - 1)) if proof else None
    if position is not None:
        forged = proof.copy()
        forged[position] = bytes(b ^ 1 for b in forged[position])
        assert not verify_inclusion(tree.root, len(leaves), index, leaf, forged)
    assert not verify_inclusion(tree.root, len(leaves), index, hash_leaf(leaves[index] + b"x"), proof)
    assert not verify_inclusion(tree.root, len(leaves), index, leaf, proof[:-1])
    assert not verify_inclusion(tree.root, len(leaves), len(leaves), leaf, proof)
    assert not verify_inclusion(tree.root, len(leaves), index, b"short", proof)
    assert not verify_inclusion(tree.root, len(leaves), index, leaf, [b"not a hash"] * len(proof))
    assert not verify_inclusion(tree.root, len(leaves), index, leaf, None)  # type: ignore[arg-type]


@given(st.lists(st.binary(max_size=8), min_size=1, max_size=64), st.data())
def test_subtree_frontiers_fold_to_the_root(leaves: list[bytes], data: st.DataObject) -> None:
    tree = compute_tree(leaves)
    depth = data.draw(st.integers(1, max(1, tree.height))) if tree.height else 0
    if depth:
        assert compute_subtree_root(tree.children(tree.height, 0, depth)) == tree.root


def test_padding_is_distinct_from_every_leaf() -> None:
    assert hash_leaf(b"") != EMPTY and hash_node(bytes(32), bytes(32)) != EMPTY
    assert compute_tree([b"a", b"b", b"c"]).root != compute_tree([b"a", b"b", b"c", b""]).root


@given(st.dictionaries(st.text(min_size=1, max_size=12), st.binary(min_size=32, max_size=32), min_size=1, max_size=12))
def test_state_root_is_order_independent_and_leaves_round_trip(digests: dict[str, bytes]) -> None:
    reordered = dict(reversed(list(digests.items())))
    assert compute_state_root(digests) == compute_state_root(reordered)
    for name, digest in digests.items():
        assert decode_state_leaf(compute_state_leaf(name, digest)) == (name, digest)


def test_state_leaf_rejects_malformed_bytes() -> None:
    leaf = compute_state_leaf("param/w", bytes(32))
    for bad in (leaf[:-1], leaf + b"\x00", b"\x00", leaf[:2] + b"\xff" + leaf[3:]):
        with pytest.raises(StateLeafError):
            decode_state_leaf(bad)


def test_signed_statements_bind_kind_body_and_key() -> None:
    key, other = generate_private_key(), generate_private_key()
    body = {"job_id": bytes(32), "steps": 4}
    signature = sign_statement(key, "run-commitment", body)
    public = get_public_key_bytes(key)
    assert verify_statement(public, "run-commitment", body, signature)
    assert not verify_statement(public, "trace-commitment", body, signature)
    assert not verify_statement(public, "run-commitment", {**body, "steps": 5}, signature)
    assert not verify_statement(get_public_key_bytes(other), "run-commitment", body, signature)
    assert not verify_statement(public, "run-commitment", body, signature[:-1])
    assert not verify_statement(b"bad key", "run-commitment", body, signature)
    assert compute_signing_payload("k", {"b": 1, "a": 2}) == compute_signing_payload("k", {"a": 2, "b": 1})


def test_nan_payloads_are_canonical_in_digests() -> None:
    x86_default = torch.tensor([float("inf")]) - torch.tensor([float("inf")])  # 0xFFC00000 on x86
    payload = torch.tensor([0x7FC00123], dtype=torch.int32).view(torch.float32)
    quiet = torch.tensor([float("nan")])
    assert compute_digest(x86_default) == compute_digest(payload) == compute_digest(quiet)
    assert compute_digest(quiet) != compute_digest(torch.tensor([float("inf")]))


@given(
    dtype=st.sampled_from([torch.float32, torch.float64]),
    blocks=st.integers(1, 3),
    extra=st.integers(0, 1000),
    nan_at=st.none() | st.floats(0.0, 1.0),
    payload=st.sampled_from([0x7FC00000, 0xFFC00000, 0x7FC00123, 0x7F800001]),
)
@settings(max_examples=25, deadline=None)
def test_large_float_tensors_hash_blockwise_as_their_canonical_encoding(
    dtype: torch.dtype, blocks: int, extra: int, nan_at: float | None, payload: int
) -> None:
    """Above one hash block, float tensors are checked for NaNs block by block while hashed: the data
    hash is still that of the canonical encoding's elements, wherever a NaN of any payload lies."""
    from protocol.encoding import HASH_BLOCK_BYTES, compute_data_hash, compute_data_hash_of_elements

    width = torch.empty((), dtype=dtype).element_size()
    count = blocks * HASH_BLOCK_BYTES // width + extra
    x = torch.linspace(-3.0, 3.0, count, dtype=dtype)
    if nan_at is not None:
        bits = x.view(torch.int32 if width == 4 else torch.int64)
        pattern = payload if width == 4 else (payload << 32) | 0x1234  # a NaN's bits, as a signed integer
        bits[min(count - 1, int(nan_at * count))] = pattern - (1 << 8 * width) * (pattern >> (8 * width - 1))
    encoded = encode_tensor(x)
    elements = memoryview(encoded)[len(encoded) - count * width :]
    assert compute_data_hash(x) == compute_data_hash_of_elements(elements)
    assert compute_digest(x) == compute_digest(decode_tensor(encoded))


def test_initial_values_depend_only_on_seed_name_and_shape() -> None:
    from protocol.ops.random import compute_initial_values

    a = compute_initial_values(7, "blocks.0.qkv.weight", (6, 4), 0.5)
    assert torch.equal(a, compute_initial_values(7, "blocks.0.qkv.weight", (6, 4), 0.5))
    assert not torch.equal(a, compute_initial_values(8, "blocks.0.qkv.weight", (6, 4), 0.5))
    assert not torch.equal(a, compute_initial_values(7, "blocks.0.proj.weight", (6, 4), 0.5))
    assert a.dtype == torch.float32 and float(a.abs().max()) <= 0.5
    # pinned bits, so a port (or another torch build) can check its initial state
    assert compute_digest(a).hex() == VECTORS["initial_values_digest"]
