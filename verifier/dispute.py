"""A dispute between two runs of the same job on disk: the real game, end to end.

The first run is the worker's (the run under dispute), the second the challenger's. Each party
answers from its own run directory through an honest strategy (`RunTraceProvider` regenerates the
disputed step from its checkpoints); the referee is `TraceReferee` for the job. The transcript binds
the job spec as its context, so `verify_dispute_transcript` can rebuild the referee offline.

A party stands behind its signed commitment, whatever became of the rest of its directory: a checkpoint
file that is missing or corrupt is rebuilt from any k of its shards that prove themselves against the
signed availability root (the holders of shards that do not are named in the report); a party that
still cannot answer a query (checkpoints and too many shards deleted or corrupt, of another step, or
that do not reproduce the roots it signed) is silent, and the rules decide against it on its clock. So a dispute between two
commitments to one job always ends in a verdict that names the party and the reason.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.availability import Discarded
from protocol.game.commitments import SignedRunCommitment
from protocol.game.constants import GameConfig
from protocol.game.enums import Outcome, Role
from protocol.game.interfaces import TraceProvider
from protocol.game.timesource import TimeSource
from protocol.job import JobSpec, JobSpecError, compute_job_id
from protocol.signing import get_public_key_bytes
from prover.files import FileFormatError
from prover.presets import resolve_task
from prover.provider import RunTraceProvider
from prover.run import RunError, default_key_path, load_key, load_run, load_run_commitment
from prover.task import Task, TaskError
from verifier.game.driver import GameResult, PartyFailure, play_game
from verifier.game.strategy import HonestStrategy
from verifier.game.transcript import (
    VerificationResult,
    read_transcript_json,
    verify_transcript,
    write_transcript,
)
from verifier.referee import TraceReferee

DEFAULT_CLOCK_SECONDS = 3600.0  # each party's chess clock for the whole game (simulated seconds)


def make_game_config(arity: int = 2) -> GameConfig:
    if arity < 2 or arity & (arity - 1):
        raise ValueError(f"the arity is a power of two >= 2, got {arity}")
    return GameConfig(
        arity=arity,
        clock_seconds=DEFAULT_CLOCK_SECONDS,  # type: ignore[arg-type]
        max_evidence_rounds=4,
        max_leaf_bytes=1 << 20,
        max_tensor_bytes=1 << 31,
        max_tree_leaves=1 << 32,
    )


def get_run_key(path: Path, worker_key: bytes, key_path: str | os.PathLike[str] | None) -> Ed25519PrivateKey:
    """The key that signed the run's commitment: `key_path`, else the run's default key file
    (`prover.run.default_key_path`: `NAME.key` beside the run)."""
    key_file = Path(key_path) if key_path is not None else default_key_path(path)
    if not os.path.lexists(key_file):
        raise RunError(f"no key for {path} at {key_file}: pass the key that signed its commitment")
    key = load_key(key_file)
    if get_public_key_bytes(key) != worker_key:
        raise RunError(f"{key_file} is not the key that signed {path}/commitment.json")
    return key


class UnavailableProvider:
    """The `TraceProvider` of a party whose run directory cannot be loaded: it stands behind a signed
    commitment but can answer nothing, so every query it is asked is its silence (see the driver)."""

    def __init__(self, job: JobSpec, commitment: SignedRunCommitment, problem: str) -> None:
        self.job = job
        self.commitment = commitment
        self.problem = problem

    def get_job_id(self) -> bytes:
        return self.commitment.commitment.job_id

    def get_steps(self) -> int:
        return self.commitment.commitment.steps

    def _fail(self, *_: object) -> Any:
        raise RunError(self.problem)

    get_chain_tree = get_state_root = get_state_tree = get_state_leaf = _fail
    get_trace_commitment = get_ops_tree = get_op_leaf = get_tensor = _fail


@dataclass(frozen=True)
class Party:
    """One side of a dispute between run directories: what it signed, and what it answers from."""

    path: Path
    job: JobSpec
    commitment: SignedRunCommitment
    provider: TraceProvider
    problem: str | None  # why its directory cannot be used, when it cannot


def load_party(path: str | os.PathLike[str], task: Task | None, on_progress: Callable[[str], None] | None) -> Party:
    """A party from its run directory. Only the job and the signed commitment must be readable (without
    them there is no claim to dispute: RunError); any other missing, corrupt or inconsistent file makes a
    party that will be silent when asked, and lose on its clock."""
    job, commitment = load_run_commitment(path)
    try:
        run = load_run(path)
        if run.commitment != commitment:
            raise RunError(f"{path}: the run does not match its commitment")
        provider: TraceProvider = RunTraceProvider(run, on_progress=on_progress, task=task)
        return Party(Path(path), job, commitment, provider, None)
    except (RunError, TaskError) as error:
        return Party(Path(path), job, commitment, UnavailableProvider(job, commitment, str(error)), str(error))


@dataclass
class DisputeReport:
    """The verdict of a dispute between two runs, in the terms of the command line."""

    runs: tuple[Path, Path]  # (worker's, challenger's)
    keys: tuple[bytes, bytes]
    result: GameResult | None  # None when the chain roots agree
    seconds: float
    op: str | None = None  # the aten operator of the decisive node, when the game ended on one
    referee_meta_steps: int = 0  # skeleton steps the referee ran on meta tensors (1: from the proven layout of s_t)
    set_aside: tuple[tuple[Path, Discarded], ...] = ()  # shards refused while a party rebuilt a checkpoint: (run, shard)

    @property
    def disputed(self) -> bool:
        return self.result is not None and self.result.verdict.outcome is not Outcome.NO_DISPUTE

    def _party(self, role: Role | None) -> dict[str, str] | None:
        if role is None:
            return None
        index = 0 if role is Role.WORKER else 1
        return {"role": role.value, "run": str(self.runs[index]), "key": self.keys[index].hex()}

    def _failure(self, failure: PartyFailure) -> dict[str, Any]:
        return {**failure.to_json(), "run": str(self.runs[0 if failure.role is Role.WORKER else 1])}

    def to_json(self) -> dict[str, Any]:
        if not self.disputed:
            return {"disputed": False, "winner": None, "loser": None, "reason": "nothing to dispute", "seconds": self.seconds}
        assert self.result is not None
        verdict = self.result.verdict
        winner = verdict.winner.role if verdict.winner is not None else None
        losers = [self._party(loser.role) for loser in verdict.losers]
        return {
            "disputed": True,
            "outcome": verdict.outcome.value,
            "winner": self._party(winner),
            "loser": losers[0] if len(losers) == 1 else losers,
            "step": verdict.step,
            "node": verdict.index if verdict.tree is not None and verdict.tree.value == "ops" else None,
            "tree": verdict.tree.value if verdict.tree is not None else None,
            "index": verdict.index,
            "op": self.op,
            "reason": verdict.reason.value,
            "detail": verdict.detail,
            "rounds": {"chain": verdict.rounds_chain, "trace": verdict.rounds_trace, "total": verdict.rounds_chain + verdict.rounds_trace},
            "bytes": verdict.bytes_total,
            "bytes_without_tensors": verdict.bytes_without_tensors,
            "failures": [self._failure(failure) for failure in self.result.failures],
            "dispute_id": bytes(self.result.transcript.setup.dispute_id).hex(),
            "time_source": None if self.result.transcript.setup.time_source is None
            else bytes(self.result.transcript.setup.time_source).hex(),
            "referee_seconds": self.result.referee_seconds,
            "referee_meta_steps": self.referee_meta_steps,
            "shards_set_aside": [{"run": str(run), "holder": d.holder, "index": d.index, "reason": d.reason}
                                 for run, d in self.set_aside],
            "seconds": self.seconds,
        }


def dispute_runs(
    worker_run: str | os.PathLike[str],
    challenger_run: str | os.PathLike[str],
    arity: int = 2,
    worker_key: str | os.PathLike[str] | None = None,
    challenger_key: str | os.PathLike[str] | None = None,
    transcript_path: str | os.PathLike[str] | None = None,
    on_progress: Callable[[str], None] | None = None,
    task: Task | None = None,
    dispute_id: bytes | None = None,
    time_source: TimeSource | None = None,
) -> DisputeReport:
    """Play the dispute game between two runs of one job; optionally write the transcript.

    `task` is the user's task file for the job (checked against its digest); without it, the job
    must be a built-in preset. Nothing from either run directory is executed. `dispute_id` is the id the
    dispute was issued when it was opened (a ledger's; default: a fresh random nonce) and `time_source`
    the witness of the game's times (a ledger; default: a local one with a fresh key, named in the
    transcript)."""
    start = time.perf_counter()
    parties = (load_party(worker_run, task, _prefix(on_progress, "worker")),
               load_party(challenger_run, task, _prefix(on_progress, "challenger")))
    job = parties[0].job
    if compute_job_id(job) != compute_job_id(parties[1].job):
        raise RunError("the two runs are of different jobs: there is nothing to dispute between them")
    task = resolve_task(job, task)
    keys = (get_run_key(parties[0].path, parties[0].commitment.commitment.worker_key, worker_key),
            get_run_key(parties[1].path, parties[1].commitment.commitment.worker_key, challenger_key))
    report = DisputeReport((parties[0].path, parties[1].path),
                           tuple(bytes(p.commitment.commitment.worker_key) for p in parties),  # type: ignore[arg-type]
                           None, 0.0)
    if parties[0].commitment.commitment.chain_root == parties[1].commitment.commitment.chain_root:
        report.seconds = time.perf_counter() - start
        return report
    referee = TraceReferee(job, task)
    strategies = [HonestStrategy(party.provider, key, commitment=party.commitment)
                  for party, key in zip(parties, keys, strict=True)]
    result = play_game(strategies[0], strategies[1], referee, make_game_config(arity), context={"job": job.to_json()},
                       dispute_id=dispute_id, time_source="local" if time_source is None else time_source)
    report.result = result
    verdict = result.verdict
    if verdict.tree is not None and verdict.tree.value == "ops" and verdict.step is not None and verdict.index is not None:
        traces, state_before = result.state.position.traces, result.state.position.state_before
        if traces is not None and state_before is not None:
            skeleton = referee.get_skeleton(verdict.step, state_before, (traces[0].hint, traces[1].hint))
            nodes = () if skeleton is None else skeleton.nodes
            report.op = nodes[verdict.index].op if verdict.index < len(nodes) else None
    report.referee_meta_steps = referee.replayed_steps
    report.set_aside = tuple((party.path, d) for party in parties if isinstance(party.provider, RunTraceProvider)
                             for d in party.provider.set_aside)
    report.seconds = time.perf_counter() - start
    if transcript_path is not None:
        write_transcript(transcript_path, result.transcript)
    return report


def _prefix(on_progress: Callable[[str], None] | None, role: str) -> Callable[[str], None] | None:
    if on_progress is None:
        return None
    return lambda message: on_progress(f"{role}: {message}")


def read_dispute_transcript(path: str | os.PathLike[str]) -> tuple[Any, JobSpec]:
    """A transcript file's JSON value (not yet checked) and the job it binds; `FileFormatError` naming
    the file when it cannot be read or binds no job."""
    value = read_transcript_json(path)
    try:
        return value, JobSpec.from_json(value["setup"]["context"]["job"])
    except (KeyError, TypeError, JobSpecError) as error:
        raise FileFormatError(f"{path} is not a dispute transcript of a training job ({type(error).__name__}: {error})") from error


def verify_dispute_transcript(path: str | os.PathLike[str], task: Task | None = None,
                              time_source: bytes | None = None) -> VerificationResult:
    """Re-check a transcript's verdict offline, rebuilding the referee from the job it binds and the
    user's task for it (a built-in preset when `task` is None); `time_source` pins the one key trusted to
    witness its times (default: the one it names, which the result reports). Never raises: a file that
    cannot be read is an invalid transcript too (the command line tells the two apart with
    `read_dispute_transcript`)."""
    try:
        value, job = read_dispute_transcript(path)
    except FileFormatError as error:
        return VerificationResult(False, f"cannot read the transcript: {error}")
    try:
        claimed = {value["setup"][role]["commitment"]["steps"] for role in ("worker", "challenger")}
    except (KeyError, TypeError) as error:
        return VerificationResult(False, f"cannot read the transcript's run commitments: {error}")
    if claimed != {job.steps}:  # the job fixes T: a commitment to other steps judges nothing about it
        return VerificationResult(False, f"the run commitments claim {sorted(claimed, key=str)} steps; the job has {job.steps}")
    try:
        referee = TraceReferee(job, resolve_task(job, task))
    except TaskError as error:
        return VerificationResult(False, f"cannot judge the transcript's job: {error}")
    return verify_transcript(value, referee, time_source=time_source)
