"""A task: what the user brings — a stock PyTorch model, optimizer, data set and loss.

A task file is plain Python that defines, by these names:

    build_model() -> nn.Module
    build_optimizer(params) -> torch.optim.Optimizer
    load_data() -> dict[str, Tensor]            the whole data set, first dimension = examples
    compute_loss(model, batch) -> Tensor        batch: the same names, one micro-batch of examples
    build_scheduler(optimizer) -> LRScheduler   optional, stepped once per training step
    batch_size = 32                             optional: examples per micro-batch
    grad_clip = 1.0                             optional: max gradient norm (clip_grad_norm_)
    accumulation_steps = 4                      optional: micro-batches per optimizer step
    protocol_init = True                        optional: draw s_0 with the protocol's generator

Nothing pinpoint-specific is needed inside: the same file trains with a plain loop. The task's
digest is over the file's exact bytes (`protocol.job.compute_task_digest`).

A task file is the *user's* code. pinpoint executes a task file only when the user names it (or a
preset shipped with pinpoint), never a file found in a run directory or a transcript: those are
written by other parties and only their digests are compared against the user's file. Loading a
file is the prover's (`prover.task`); this module holds what a task is.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from protocol.encoding import compute_digest
from protocol.job import DATA_PREFIX, compute_data_root, compute_task_digest
from protocol.types import Root

MAX_TASK_BYTES = 1 << 22  # a task file is source code: 4 MiB is far beyond any real one
MAX_ACCUMULATION = 1 << 10


class TaskError(ValueError):
    """A task file or task object that does not define what a task must, or data of the wrong form."""


Batch = dict[str, torch.Tensor]


@dataclass(eq=False)
class Task:
    """The four callables of a training task and its optional settings.

    `source` is what the job's task digest is computed over: a task file's bytes, or, for a task
    made from callables in a notebook, the source text of those callables (`Task.from_callables`)."""

    build_model: Callable[[], nn.Module]
    build_optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer]
    load_data: Callable[[], dict[str, torch.Tensor]]
    compute_loss: Callable[[nn.Module, Batch], torch.Tensor]
    source: bytes
    name: str = "task"
    build_scheduler: Callable[[torch.optim.Optimizer], Any] | None = None
    batch_size: int | None = None
    grad_clip: float | None = None
    accumulation_steps: int = 1
    protocol_init: bool = False
    _data: dict[str, torch.Tensor] | None = field(default=None, init=False, repr=False)
    _data_root: Root | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        for name in ("build_model", "build_optimizer", "load_data", "compute_loss"):
            if not callable(getattr(self, name)):
                raise TaskError(f"task {self.name}: {name} is not a function")
        if self.build_scheduler is not None and not callable(self.build_scheduler):
            raise TaskError(f"task {self.name}: build_scheduler is not a function")
        if self.batch_size is not None and (not isinstance(self.batch_size, int) or isinstance(self.batch_size, bool) or self.batch_size < 1):
            raise TaskError(f"task {self.name}: batch_size is a positive integer, got {self.batch_size!r}")
        if self.grad_clip is not None:
            if isinstance(self.grad_clip, bool) or not isinstance(self.grad_clip, int | float) or not self.grad_clip > 0:
                raise TaskError(f"task {self.name}: grad_clip is a positive number, got {self.grad_clip!r}")
            self.grad_clip = float(self.grad_clip)
        accumulation = self.accumulation_steps
        if not isinstance(accumulation, int) or isinstance(accumulation, bool) or not 1 <= accumulation <= MAX_ACCUMULATION:
            raise TaskError(f"task {self.name}: accumulation_steps is an integer in [1, {MAX_ACCUMULATION}], got {accumulation!r}")
        if not isinstance(self.protocol_init, bool):
            raise TaskError(f"task {self.name}: protocol_init is True or False")

    @property
    def digest(self) -> Root:
        return compute_task_digest(self.source)

    def data(self) -> dict[str, torch.Tensor]:
        """The data set as state tensors ('data/<name>'), loaded once and checked."""
        if self._data is None:
            self._data = check_data(self.name, self.load_data())
        return self._data

    def data_root(self) -> Root:
        """The data set's content root (`protocol.job.compute_data_root`), computed once."""
        if self._data_root is None:
            self._data_root = compute_data_root({name: compute_digest(t) for name, t in self.data().items()})
        return self._data_root

    @staticmethod
    def from_callables(
        build_model: Callable[[], nn.Module],
        build_optimizer: Callable[[Iterable[nn.Parameter]], torch.optim.Optimizer],
        load_data: Callable[[], dict[str, torch.Tensor]],
        compute_loss: Callable[[nn.Module, Batch], torch.Tensor],
        name: str = "notebook",
        **settings: Any,
    ) -> Task:
        """A task from functions defined elsewhere (a notebook). Its digest is over the source text
        of the callables (and the settings), so editing a function makes another job; what they
        close over is not covered — bind it through the data set or put it in a task file."""
        parts = []
        functions = [build_model, build_optimizer, load_data, compute_loss, settings.get("build_scheduler")]
        for function in functions:
            if function is None:
                continue
            try:
                parts.append(inspect.getsource(function))
            except (OSError, TypeError) as error:
                raise TaskError(f"the source of {getattr(function, '__name__', function)!r} is not available: use a task file") from error
        plain = {k: v for k, v in sorted(settings.items()) if k != "build_scheduler"}
        parts.append(repr(plain))
        return Task(build_model, build_optimizer, load_data, compute_loss, "\n".join(parts).encode(), name, **settings)


def check_data(task_name: str, data: Any) -> dict[str, torch.Tensor]:
    """The task's data set as 'data/<name>' tensors: a non-empty dict of dense CPU tensors with one
    common, non-zero first dimension."""
    if not isinstance(data, dict) or not data:
        raise TaskError(f"task {task_name}: load_data() returns a non-empty dict of named tensors")
    checked: dict[str, torch.Tensor] = {}
    examples: int | None = None
    for name, tensor in data.items():
        if not isinstance(name, str) or not name or "/" in name:
            raise TaskError(f"task {task_name}: data names are non-empty strings without '/', got {name!r}")
        if not isinstance(tensor, torch.Tensor) or tensor.layout != torch.strided or tensor.dim() == 0:
            raise TaskError(f"task {task_name}: data[{name!r}] is not a dense tensor with an examples dimension")
        if examples is None:
            examples = int(tensor.shape[0])
        if int(tensor.shape[0]) != examples or examples == 0:
            raise TaskError(f"task {task_name}: every data tensor has the same, non-zero number of examples (first dimension)")
        checked[DATA_PREFIX + name] = tensor.detach().to("cpu").contiguous()
    return checked
