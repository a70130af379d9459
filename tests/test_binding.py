"""Training binds a defined operator's arguments straight from the call (`bind_call`); tracing binds
them from the canonical form. Both must hand the definition the same values, or training and tracing
would compute different bits: checked on every call of a step of every zoo task."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from protocol.ops.canonical import CanonicalFormError, bind_arguments, bind_call, canonicalize_call
from protocol.session import Session, make_job
from prover.task import load_task

TASKS = Path(__file__).resolve().parents[1] / "examples" / "tasks"


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        return a is b
    if type(a) is not type(b):
        return False
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return bool(a == b)


class _Compare(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if func._schema.name.startswith("aten::"):
            call = canonicalize_call(func, args, kwargs)
            direct, first = bind_call(func, args, kwargs)
            canonical = bind_arguments(call.args, call.inputs)
            assert set(direct) == set(canonical), func
            for name in canonical:
                assert _same(direct[name], canonical[name]), (func, name, direct[name], canonical[name])
            assert first == (call.inputs[0].device if call.inputs else None)
            self.calls += 1
        return func(*args, **kwargs)


@pytest.mark.parametrize("name", ["mlp", "resnet", "gpt", "llama", "rnn", "tabular"])
def test_direct_binding_equals_the_canonical_round_trip(name: str) -> None:
    task = load_task(TASKS / f"{name}.py")
    session = Session(make_job(task, 2, 0), task)
    mode = _Compare()
    with mode:
        session.run_step()
        session.run_step()  # optimizer state exists from the second step on
    assert mode.calls > 50


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [((torch.ones(2), float("nan")), {}), ((torch.ones(2), -0.0), {}), ((torch.ones(2), 3), {"alpha": 2}), ((torch.ones(2), True), {})],
)
def test_scalars_bind_alike(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    func = torch.ops.aten.add.Scalar if not isinstance(args[1], bool) else torch.ops.aten.mul.Scalar
    call = canonicalize_call(func, args, kwargs)
    direct, _ = bind_call(func, args, kwargs)
    canonical = bind_arguments(call.args, call.inputs)
    assert all(_same(direct[k], canonical[k]) for k in canonical)


def test_arguments_without_a_canonical_form_are_refused_alike() -> None:
    func = torch.ops.aten.mul.Scalar
    with pytest.raises(CanonicalFormError):
        canonicalize_call(func, (torch.ones(2), 1j), {})
    with pytest.raises(CanonicalFormError):
        bind_call(func, (torch.ones(2), 1j), {})
