"""The message layer: signed transactions with nonces, replays, bad signatures, malformed bodies,
unsigned actions, and the canonical encodings of actions and states."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.economy import (
    AccountExists,
    Action,
    BadSignature,
    InsufficientFunds,
    InvalidNonce,
    MalformedTransaction,
    ReplayedMessage,
    SignedTransaction,
    UnauthorizedAction,
    UnknownAccount,
    apply_action,
    check_invariants,
    compute_state_root,
    copy_state,
    decode_action,
    decode_state,
    encode_action,
    encode_state,
    get_balance,
    process_genesis_allocation,
    sign_transaction,
    verify_transaction_signature,
)
from protocol.economy.codec import StateEncodingError
from protocol.economy.state import State
from protocol.signing import compute_canonical_json, generate_private_key, get_public_key_bytes

from .actors import make_committed_job, make_market


def rejected(state: State, action: SignedTransaction | Action, error: type[Exception], **kw: bool) -> None:
    before = copy_state(state)
    with pytest.raises(error):
        apply_action(state, action, **kw)
    assert state == before


Keyed = tuple[State, Ed25519PrivateKey, str, Ed25519PrivateKey, str]
"""A market plus two keyed accounts: (state, key 1, its name, key 2, its name); key 1 is funded."""


@pytest.fixture
def keyed() -> Keyed:
    s = make_market()
    k1, k2 = generate_private_key(), generate_private_key()
    a1, a2 = get_public_key_bytes(k1).hex(), get_public_key_bytes(k2).hex()
    process_genesis_allocation(s, a1, 1_000)
    apply_action(s, sign_transaction(k2, "open_account", 0))
    return s, k1, a1, k2, a2


def test_signed_transfer_and_nonces(keyed: Keyed) -> None:
    s, k1, a1, k2, a2 = keyed
    assert s.accounts[a2].nonce == 1
    tx = sign_transaction(k1, "transfer", 0, recipient=a2, amount=300)
    assert verify_transaction_signature(tx)
    apply_action(s, tx)
    assert get_balance(s, a2) == 300 and s.accounts[a1].nonce == 1
    rejected(s, tx, ReplayedMessage)
    rejected(s, sign_transaction(k1, "transfer", 5, recipient=a2, amount=1), InvalidNonce)
    apply_action(s, sign_transaction(k1, "transfer", 1, recipient=a2, amount=1))
    check_invariants(s)


def test_bad_signatures(keyed: Keyed) -> None:
    s, k1, a1, k2, a2 = keyed
    tx = sign_transaction(k1, "transfer", 0, recipient=a2, amount=300)
    tampered = SignedTransaction(tx.kind, {**tx.body, "amount": 301}, tx.signature)
    rejected(s, tampered, BadSignature)
    forged = SignedTransaction(tx.kind, {**tx.body, "sender": a2}, tx.signature)  # a1's signature, a2's name
    rejected(s, forged, BadSignature)
    other_kind = SignedTransaction("stake", {"sender": a1, "nonce": 0, "amount": 300}, tx.signature)
    rejected(s, other_kind, BadSignature)
    rejected(s, SignedTransaction(tx.kind, tx.body, b"\x00" * 64), BadSignature)
    rejected(s, SignedTransaction(tx.kind, tx.body, b"short"), BadSignature)
    assert not verify_transaction_signature(tampered)


def test_a_failing_transition_does_not_consume_the_nonce(keyed: Keyed) -> None:
    s, k1, a1, k2, a2 = keyed
    rejected(s, sign_transaction(k2, "transfer", 1, recipient=a1, amount=10), InsufficientFunds)
    assert s.accounts[a2].nonce == 1
    stranger = generate_private_key()
    rejected(s, sign_transaction(stranger, "stake", 0, amount=10), UnknownAccount)
    rejected(s, sign_transaction(k2, "open_account", 1), AccountExists)


def test_malformed_transactions(keyed: Keyed) -> None:
    s, k1, a1, k2, a2 = keyed
    rejected(s, sign_transaction(k1, "mint_money", 0, amount=1), MalformedTransaction)
    rejected(s, sign_transaction(k1, "transfer", 0, recipient=a2), MalformedTransaction)
    rejected(s, sign_transaction(k1, "transfer", 0, recipient=a2, amount="300"), MalformedTransaction)
    rejected(s, sign_transaction(k1, "transfer", 0, recipient=a2, amount=3, memo="hi"), MalformedTransaction)
    rejected(s, sign_transaction(k1, "vote", 0, proposal_id=0, support=1), MalformedTransaction)
    rejected(s, SignedTransaction("transfer", {"sender": "alice", "nonce": 0}, b""), MalformedTransaction)
    with pytest.raises(MalformedTransaction):
        sign_transaction(k1, "transfer", 0, sender=a2)


def test_unsigned_user_actions_need_a_trusting_driver() -> None:
    s = make_market()
    action = Action("transfer", {"recipient": "bob", "amount": 5}, "alice")
    rejected(s, action, UnauthorizedAction)
    rejected(
        s,
        Action("transfer", {"recipient": "bob", "amount": 5}, "nobody"),
        UnknownAccount,
        trust_unsigned=True,
    )
    apply_action(s, action, trust_unsigned=True)
    rejected(s, Action("print_money", {}), MalformedTransaction)
    rejected(s, Action("epoch", {"seed": "not hex"}), MalformedTransaction)
    rejected(s, Action("epoch", {}), MalformedTransaction)
    report = apply_action(s, Action("epoch", {"seed": "00ff"}))
    assert report.epoch == 0 and s.epoch == 1 and s.seed == "00ff"


def test_actions_round_trip_through_json(keyed: Keyed) -> None:
    s, k1, a1, k2, a2 = keyed
    for action in [
        sign_transaction(k1, "transfer", 0, recipient=a2, amount=300),
        Action("settle_dispute", {"job_id": 3, "winner": "a", "loser": "b"}),
        Action("stake", {"amount": 5}, "alice"),
    ]:
        text = compute_canonical_json(encode_action(action))
        assert decode_action(json.loads(text)) == action
    for bad in [{}, {"type": "signed"}, {"type": "action", "kind": 3, "params": {}, "sender": None}, [], "x"]:
        with pytest.raises(MalformedTransaction):
            decode_action(bad)


def test_state_round_trips_and_roots_differ() -> None:
    s = make_market()
    job = make_committed_job(s)
    encoded = json.loads(compute_canonical_json(encode_state(s)))
    restored = decode_state(encoded)
    assert restored == s and compute_state_root(restored) == compute_state_root(s)
    assert restored.jobs[job].status == s.jobs[job].status
    other = copy_state(s)
    other.jobs[job].commitment = "cd" * 32
    assert compute_state_root(other) != compute_state_root(s)


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d.pop("epoch"),
        lambda d: d.__setitem__("epoch", "3"),
        lambda d: d["jobs"]["0"].__setitem__("status", "lost"),
        lambda d: d["jobs"].__setitem__("x", d["jobs"]["0"]),
        lambda d: d["params"].__setitem__("slash_fraction_bps", 20_000),
        lambda d: d["accounts"]["alice"].__setitem__("balance", True),
    ],
)
def test_decode_rejects_malformed_states(mutate: Callable[[dict[str, Any]], object]) -> None:
    s = make_market()
    make_committed_job(s)
    data = json.loads(compute_canonical_json(encode_state(s)))
    mutate(data)
    with pytest.raises(StateEncodingError):
        decode_state(data)


def test_params_decode_matches_dataclass() -> None:
    s = make_market()
    assert dataclasses.asdict(decode_state(encode_state(s)).params) == dataclasses.asdict(s.params)
