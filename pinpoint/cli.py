"""The `pinpoint` command line: an edge over prover, verifier and protocol, holding no rules."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from protocol.job import JobSpec, JobSpecError
from protocol.ops import UnsupportedOperator
from protocol.recording import Tamper, TraceError
from protocol.session import StateError
from protocol.trace import compute_trace_root
from prover.files import FileFormatError
from prover.presets import MODELS, OPTIMIZERS, SIZES
from prover.process import tune_process
from prover.run import RunError, load_or_create_key, load_run, read_checkpoint, regenerate_trace, train
from prover.task import Task, TaskError, load_task

ALL_SIZES = sorted({size for sizes in SIZES.values() for size in sizes})
TASK_HELP = "the job's task file (yours: never one from a run directory); default: the built-in preset the job names"


def choose_task(task_path: Path | None, model: str | None, optimizer: str | None, size: str) -> Task:
    """The task of `train` and `check`: a task file, or a built-in preset by model and optimizer."""
    from prover.presets import preset_task

    if task_path is not None:
        if model is not None or optimizer is not None:
            raise TaskError("give either --task FILE or --model/--optimizer, not both")
        return load_task(task_path)
    if model is None or optimizer is None:
        raise TaskError("give --task FILE, or a built-in preset with --model and --optimizer")
    return preset_task(model, optimizer, size)


def read_job(path: Path) -> JobSpec:
    """A job spec from a file: the spec itself, or a run's run.json (whose "job" it is)."""
    from prover.files import read_json

    body = read_json(path, "job file")
    if isinstance(body, dict) and "job" in body and isinstance(body["job"], dict):
        body = body["job"]
    return JobSpec.from_json(body)


def user_task(task_path: Path | None) -> Task | None:
    return load_task(task_path) if task_path is not None else None


def fail(message: str) -> None:
    click.echo(f"error: {message}", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Verifiable ML training by refereed delegation."""
    tune_process()


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
@click.option("--device", default="cpu", show_default=True, help="cpu or cuda (results are the same bits)")
@click.option("--key", "key_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help="worker Ed25519 key file (created if missing)")
@click.option("--tamper", default=None, help="research: cheat on purpose, output@STEP:NODE or state@STEP")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), required=True)
@click.option("--json", "as_json", is_flag=True, help="print a JSON summary")
def train_command(
    task_path: Path | None, model: str | None, optimizer: str | None, size: str, steps: int | None, seed: int,
    batch_size: int | None, job_path: Path | None, initial_path: Path | None, checkpoint_every: int, device: str,
    key_path: Path | None, tamper: str | None, out: Path, as_json: bool,
) -> None:
    """Train a job reproducibly and commit to every step's state: a new job made from the task, steps
    and seed, or an existing one (--job), from s_0 computed here or given (--initial)."""
    from tqdm import tqdm

    from protocol.session import make_job

    try:
        if job_path is not None and model is not None:
            raise TaskError("a job names its task by digest: give --job with --task FILE (or none for a preset)")
        task = choose_task(task_path, model, optimizer, size) if job_path is None else None
        job = read_job(job_path) if job_path is not None else None
        if job is None:
            assert task is not None
            if steps is None:
                raise TaskError("give --steps (or train an existing job with --job)")
            job = make_job(task, steps, seed, batch_size)
        elif task_path is not None:
            task = load_task(task_path)
        initial = read_checkpoint(initial_path) if initial_path is not None else None
        steps = job.steps
        tamper_spec = Tamper.parse(tamper) if tamper else None
        key = load_or_create_key(key_path) if key_path is not None else None
        with tqdm(total=steps, desc="train", unit="step", disable=as_json or None, file=sys.stderr) as bar:
            def on_step(t: int, loss: float) -> None:
                bar.set_postfix(loss=f"{loss:.4f}")
                bar.update(1)

            run = train(job, out, key, checkpoint_every, device, tamper_spec, on_step, task=task, initial=initial)
    except (JobSpecError, RunError, StateError, ValueError, UnsupportedOperator, TraceError, FileFormatError) as error:
        fail(str(error))
        return
    summary = {"run": str(out), "job_id": run.job_id.hex(), "chain_root": run.chain_root.hex(), "steps": steps, "worker_key": run.worker_key.hex()}
    if as_json:
        click.echo(json.dumps(summary))
    else:
        click.echo(f"job {summary['job_id']}\nchain root {summary['chain_root']}\nwrote {out}")


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
    from protocol.session import make_job
    from prover.coverage import check_coverage

    try:
        task = choose_task(task_path, model, optimizer, size)
        coverage = check_coverage(make_job(task, 1, 0, batch_size), task)
    except (JobSpecError, StateError, ValueError, TraceError) as error:
        fail(str(error))
        return
    if as_json:
        click.echo(json.dumps(dict(coverage.to_json(), task=task.name)))
    else:
        click.echo(f"{task.name}: {len(coverage.calls)} operators in {sum(coverage.calls.values())} calls, "
                   f"{len(coverage.defined)} defined, {len(coverage.missing)} undefined")
        for op in coverage.operators:
            mark = "ok     " if op not in coverage.places else "MISSING"
            where = f"  in {', '.join(coverage.places[op])}" if op in coverage.places else ""
            click.echo(f"  {mark} {op:60s} {coverage.calls[op]:5d}{where}")
    sys.exit(1 if coverage.missing else 0)


@main.command("trace")
@click.argument("run_dir", type=click.Path(path_type=Path))
@click.option("--step", type=click.IntRange(min=0), required=True)
@click.option("--task", "task_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help=TASK_HELP)
@click.option("--json", "as_json", is_flag=True, help="print the whole trace as JSON")
def trace_command(run_dir: Path, step: int, task_path: Path | None, as_json: bool) -> None:
    """Regenerate step STEP's trace from the checkpoint before it; print its root and node count."""
    from protocol.state import compute_state_root

    try:
        task = user_task(task_path)
        run = load_run(run_dir)
        trace = regenerate_trace(run, step, task=task)
    except (RunError, StateError, UnsupportedOperator, TraceError, TaskError) as error:
        fail(str(error))
        return
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
@click.option("--arity", type=int, default=2, show_default=True, help="k: descendants revealed per round (a power of two)")
@click.option("--worker-key", type=click.Path(dir_okay=False, path_type=Path), default=None, help="default: WORKER_RUN/worker.key")
@click.option("--challenger-key", type=click.Path(dir_okay=False, path_type=Path), default=None, help="default: CHALLENGER_RUN/worker.key")
@click.option("--transcript", type=click.Path(dir_okay=False, path_type=Path), default=None, help="write the signed transcript here")
@click.option("--task", "task_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help=TASK_HELP)
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def dispute_command(
    worker_run: Path, challenger_run: Path, arity: int, worker_key: Path | None, challenger_key: Path | None,
    transcript: Path | None, task_path: Path | None, as_json: bool,
) -> None:
    """Play the dispute game between two runs of one job and print the verdict."""
    from verifier.dispute import dispute_runs

    def progress(message: str) -> None:
        if not as_json:
            click.echo(f"  {message}", err=True)

    try:
        report = dispute_runs(worker_run, challenger_run, arity, worker_key, challenger_key, transcript, progress, user_task(task_path))
    except (RunError, StateError, ValueError, UnsupportedOperator, TraceError) as error:
        fail(str(error))
        return
    summary = report.to_json()
    if as_json:
        click.echo(json.dumps(summary))
        return
    if not report.disputed:
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
    rounds = summary["rounds"]
    click.echo(f"rounds   {rounds['chain']} over steps + {rounds['trace']} inside the step = {rounds['total']}")
    click.echo(f"bytes    {summary['bytes']} ({summary['bytes_without_tensors']} without tensors)")
    click.echo(f"seconds  referee {summary['referee_seconds']:.3f}, total {summary['seconds']:.2f}")
    click.echo(f"game     dispute {summary['dispute_id'][:16]}, times witnessed by time source {summary['time_source']}")


@main.command("verify-transcript")
@click.argument("transcript", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--task", "task_path", type=click.Path(dir_okay=False, path_type=Path), default=None, help=TASK_HELP)
@click.option("--time-source", "time_source", default=None,
              help="hex public key: the only time source trusted to witness timeouts (default: the one the transcript names, reported)")
@click.option("--json", "as_json", is_flag=True)
def verify_transcript_command(transcript: Path, task_path: Path | None, time_source: str | None, as_json: bool) -> None:
    """Re-check a dispute transcript's verdict offline, trusting no referee. Exit 1 when invalid."""
    from verifier.dispute import verify_dispute_transcript

    try:
        task = user_task(task_path)
        trusted = None if time_source is None else bytes.fromhex(time_source)
    except (TaskError, ValueError) as error:
        fail(str(error))
        return
    if trusted is not None and len(trusted) != 32:
        fail("--time-source is the 64 hex digits of an Ed25519 public key")
        return
    result = verify_dispute_transcript(transcript, task, trusted)
    if as_json:
        click.echo(json.dumps({"valid": result.valid, "reason": result.reason,
                               "time_source": None if result.time_source is None else result.time_source.hex()}))
    else:
        click.echo(("valid: " if result.valid else "INVALID: ") + result.reason)
    sys.exit(0 if result.valid else 1)


@main.command("demo")
@click.option("--seed", type=int, default=0, show_default=True, help="chooses prices, the cheater and its fault")
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=None, help="a new folder (default: a fresh temporary one)")
@click.option("--json", "as_json", is_flag=True, help="print one JSON object")
def demo_command(seed: int, out: Path | None, as_json: bool) -> None:
    """A user, three staked workers (one cheats), a colluding challenger who throws its game, two honest
    challengers, the real dispute game, and settlement from the verified transcripts."""
    import tempfile

    from pinpoint.demo import report_json, run_demo

    folder = out if out is not None else Path(tempfile.mkdtemp(prefix="pinpoint-demo-")) / "demo"
    log = (lambda message: None) if as_json else (lambda message: click.echo(message, err=True))
    try:
        report = run_demo(folder, seed, log)
    except FileExistsError:
        fail(f"{folder} already exists; choose a new --out")
        return
    summary = report_json(report)
    if as_json:
        click.echo(json.dumps(summary))
        return
    click.echo(f"\n{'party':14s} {'balance':>9s} {'stake':>7s}   ->  {'balance':>9s} {'stake':>7s}")
    for label, before in report.before.items():
        after = report.after[label]
        click.echo(f"{label:14s} {before['balance']:9d} {before['stake']:7d}   ->  {after['balance']:9d} {after['stake']:7d}")
    for job in summary["jobs"]:
        verdict = job["verdict"]
        line = f"job {job['id']} {job['model']}/{job['optimizer']} by {job['worker']}"
        if verdict:
            winner = verdict["winner"]["role"] if verdict["winner"] else "nobody"
            line += (f": disputed by {job['disputed_by']} ({job['tamper']}); {winner} wins at step {verdict['step']}, "
                     f"{verdict['tree']} leaf {verdict['index']} {verdict['op'] or ''} [{verdict['reason']}], "
                     f"{verdict['rounds']['total']} rounds, {verdict['bytes_without_tensors']} bytes without tensors")
        else:
            line += ": settled, paid after its challenge window"
        click.echo(line)
        if job["thrown"]:
            click.echo(f"  colluder's dispute {job['thrown']['dispute']}: {job['thrown']['reason']}, {job['thrown']['settled']}")
    books = summary["books"]
    click.echo("\nbooks: supply = genesis + emitted = sum of where every token sits")
    for key in ("genesis", "emitted", "supply", "balances", "stakes", "unbonding", "escrow", "bonds", "vesting", "jackpot",
                "burned", "sum_of_buckets"):
        click.echo(f"  {key:16s} {books[key]:9d}")
    click.echo(f"slashed {summary['slashed']}, to challengers {summary['challenger_rewards']}, burned {summary['burned']}, "
               f"refunded {summary['refunded']}; supply conserved: {summary['supply_conserved']}; {report.seconds:.1f} s; files in {folder}")


def _register_simulation() -> None:
    from pinpoint.simulation.cli import simulate_command

    main.add_command(simulate_command, "simulate")


_register_simulation()

if __name__ == "__main__":
    main()
