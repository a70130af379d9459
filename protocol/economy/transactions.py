"""The message layer: signed transactions, unsigned actions, and one dispatch to the transitions.

A *signed transaction* is a signed statement (protocol/signing.py) of kind `economy/<kind>` whose
body is `{"sender": <hex public key>, "nonce": <int>, ...fields}`. The sender's account name is the
hex of the public key that signed it (units.py). Each account carries the nonce its next
transaction must use: a lower nonce is a replay (ReplayedMessage), a higher one a gap (InvalidNonce).
A bad signature, a replay, a malformed body or any rule the transition breaks raises before anything
changes, and the nonce is only consumed by a transaction that succeeds.

An *action* is the same call without a signature: `Action(kind, params)` for the protocol's own
inputs (genesis allocations, the epoch tick with its seed) and for the permissionless transitions
anyone may trigger (closing an auction, settling a job after its window, settling a dispute with its
game's transcript or its committee's attestation, reporting a committee fault with its evidence, reporting a missed deadline, an unopened seal or missed heartbeats, executing a passed
proposal);
`Action(kind, params, sender=...)` for a user's transition applied by a driver that vouches for the
sender itself (the simulation, tests), which `apply_action` accepts only with `trust_unsigned=True`.

Transactions and actions encode to JSON (`encode_action` / `decode_action`), which is what a
ledger's log stores.

No message carries a verdict: `settle_dispute` carries the game's transcript, which the economy checks
with the referee the driver passes to `apply_action` (`referees`, see evidence.py; without one it is
refused), or a committee's attestation with the game's setup, whose signatures it checks itself
(committee.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.economy import accounts, committee, disputes, governance, jobs, rewards, staking, storage
from protocol.economy.errors import (
    AccountExists,
    BadSignature,
    InvalidNonce,
    MalformedTransaction,
    ReplayedMessage,
    UnauthorizedAction,
    UnknownAccount,
)
from protocol.economy.evidence import RefereeFactory
from protocol.economy.helpers import is_signer_name
from protocol.economy.state import State
from protocol.signing import get_public_key_bytes, sign_statement, verify_statement

TRANSACTION_KIND_PREFIX = "economy/"
"""Domain of every economy statement, so no other signed statement can pass for a transaction."""


@dataclass(frozen=True, slots=True)
class SignedTransaction:
    kind: str  # a key of USER_TRANSITIONS
    body: dict[str, Any]  # {"sender": hex key, "nonce": int, **fields}
    signature: bytes  # 64-byte Ed25519 signature of the statement


@dataclass(frozen=True, slots=True)
class Action:
    kind: str  # a key of SYSTEM_TRANSITIONS (sender None) or of USER_TRANSITIONS (sender given)
    params: dict[str, Any] = field(default_factory=dict)
    sender: str | None = None


@dataclass(frozen=True, slots=True)
class TransitionSpec:
    """How a message of one kind maps onto a transition: its fields, their types, optional ones."""

    function: Callable[..., Any]
    fields: Mapping[str, Any]  # name -> int, str, bool, dict, list or (int, str)
    optional: Mapping[str, Any] = field(default_factory=dict)  # name -> default
    needs_referees: bool = False  # the transition checks a game's transcript: it is given the referees


# -- adapters from message fields to transition arguments -------------------------------------------


def _open_own_account(state: State, sender: str) -> None:
    accounts.process_open_account(state, sender)


def _settle_dispute(
    state: State, dispute: int, referees: RefereeFactory | None, **evidence: Any
) -> disputes.DisputeResult:
    """Settlement as a system action: the same check as anyone's, on behalf of nobody in particular."""
    return disputes.process_settle_dispute(state, "", dispute, referees=referees, **evidence)


def _system(function: Callable[..., Any]) -> Callable[..., Any]:
    """A permissionless transition sent as a system action: on behalf of nobody in particular."""

    def call(state: State, **fields: Any) -> Any:
        return function(state, "", **fields)

    return call


def _epoch(state: State, seed: str) -> rewards.EpochReport:
    try:
        raw = bytes.fromhex(seed)
    except ValueError:
        raise MalformedTransaction(f"an epoch seed is hex, got {seed!r}") from None
    return rewards.process_epoch(state, raw)


def _anyone(function: Callable[..., Any]) -> Callable[..., Any]:
    """A permissionless transition sent as a user transaction: the sender only pays the nonce."""

    def call(state: State, sender: str, **fields: Any) -> Any:
        return function(state, **fields)

    return call


_JOB = {"job_id": int}
_SETTLE = {"dispute": int}
_EVIDENCE: dict[str, Any] = {"transcript": {}, "attestation": {}, "setup": {}}  # empty: not given
_EQUIVOCATION = {"epoch": int, "first": dict, "second": dict}
_WRONG_VERDICT = {"epoch": int, "attestation": dict, "transcript": dict}
_ABSENCE = {"epoch": int, "close": dict, "signature": str}

USER_TRANSITIONS: dict[str, TransitionSpec] = {
    "open_account": TransitionSpec(_open_own_account, {}),
    "transfer": TransitionSpec(accounts.process_transfer, {"recipient": str, "amount": int}),
    "stake": TransitionSpec(staking.process_stake, {"amount": int}),
    "unbond": TransitionSpec(staking.process_unbond, {"amount": int}),
    "withdraw_unbonded": TransitionSpec(staking.process_withdraw_unbonded, {}),
    "register_worker": TransitionSpec(staking.process_register_worker, {}),
    "deregister_worker": TransitionSpec(staking.process_deregister_worker, {}),
    "heartbeat": TransitionSpec(staking.process_heartbeat, {}),
    "post_job": TransitionSpec(
        jobs.process_post_job,
        {"max_price": int, "work_units": int, "training_job": str},
        {"mode": "reverse", "replicas": 1},
    ),
    "cancel_job": TransitionSpec(jobs.process_cancel_job, _JOB),
    "bid": TransitionSpec(jobs.process_bid, {"job_id": int, "price": int}),
    "post_ask": TransitionSpec(jobs.process_post_ask, {"unit_price": int, "capacity": int}),
    "withdraw_ask": TransitionSpec(jobs.process_withdraw_ask, {}),
    "seal_result": TransitionSpec(jobs.process_seal_result, {"job_id": int, "sealed": str}),
    "submit_commitment": TransitionSpec(jobs.process_submit_commitment, {"job_id": int, "commitment": dict}),
    "open_seal": TransitionSpec(disputes.process_open_seal, {"job_id": int, "commitment": dict, "salt": str}),
    "claim_vesting": TransitionSpec(jobs.process_claim_vesting, {}),
    "open_dispute": TransitionSpec(disputes.process_open_dispute, {"job_id": int, "commitment": dict}),
    "settle_dispute": TransitionSpec(disputes.process_settle_dispute, _SETTLE, _EVIDENCE, needs_referees=True),
    "register_referee": TransitionSpec(committee.process_register_referee, {"key": str, "proof": str}),
    "deregister_referee": TransitionSpec(committee.process_deregister_referee, {}),
    "store_checkpoint": TransitionSpec(
        storage.process_store_checkpoint, {"job_id": int, "commitment": dict, "placement": list}
    ),
    "accept_shards": TransitionSpec(storage.process_accept_shards, {"commitment_id": str}),
    "answer_availability": TransitionSpec(
        storage.process_answer_availability, {"challenge": int, "shard": str, "proof": list}
    ),
    "report_equivocation": TransitionSpec(committee.process_report_equivocation, _EQUIVOCATION),
    "report_wrong_verdict": TransitionSpec(
        committee.process_report_wrong_verdict, _WRONG_VERDICT, needs_referees=True
    ),
    "report_absence": TransitionSpec(committee.process_report_absence, _ABSENCE),
    "propose": TransitionSpec(governance.process_propose, {"parameter": str, "value": (int, str)}),
    "vote": TransitionSpec(governance.process_vote, {"proposal_id": int, "support": bool}),
    "close_auction": TransitionSpec(_anyone(jobs.process_close_auction), _JOB),
    "settle_job": TransitionSpec(_anyone(jobs.process_settle_job), _JOB),
    "slash_missed_deadline": TransitionSpec(_anyone(jobs.slash_missed_deadline), _JOB),
    "slash_unopened_seal": TransitionSpec(_anyone(disputes.slash_unopened_seal), _JOB),
    "slash_missed_heartbeats": TransitionSpec(_anyone(staking.slash_missed_heartbeats), {"worker": str}),
    "execute_proposal": TransitionSpec(_anyone(governance.process_execute_proposal), {"proposal_id": int}),
}
"""Transitions a user starts, by message kind; the sender is the transition's acting account."""

SYSTEM_TRANSITIONS: dict[str, TransitionSpec] = {
    "open_account": TransitionSpec(accounts.process_open_account, {"account": str}),
    "genesis_allocation": TransitionSpec(
        accounts.process_genesis_allocation, {"account": str, "amount": int}
    ),
    "epoch": TransitionSpec(_epoch, {"seed": str}),
    "settle_dispute": TransitionSpec(_settle_dispute, _SETTLE, _EVIDENCE, needs_referees=True),
    "report_equivocation": TransitionSpec(_system(committee.process_report_equivocation), _EQUIVOCATION),
    "report_wrong_verdict": TransitionSpec(
        _system(committee.process_report_wrong_verdict), _WRONG_VERDICT, needs_referees=True
    ),
    "report_absence": TransitionSpec(_system(committee.process_report_absence), _ABSENCE),
    "close_auction": TransitionSpec(jobs.process_close_auction, _JOB),
    "settle_job": TransitionSpec(jobs.process_settle_job, _JOB),
    "slash_missed_deadline": TransitionSpec(jobs.slash_missed_deadline, _JOB),
    "slash_unopened_seal": TransitionSpec(disputes.slash_unopened_seal, _JOB),
    "slash_missed_heartbeats": TransitionSpec(staking.slash_missed_heartbeats, {"worker": str}),
    "execute_proposal": TransitionSpec(governance.process_execute_proposal, {"proposal_id": int}),
}
"""Transitions the protocol's drivers apply: its own inputs (time, seeds, genesis) and the
permissionless ones (a dispute's settlement among them: its evidence is checked all the same)."""


def _is_of_type(value: Any, expected: Any) -> bool:
    if isinstance(expected, tuple):
        return any(type(value) is t for t in expected)
    return type(value) is expected


def compute_call_arguments(kind: str, spec: TransitionSpec, fields: Mapping[str, Any]) -> dict[str, Any]:
    """The keyword arguments for `spec`'s transition, or MalformedTransaction naming what is wrong."""
    if not isinstance(fields, Mapping):
        raise MalformedTransaction(f"{kind}: fields must be an object")
    allowed = set(spec.fields) | set(spec.optional)
    unknown = set(fields) - allowed
    missing = set(spec.fields) - set(fields)
    if unknown or missing:
        raise MalformedTransaction(
            f"{kind}: unknown fields {sorted(unknown)}, missing fields {sorted(missing)}"
        )
    arguments = dict(spec.optional)
    for name, value in fields.items():
        expected = spec.fields.get(name, type(spec.optional.get(name)))
        if not _is_of_type(value, expected):
            raise MalformedTransaction(f"{kind}: field {name!r} has type {type(value).__name__}")
        arguments[name] = value
    return arguments


# -- signed transactions --------------------------------------------------------------------------


def compute_transaction_body(sender: str, nonce: int, fields: Mapping[str, Any]) -> dict[str, Any]:
    if "sender" in fields or "nonce" in fields:
        raise MalformedTransaction("'sender' and 'nonce' are reserved field names")
    return {"sender": sender, "nonce": nonce, **fields}


def sign_transaction(key: Ed25519PrivateKey, kind: str, nonce: int, **fields: Any) -> SignedTransaction:
    """A transaction of `kind` from the key's account (named by its public key's hex) with `nonce`."""
    sender = get_public_key_bytes(key).hex()
    body = compute_transaction_body(sender, nonce, fields)
    return SignedTransaction(kind, body, bytes(sign_statement(key, TRANSACTION_KIND_PREFIX + kind, body)))


def verify_transaction_signature(tx: SignedTransaction) -> bool:
    """True when `tx.signature` is the sender's signature of the transaction; never raises."""
    try:
        sender = tx.body["sender"]
        if type(sender) is not str or not is_signer_name(sender):
            return False
        return verify_statement(
            bytes.fromhex(sender), TRANSACTION_KIND_PREFIX + tx.kind, tx.body, tx.signature
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return False


def process_signed_transaction(
    state: State, tx: SignedTransaction, referees: RefereeFactory | None = None
) -> Any:
    """Check a signed transaction's form, signature and nonce, then apply its transition and consume
    the nonce. Returns the transition's result. `referees`: see `apply_action`."""
    spec = USER_TRANSITIONS.get(tx.kind) if type(tx.kind) is str else None
    if spec is None:
        raise MalformedTransaction(f"unknown transaction kind {tx.kind!r}")
    body = tx.body
    if (
        not isinstance(body, dict)
        or type(body.get("sender")) is not str
        or type(body.get("nonce")) is not int
    ):
        raise MalformedTransaction("a transaction body carries a string sender and an integer nonce")
    sender, nonce = body["sender"], body["nonce"]
    if not is_signer_name(sender):
        raise MalformedTransaction(f"a signed transaction's sender is a 64-hex public key, got {sender!r}")
    fields = {k: v for k, v in body.items() if k not in ("sender", "nonce")}
    arguments = compute_call_arguments(tx.kind, spec, fields)
    if not isinstance(tx.signature, bytes | bytearray) or not verify_transaction_signature(tx):
        raise BadSignature(f"{tx.kind} transaction is not signed by {sender}")
    account = state.accounts.get(sender)
    expected = account.nonce if account is not None else 0
    if nonce < expected:
        raise ReplayedMessage(f"nonce {nonce} of {sender} was used already (next is {expected})")
    if nonce > expected:
        raise InvalidNonce(f"nonce {nonce} of {sender} skips ahead of {expected}")
    if account is None and tx.kind != "open_account":
        raise UnknownAccount(f"no account {sender}; send open_account first")
    if account is not None and tx.kind == "open_account":
        raise AccountExists(f"account {sender} is already open")
    if spec.needs_referees:
        arguments["referees"] = referees
    result = spec.function(state, sender, **arguments)
    state.accounts[sender].nonce += 1
    return result


# -- actions and dispatch -------------------------------------------------------------------------


def apply_action(
    state: State,
    action: SignedTransaction | Action,
    *,
    trust_unsigned: bool = False,
    referees: RefereeFactory | None = None,
) -> Any:
    """Apply one transaction or action to `state` (in place) and return the transition's result.
    Unsigned user actions need `trust_unsigned=True`: the driver vouches for their sender. `referees`
    builds the referee of a training job for the transitions that check a game's transcript (a dispute's
    settlement); without it they are refused (NoReferee)."""
    if isinstance(action, SignedTransaction):
        return process_signed_transaction(state, action, referees)
    if not isinstance(action, Action):
        raise MalformedTransaction(f"cannot apply a {type(action).__name__}")
    if action.sender is None:
        spec = SYSTEM_TRANSITIONS.get(action.kind)
        if spec is None:
            raise MalformedTransaction(f"unknown system action {action.kind!r}")
        arguments = compute_call_arguments(action.kind, spec, action.params)
        if spec.needs_referees:
            arguments["referees"] = referees
        return spec.function(state, **arguments)
    spec = USER_TRANSITIONS.get(action.kind)
    if spec is None:
        raise MalformedTransaction(f"unknown user action {action.kind!r}")
    if not trust_unsigned:
        raise UnauthorizedAction(f"an unsigned {action.kind} from {action.sender!r} needs a signature here")
    if type(action.sender) is not str:
        raise MalformedTransaction("an action's sender is an account name")
    if action.kind != "open_account" and action.sender not in state.accounts:
        raise UnknownAccount(f"no account named {action.sender!r}")
    arguments = compute_call_arguments(action.kind, spec, action.params)
    if spec.needs_referees:
        arguments["referees"] = referees
    return spec.function(state, action.sender, **arguments)


def encode_action(action: SignedTransaction | Action) -> dict[str, Any]:
    """JSON form of a transaction or action (what a ledger's log stores)."""
    if isinstance(action, SignedTransaction):
        return {
            "type": "signed",
            "kind": action.kind,
            "body": action.body,
            "signature": action.signature.hex(),
        }
    return {"type": "action", "kind": action.kind, "params": action.params, "sender": action.sender}


def decode_action(data: Any) -> SignedTransaction | Action:
    """Inverse of `encode_action`; MalformedTransaction on anything else."""
    try:
        if data["type"] == "signed":
            if type(data["kind"]) is not str or not isinstance(data["body"], dict):
                raise TypeError("kind and body")
            return SignedTransaction(data["kind"], data["body"], bytes.fromhex(data["signature"]))
        if data["type"] == "action":
            if type(data["kind"]) is not str or not isinstance(data["params"], dict):
                raise TypeError("kind and params")
            if data["sender"] is not None and type(data["sender"]) is not str:
                raise TypeError("sender")
            return Action(data["kind"], data["params"], data["sender"])
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise MalformedTransaction(f"not an encoded action: {exc}") from None
    raise MalformedTransaction(f"unknown encoded action type {data.get('type')!r}")
