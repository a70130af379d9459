"""Loading a task file: the user's own Python, executed in a fresh module (see `protocol.task`).

Only for code the user chose to run: their own task file, or a preset shipped with pinpoint; never a
file found in a run directory or a transcript.
"""

from __future__ import annotations

import os
import sys
import types
from pathlib import Path

from protocol.job import compute_task_digest
from protocol.task import MAX_TASK_BYTES, Task, TaskError
from prover.files import FileFormatError, read_bounded

__all__ = ["Task", "TaskError", "load_task", "task_from_source"]

_OPTIONAL = ("build_scheduler", "batch_size", "grad_clip", "accumulation_steps", "protocol_init")


def task_from_source(source: bytes, name: str) -> Task:
    """Execute a task file's bytes in a fresh module and collect its definitions. Only for code the
    user chose to run: their own task file, or a preset shipped with pinpoint."""
    if len(source) > MAX_TASK_BYTES:
        raise TaskError(f"task {name} is larger than {MAX_TASK_BYTES} bytes")
    module_name = f"pinpoint_task_{compute_task_digest(source).hex()[:16]}"
    module = types.ModuleType(module_name)
    module.__file__ = name
    sys.modules[module_name] = module  # dataclasses and pickling look classes up by module
    try:
        code = compile(source, name, "exec")
        exec(code, module.__dict__)  # noqa: S102  (the user's own task file: see the module docstring)
    except SyntaxError as error:
        raise TaskError(f"task {name} is not valid Python: {error}") from error
    except Exception as error:
        raise TaskError(f"task {name} failed while loading: {type(error).__name__}: {error}") from error
    missing = [n for n in ("build_model", "build_optimizer", "load_data", "compute_loss") if not hasattr(module, n)]
    if missing:
        raise TaskError(f"task {name} does not define {', '.join(missing)}")
    settings = {key: getattr(module, key) for key in _OPTIONAL if hasattr(module, key)}
    return Task(module.build_model, module.build_optimizer, module.load_data, module.compute_loss, bytes(source), name, **settings)


def load_task(path: str | Path) -> Task:
    """The task file at `path` (the user's own: see the module docstring)."""
    file = Path(path)
    if not os.path.lexists(file):
        raise TaskError(f"no task file at {file}")
    try:
        source = read_bounded(file, "task", MAX_TASK_BYTES)
    except FileFormatError as error:
        raise TaskError(str(error)) from error
    return task_from_source(source, str(file))
