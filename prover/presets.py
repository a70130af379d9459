"""The built-in jobs: task files shipped in `examples/tasks/`, with their settings chosen by name.

`--model mlp --optimizer adam --size mid` is the shipped `examples/tasks/mlp.py` with its
`OPTIMIZER` and `SIZE` lines set to those values: a complete task file of its own, whose bytes the
job's task digest covers. These are pinpoint's own files, so a job whose task digest is one of them
can be traced, disputed and judged without the user naming the file (`find_preset`).
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from protocol.job import JobSpec, compute_task_digest
from prover.catalog import MODELS, OPTIMIZERS, SIZES
from prover.task import Task, TaskError, task_from_source

__all__ = ["MODELS", "OPTIMIZERS", "SIZES", "find_preset", "preset_source", "preset_task", "resolve_task"]

TASKS = Path(__file__).resolve().parent.parent / "examples" / "tasks"


def preset_source(model: str, optimizer: str, size: str = "small") -> bytes:
    """The task file of a preset: the shipped file with its OPTIMIZER and SIZE lines set."""
    if model not in MODELS:
        raise TaskError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    if optimizer not in OPTIMIZERS:
        raise TaskError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
    if size not in SIZES[model]:
        raise TaskError(f"the {model} comes in sizes {', '.join(SIZES[model])}, not {size!r}")
    return compute_task_variant(TASKS / f"{model}.py", {"OPTIMIZER": optimizer, "SIZE": size})


def compute_task_variant(path: Path, settings: dict[str, str]) -> bytes:
    """A task file's bytes with its `NAME = "…"` lines set to `settings` (comments kept)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    except OSError as error:
        raise TaskError(f"the task file {path} is missing: {error}") from error
    missing = dict(settings)
    for i, line in enumerate(lines):
        name = line.split(" = ", 1)[0]
        if name in missing and line.startswith(f"{name} = "):
            comment = line.split("#", 1)[1] if "#" in line else "\n"
            lines[i] = f'{name} = "{missing.pop(name)}"  #{comment}'
    if missing:
        raise TaskError(f"the task file {path} has no {', '.join(missing)} line")
    return "".join(lines).encode()


@cache
def preset_task(model: str, optimizer: str, size: str = "small") -> Task:
    return task_from_source(preset_source(model, optimizer, size), f"preset:{model}/{optimizer}/{size}")


def find_preset(job: JobSpec) -> Task | None:
    """The shipped preset whose task digest the job names, if any."""
    for model in MODELS:
        for optimizer in OPTIMIZERS:
            for size in SIZES[model]:
                if compute_task_digest(preset_source(model, optimizer, size)).hex() == job.task:
                    return preset_task(model, optimizer, size)
    return None


def resolve_task(job: JobSpec, task: Task | None = None) -> Task:
    """The task to run `job` with: the user's (checked against the job's digest), else a preset."""
    if task is not None:
        if task.digest.hex() != job.task:
            raise TaskError(f"task {task.name} is not this job's task: its digest is {task.digest.hex()[:16]}…, the job names {job.task[:16]}…")
        return task
    found = find_preset(job)
    if found is None:
        raise TaskError(f"the job's task ({job.task[:16]}…) is not a built-in preset: pass the task file with --task")
    return found
