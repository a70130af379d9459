"""The referees a ledger settles disputes with: built from the job alone.

The economy (`protocol.economy.evidence`) checks a settlement's transcript itself and asks a
`RefereeFactory` only for the referee of the ledger job's training job. For training jobs that is the
`TraceReferee` of the job spec the game bound as its context (`{"job": spec}`, as `dispute_runs` plays
it), accepted only when that spec hashes to the training job id the ledger job names: a transcript
cannot choose its own judge. The task comes from the user's task file for the job (checked against its
digest) or, for built-in presets, from pinpoint's own; nothing in a transcript is executed.
"""

from __future__ import annotations

from typing import Any

from protocol.job import JobSpec, compute_job_id
from prover.presets import resolve_task
from prover.task import Task
from verifier.referee import TraceReferee


class JobRefereeError(ValueError):
    """A game's context that does not name the ledger job's training job, or names one not judgeable here."""


def make_job_referees(task: Task | None = None) -> Any:
    """A `protocol.economy.RefereeFactory` for training jobs: (training job id, game context) -> the
    job's `TraceReferee`. `task`: the user's task for non-preset jobs (one task file; its digest is
    checked against each job's). Referees are cached per job id (building one is cheap, its skeletons are
    not)."""
    cache: dict[bytes, TraceReferee] = {}

    def referees(training_job: bytes, context: Any) -> TraceReferee:
        if not isinstance(context, dict) or set(context) != {"job"}:
            raise JobRefereeError("a training game's context is exactly {\"job\": the job spec}")
        spec = JobSpec.from_json(context["job"])
        if compute_job_id(spec) != bytes(training_job):
            raise JobRefereeError(f"the game's job spec hashes to {compute_job_id(spec).hex()}, "
                                  f"not to the ledger job's training job {bytes(training_job).hex()}")
        if bytes(training_job) not in cache:
            cache[bytes(training_job)] = TraceReferee(spec, resolve_task(spec, task))
        return cache[bytes(training_job)]

    return referees
