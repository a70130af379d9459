"""Checkpoint storage in the economy: who holds a worker's erasure-coded checkpoints, and the sampling that
slashes a holder who dropped them.

**Holders are the referees** (committee.py): accounts with `referee_stake` bonded for one role, the
committee's and the storage's, so a holder's faults find stake to slash.

**Storing.** The worker of a job posts the signed checkpoint commitment of one of its states
(`protocol.availability.AvailabilityCommitment`, checked on entry: its numbers fit together and it names the
job's training job) with a placement: the referee that holds each of its n shards. A holder accepts its
shards (`process_accept_shards`) once it has them and has checked their inclusion proofs; only accepted
shards are sampled, so nobody can be made answerable for shards it never received. A stored commitment is
kept `availability_retention_epochs` epochs (longer while a challenge of it is open).

**Sampling.** When an epoch starts (`process_epoch`, once its seed is in), every challenge whose deadline
has passed unanswered slashes its holder `availability_slash_bps` of its stake at risk (burned: nobody
profits), and `availability_samples` new challenges are drawn from the epoch's seed: challenge `number`
picks the stored commitment at position

    H("pinpoint/v1/availability-sample\\n" || epoch (8 bytes, little-endian) || seed || number (8 bytes, LE)) mod count

in ascending order of commitment id (hex), and its shard by `protocol.availability.compute_challenge_index`
(seed, commitment id, number, n). A draw on a shard not accepted, or already challenged, is skipped. The
holder answers with the shard and its inclusion proof no later than `availability_answer_epochs` epochs
after the draw's epoch (`process_answer_availability`); a wrong shard is refused and changes nothing. A
holder that dropped a fraction f of its accepted shards is caught by c challenges of its shards with
probability 1 - (1 - f)^c.

`protocol.availability` (numpy, the field's tables) is imported on first use, so a process that only runs
the economy (the simulation) stays light.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import blake3

from protocol.economy.committee import is_active_referee
from protocol.economy.errors import (
    InvalidCommitment,
    InvalidShard,
    JobNotCommitted,
    NotAReferee,
    NotJobWorker,
)
from protocol.economy.helpers import (
    compute_share,
    get_job,
    get_stake_at_risk,
    increase_burned,
    record_slash,
    slash_stake,
)
from protocol.economy.jobs import require_not_terminal
from protocol.economy.state import AvailabilityChallenge, State, StoredCheckpoint
from protocol.signing import compute_canonical_json

SAMPLE_DOMAIN = b"pinpoint/v1/availability-sample\n"


@dataclass(frozen=True, slots=True)
class SamplingReport:
    """What an epoch's sampling did."""

    slashed: tuple[tuple[str, int], ...]  # (holder, tokens burned) for each challenge that closed unanswered
    drawn: tuple[int, ...]  # numbers of the challenges drawn


def compute_sample_position(epoch: int, seed: bytes, number: int, count: int) -> int:
    """Position (in ascending id order) of the stored commitment challenge `number` of `epoch` is about."""
    digest = blake3.blake3(SAMPLE_DOMAIN + epoch.to_bytes(8, "little") + bytes(seed) + number.to_bytes(8, "little")).digest()
    return int.from_bytes(digest, "little") % count


def process_store_checkpoint(state: State, worker: str, job_id: int, commitment: dict[str, Any],
                             placement: list[str]) -> str:
    """The worker of `job_id` stores the checkpoint commitment `commitment` (its JSON) with `placement[i]`, an
    active referee, holding shard i. Returns the commitment's id (hex)."""
    from protocol.availability import compute_commitment_id, compute_commitment_json, parse_commitment_json
    from protocol.game.codec import ParseError

    job = get_job(state, job_id)
    require_not_terminal(job)
    if job.worker != worker:
        raise NotJobWorker(f"job {job_id} is assigned to {job.worker!r}, not {worker!r}")
    if not job.training_job:
        raise JobNotCommitted(f"job {job_id} names no training job")
    try:
        parsed = parse_commitment_json(commitment)
    except (ParseError, TypeError, ValueError) as error:
        raise InvalidCommitment(f"not a checkpoint commitment: {error}") from None
    if bytes(parsed.job_id).hex() != job.training_job:
        raise InvalidCommitment(f"the checkpoint commitment is of training job {bytes(parsed.job_id).hex()}, "
                                f"job {job_id} of {job.training_job}")
    if type(placement) is not list or len(placement) != parsed.n:
        raise InvalidCommitment(f"the placement names a holder for each of the {parsed.n} shards")
    for holder in placement:
        if type(holder) is not str or not is_active_referee(state, holder):
            raise NotAReferee(f"shard holder {holder!r} is not an active referee")
    key = bytes(compute_commitment_id(parsed)).hex()
    if key in state.stored:
        raise InvalidCommitment(f"checkpoint commitment {key} is stored already")
    body = compute_canonical_json(compute_commitment_json(parsed)).decode()
    state.stored[key] = StoredCheckpoint(job_id, body, list(placement), [False] * parsed.n, state.epoch)
    return key


def process_accept_shards(state: State, holder: str, commitment_id: str) -> int:
    """`holder` has its shards of the stored commitment and answers for them from now on. Returns how many."""
    stored = _get_stored(state, commitment_id)
    indices = [i for i, name in enumerate(stored.placement) if name == holder]
    if not indices:
        raise NotAReferee(f"{holder!r} holds no shard of checkpoint commitment {commitment_id}")
    for i in indices:
        stored.accepted[i] = True
    return len(indices)


def process_answer_availability(state: State, holder: str, challenge: int, shard: str, proof: list[str]) -> None:
    """`holder` answers challenge `challenge` with the shard (hex) and its inclusion proof (hex digests)."""
    from protocol.availability import get_shard_problem, parse_commitment_json

    record = state.availability_challenges.get(challenge) if type(challenge) is int else None
    if record is None:
        raise InvalidShard(f"no open availability challenge {challenge!r}")
    if record.holder != holder:
        raise NotAReferee(f"challenge {challenge} is for {record.holder!r}, not {holder!r}")
    try:
        data = bytes.fromhex(shard)
        path = [bytes.fromhex(step) for step in proof]
    except (TypeError, ValueError):
        raise InvalidShard("a shard and its proof are hex") from None
    commitment = parse_commitment_json(json.loads(state.stored[record.commitment_id].commitment))
    problem = get_shard_problem(commitment, record.index, data, path)
    if problem is not None:
        raise InvalidShard(problem)
    del state.availability_challenges[challenge]


def process_availability_sampling(state: State) -> SamplingReport:
    """At the start of an epoch (its seed in): close the challenges past their deadline, slashing their
    holders, drop expired commitments, then draw this epoch's challenges. O(S log S + open challenges + samples) for S stored
    checkpoints: the expiry scan and the draw's ascending order of ids cover every stored one."""
    from protocol.availability import compute_challenge_index

    p = state.params
    slashed = []
    for number in sorted(n for n, c in state.availability_challenges.items() if c.deadline_epoch < state.epoch):
        record = state.availability_challenges.pop(number)
        at_risk = get_stake_at_risk(state, record.holder)
        taken = slash_stake(state, record.holder, compute_share(at_risk, p.availability_slash_bps))
        record_slash(state, record.holder, "availability", taken, at_risk)
        increase_burned(state, taken)
        slashed.append((record.holder, int(taken)))
    challenged = {c.commitment_id for c in state.availability_challenges.values()}
    for key in [k for k, s in state.stored.items() if s.epoch + p.availability_retention_epochs < state.epoch]:
        if key not in challenged:
            del state.stored[key]
    drawn = []
    ids = sorted(state.stored)
    seed = bytes.fromhex(state.seed)
    open_shards = {(c.commitment_id, c.index) for c in state.availability_challenges.values()}
    for number in range(p.availability_samples if ids else 0):
        key = ids[compute_sample_position(state.epoch, seed, number, len(ids))]
        stored = state.stored[key]
        index = compute_challenge_index(seed, bytes.fromhex(key), number, len(stored.placement))
        if not stored.accepted[index] or (key, index) in open_shards:
            continue
        challenge = state.next_availability_challenge
        state.next_availability_challenge += 1
        state.availability_challenges[challenge] = AvailabilityChallenge(
            key, index, stored.placement[index], state.epoch, state.epoch + p.availability_answer_epochs)
        open_shards.add((key, index))
        drawn.append(challenge)
    return SamplingReport(tuple(slashed), tuple(drawn))


def _get_stored(state: State, commitment_id: str) -> StoredCheckpoint:
    stored = state.stored.get(commitment_id) if type(commitment_id) is str else None
    if stored is None:
        raise InvalidCommitment(f"no stored checkpoint commitment {commitment_id!r}")
    return stored
