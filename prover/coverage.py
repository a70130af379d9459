"""Coverage: which aten operators a task's step uses, and which of them pinpoint defines.

`check_coverage` runs one training step of a task natively under a recording dispatch mode (nothing
is committed and nothing needs a definition to run), noting for every operator call its name,
whether `protocol.ops` defines it, and where it was called: the module path during the forward
pass (`encoder.layers.0.attn`), or the phase (`backward`, `clip_grad_norm_`, `optimizer.step`,
`scheduler.step`) after it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from protocol.job import JobSpec
from protocol.ops import is_supported
from protocol.ops.canonical import get_op_name
from protocol.recording import PASS_THROUGH, READS
from protocol.session import Session
from prover.task import Task


@dataclass
class Coverage:
    """Every operator of one step: calls per operator, and where the undefined ones are called."""

    calls: Counter[str] = field(default_factory=Counter)
    places: dict[str, list[str]] = field(default_factory=dict)  # undefined operator → where called

    @property
    def operators(self) -> list[str]:
        return sorted(self.calls)

    @property
    def defined(self) -> list[str]:
        return [op for op in self.operators if is_supported(op)]

    @property
    def missing(self) -> list[str]:
        return [op for op in self.operators if not is_supported(op)]

    def describe_missing(self) -> str:
        """One line per undefined operator: its name and the places that call it."""
        lines = []
        for op in self.missing:
            places = self.places.get(op, [])
            shown = ", ".join(places[:4]) + (f" (+{len(places) - 4} more)" if len(places) > 4 else "")
            lines.append(f"{op} (called in {shown})")
        return "; ".join(lines)

    def to_json(self) -> dict[str, Any]:
        return {
            "operators": len(self.calls),
            "calls": sum(self.calls.values()),
            "defined": len(self.defined),
            "missing": [{"op": op, "calls": self.calls[op], "where": self.places.get(op, [])} for op in self.missing],
            "used": {op: self.calls[op] for op in self.operators},
        }


class _CoverageMode(TorchDispatchMode):
    def __init__(self, coverage: Coverage, where: list[str]) -> None:
        super().__init__()
        self.coverage = coverage
        self.where = where

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        name = get_op_name(func)
        if name not in PASS_THROUGH and name not in READS:
            self.coverage.calls[name] += 1
            if not is_supported(name):
                place = self.where[-1] if self.where else "(top level)"
                places = self.coverage.places.setdefault(name, [])
                if place not in places:
                    places.append(place)
        return func(*args, **(kwargs or {}))


def check_coverage(job: JobSpec, task: Task) -> Coverage:
    """Run step 0 of `job` natively, recording every operator (see the module docstring)."""
    session = Session(job, task)
    coverage = Coverage()
    where: list[str] = []
    handles = []
    for module_name, module in session.model.named_modules():
        label = module_name or type(module).__name__

        def enter(_module: Any, _args: Any, label: str = label) -> None:
            where.append(label)

        def leave(_module: Any, _args: Any, _output: Any) -> None:
            where.pop()

        handles.append(module.register_forward_pre_hook(enter))
        handles.append(module.register_forward_hook(leave))
    def labelled(label: str, function: Any) -> Any:
        def call(*args: Any, **kwargs: Any) -> Any:
            where.append(label)
            try:
                return function(*args, **kwargs)
            finally:
                where.pop()

        return call

    # The phases after the forward pass are labelled by wrapping what the session calls, for this
    # one step only (restored below).
    original_backward, original_clip = torch.Tensor.backward, torch.nn.utils.clip_grad_norm_
    handles.append(session.optimizer.register_step_pre_hook(lambda *_: where.append("optimizer.step")))
    handles.append(session.optimizer.register_step_post_hook(lambda *_: where.pop()))
    try:
        torch.Tensor.backward = labelled("backward", original_backward)  # type: ignore[method-assign]
        torch.nn.utils.clip_grad_norm_ = labelled("clip_grad_norm_", original_clip)
        if session.scheduler is not None:
            session.scheduler.step = labelled("scheduler.step", session.scheduler.step)
        with _CoverageMode(coverage, where):
            session.run_step()
    finally:
        torch.Tensor.backward = original_backward  # type: ignore[method-assign]
        torch.nn.utils.clip_grad_norm_ = original_clip
        for handle in handles:
            handle.remove()
    return coverage
