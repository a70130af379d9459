"""A run's checkpoints as erasure-coded shards on disk: written while training, read back in a dispute.

RUN/
  availability.json                        the commitments to the coded checkpoints, in step order
                                           (`protocol.availability`), under the run commitment's
                                           `availability_root`
  shards/step-NNNNNNNN/shard-III.bin       shard III of the checkpoint of step NNNNNNNN: its inclusion
                                           proof against the commitment's shards root (h × 32 bytes,
                                           h the height of a tree of n leaves) followed by the S shard bytes

Each shard file stands for one holder (its path, relative to the run, is the holder's name): what a
storage node would hand over when asked, the shard and its proof. Every file is written atomically;
every file read is hostile: bounded before it is read, each shard checked against the committed shards
root, a shard that fails named with its holder and set aside.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from protocol.availability import (
    CHECKPOINT_K,
    CHECKPOINT_N,
    AvailabilityCommitment,
    HeldShard,
    Recovery,
    compute_availability_commitment,
    compute_commitment_json,
    compute_shard_tree,
    get_run_availability_problem,
    parse_commitment_json,
    recover_blob,
)
from protocol.game.codec import ParseError, parse_list
from protocol.merkle import compute_height
from protocol.types import DIGEST_SIZE, Root
from prover.erasure import decode_shards_fast, encode_shards_fast
from prover.files import FileFormatError, read_bounded, read_json, write_atomic, write_json_atomic

AVAILABILITY_FILE = "availability.json"
MAX_CHECKPOINT_BYTES = 1 << 36  # 64 GiB: a checkpoint, from its file or its shards, is read whole into memory
MAX_CHECKPOINTS = 1 << 17  # commitments in availability.json: its 64 MiB bound holds ~130 000 of ~450 bytes


@dataclass(frozen=True)
class Code:
    """The erasure code a worker puts its checkpoints in: any `k` of `n` shards recover one."""

    k: int = CHECKPOINT_K
    n: int = CHECKPOINT_N


DEFAULT_CODE = Code()


def shard_folder(run: Path, step: int) -> Path:
    return run / "shards" / f"step-{step:08d}"


def shard_path(run: Path, step: int, index: int) -> Path:
    return shard_folder(run, step) / f"shard-{index:03d}.bin"


def write_shards(run: Path, job_id: bytes, step: int, state_root: Root, blob: bytes, code: Code) -> AvailabilityCommitment:
    """Code the checkpoint `blob` of s_step into `code.n` shards, write each with its proof (atomically),
    and return the commitment to them."""
    commitment, shards = compute_availability_commitment(job_id, step, state_root, blob, code.k, code.n,
                                                         encode=encode_shards_fast)
    tree = compute_shard_tree(shards)
    for index in range(code.n):
        write_atomic(shard_path(run, step, index), b"".join(tree.prove(index)) + shards[index].tobytes())
    return commitment


def write_availability(run: Path, commitments: Sequence[AvailabilityCommitment]) -> None:
    write_json_atomic(run / AVAILABILITY_FILE, [compute_commitment_json(c) for c in commitments])


def read_availability(run: Path, job_id: bytes, roots: Sequence[Root], availability_root: bytes) -> tuple[AvailabilityCommitment, ...]:
    """The run's checkpoint commitments from availability.json, checked against its state roots and the
    signed availability root; FileFormatError naming the file when they cannot be had."""
    path = run / AVAILABILITY_FILE
    try:
        entries = parse_list(read_json(path, AVAILABILITY_FILE), AVAILABILITY_FILE, max_length=MAX_CHECKPOINTS)
        commitments = tuple(parse_commitment_json(entry) for entry in entries)
    except ParseError as error:
        raise FileFormatError(f"{path} is malformed: {error}") from error
    problem = get_run_availability_problem(job_id, roots, availability_root, commitments)
    if problem is not None:
        raise FileFormatError(f"{path}: {problem}")
    if any(c.size > MAX_CHECKPOINT_BYTES for c in commitments):
        raise FileFormatError(f"{path} commits to a checkpoint larger than the limit of {MAX_CHECKPOINT_BYTES} bytes")
    return commitments


def read_held_shards(run: Path, commitment: AvailabilityCommitment) -> tuple[list[HeldShard], list[tuple[str, str]]]:
    """Every shard file of the commitment's checkpoint that can be read, as its holder hands it over (not
    yet checked against the root), and the (holder, reason) of each file that cannot be read."""
    height = compute_height(commitment.n)
    size = height * DIGEST_SIZE + commitment.shard_size
    held, unreadable = [], []
    for index in range(commitment.n):
        path = shard_path(run, commitment.step, index)
        holder = str(path.relative_to(run))
        if not path.exists():
            unreadable.append((holder, "missing"))
            continue
        try:
            data = read_bounded(path, "shard", size)
        except FileFormatError as error:
            unreadable.append((holder, str(error)))
            continue
        proof = tuple(data[i * DIGEST_SIZE : (i + 1) * DIGEST_SIZE] for i in range(height))
        held.append(HeldShard(holder, index, data[height * DIGEST_SIZE :], proof))  # a short file fails its proof
    return held, unreadable


def recover_checkpoint(run: Path, commitment: AvailabilityCommitment) -> tuple[Recovery, list[tuple[str, str]]]:
    """The checkpoint of `commitment` rebuilt from whichever k of its shard files hold valid shards
    (`Recovery.data` is None when fewer than k do), and the shard files that could not be read."""
    held, unreadable = read_held_shards(run, commitment)
    return recover_blob(commitment, held, decode=decode_shards_fast), unreadable


def describe_recovery(recovery: Recovery, unreadable: Sequence[tuple[str, str]]) -> str:
    """One line for the party's progress: which shards were used and which holders were set aside, why."""
    refused = [f"{d.holder} ({d.reason})" for d in recovery.discarded] + [f"{h} ({why})" for h, why in unreadable]
    used = f"rebuilt from shards {', '.join(map(str, recovery.used))}" if recovery.data is not None else str(recovery.problem)
    return used + (f"; set aside: {'; '.join(refused)}" if refused else "")


class ShardWriter:
    """Codes each checkpoint as it is written (on the committer's background thread) and keeps the
    commitments for the run's availability root; `on_shards(step)` is told of each coded checkpoint."""

    def __init__(self, run: Path, job_id: bytes, code: Code, on_shards: Callable[[int], None] | None = None) -> None:
        self.run = run
        self.job_id = job_id
        self.code = code
        self.on_shards = on_shards
        self.commitments: dict[int, AvailabilityCommitment] = {}
        self.seconds = 0.0

    def add(self, step: int, state_root: Root, blob: bytes) -> None:
        start = time.perf_counter()
        self.commitments[step] = write_shards(self.run, self.job_id, step, state_root, blob, self.code)
        self.seconds += time.perf_counter() - start
        if self.on_shards is not None:
            self.on_shards(step)

    def ordered(self) -> list[AvailabilityCommitment]:
        return [self.commitments[step] for step in sorted(self.commitments)]

