"""A job: everything that determines a training run's bits, and its id.

A job names its work by digests, never by code: the task file's bytes, the data set's content root
and the root of s_0. Two parties given the same `JobSpec`, the task whose bytes hash to `task` and the
data whose root is `data` compute the same chain of state roots, or one of them is wrong. The job id
is the BLAKE3 hash of the spec's canonical JSON under a domain tag, so two jobs differ in id exactly
when one of these differs: task, data, s_0, steps, seed, batch size, torch version, protocol
version, or posting (two postings of the same work are two jobs).

Byte layouts (see docs/spec.md, which gives test vectors):

    task digest   BLAKE3("pinpoint/v2/task\\n" || the task file's bytes)
    data root     the state root (protocol.state) over the leaves ("data/<name>", tensor digest)
    job id        BLAKE3("pinpoint/v2/job\\n" || canonical JSON of the spec's nine fields)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import blake3

from protocol.signing import compute_canonical_json
from protocol.state import compute_state_root
from protocol.types import DIGEST_SIZE, Root

PROTOCOL_VERSION = "pinpoint/v3"  # v3: tensor digests open to their header (protocol.encoding)
TASK_TAG = b"pinpoint/v2/task\n"
JOB_TAG = b"pinpoint/v2/job\n"
DATA_PREFIX = "data/"
MAX_STEPS = 1 << 32  # the data order and dropout streams are keyed by the step modulo 2**32; run commitments too
MAX_BATCH = 1 << 24  # examples a step may draw
MAX_POSTING_CHARS = 256


class JobSpecError(ValueError):
    """A job spec with a malformed field or an impossible size."""


def _is_hex_root(value: object) -> bool:
    if not isinstance(value, str) or len(value) != 2 * DIGEST_SIZE:
        return False
    return all(c in "0123456789abcdef" for c in value)


@dataclass(frozen=True)
class JobSpec:
    """One training job. The three roots are lowercase hex of 32 bytes."""

    task: str  # compute_task_digest(task file bytes): model, optimizer, loss, schedule, data loading
    data: str  # compute_data_root(the data set's named tensors)
    initial: str  # the state root of s_0 (parameters, buffers, data, seed, step, first batch, lr)
    steps: int  # T: the run commits to s_0 … s_T
    seed: int  # the data order and dropout derive from it (and s_0, when the task draws it)
    batch_size: int  # examples per micro-batch (a step draws batch_size × accumulation_steps)
    torch_version: str  # the operator graph of a step is defined by this torch release
    protocol: str = PROTOCOL_VERSION
    posting: str = ""  # the poster's id for this posting: the same work posted twice is two jobs

    def __post_init__(self) -> None:
        for name in ("task", "data", "initial"):
            if not _is_hex_root(getattr(self, name)):
                raise JobSpecError(f"the job's {name} is 64 lowercase hex characters, got {getattr(self, name)!r:.80}")
        for name in ("steps", "seed", "batch_size"):
            if not isinstance(getattr(self, name), int) or isinstance(getattr(self, name), bool):
                raise JobSpecError(f"the job's {name} is an integer")
        if not 1 <= self.steps <= MAX_STEPS:
            raise JobSpecError(f"a job has 1 to {MAX_STEPS} steps, got {self.steps}")
        if not 1 <= self.batch_size <= MAX_BATCH:
            raise JobSpecError(f"the batch size is 1 to {MAX_BATCH}, got {self.batch_size}")
        if not 0 <= self.seed < 2**31:
            raise JobSpecError("the seed is an integer in [0, 2**31)")
        for name in ("torch_version", "protocol", "posting"):
            value = getattr(self, name)
            if not isinstance(value, str) or len(value) > MAX_POSTING_CHARS:
                raise JobSpecError(f"the job's {name} is a string of at most {MAX_POSTING_CHARS} characters")
        if self.protocol != PROTOCOL_VERSION:
            raise JobSpecError(f"this is {PROTOCOL_VERSION}; the job is for {self.protocol!r}")

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @staticmethod
    def from_json(body: Any) -> JobSpec:
        if not isinstance(body, dict):
            raise JobSpecError("a job spec is a JSON object")
        known = set(JobSpec.__dataclass_fields__)
        unknown, missing = set(body) - known, known - set(body)
        if unknown:
            raise JobSpecError(f"a job spec has no field {sorted(unknown)[0]!r}")
        if missing:  # one spelling per job: defaults are for code, not for what parties send
            raise JobSpecError(f"the job spec lacks {sorted(missing)[0]!r}")
        try:
            return JobSpec(**body)
        except TypeError as error:
            raise JobSpecError(f"malformed job spec: {error}") from error


def compute_task_digest(source: bytes) -> Root:
    """The task file's digest: its exact bytes, domain-separated."""
    return Root(blake3.blake3(TASK_TAG + bytes(source)).digest())


def compute_data_root(digests: Mapping[str, bytes]) -> Root:
    """The data set's content root: the state root over its `data/<name>` leaves alone."""
    if not digests or not all(name.startswith(DATA_PREFIX) for name in digests):
        raise JobSpecError("a data set has at least one tensor, each named data/<name>")
    return compute_state_root(digests)


def compute_job_id(job: JobSpec) -> Root:
    """BLAKE3 of the spec's canonical JSON under the job domain tag."""
    return Root(blake3.blake3(JOB_TAG + compute_canonical_json(job.to_json())).digest())
