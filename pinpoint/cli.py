"""The `pinpoint` command line: an edge over prover, verifier and protocol, holding no rules.

One error policy for every command. A failure the user can cause is one line on stderr, `error: …`,
naming the file or argument and what to do, and one exit code per class (`EXIT_CODES`); a failure of
pinpoint itself writes its traceback to a file and says where. Nothing is overwritten that the user
did not name as a fresh output, and the result of long work (a verdict) is printed before any
optional file is written. Torch and the other heavy libraries are imported by the commands that use
them, so `--help` and argument errors answer at once.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

import click

from prover.catalog import MODELS, OPTIMIZERS, SIZES

if TYPE_CHECKING:
    from protocol.job import JobSpec
    from prover.task import Task

EXIT_OK = 0
EXIT_FAILED = 1  # the work ran and its answer is no: a verdict that does not follow, undefined operators
EXIT_USAGE = 2  # the command line itself is wrong: an unknown option, a missing argument, a bad value
EXIT_REJECTED = 3  # an input or output was refused: missing, unreadable, unwritable, corrupt, hostile, too large, in use
EXIT_INTERNAL = 4  # a failure of pinpoint itself; the traceback is written to a file
EXIT_INTERRUPTED = 130  # Ctrl-C (SIGINT); SIGTERM gives 143; partial outputs are removed either way
EXIT_TERMINATED = 143
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_FAILED: "verification failed",
    EXIT_USAGE: "usage",
    EXIT_REJECTED: "input rejected",
    EXIT_INTERNAL: "internal error",
    EXIT_INTERRUPTED: "interrupted",
    EXIT_TERMINATED: "terminated",
}

# The exception types that mean "this input or output is refused". Named by module so that none of
# those modules (torch among their imports) is loaded to classify an error: an exception of a type
# can only exist once its module is loaded.
REJECTED_ERRORS = (
    "protocol.job:JobSpecError",
    "protocol.ops:UnsupportedOperator",
    "protocol.recording:TraceError",
    "protocol.session:StateError",
    "protocol.task:TaskError",
    "prover.files:FileFormatError",
    "prover.run:RunError",
    "pinpoint.simulation.config:ConfigError",
    "pinpoint.simulation.output:OutputError",
    "pinpoint.simulation.sweep:SweepError",
)

ALL_SIZES = sorted({size for sizes in SIZES.values() for size in sizes})
TASK_HELP = "the job's task file (yours: never one from a run directory); default: the built-in preset the job names"
DEVICE = re.compile(r"cpu|cuda(:\d+)?")


class Rejected(Exception):
    """An input or output the command refuses (exit 3), with the one line that says why."""


class Terminated(BaseException):
    """SIGTERM, raised in the main thread so that every `finally` and cleanup runs."""


def is_rejected(error: BaseException) -> bool:
    """True when `error` is one of `REJECTED_ERRORS`, `Rejected`, or an operating-system error
    (a path that cannot be created, read or written: permissions, a full disk)."""
    if isinstance(error, Rejected | OSError):
        return True
    for spec in REJECTED_ERRORS:
        module, _, name = spec.partition(":")
        loaded = sys.modules.get(module)
        if loaded is not None and isinstance(error, getattr(loaded, name)):
            return True
    return False


def describe(error: BaseException) -> str:
    """The one line an error is reported with."""
    if isinstance(error, OSError) and not isinstance(error, Rejected) and error.strerror:
        where = error.filename if error.filename is not None else "a file"
        return f"{where}: {error.strerror} (check the path, its permissions and the free space)"
    return " ".join(str(error).split()) or type(error).__name__


def write_traceback(error: BaseException) -> str:
    """Write the traceback of an internal error to a new file in the temporary folder; its path."""
    try:
        fd, path = tempfile.mkstemp(prefix="pinpoint-error-", suffix=".txt")
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(f"pinpoint {' '.join(sys.argv[1:])}\n\n")
            handle.write("".join(traceback.format_exception(error)))
        return path
    except OSError:
        return "(no file: the temporary folder is not writable)"


CLEANUP_SECONDS = 30.0
"""After SIGTERM, the longest the cleanup may take before the process exits anyway (with 143): what it
could not remove, the next start removes, as after SIGKILL."""


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    watchdog = threading.Timer(CLEANUP_SECONDS, os._exit, (EXIT_TERMINATED,))
    watchdog.daemon = True
    watchdog.start()
    raise Terminated


@contextmanager
def sigterm_raises() -> Iterator[None]:
    """While inside, SIGTERM raises `Terminated` in the main thread (outside it: nothing changes)."""
    try:
        previous = signal.signal(signal.SIGTERM, _raise_terminated)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


class NoteHandler(logging.Handler):
    """Log records of the `pinpoint` logger (a stale partial run removed, …) as `note: …` lines on
    the stderr of the moment."""

    def emit(self, record: logging.LogRecord) -> None:
        click.echo(f"note: {record.getMessage()}", err=True)


def _exit(code: int, message: str | None = None) -> NoReturn:
    if message is not None:
        click.echo(f"error: {message}", err=True)
    sys.exit(code)


class Commands(click.Group):
    """The command group with the error policy of the module docstring, and lazily loaded commands
    (`LAZY`) whose help line is known without importing them."""

    LAZY = {"simulate": ("pinpoint.simulation.cli:simulate_command", "Agent-based simulation of the economy: sweeps, Monte Carlo runs, plots.")}

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *self.LAZY])

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.LAZY and cmd_name not in self.commands:
            import importlib

            module, _, name = self.LAZY[cmd_name][0].partition(":")
            self.add_command(getattr(importlib.import_module(module), name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        width = formatter.width - 6 - max(len(name) for name in self.list_commands(ctx))
        rows = []
        for name in self.list_commands(ctx):
            if name in self.LAZY and name not in self.commands:
                rows.append((name, self.LAZY[name][1]))
            else:
                command = super().get_command(ctx, name)
                if command is not None and not command.hidden:
                    rows.append((name, command.get_short_help_str(width)))
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def main(self, args: Sequence[str] | None = None, prog_name: str | None = None, complete_var: str | None = None,
             standalone_mode: bool = True, **extra: Any) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        notes = logging.getLogger("pinpoint")
        if not any(isinstance(handler, NoteHandler) for handler in notes.handlers):
            notes.addHandler(NoteHandler())
            notes.propagate = False
        try:
            with sigterm_raises():
                code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.UsageError as error:
            command = error.ctx.command_path if error.ctx is not None else "pinpoint"
            _exit(EXIT_USAGE, f"{' '.join(error.format_message().split())} (see {command} --help)")
        except click.ClickException as error:
            _exit(EXIT_USAGE, error.format_message())
        except (KeyboardInterrupt, click.Abort):
            _exit(EXIT_INTERRUPTED, "interrupted; partial outputs were removed")
        except Terminated:
            _exit(EXIT_TERMINATED, "terminated; partial outputs were removed")
        except BrokenPipeError:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (the reader left: say nothing more)
            sys.exit(EXIT_OK)
        except Exception as error:
            if is_rejected(error):
                _exit(EXIT_REJECTED, describe(error))
            _exit(EXIT_INTERNAL, f"internal error ({type(error).__name__}: {describe(error)}); "
                                 f"the traceback is in {write_traceback(error)}")
        sys.exit(code if isinstance(code, int) else EXIT_OK)


# --- checks of arguments and outputs, before any work ------------------------------------------------


def check_device(ctx: click.Context, param: click.Parameter, value: str) -> str:
    if not DEVICE.fullmatch(value):
        raise click.BadParameter(f"{value!r} is not a device pinpoint trains on; use cpu or cuda (cuda:N)")
    return value


def check_arity(ctx: click.Context, param: click.Parameter, value: int) -> int:
    if value < 2 or value & (value - 1):
        raise click.BadParameter(f"{value} is not a power of two >= 2 (2, 4, 8, 16, …)")
    return value


def parse_tamper(ctx: click.Context, param: click.Parameter, value: str | None) -> Any:
    if value is None:
        return None
    from protocol.recording import Tamper

    try:
        return Tamper.parse(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from error


def check_new_file(path: Path, option: str) -> None:
    """Refuse an output file that exists (nothing is overwritten) or whose folder cannot take it."""
    if os.path.lexists(path):
        raise Rejected(f"{option} {path} already exists; name a new file (nothing is overwritten)")
    check_creatable(path, option)


def check_creatable(path: Path, option: str) -> None:
    """Refuse an output whose nearest existing ancestor is not a writable folder."""
    parent = path.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise Rejected(f"{option} {path}: {parent} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise Rejected(f"{option} {path}: {parent} is not writable; choose a folder you can write")


def check_fresh_dir(path: Path, option: str) -> None:
    """Refuse an output folder that is `.`, `..`, a file, or a folder with files in it."""
    if path.name in ("", ".", ".."):
        raise Rejected(f"{option} {path} names no new folder; give it a name of its own")
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise Rejected(f"{option} {path} already exists and is not an empty folder; name a new one (nothing is overwritten)")
    check_creatable(path, option)


# --- loading what the commands need -----------------------------------------------------------------


def heavy() -> None:
    """Tune the process once torch is loaded (`prover.process.tune_process` freezes what is alive)."""
    from prover.process import tune_process

    tune_process()


def choose_task(task_path: Path | None, model: str | None, optimizer: str | None, size: str) -> Task:
    """The task of `train` and `check`: a task file, or a built-in preset by model and optimizer."""
    if task_path is not None:
        if model is not None or optimizer is not None:
            raise click.UsageError("give either --task FILE or --model/--optimizer, not both")
        return user_task(task_path)
    if model is None or optimizer is None:
        raise click.UsageError("give --task FILE, or a built-in preset with --model and --optimizer")
    from prover.presets import preset_task

    return preset_task(model, optimizer, size)


def read_job(path: Path) -> JobSpec:
    """A job spec from a file: the spec itself, or a run's run.json (whose "job" it is)."""
    from protocol.job import JobSpec, JobSpecError
    from prover.files import read_json

    body = read_json(path, "job file")
    if isinstance(body, dict) and "job" in body and isinstance(body["job"], dict):
        body = body["job"]
    try:
        return JobSpec.from_json(body)
    except JobSpecError as error:
        raise Rejected(f"--job {path} is not a job spec: {error}") from error


def user_task(task_path: Path) -> Task:
    from prover.task import load_task

    return load_task(task_path)


# --- the commands --------------------------------------------------------------------------------------


@click.group(cls=Commands, context_settings={"help_option_names": ["-h", "--help"]},
             epilog="Exit codes: " + ", ".join(f"{code} {name}" for code, name in EXIT_CODES.items()) + ".")
def main() -> None:
    """Verifiable ML training by refereed delegation."""


@main.command("train")
@click.option("--task", "task_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help="a task file (see examples/tasks/)")
@click.option("--model", type=click.Choice(MODELS), default=None, help="a built-in preset instead of --task")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=None, help="the preset's optimizer")
@click.option("--size", type=click.Choice(ALL_SIZES), default="small", show_default=True, help="the preset's size")
@click.option("--steps", type=click.IntRange(min=1), default=None, help="T: steps to train (required unless --job)")
@click.option("--seed", type=click.IntRange(0, 2**31 - 1), default=0, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="default: the task's batch_size")
@click.option("--job", "job_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="train this existing job (a job spec, or a run's run.json) instead of making one")
@click.option("--initial", "initial_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="s_0 as safetensors (e.g. a run's checkpoints/step-00000000.safetensors), checked against the job")
@click.option("--checkpoint-every", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--device", default="cpu", show_default=True, callback=check_device, help="cpu or cuda (results are the same bits)")
@click.option("--key", "key_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="worker Ed25519 key file (created if missing); default: OUT.key beside the run")
@click.option("--tamper", default=None, callback=parse_tamper, help="research: cheat on purpose, output@STEP:NODE or state@STEP")
@click.option("--replay", is_flag=True, help="capture the step's operator program and replay it without the task's Python "
              "(same states; faster on small models; see the README)")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True, help="the new run directory")
@click.option("--json", "as_json", is_flag=True, help="print a JSON summary")
def train_command(
    task_path: Path | None, model: str | None, optimizer: str | None, size: str, steps: int | None, seed: int,
    batch_size: int | None, job_path: Path | None, initial_path: Path | None, checkpoint_every: int, device: str,
    key_path: Path | None, tamper: Any, replay: bool, out: Path, as_json: bool,
) -> None:
    """Train a job reproducibly and commit to every step's state: a new job made from the task, steps
    and seed, or an existing one (--job), from s_0 computed here or given (--initial)."""
    if job_path is not None and model is not None:
        raise click.UsageError("a job names its task by digest: give --job with --task FILE (or none for a preset)")
    if job_path is None and steps is None:
        raise click.UsageError("give --steps (or train an existing job with --job)")
    if job_path is None and task_path is None and (model is None or optimizer is None):
        raise click.UsageError("give --task FILE, or a built-in preset with --model and --optimizer")
    if task_path is not None and (model is not None or optimizer is not None):
        raise click.UsageError("give either --task FILE or --model/--optimizer, not both")
    check_fresh_dir(out, "--out")
    if key_path is not None and not os.path.lexists(key_path):
        check_creatable(key_path, "--key")
    from tqdm import tqdm

    from protocol.session import make_job
    from prover.files import read_json
    from prover.run import load_or_create_key, read_checkpoint, train

    heavy()
    task = choose_task(task_path, model, optimizer, size) if job_path is None else None
    job = read_job(job_path) if job_path is not None else None
    if job is None:
        assert task is not None and steps is not None
        job = make_job(task, steps, seed, batch_size)
    elif task_path is not None:
        task = user_task(task_path)
    initial = read_checkpoint(initial_path) if initial_path is not None else None
    key = load_or_create_key(key_path) if key_path is not None else None
    if replay and tamper is not None:
        raise click.UsageError("--tamper runs every step eagerly: give it without --replay")
    with tqdm(total=job.steps, desc="train", unit="step", disable=as_json or None, file=sys.stderr) as bar:
        shown = {"loss": "", "sharded": "-"}  # the last loss, and the last checkpoint coded into shards (in the background)

        def on_step(t: int, loss: float) -> None:
            shown["loss"] = f"{loss:.4f}"
            bar.set_postfix(shown)
            bar.update(1)

        def on_shards(step: int) -> None:
            shown["sharded"] = f"s_{step}"
            bar.set_postfix(shown, refresh=False)

        run = train(job, out, key, checkpoint_every, device, tamper, on_step, task=task, initial=initial, on_shards=on_shards,
                    replay=replay)
    summary = {"run": str(out), "job_id": run.job_id.hex(), "chain_root": run.chain_root.hex(), "steps": job.steps, "worker_key": run.worker_key.hex()}
    counts = read_json(out / "run.json", "run.json").get("replay") if replay else None
    if counts is not None:
        summary["replay"] = counts
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(f"job {summary['job_id']}\nchain root {summary['chain_root']}\nwrote {out}")
        if counts is not None:
            click.echo(f"replay: {counts['replayed']} steps replayed, {counts['captured']} captured, {counts['eager']} eager"
                       + (f" ({counts['reason']})" if counts["reason"] else ""))


@main.command("check")
@click.option("--task", "task_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help="a task file (see examples/tasks/)")
@click.option("--model", type=click.Choice(MODELS), default=None, help="a built-in preset instead of --task")
@click.option("--optimizer", type=click.Choice(OPTIMIZERS), default=None, help="the preset's optimizer")
@click.option("--size", type=click.Choice(ALL_SIZES), default="small", show_default=True, help="the preset's size")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="default: the task's batch_size")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def check_command(task_path: Path | None, model: str | None, optimizer: str | None, size: str, batch_size: int | None, as_json: bool) -> None:
    """Run one step and report every aten operator it uses and which have reproducible definitions.
    Exit 1 when some are undefined (then `train` would refuse the task)."""
    if task_path is None and (model is None or optimizer is None):
        raise click.UsageError("give --task FILE, or a built-in preset with --model and --optimizer")
    if task_path is not None and (model is not None or optimizer is not None):
        raise click.UsageError("give either --task FILE or --model/--optimizer, not both")
    from protocol.session import make_job
    from prover.coverage import check_coverage

    heavy()
    task = choose_task(task_path, model, optimizer, size)
    coverage = check_coverage(make_job(task, 1, 0, batch_size), task)
    if as_json:
        click.echo(json.dumps(dict(coverage.to_json(), task=task.name)))
    else:
        click.echo(f"{task.name}: {len(coverage.calls)} operators in {sum(coverage.calls.values())} calls, "
                   f"{len(coverage.defined)} defined, {len(coverage.missing)} undefined")
        for op in coverage.operators:
            mark = "ok     " if op not in coverage.places else "MISSING"
            where = f"  in {', '.join(coverage.places[op])}" if op in coverage.places else ""
            click.echo(f"  {mark} {op:60s} {coverage.calls[op]:5d}{where}")
    sys.exit(EXIT_FAILED if coverage.missing else EXIT_OK)


@main.command("trace")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--step", type=click.IntRange(min=0), required=True)
@click.option("--task", "task_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help=TASK_HELP)
@click.option("--json", "as_json", is_flag=True, help="print the whole trace as JSON")
def trace_command(run_dir: Path, step: int, task_path: Path | None, as_json: bool) -> None:
    """Regenerate step STEP's trace from the checkpoint before it; print its root and node count."""
    from protocol.state import compute_state_root
    from protocol.trace import compute_trace_root
    from prover.run import load_run, regenerate_trace

    heavy()
    task = user_task(task_path) if task_path is not None else None
    run = load_run(run_dir)
    trace = regenerate_trace(run, step, task=task)
    ops = trace.ops_tree()
    before, after = compute_state_root(trace.state_before), compute_state_root(trace.state_after)
    root = compute_trace_root(before, after, ops.root, len(trace.nodes))
    summary: dict[str, Any] = {
        "step": step,
        "trace_root": root.hex(),
        "ops_root": ops.root.hex(),
        "nodes": len(trace.nodes),
        "state_before": before.hex(),
        "state_after": after.hex(),
    }
    if as_json:
        summary["trace"] = [node.to_json() for node in trace.nodes]
        summary["bindings"] = [[name, list(ref)] for name, ref in trace.bindings]
        click.echo(json.dumps(summary))
    else:
        click.echo(f"step {step}: {len(trace.nodes)} nodes, trace root {root.hex()}")


@main.command("dispute")
@click.argument("worker_run", type=click.Path(path_type=Path))
@click.argument("challenger_run", type=click.Path(path_type=Path))
@click.option("--arity", type=int, default=2, show_default=True, callback=check_arity, help="k: descendants revealed per round (a power of two)")
@click.option("--worker-key", type=click.Path(dir_okay=False, path_type=Path), default=None, help="default: WORKER_RUN.key beside the run")
@click.option("--challenger-key", type=click.Path(dir_okay=False, path_type=Path), default=None, help="default: CHALLENGER_RUN.key beside the run")
@click.option("--transcript", type=click.Path(dir_okay=False, path_type=Path), default=None, help="write the signed transcript to this new file")
@click.option("--task", "task_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help=TASK_HELP)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def dispute_command(
    worker_run: Path, challenger_run: Path, arity: int, worker_key: Path | None, challenger_key: Path | None,
    transcript: Path | None, task_path: Path | None, as_json: bool,
) -> None:
    """Play the dispute game between two runs of one job and print the verdict."""
    if transcript is not None:
        check_new_file(transcript, "--transcript")
    from verifier.dispute import dispute_runs
    from verifier.game.transcript import write_transcript

    heavy()

    def progress(message: str) -> None:
        if not as_json:
            click.echo(f"  {message}", err=True)

    task = user_task(task_path) if task_path is not None else None
    report = dispute_runs(worker_run, challenger_run, arity, worker_key, challenger_key, None, progress, task)
    print_verdict(report.to_json(), as_json)
    if transcript is not None and report.result is None:
        click.echo(f"no transcript written to {transcript}: there was no game", err=True)
    if transcript is not None and report.result is not None:
        try:
            write_transcript(transcript, report.result.transcript, exclusive=True)
        except FileExistsError as error:
            raise Rejected(f"--transcript {transcript} appeared while the game ran; the verdict above stands, "
                           "but the transcript was not written") from error
        except OSError as error:
            raise Rejected(f"--transcript {transcript}: {error.strerror}; the verdict above stands, "
                           "but the transcript was not written") from error
        if not as_json:
            click.echo(f"wrote {transcript}", err=True)


def print_verdict(summary: dict[str, Any], as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps(summary))
        return
    if not summary["disputed"]:
        click.echo("the runs agree: nothing to dispute")
        return
    winner, loser = summary["winner"], summary["loser"]
    click.echo(f"winner   {winner['role'] if winner else 'none'}  {winner['run'] if winner else ''}  {winner['key'][:16] if winner else ''}")
    losers = loser if isinstance(loser, list) else [loser]
    for party in losers:
        click.echo(f"loser    {party['role']}  {party['run']}  {party['key'][:16]}")
    click.echo(f"step     {summary['step']}   {summary['tree']} leaf {summary['index']}   op {summary['op']}")
    click.echo(f"reason   {summary['reason']}: {summary['detail']}")
    for failure in summary["failures"]:
        click.echo(f"silent   {failure['role']} could not answer query {failure['seq']}: {failure['error']}")
    for shard in summary.get("shards_set_aside", []):
        click.echo(f"shard    {shard['run']}/{shard['holder']} set aside: {shard['reason']}")
    rounds = summary["rounds"]
    click.echo(f"rounds   {rounds['chain']} over steps + {rounds['trace']} inside the step = {rounds['total']}")
    click.echo(f"bytes    {summary['bytes']} ({summary['bytes_without_tensors']} without tensors)")
    click.echo(f"seconds  referee {summary['referee_seconds']:.3f}, total {summary['seconds']:.2f}")
    click.echo(f"game     dispute {summary['dispute_id'][:16]}, times witnessed by time source {summary['time_source']}")
    sys.stdout.flush()


@main.command("verify-transcript")
@click.argument("transcript", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--task", "task_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help=TASK_HELP)
@click.option("--time-source", "time_source", default=None,
              help="hex public key: the only time source trusted to witness timeouts (default: the one the transcript names, reported)")
@click.option("--json", "as_json", is_flag=True)
def verify_transcript_command(transcript: Path, task_path: Path | None, time_source: str | None, as_json: bool) -> None:
    """Re-check a dispute transcript's verdict offline, trusting no referee. Exit 1 when the recorded
    verdict does not follow, 3 when the transcript cannot be read."""
    try:
        trusted = None if time_source is None else bytes.fromhex(time_source)
    except ValueError:
        trusted = b""
    if trusted is not None and len(trusted) != 32:
        raise click.BadParameter("the 64 hex digits of an Ed25519 public key", param_hint="--time-source")
    from prover.presets import resolve_task
    from verifier.dispute import read_dispute_transcript
    from verifier.game.transcript import verify_transcript
    from verifier.referee import TraceReferee

    heavy()
    task = user_task(task_path) if task_path is not None else None
    value, job = read_dispute_transcript(transcript)
    result = verify_transcript(value, TraceReferee(job, resolve_task(job, task)), time_source=trusted)
    if as_json:
        click.echo(json.dumps({"valid": result.valid, "reason": result.reason,
                               "time_source": None if result.time_source is None else result.time_source.hex()}))
    else:
        click.echo(("valid: " if result.valid else "INVALID: ") + result.reason)
    sys.exit(EXIT_OK if result.valid else EXIT_FAILED)


@main.command("demo")
@click.option("--seed", type=int, default=0, show_default=True, help="chooses prices, the cheater and its fault")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="a new folder (default: a fresh temporary one)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def demo_command(seed: int, out: Path | None, as_json: bool) -> None:
    """A user, three staked workers (one cheats), secret forced errors, a colluding challenger who throws
    its game, two honest challengers, the real dispute game, and settlement from the verified transcripts."""
    if out is not None:
        if out.exists():
            raise Rejected(f"--out {out} already exists; name a new folder (nothing is overwritten)")
        check_creatable(out, "--out")
    from pinpoint.demo import report_json, run_demo

    heavy()
    folder = out if out is not None else Path(tempfile.mkdtemp(prefix="pinpoint-demo-")) / "demo"
    log: Callable[[str], None] = (lambda message: None) if as_json else (lambda message: click.echo(message, err=True))
    try:
        report = run_demo(folder, seed, log)
    except FileExistsError as error:
        raise Rejected(f"--out {folder} already exists; name a new folder (nothing is overwritten)") from error
    summary = report_json(report)
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"\n{'party':14s} {'balance':>9s} {'stake':>7s}   ->  {'balance':>9s} {'stake':>7s}   lines (tokens moved)")
    for label, before in report.before.items():
        after = report.after[label]
        lines = ", ".join(f"{name} {amount:+d}" for name, amount in report.lines[label].items()) or "none"
        click.echo(f"{label:14s} {before['balance']:9d} {before['stake']:7d}   ->  {after['balance']:9d} {after['stake']:7d}   {lines}")
    for job in summary["jobs"]:
        verdict = job["verdict"]
        line = f"job {job['id']} {job['model']}/{job['optimizer']} by {job['worker']}"
        fault = job["tamper"] or (f"forced error {job['forced_tamper']}" if job["forced_tamper"] else None)
        if verdict:
            winner = verdict["winner"]["role"] if verdict["winner"] else "nobody"
            line += (f": disputed by {job['disputed_by']} ({fault}); {winner} wins at step {verdict['step']}, "
                     f"{verdict['tree']} leaf {verdict['index']} {verdict['op'] or ''} [{verdict['reason']}], "
                     f"{verdict['rounds']['total']} rounds, {verdict['bytes_without_tensors']} bytes without tensors")
        click.echo(line)
        if job["thrown"]:
            click.echo(f"  colluder's dispute {job['thrown']['dispute']}: {job['thrown']['reason']}, {job['thrown']['settled']}")
        if job["opening"]:
            paid = f", jackpot {job['opening']['jackpot_paid']} to {job['opening']['catcher']}" if job["opening"]["jackpot_paid"] else ""
            click.echo(f"  seal opened: {job['opening']['kind']}{paid}")
        click.echo(f"  {'a forced-error test; ' if job['forced'] else ''}ends {job['status']}"
                   + (", paid after its challenge window" if job["status"] == "settled" else ""))
    books = summary["books"]
    click.echo("\nbooks: supply = genesis + emitted = sum of where every token sits")
    for key in ("genesis", "emitted", "supply", "balances", "stakes", "unbonding", "escrow", "held", "bonds", "vesting", "jackpot",
                "burned", "sum_of_buckets"):
        click.echo(f"  {key:16s} {books[key]:9d}")
    click.echo(f"slashed {summary['slashed']}, to challengers {summary['challenger_rewards']}, burned {summary['burned']}, "
               f"refunded {summary['refunded']}, jackpot paid {summary['jackpot_paid']}; supply conserved: {summary['supply_conserved']}; {report.seconds:.1f} s; files in {folder}")


if __name__ == "__main__":
    main()
