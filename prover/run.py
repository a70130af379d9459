"""A worker's run on disk: train a job, checkpoint it, commit to it, and regenerate any step's trace.

RUN/
  run.json                job spec, job id, chain root, worker key, checkpoint interval, timings
  roots.json              the state roots s_0 … s_T (hex)
  commitment.json         the signed run commitment {commitment, signature} (protocol.game.commitments)
  checkpoints/step-NNNNNNNN.safetensors   the state at step t, data set excluded
  availability.json, shards/              every checkpoint erasure-coded, k of n shards (`prover.shards`);
                                          the run commitment signs their root
  tamper.json             for research runs that cheat on purpose: what was tampered with

The worker's Ed25519 key is never kept in the run directory, which is meant to be shared: it is where
the caller says, by default `NAME.key` beside `RUN` (owner-only permissions).

Every file is written atomically. Loading checks everything it reads: a corrupt or truncated
checkpoint, a missing file, a tensor of the wrong dtype or shape, or a state whose root differs
from the committed one is a `RunError` with the file named, and nothing is written. A checkpoint whose
file is missing or corrupt is rebuilt from any k valid shards of it, each checked against the signed root.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from safetensors import SafetensorError
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from protocol.availability import AvailabilityCommitment, Recovery, compute_run_availability_tree
from protocol.encoding import compute_digest
from protocol.game.codec import ParseError
from protocol.game.commitments import (
    NO_AVAILABILITY,
    RunCommitment,
    SignedRunCommitment,
    compute_signed_run_commitment_json,
    is_valid_run_commitment,
    parse_signed_run_commitment_json,
    sign_run_commitment,
)
from protocol.job import JobSpec, JobSpecError, compute_job_id
from protocol.merkle import MerkleTree
from protocol.ops import UnsupportedOperator
from protocol.recording import ReproducibleMode, RngContext, Tamper, TraceError
from protocol.session import Session, StateError, record_step, tamper_state
from protocol.signing import (
    generate_private_key,
    get_public_key_bytes,
    private_key_from_bytes,
    private_key_to_bytes,
)
from protocol.state import compute_chain_tree, compute_state_root
from protocol.task import Task
from protocol.trace import StepTrace
from protocol.types import Root
from prover.files import FileFormatError, read_bounded, read_json, write_atomic, write_json_atomic
from prover.presets import resolve_task
from prover.replay import Replayer
from prover.shards import (
    DEFAULT_CODE,
    MAX_CHECKPOINT_BYTES,
    Code,
    ShardWriter,
    describe_recovery,
    read_availability,
    recover_checkpoint,
    write_availability,
)

logger = logging.getLogger("pinpoint")


class RunError(RuntimeError):
    """A run directory that is missing, corrupt, or inconsistent with its commitment."""


class TamperError(RunError):
    """A research tamper that would not change the run: past the step's last node, on a derived
    node (a view or copy, whose bits are its input's), or on a node whose value never reaches s_{t+1}."""


# --- keys -----------------------------------------------------------------------------------------


MAX_KEY_BYTES = 1024  # a key file is 64 hex characters and a newline


def default_key_path(run: str | os.PathLike[str]) -> Path:
    """Where a run's key is kept when none is given: beside the run directory as `NAME.key`, never
    inside it, so that the run can be shared (copied, published, handed to a challenger) as it is."""
    target = Path(run)
    return target.parent / f"{target.name}.key"


def load_key(path: Path) -> Ed25519PrivateKey:
    """The key in the file at `path` (64 hex characters); RunError naming the file otherwise."""
    try:
        raw = read_bounded(path, "key", MAX_KEY_BYTES)
    except FileFormatError as error:
        raise RunError(str(error)) from error
    try:
        return private_key_from_bytes(bytes.fromhex(raw.decode().strip()))
    except (ValueError, UnicodeDecodeError) as error:
        raise RunError(f"{path} is not an Ed25519 key (64 hex characters)") from error


def save_key(path: Path, key: Ed25519PrivateKey) -> None:
    """Write `key` to a new file at `path` with owner-only permissions; FileExistsError if one is there."""
    write_atomic(path, (private_key_to_bytes(key).hex() + "\n").encode(), mode=0o600, exclusive=True)


def load_or_create_key(path: Path) -> Ed25519PrivateKey:
    """The key at `path`; created (owner-only permissions) if missing, never overwritten."""
    if os.path.lexists(path):
        return load_key(path)
    key = generate_private_key()
    try:
        save_key(path, key)
    except FileExistsError:  # another process made it in between: that key is the one
        return load_key(path)
    return key


# --- digests of a live state --------------------------------------------------------------------


class DigestCache:
    """Digests of the data set's tensors, which no step writes, hashed once.

    Keyed by the tensor's identity and its in-place version counter; holds the tensor so the
    identity cannot be reused. Only `data/` tensors are cached: an operator may write a tensor
    without bumping its version (batch norm's running statistics are written by kernels whose
    schema does not declare the write), so the counter cannot vouch for anything a step touches."""

    def __init__(self) -> None:
        self._entries: dict[int, tuple[int, torch.Tensor, Root]] = {}

    def digest(self, tensor: torch.Tensor) -> Root:
        entry = self._entries.get(id(tensor))
        if entry is not None and entry[0] == tensor._version and entry[1] is tensor:
            return entry[2]
        digest = compute_digest(tensor)
        self._entries[id(tensor)] = (tensor._version, tensor, digest)
        return digest


def compute_state_digests(tensors: dict[str, torch.Tensor], cache: DigestCache | None = None) -> dict[str, Root]:
    """Every tensor's digest; the data set's from `cache` when given (see `DigestCache`)."""
    if cache is None:
        return {name: compute_digest(tensor) for name, tensor in tensors.items()}
    return {name: cache.digest(tensor) if name.startswith("data/") else compute_digest(tensor) for name, tensor in tensors.items()}


# --- fast primitives when available -------------------------------------------------------------


def get_primitives_for() -> Callable[[torch.device], Any]:
    """CPU tensors use the fast kernels; other devices use the device-generic references."""
    from protocol.ops.prims import REFERENCE
    from prover.fast import FAST

    return lambda device: FAST if device.type == "cpu" else REFERENCE


# --- committing while the next step computes ------------------------------------------------------


class Committer:
    """Hashes each state and writes its checkpoint on a background thread, overlapped with the next
    step. The live tensors are snapshotted first (a memory copy), since the next step changes them in
    place; tensors the step never writes (the data set) are shared, not copied, and hashed once. With a
    `shards` writer, each checkpoint is erasure-coded there too, after its file is written."""

    def __init__(self, run: Path, checkpoint_every: int, steps: int, shards: ShardWriter | None = None) -> None:
        self.run = run
        self.checkpoint_every = checkpoint_every
        self.steps = steps
        self.shards = shards
        self.cache = DigestCache()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pinpoint-commit")
        self.pending: list[Future[Root]] = []

    def _snapshot(self, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        return {name: t if name.startswith("data/") else t.detach().clone() for name, t in tensors.items()}

    def _commit(self, step: int, tensors: dict[str, torch.Tensor]) -> Root:
        root = compute_state_root(compute_state_digests(tensors, self.cache))
        if step == 0 or step % self.checkpoint_every == 0 or step == self.steps:
            blob = write_checkpoint(self.run, step, tensors, root)
            if self.shards is not None:
                self.shards.add(step, root, blob)
        return root

    def submit(self, step: int, tensors: dict[str, torch.Tensor]) -> None:
        """Queue s_step for hashing and checkpointing; raises any earlier commit's error."""
        for done in [f for f in self.pending if f.done()]:
            done.result()
        self.pending.append(self.pool.submit(self._commit, step, self._snapshot(tensors)))

    def finish(self) -> list[Root]:
        """The roots s_0 … s_T, in order, once every commit is written."""
        return [future.result() for future in self.pending]

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)


# --- checkpoints ----------------------------------------------------------------------------------


def checkpoint_path(run: Path, step: int) -> Path:
    return run / "checkpoints" / f"step-{step:08d}.safetensors"


def write_checkpoint(run: Path, step: int, tensors: dict[str, torch.Tensor], root: Root) -> bytes:
    """Write s_step's checkpoint file; its bytes."""
    stored = {name: t.detach().to("cpu").contiguous() for name, t in tensors.items() if not name.startswith("data/")}
    data = save_safetensors(stored, metadata={"step": str(step), "state_root": root.hex()})
    write_atomic(checkpoint_path(run, step), data)
    return data


def read_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors checkpoint; RunError naming the file when it is missing,
    unreadable, not a regular file, larger than `MAX_CHECKPOINT_BYTES`, corrupt or truncated."""
    try:
        data = read_bounded(path, "checkpoint", MAX_CHECKPOINT_BYTES)
    except FileFormatError as error:
        raise RunError(str(error)) from error
    return parse_checkpoint(data, f"checkpoint {path}")


def parse_checkpoint(data: bytes, what: str) -> dict[str, torch.Tensor]:
    try:
        return load_safetensors(data)
    except (SafetensorError, ValueError, OSError) as error:
        raise RunError(f"{what} is corrupt or truncated: {error}") from error


def list_checkpoints(run: Path) -> list[int]:
    folder = run / "checkpoints"
    steps = []
    for entry in folder.glob("step-*.safetensors") if folder.exists() else []:
        try:
            steps.append(int(entry.stem.split("-")[1]))
        except ValueError:
            continue
    return sorted(steps)


# --- the run record --------------------------------------------------------------------------------


@dataclass
class Run:
    """What a run directory holds, loaded and checked."""

    path: Path
    job: JobSpec
    job_id: Root
    roots: list[Root]
    commitment: SignedRunCommitment
    checkpoint_every: int
    tamper: Tamper | None
    availability: tuple[AvailabilityCommitment, ...] = ()  # the coded checkpoints under the signed root
    availability_problem: str | None = None  # why they cannot be had, when the run signed some

    def get_availability(self, step: int) -> AvailabilityCommitment | None:
        """The commitment to s_step's coded checkpoint, when the run signed one."""
        return next((c for c in self.availability if c.step == step), None)

    @property
    def worker_key(self) -> bytes:
        return bytes(self.commitment.commitment.worker_key)

    @property
    def chain_root(self) -> Root:
        return self.commitment.commitment.chain_root

    def chain_tree(self) -> MerkleTree:
        return compute_chain_tree(self.roots)


def load_run_commitment(path: str | os.PathLike[str]) -> tuple[JobSpec, SignedRunCommitment]:
    """A run's claim alone: its job (run.json) and its signed run commitment for that job, validly signed.
    What a party stands behind in a dispute even when the rest of its directory is missing or corrupt."""
    run = Path(path)
    if not run.is_dir():
        raise RunError(f"no run directory at {run}")
    try:
        meta = read_json(run / "run.json", "run.json")
        job = JobSpec.from_json(meta["job"])
        signed = parse_signed_run_commitment_json(read_json(run / "commitment.json", "commitment.json"))
    except (FileFormatError, JobSpecError) as error:
        raise RunError(str(error)) from error
    except ParseError as error:
        raise RunError(f"{run}/commitment.json is malformed: {error}") from error
    except (KeyError, TypeError, ValueError) as error:
        raise RunError(f"{run} is malformed: {error}") from error
    body = signed.commitment
    if (body.job_id, body.steps) != (compute_job_id(job), job.steps):
        raise RunError(f"{run}/commitment.json is not a commitment to the job of {run}/run.json")
    if not is_valid_run_commitment(signed):
        raise RunError(f"{run}/commitment.json has a bad signature")
    return job, signed


def load_run(path: str | os.PathLike[str]) -> Run:
    """Load and check a run directory: files present, job id, chain root and signature consistent."""
    run = Path(path)
    job, signed = load_run_commitment(run)  # the job, and a validly signed commitment to it
    try:
        meta = read_json(run / "run.json", "run.json")
        roots = [Root(bytes.fromhex(h)) for h in read_json(run / "roots.json", "roots.json")]
        tamper = Tamper.parse(meta["tamper"]) if meta.get("tamper") else None
        checkpoint_every = int(meta["checkpoint_every"])
    except FileFormatError as error:
        raise RunError(str(error)) from error
    except (KeyError, TypeError, ValueError) as error:
        raise RunError(f"{run} is malformed: {error}") from error
    job_id = compute_job_id(job)
    if len(roots) != job.steps + 1:
        raise RunError(f"{run}/roots.json has {len(roots)} roots for a job of {job.steps} steps")
    if signed.commitment.chain_root != compute_chain_tree(roots).root:
        raise RunError(f"{run}/commitment.json does not match the job and roots")
    availability: tuple[AvailabilityCommitment, ...] = ()
    problem = None
    if signed.commitment.availability_root != NO_AVAILABILITY:  # the shards are a fallback: without them the run still loads
        try:
            availability = read_availability(run, job_id, roots, signed.commitment.availability_root)
        except FileFormatError as error:
            problem = str(error)
    return Run(run, job, job_id, roots, signed, checkpoint_every, tamper, availability, problem)


# --- training ------------------------------------------------------------------------------------


@dataclass
class StepTiming:
    compute: float = 0.0  # seconds in the reproducible step
    commit: float = 0.0  # seconds the step loop spent committing (snapshots, and waiting for the last commits)
    shards: float = 0.0  # seconds the background thread spent erasure-coding checkpoints (overlapped with steps)


def train(
    job: JobSpec,
    out: str | os.PathLike[str],
    key: Ed25519PrivateKey | None = None,
    checkpoint_every: int = 1,
    device: str = "cpu",
    tamper: Tamper | None = None,
    on_step: Callable[[int, float], None] | None = None,
    task: Task | None = None,
    initial: dict[str, torch.Tensor] | None = None,
    code: Code | None = DEFAULT_CODE,
    on_shards: Callable[[int], None] | None = None,
    replay: bool = False,
) -> Run:
    """Train `job` reproducibly into the new directory `out`: checkpoints, their shards, roots, signed commitment.

    Everything is written into a hidden sibling directory first (`.NAME.partial-*`, locked while this
    process lives) and renamed into place at the end, so a failure (an unsupported operator, an
    interrupt) leaves no partial run behind, a second writer of the same `out` is refused, and the
    partial directory of a killed process is removed by the next start. Without a `key`, the key at
    `default_key_path(out)` (beside the run, never inside it) is used, or a fresh one is kept there
    with owner-only permissions once the run is complete.
    `task` is the job's task (checked against its digest); without one, a built-in preset's.
    `initial` is s_0 from elsewhere (the job maker's, or any run's first checkpoint: whoever wrote it,
    its root is checked against the job's), for tasks whose own initialisation is not portable.
    `code` is the erasure code of the checkpoints (None: no shards, and the commitment signs none);
    `on_shards(step)` is told, from the background thread, when s_step's checkpoint is coded.
    With `replay`, steps run by `prover.replay.Replayer` (the step's operator program, captured and
    checked, replayed without the task's Python: the same states, fewer seconds on small models);
    run.json's "replay" says how many steps were replayed, and why none were if none were."""
    task = resolve_task(job, task)
    target = Path(out)
    check_new_run_dir(target)
    check_device(device)
    if checkpoint_every < 1:
        raise RunError("--checkpoint-every must be at least 1")
    if tamper is not None and tamper.step >= job.steps:
        raise RunError(f"cannot tamper with step {tamper.step} of a {job.steps}-step job")
    if tamper is not None and replay:
        raise RunError("--tamper runs every step eagerly: it cannot be combined with --replay")
    key_file = default_key_path(target) if key is None else None
    if key_file is not None and os.path.lexists(key_file):
        key = load_key(key_file)
    fresh_key = key is None
    if key is None:
        key = generate_private_key()
    target.parent.mkdir(parents=True, exist_ok=True)
    with PartialRun(target) as run:
        try:
            _train_into(run, job, task, key, checkpoint_every, device, tamper, on_step, initial, code, on_shards, replay)
        except UnsupportedOperator as error:
            raise _explain_unsupported(job, task, error) from error
        if fresh_key:
            assert key_file is not None
            save_key(key_file, key)
        try:
            os.rename(run, target)
        except OSError as error:
            if fresh_key:
                assert key_file is not None
                key_file.unlink(missing_ok=True)
            if error.errno in (errno.ENOTEMPTY, errno.EEXIST, errno.ENOTDIR):
                raise RunError(f"{target} was filled by someone else while training; choose another --out") from error
            raise
    return load_run(target)


def check_new_run_dir(target: Path) -> None:
    """Refuse an `out` that is not a name for a new run: `.`, `..`, a file, or a folder with files."""
    if target.name in ("", ".", ".."):
        raise RunError(f"--out {target} names no new directory; give the run a name of its own, e.g. runs/NAME")
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise RunError(f"{target} already exists and is not an empty directory; choose another --out")


def check_device(device: str) -> None:
    """Refuse a device that is not a CPU or a CUDA device this torch build can use."""
    try:
        where = torch.device(device)
    except RuntimeError as error:
        raise RunError(f"--device {device!r} is not a device; use cpu or cuda") from error
    if where.type not in ("cpu", "cuda"):
        raise RunError(f"--device {device!r}: pinpoint trains on cpu or cuda")
    if where.type == "cuda" and not torch.cuda.is_available():
        raise RunError(f"--device {device}: this torch build sees no CUDA device; use --device cpu (the same bits)")
    if where.type == "cuda" and where.index is not None and where.index >= torch.cuda.device_count():
        raise RunError(f"--device {device}: there are {torch.cuda.device_count()} CUDA devices (cuda:0 …)")


class PartialRun:
    """The hidden directory a run is written into before it is renamed into place.

    It is `.NAME.partial-XXXXXXXX` beside the target, holding an exclusive `flock` for as long as this
    process lives (the kernel releases it when the process dies, however it dies). Entering creates it
    and looks at its siblings for the same target: one whose lock is held belongs to a live writer, and
    this one is refused; one whose lock is free was left by a killed process, and is removed (and
    logged). Leaving removes the directory unless it has been renamed into place."""

    def __init__(self, target: Path) -> None:
        self.target = target
        self.prefix = f".{target.name}.partial-"
        self.path = target
        self.fd = -1

    def __enter__(self) -> Path:
        while True:
            self.path = Path(tempfile.mkdtemp(prefix=self.prefix, dir=self.target.parent))
            self.fd = _lock_directory(self.path, blocking=True)  # waits only while a cleaner holds it
            if self.fd >= 0:
                break  # else a cleaner removed it in between: make another
        try:
            for other in sorted(self.target.parent.iterdir()):
                if other.name.startswith(self.prefix) and other != self.path and not _remove_if_stale(other):
                    raise RunError(f"another process is training into {self.target} (its {other.name} is locked); "
                                   "wait for it to finish or choose another --out")
        except BaseException:
            self.__exit__()
            raise
        return self.path

    def __exit__(self, *exc: object) -> None:
        if self.path.exists() and self.path != self.target:
            shutil.rmtree(self.path, ignore_errors=True)
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _lock_directory(path: Path, blocking: bool) -> int:
    """An open descriptor of the directory `path` holding its exclusive lock; -1 when the directory
    is gone or was replaced before the lock was taken, or (not `blocking`) when someone holds it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return -1
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
        if os.stat(path, follow_symlinks=False).st_ino == os.fstat(fd).st_ino:
            return fd
    except OSError:
        pass
    os.close(fd)
    return -1


def _remove_if_stale(path: Path) -> bool:
    """Remove the partial directory `path` if no live process holds its lock; False if one does."""
    if not path.is_dir() or path.is_symlink():
        return True  # not a partial run of this code: none of its business
    fd = _lock_directory(path, blocking=False)
    if fd < 0:
        return not path.exists()  # held by a live writer, unless it vanished meanwhile
    try:
        shutil.rmtree(path, ignore_errors=True)
        logger.warning("removed %s, the partial run of a process that was killed", path)
    finally:
        os.close(fd)
    return True


def _explain_unsupported(job: JobSpec, task: Task, error: UnsupportedOperator) -> UnsupportedOperator:
    """The same report as `pinpoint check`: every undefined operator of the step and where it is called."""
    from prover.coverage import check_coverage

    try:
        coverage = check_coverage(job, task)
    except Exception:  # the report is a courtesy: the original error stands on its own
        return error
    if not coverage.missing:
        return error
    return UnsupportedOperator(coverage.missing[0], f"the step uses {len(coverage.missing)} undefined operator(s): {coverage.describe_missing()}")


def _train_into(
    run: Path,
    job: JobSpec,
    task: Task,
    key: Ed25519PrivateKey,
    checkpoint_every: int,
    device: str,
    tamper: Tamper | None,
    on_step: Callable[[int, float], None] | None,
    initial: dict[str, torch.Tensor] | None = None,
    code: Code | None = None,
    on_shards: Callable[[int], None] | None = None,
    replay: bool = False,
) -> None:
    primitives_for = get_primitives_for()
    session = Session(job, task, device)
    if initial is not None:
        try:
            session.load_state(initial)
        except StateError as error:
            raise RunError(f"the initial state does not fit the job: {error}") from error
    check_initial_state(job, session)
    check_judgeable(job, task, initial)
    job_id = compute_job_id(job)
    shards = ShardWriter(run, job_id, code, on_shards) if code is not None else None
    committer = Committer(run, checkpoint_every, job.steps, shards)
    timing = StepTiming()
    replayer = Replayer(session, primitives_for) if replay else None
    try:
        committer.submit(0, session.state_tensors())
        for t in range(job.steps):
            start = time.perf_counter()
            if tamper is not None and tamper.kind == "output" and tamper.step == t:
                loss = _run_tampered_step(session, tamper, primitives_for)
            elif replayer is not None:
                loss = replayer.run_step()
            else:
                with ReproducibleMode(RngContext(job.seed, t), primitives_for):
                    loss = session.run_step()
            if tamper is not None and tamper.kind == "state" and tamper.step == t:
                tamper_state(session)
            middle = time.perf_counter()
            committer.submit(t + 1, session.state_tensors())
            timing.compute += middle - start
            timing.commit += time.perf_counter() - middle
            if on_step is not None:
                on_step(t, float(loss))
        start = time.perf_counter()
        roots = committer.finish()
        timing.commit += time.perf_counter() - start
    finally:
        committer.close()
    chain = compute_chain_tree(roots)
    availability_root = NO_AVAILABILITY
    if shards is not None:
        availability_root = compute_run_availability_tree(job.steps, shards.ordered()).root
        write_availability(run, shards.ordered())
        timing.shards = shards.seconds
    signed = sign_run_commitment(key, RunCommitment(job_id, job.steps, chain.root, get_public_key_bytes(key),
                                                    availability_root))
    write_json_atomic(run / "roots.json", [root.hex() for root in roots])
    write_json_atomic(run / "commitment.json", compute_signed_run_commitment_json(signed))
    meta = {
        "job": job.to_json(),
        "job_id": job_id.hex(),
        "chain_root": chain.root.hex(),
        "worker_key": get_public_key_bytes(key).hex(),
        "checkpoint_every": checkpoint_every,
        "device": device,
        "tamper": str(tamper) if tamper else None,
        "seconds": {"compute": timing.compute, "commit": timing.commit, "shards": timing.shards},
        "replay": asdict(replayer.counts) if replayer is not None else None,
    }
    write_json_atomic(run / "run.json", meta)


def _run_tampered_step(session: Session, tamper: Tamper, primitives_for: Callable[[torch.device], Any]) -> torch.Tensor:
    """The tampered step, checked to change s_{t+1}: the same step runs honestly on a copy of s_t, and
    a tamper that leaves the state after the step as it is (past the last node, or a value nothing
    that reaches the state reads) is a `TamperError` rather than a run that silently did not cheat."""
    t = int(session.step)
    honest = Session(session.job, session.task, str(session.device), initialize=False)
    honest.load_state({name: tensor.detach().clone() for name, tensor in session.state_tensors().items() if not name.startswith("data/")})
    with ReproducibleMode(RngContext(session.job.seed, t), primitives_for):
        honest.run_step()
    mode = ReproducibleMode(RngContext(session.job.seed, t), primitives_for, tamper=tamper)
    try:
        with mode:
            loss = session.run_step()
    except TraceError as error:
        raise TamperError(str(error)) from error
    if not mode.tampered:
        raise TamperError(f"cannot tamper with node {tamper.node} of step {t}: the step has {mode.node_count} nodes (0…{mode.node_count - 1})")
    if compute_state_root(compute_state_digests(honest.state_tensors())) == compute_state_root(compute_state_digests(session.state_tensors())):
        raise TamperError(f"tampering with node {tamper.node} of step {t} leaves s_{t + 1} unchanged (its value never reaches "
                          "the state, like the loss, or the change is masked): choose another node")
    return loss


def check_initial_state(job: JobSpec, session: Session) -> None:
    """Refuse to train from an s_0 other than the job's (the task and data were checked by the session)."""
    root = compute_state_root(compute_state_digests(session.state_tensors()))
    if root.hex() != job.initial:
        raise RunError("s_0 is not the job's initial state (its root differs): the task's own initialisation "
                       "is not portable to this machine; train from the job's s_0 (--initial, e.g. another run's "
                       "checkpoints/step-00000000.safetensors) or set protocol_init = True in the task")


def check_judgeable(job: JobSpec, task: Task, initial: dict[str, torch.Tensor] | None = None) -> None:
    """Refuse a task whose step 0 the referee could not rebuild: its skeleton, computed from shapes
    alone on meta tensors as the referee does, must be the real step's structure node for node. A
    step that reads tensor values (`.item()`, `if x.any()`), holds tensors outside its state, or
    decomposes by device fails here, before anything is committed, rather than in a dispute."""
    real = Session(job, task)
    if initial is not None:
        real.load_state(initial)
    structure = record_step(real, skeleton=True, primitives_for=get_primitives_for()).skeleton  # the real step
    try:
        skeleton = record_step(Session(job, task, meta=True), skeleton=True).skeleton
    except Exception as error:  # whatever the task's code raises on shapes alone
        raise RunError(f"the referee could not rebuild step 0 of task {task.name} from shapes alone "
                       f"({type(error).__name__}: {error}); a step that reads tensor values (.item(), if x.any()) "
                       "or keeps tensors outside its state cannot be judged") from error
    if skeleton != structure:
        first = next((i for i, (a, b) in enumerate(zip(skeleton.nodes, structure.nodes, strict=False)) if a != b),
                     min(len(skeleton.nodes), len(structure.nodes)))
        where = structure.nodes[first].op if first < len(structure.nodes) else "the end of the step"
        raise RunError(f"task {task.name}: step 0 rebuilt from shapes alone differs from the real step at node {first} "
                       f"({where}); the step's operators depend on the device or on tensor values, so it cannot be judged")


REPLAY_FROM = 8
"""Steps from a checkpoint from which `restore_session` replays (`prover.replay`): the first two or
three are captured, which costs more than an eager step."""


def restore_session(run: Run, step: int, device: str = "cpu", task: Task | None = None,
                    on_shards: Callable[[int, str, Recovery], None] | None = None) -> Session:
    """A session at s_step: the nearest checkpoint at or before it that can be had (its file, or else its
    shards), replayed forward, every root checked. `on_shards(step, line, recovery)` is told of each
    checkpoint rebuilt from shards or that its shards could not rebuild."""
    task = resolve_task(run.job, task)
    candidates = sorted({s for s in list_checkpoints(run.path) if s <= step} | {c.step for c in run.availability if c.step <= step})
    if not candidates:
        raise RunError(f"{run.path} has no checkpoint at or before step {step}{_unusable_shards(run)}")
    problems = []
    cache = DigestCache()
    for start in reversed(candidates):  # the nearest first; an earlier one costs only replayed steps
        try:
            session = _restore_checkpoint(run, start, device, task, cache, on_shards)
            break
        except RunError as error:
            problems.append(str(error))
    else:
        raise RunError("; ".join(problems) if len(problems) == 1
                       else f"no checkpoint at or before step {step} can be had: {'; '.join(problems)}")
    # many steps from the checkpoint (sparse checkpoints) are replayed once two captured steps agree;
    # replay only saves time: a state it reaches that is not the committed one is reached again eagerly
    # from the checkpoint, and only then is the run found not to reproduce its roots
    if run.tamper is None and step - start >= REPLAY_FROM:
        try:
            _step_forward(run, session, start, step, cache, replay=True)
            return session
        except _ReplayMismatch:
            session = _restore_checkpoint(run, start, device, task, cache, on_shards)
    _step_forward(run, session, start, step, cache, replay=False)
    return session


class _ReplayMismatch(Exception):
    """A replayed step reached a state other than the committed one (`restore_session` redoes it eagerly)."""


def _step_forward(run: Run, session: Session, start: int, step: int, cache: DigestCache, replay: bool) -> None:
    """Run steps start … step - 1 of the session, each state checked against the committed root."""
    primitives_for = get_primitives_for()
    replayer = Replayer(session, primitives_for) if replay else None
    for t in range(start, step):
        if replayer is not None:
            replayer.run_step()
        else:
            with ReproducibleMode(RngContext(run.job.seed, t), primitives_for, tamper=run.tamper):
                session.run_step()
        if run.tamper is not None and run.tamper.kind == "state" and run.tamper.step == t:
            tamper_state(session)
        root = compute_state_root(compute_state_digests(session.state_tensors(), cache))
        if root != run.roots[t + 1]:
            if replayer is not None:
                raise _ReplayMismatch
            raise RunError(f"replaying step {t} did not reproduce the committed state root s_{t + 1}")


def _restore_checkpoint(run: Run, step: int, device: str, task: Task, cache: DigestCache,
                        on_shards: Callable[[int, str, Recovery], None] | None) -> Session:
    """A session at s_step from its checkpoint file; when the file is missing, corrupt or not of s_step,
    from any k valid shards of it (RunError naming both when neither can be had)."""
    path = checkpoint_path(run.path, step)
    try:
        return _load_checkpoint(run, step, device, task, cache, lambda: read_checkpoint(path), f"checkpoint {path}")
    except RunError as error:
        commitment = run.get_availability(step)
        if commitment is None:
            raise RunError(f"{error}{_unusable_shards(run)}") from error
        recovery, unreadable = recover_checkpoint(run.path, commitment)
        line = describe_recovery(recovery, unreadable)
        logger.warning("%s: %s; checkpoint %d %s", run.path, error, step, line)
        if on_shards is not None:
            on_shards(step, line, recovery)
        if recovery.data is None:
            raise RunError(f"{error}, and its shards cannot rebuild it: {line}") from error
        data = recovery.data
        return _load_checkpoint(run, step, device, task, cache, lambda: parse_checkpoint(data, f"the shards of {path}"),
                                f"the checkpoint rebuilt from the shards of {path}")


def _unusable_shards(run: Run) -> str:
    return f" (and its shards cannot be used: {run.availability_problem})" if run.availability_problem else ""


def _load_checkpoint(run: Run, step: int, device: str, task: Task, cache: DigestCache, read: Callable[[], dict[str, torch.Tensor]],
                     what: str) -> Session:
    tensors = read()
    session = Session(run.job, task, device, initialize=False)  # every parameter comes from the checkpoint
    try:
        session.load_state(tensors)
    except StateError as error:
        raise RunError(f"{what} does not fit the job: {error}") from error
    root = compute_state_root(compute_state_digests(session.state_tensors(), cache))
    if root != run.roots[step]:
        raise RunError(f"{what} does not match the committed state root s_{step}")
    return session


def trace_step(
    session: Session, tamper: Tamper | None = None, skeleton: bool = False, tensors: dict[bytes, torch.Tensor] | None = None
) -> StepTrace:
    """`protocol.session.trace_step` with the fast primitives on CPU."""
    return record_step(session, tamper, skeleton, tensors, get_primitives_for())


def regenerate_trace(
    run: Run, step: int, device: str = "cpu", tensors: dict[bytes, torch.Tensor] | None = None, task: Task | None = None,
    on_shards: Callable[[int, str, Recovery], None] | None = None,
) -> StepTrace:
    """Step `step`'s trace, regenerated from the checkpoint before it (see `restore_session`); checks s_{step+1} too."""
    if not 0 <= step < run.job.steps:
        raise RunError(f"step {step} is outside the run's steps 0…{run.job.steps - 1}")
    session = restore_session(run, step, device, task, on_shards)
    trace = trace_step(session, run.tamper, tensors=tensors)
    if compute_state_root(trace.state_after) != run.roots[step + 1]:
        raise RunError(f"the regenerated step {step} does not reproduce the committed state root s_{step + 1}")
    return trace
