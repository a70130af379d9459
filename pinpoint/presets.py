"""Named job presets for the command line (the task files of `examples/tasks/`)."""

from __future__ import annotations

from protocol.job import JobSpec
from protocol.session import make_job as make_task_job
from prover.presets import MODELS, OPTIMIZERS, SIZES, find_preset, preset_task, resolve_task

__all__ = ["MODELS", "OPTIMIZERS", "SIZES", "find_preset", "make_job", "preset_task", "resolve_task"]


def make_job(model: str, optimizer: str, steps: int, seed: int, size: str = "small", batch_size: int | None = None) -> JobSpec:
    """The job of a preset: `examples/tasks/<model>.py` with the optimizer and size chosen."""
    return make_task_job(preset_task(model, optimizer, size), steps, seed, batch_size)
