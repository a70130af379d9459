"""Run and trace commitments: what a party signs before and during a dispute.

    run commitment    {job_id, steps: T, chain_root, worker_key,
                       availability_root}                                 kind "run-commitment"
                      chain_root = root of compute_tree([s_0, …, s_T]), each leaf a 32-byte state root
                      availability_root = root of the T+1 leaves of `protocol.availability`'s
                      run tree: leaf t the id of s_t's checkpoint commitment (its shards root
                      among it), or 32 zero bytes when no checkpoint of s_t is kept; 32 zero
                      bytes itself (NO_AVAILABILITY) when the run commits to no shards at all
    trace commitment  {job_id, step: t, state_before: s_t, state_after: s_{t+1},
                       ops_root, num_ops: N, num_state_after: m, hint}    kind "trace-commitment"
                      ops_root = root of compute_tree(op leaves), N leaves; s_{t+1} is the root of
                      the state tree of m state leaves; hint = s_t's layout as an opening of its
                      state leaves (`protocol.hint`; opaque to the game, which asks the referee
                      whether it is proven against the agreed s_t)

Statements are signed with `protocol.signing` over their JSON bodies (bytes as lowercase hex), so the
body written to a file is exactly what was signed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.game.codec import ParseError, parse_hex, parse_int, parse_object
from protocol.hint import MAX_HINT_BYTES
from protocol.job import MAX_STEPS as JOB_MAX_STEPS
from protocol.signing import sign_statement, verify_statement
from protocol.types import DIGEST_SIZE, PublicKeyBytes, Root, SignatureBytes, StepIndex

RUN_COMMITMENT_KIND = "run-commitment"
TRACE_COMMITMENT_KIND = "trace-commitment"
MAX_STEPS = JOB_MAX_STEPS  # a run commits to no more steps than a job may have
MAX_COUNT = 1 << 62  # bound on counts read from JSON before a config narrows them
NO_AVAILABILITY = Root(bytes(DIGEST_SIZE))  # the availability root of a run that commits to no shards


@dataclass(frozen=True)
class RunCommitment:
    """A party's claim about a whole run: the root over its T+1 state roots."""

    job_id: bytes  # 32 bytes
    steps: int  # T >= 1: the run goes from s_0 to s_T
    chain_root: Root
    worker_key: PublicKeyBytes  # the signer, 32-byte Ed25519 public key
    availability_root: Root = NO_AVAILABILITY  # over the checkpoints' erasure-code commitments (see above)


@dataclass(frozen=True)
class SignedRunCommitment:
    commitment: RunCommitment
    signature: SignatureBytes


@dataclass(frozen=True)
class TraceCommitment:
    """A party's claim about one step t: its ops tree and the states on either side."""

    job_id: bytes
    step: StepIndex
    state_before: Root  # s_t
    state_after: Root  # the party's s_{t+1}
    ops_root: Root
    num_ops: int  # N, leaves of the ops tree
    num_state_after: int  # m, leaves of the state tree of s_{t+1}
    hint: bytes = b""  # the structure hint of s_t (protocol.hint); a party whose hint is not proven loses


def compute_run_commitment_json(commitment: RunCommitment) -> dict[str, Any]:
    return {
        "job_id": bytes(commitment.job_id).hex(),
        "steps": commitment.steps,
        "chain_root": bytes(commitment.chain_root).hex(),
        "worker_key": bytes(commitment.worker_key).hex(),
        "availability_root": bytes(commitment.availability_root).hex(),
    }


def parse_run_commitment_json(value: Any) -> RunCommitment:
    body = parse_object(value, ("job_id", "steps", "chain_root", "worker_key", "availability_root"), "run commitment")
    return RunCommitment(
        job_id=parse_hex(body["job_id"], "job_id", size=DIGEST_SIZE),
        steps=parse_int(body["steps"], "steps", low=1, high=MAX_STEPS),
        chain_root=Root(parse_hex(body["chain_root"], "chain_root", size=DIGEST_SIZE)),
        worker_key=PublicKeyBytes(parse_hex(body["worker_key"], "worker_key", size=32)),
        availability_root=Root(parse_hex(body["availability_root"], "availability_root", size=DIGEST_SIZE)),
    )


def compute_signed_run_commitment_json(signed: SignedRunCommitment) -> dict[str, Any]:
    return {"commitment": compute_run_commitment_json(signed.commitment), "signature": bytes(signed.signature).hex()}


def parse_signed_run_commitment_json(value: Any) -> SignedRunCommitment:
    body = parse_object(value, ("commitment", "signature"), "signed run commitment")
    return SignedRunCommitment(
        commitment=parse_run_commitment_json(body["commitment"]),
        signature=SignatureBytes(parse_hex(body["signature"], "signature", size=64)),
    )


def sign_run_commitment(key: Ed25519PrivateKey, commitment: RunCommitment) -> SignedRunCommitment:
    body = compute_run_commitment_json(commitment)
    return SignedRunCommitment(commitment, sign_statement(key, RUN_COMMITMENT_KIND, body))


def is_valid_run_commitment(signed: SignedRunCommitment) -> bool:
    """True when the fields have their sizes and `worker_key` signed them; never raises."""
    try:
        c = signed.commitment
        if len(c.job_id) != DIGEST_SIZE or len(c.chain_root) != DIGEST_SIZE or len(c.worker_key) != 32 \
                or len(c.availability_root) != DIGEST_SIZE:
            return False
        if type(c.steps) is not int or not 1 <= c.steps <= MAX_STEPS:
            return False
        body = compute_run_commitment_json(c)
        return verify_statement(c.worker_key, RUN_COMMITMENT_KIND, body, signed.signature)
    except (TypeError, ValueError, AttributeError):
        return False


def compute_trace_commitment_json(commitment: TraceCommitment) -> dict[str, Any]:
    return {
        "job_id": bytes(commitment.job_id).hex(),
        "step": commitment.step,
        "state_before": bytes(commitment.state_before).hex(),
        "state_after": bytes(commitment.state_after).hex(),
        "ops_root": bytes(commitment.ops_root).hex(),
        "num_ops": commitment.num_ops,
        "num_state_after": commitment.num_state_after,
        "hint": bytes(commitment.hint).hex(),
    }


def parse_trace_commitment_json(value: Any, *, max_leaves: int = MAX_COUNT) -> TraceCommitment:
    keys = ("job_id", "step", "state_before", "state_after", "ops_root", "num_ops", "num_state_after", "hint")
    body = parse_object(value, keys, "trace commitment")
    return TraceCommitment(
        job_id=parse_hex(body["job_id"], "job_id", size=DIGEST_SIZE),
        step=StepIndex(parse_int(body["step"], "step", low=0, high=MAX_STEPS - 1)),
        state_before=Root(parse_hex(body["state_before"], "state_before", size=DIGEST_SIZE)),
        state_after=Root(parse_hex(body["state_after"], "state_after", size=DIGEST_SIZE)),
        ops_root=Root(parse_hex(body["ops_root"], "ops_root", size=DIGEST_SIZE)),
        num_ops=parse_int(body["num_ops"], "num_ops", low=1, high=max_leaves),
        num_state_after=parse_int(body["num_state_after"], "num_state_after", low=1, high=max_leaves),
        hint=parse_hex(body["hint"], "hint", max_size=MAX_HINT_BYTES),
    )


def sign_trace_commitment(key: Ed25519PrivateKey, commitment: TraceCommitment) -> SignatureBytes:
    return sign_statement(key, TRACE_COMMITMENT_KIND, compute_trace_commitment_json(commitment))


def is_valid_trace_signature(public_key: bytes, commitment: TraceCommitment, signature: bytes) -> bool:
    """True when `public_key` signed exactly this trace commitment; never raises."""
    try:
        body = compute_trace_commitment_json(commitment)
    except (TypeError, ValueError, AttributeError):
        return False
    return verify_statement(public_key, TRACE_COMMITMENT_KIND, body, signature)


__all__ = [
    "NO_AVAILABILITY",
    "RUN_COMMITMENT_KIND",
    "TRACE_COMMITMENT_KIND",
    "ParseError",
    "RunCommitment",
    "SignedRunCommitment",
    "TraceCommitment",
    "compute_run_commitment_json",
    "compute_signed_run_commitment_json",
    "compute_trace_commitment_json",
    "is_valid_run_commitment",
    "is_valid_trace_signature",
    "parse_run_commitment_json",
    "parse_signed_run_commitment_json",
    "parse_trace_commitment_json",
    "sign_run_commitment",
    "sign_trace_commitment",
]
