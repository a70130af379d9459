"""What the reproducible mode keeps between operator calls, and why it cannot go stale.

Per operator (not per call) the mode keeps its decisions (`protocol.recording._Dispatch`) and the
schema's arguments; 0-dim constants are shared by value, dtype and device
(`protocol.semantics.floats.compute_scalar_tensor`). Each test below would fail if a kept decision
or constant depended on what an earlier call passed: the same operator with other dtypes, strides
and scalars in one step, a learning rate that changes every step, and whole steps with every cache
emptied before each one against steps with them warm, and against the traced (canonical) path.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

import protocol.ops.canonical
import protocol.recording
import protocol.semantics.floats
from protocol.encoding import compute_digest, encode_tensor
from protocol.ops import execute
from protocol.ops.canonical import canonicalize_call, get_op_name
from protocol.ops.prims import REFERENCE
from protocol.ops.table import _scalar
from protocol.recording import ReproducibleMode, RngContext
from protocol.session import Session, make_job, record_step
from prover.fast import FAST
from prover.run import get_primitives_for
from prover.task import task_from_source

LIKES = [torch.float32, torch.float64, torch.bfloat16, torch.float16, torch.int64, torch.int32, torch.bool]
VALUES: list[Any] = [0.0, -0.0, 1.0, -1.5, 0.1, 1e-45, 3.4e38, 1e300, math.inf, -math.inf, math.nan, 0, 1, -7, 2**40, True, False]


def _fresh(value: Any, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.result_type(like, value), device=like.device)


@pytest.mark.parametrize("dtype", LIKES)
def test_shared_scalar_tensors_are_the_fresh_ones(dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol.semantics.floats, "_SCALAR_TENSORS", {})
    like = torch.ones(3, dtype=dtype)
    for _ in range(2):  # made, then shared
        for value in VALUES:
            try:
                expected = _fresh(value, like)
            except RuntimeError as error:
                with pytest.raises(type(error)):
                    _scalar(value, like)
                continue
            got = _scalar(value, like)
            assert got.dtype == expected.dtype and got.device == expected.device, (value, dtype)
            assert encode_tensor(got) == encode_tensor(expected), (value, dtype)


def test_a_negative_zero_is_not_the_shared_positive_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol.semantics.floats, "_SCALAR_TENSORS", {})
    like = torch.ones(2)
    assert math.copysign(1.0, _scalar(0.0, like).item()) == 1.0
    assert math.copysign(1.0, _scalar(-0.0, like).item()) == -1.0
    assert math.copysign(1.0, _scalar(0.0, like).item()) == 1.0
    assert _scalar(1, like.to(torch.int64)).dtype == torch.int64 and _scalar(True, like.bool()).dtype == torch.bool


def test_no_scalar_tensor_is_kept_from_inside_a_dispatch_mode(monkeypatch: pytest.MonkeyPatch) -> None:
    kept: dict[Any, torch.Tensor] = {}
    monkeypatch.setattr(protocol.semantics.floats, "_SCALAR_TENSORS", kept)

    class Passing(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
            return func(*args, **(kwargs or {}))

    with Passing():
        _scalar(0.25, torch.ones(2))
    assert not kept
    _scalar(0.25, torch.ones(2))
    assert len(kept) == 1


def _calls() -> list[tuple[Any, tuple[Any, ...], dict[str, Any]]]:
    """One operator after another with other dtypes, layouts and scalars: what a step does."""
    g = torch.Generator().manual_seed(3)
    a = torch.randn(6, 5, generator=g)
    b = torch.randn(5, 6, generator=g)
    calls: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = []
    for x, y in ((a, b.t()), (a.t(), b), (a.double(), b.t().double()), (a.bfloat16(), b.t().bfloat16()), (a[:, 1:4], b.t()[:, :3])):
        calls.append((torch.ops.aten.add.Tensor, (x, y), {}))
        calls.append((torch.ops.aten.add.Tensor, (x, y), {"alpha": 0.5}))
        calls.append((torch.ops.aten.sigmoid.default, (x,), {}))
        calls.append((torch.ops.aten.sum.dim_IntList, (x, [0]), {}))
        calls.append((torch.ops.aten.sum.dim_IntList, (x, [1], True), {}))
    for lr in (0.1, 0.05, -0.0, 0.0, 1e-8, 0.05):  # a schedule: the same call with a new scalar each step
        calls.append((torch.ops.aten.add_.Tensor, (a.clone(), b.t()), {"alpha": -lr}))
        calls.append((torch.ops.aten.mul.Scalar, (a, lr), {}))
        calls.append((torch.ops.aten.lerp_.Scalar, (a.clone(), b.t(), lr), {}))
    calls.append((torch.ops.aten.mm.default, (a, b), {}))
    calls.append((torch.ops.aten.mm.default, (a.t().contiguous().t(), b.t().contiguous().t()), {}))  # column-major
    calls.append((torch.ops.aten.mm.default, (a.double(), b.double()), {}))
    return calls


def _clone(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.clone()
    return [_clone(item) for item in value] if isinstance(value, list) else value


@pytest.mark.parametrize("prims", ["fast", "reference"])
def test_the_same_operator_with_other_dtypes_strides_and_scalars_in_one_step(prims: str) -> None:
    """Every call under the mode, with its decisions warm from the calls before, equals the
    reference definition run from the call's canonical form outside the mode."""
    calls, expected = _calls(), []
    for func, args, kwargs in calls:
        call = canonicalize_call(func, _clone(args), kwargs)
        expected.append(execute(get_op_name(func), call.args, call.inputs))
    primitives_for = get_primitives_for() if prims == "fast" else lambda device: REFERENCE
    for _ in range(2):
        copies = [_clone(args) for _, args, _ in calls]
        with ReproducibleMode(RngContext(0, 0), primitives_for):
            got = [func(*args, **kwargs) for (func, _, kwargs), args in zip(calls, copies, strict=True)]
        for (func, args, _), want, result in zip(calls, expected, got, strict=True):
            assert encode_tensor(result) == encode_tensor(want[0]), (func, [getattr(t, "dtype", t) for t in args])


def test_the_fused_sigmoid_and_its_gradient_equal_the_reference_on_special_values() -> None:
    bits = torch.tensor([0x7FC00001, -0x400000, -0x7FFFFF, 0x7F800001, 1, -0x7FFFFFFF, 0x00800000], dtype=torch.int32)
    x = torch.cat([
        torch.tensor([0.0, -0.0, math.inf, -math.inf, math.nan, 88.7, -88.7, 103.9, -104.0, 3.4e38, -3.4e38]),
        bits.view(torch.float32),
        torch.linspace(-120, 120, 4001),
        torch.randn(70000, generator=torch.Generator().manual_seed(1)) * 20,  # past the parallel threshold
    ])
    for sample in (x, x[:9], x[:4001].reshape(-1, 1)[::3]):
        assert encode_tensor(FAST.sigmoid(sample)) == encode_tensor(REFERENCE.sigmoid(sample))
    y = torch.cat([x[:18].flip(0), torch.rand(x.shape[0] - 18, generator=torch.Generator().manual_seed(2))])
    for grad, out in ((x, y), (x[:17], y[:17]), (x[:20].reshape(4, 5), y[:5]), (x[:5], y[:20].reshape(4, 5)), (x[:40].reshape(8, 5)[::2], y[:40].reshape(5, 8).t()[::2])):
        assert encode_tensor(FAST.sigmoid_backward(grad, out)) == encode_tensor(REFERENCE.sigmoid_backward(grad, out))


SCHEDULED_TASK = b'''
import torch
from torch import nn

batch_size = 8


def build_model():
    return nn.Sequential(nn.Linear(4, 8), nn.Sigmoid(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3))


def build_optimizer(params):
    return torch.optim.Adam(params, lr=0.01)


def build_scheduler(optimizer):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 / (1.0 + step))


def load_data():
    g = torch.Generator().manual_seed(0)
    return {"x": torch.randn(40, 4, generator=g), "y": torch.randint(0, 3, (40,), generator=g)}


def compute_loss(model, batch):
    return nn.functional.cross_entropy(model(batch["x"]), batch["y"])
'''


def _empty_every_cache(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(protocol.recording, "_DISPATCH", {})
    monkeypatch.setattr(protocol.ops.canonical, "_SCHEMAS", {})
    monkeypatch.setattr(protocol.ops.canonical, "_NAMES", {})
    monkeypatch.setattr(protocol.semantics.floats, "_SCALAR_TENSORS", {})


def test_scheduled_steps_give_the_same_bits_with_cold_and_warm_caches_and_when_traced(monkeypatch: pytest.MonkeyPatch) -> None:
    task = task_from_source(SCHEDULED_TASK, "scheduled.py")
    job = make_job(task, 4, 11)
    warm, cold, traced = (Session(job, task) for _ in range(3))
    primitives_for = get_primitives_for()
    rates = set()
    for t in range(4):
        with ReproducibleMode(RngContext(job.seed, t), primitives_for):
            warm.run_step()
        _empty_every_cache(monkeypatch)
        with ReproducibleMode(RngContext(job.seed, t), primitives_for):
            cold.run_step()
        trace = record_step(traced, primitives_for=primitives_for)
        digests = {name: compute_digest(tensor) for name, tensor in warm.state_tensors().items()}
        assert digests == {name: compute_digest(tensor) for name, tensor in cold.state_tensors().items()}
        assert digests == trace.state_after
        rates.add(warm.optimizer.param_groups[0]["lr"])
    assert len(rates) == 4  # the schedule changed the learning rate (an argument of later nodes) every step
