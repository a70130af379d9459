"""`torch.autocast` inside a step (protocol.autocast): which functions cast to what, nesting, the
decorator form, the parameter cast cache, the same graph on meta tensors as on CPU tensors, torch's own
autocast left untouched outside a step, and a mixed-precision task training close to torch's autocast."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch.amp import autocast_mode
from torch.utils._python_dispatch import TorchDispatchMode

from protocol.autocast import protocol_autocast
from protocol.recording import ReproducibleMode, RngContext
from protocol.session import Session, make_job, record_step
from prover.fast import FAST
from prover.task import load_task

REPO = Path(__file__).resolve().parents[1]


class CountCasts(TorchDispatchMode):
    """Counts aten::_to_copy calls by target dtype."""

    def __init__(self) -> None:
        super().__init__()
        self.casts: list[torch.dtype] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        if func is torch.ops.aten._to_copy.default:
            self.casts.append(kwargs.get("dtype"))
        return func(*args, **kwargs)


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_products_cast_to_the_region_dtype_losses_to_float32_and_the_rest_not_at_all(device: str) -> None:
    x = torch.ones(4, 3, device=device)
    weight = torch.ones(5, 3, device=device, requires_grad=True)
    target = torch.zeros(4, 5, device=device)
    with protocol_autocast():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = F.linear(x, weight)
            assert y.dtype == torch.bfloat16  # on meta tensors too: the region is not a device's
            assert (x @ weight.t()).dtype == torch.bfloat16
            assert F.mse_loss(y, target).dtype == torch.float32  # bf16 operand widened, float32 target
            assert torch.relu(x).dtype == torch.float32  # not listed: as it is
            assert F.linear(x.double(), weight.double()).dtype == torch.float64  # float64 is never cast
            with torch.autocast("cpu", enabled=False):
                assert F.linear(x, weight).dtype == torch.float32  # the innermost region decides
            assert F.linear(x, weight).dtype == torch.bfloat16
        assert F.linear(x, weight).dtype == torch.float32  # region closed


def test_the_decorator_form_and_the_cpu_amp_spelling_open_regions() -> None:
    @torch.autocast("cpu", dtype=torch.float16)
    def project(x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        return x @ w

    with protocol_autocast():
        assert project(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float16
        with pytest.warns(FutureWarning), torch.cpu.amp.autocast(dtype=torch.bfloat16):  # the older spelling
            assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16


def test_a_parameter_is_cast_once_per_outermost_region() -> None:
    weight = torch.ones(3, 3, requires_grad=True)
    x = torch.ones(2, 3)
    counter = CountCasts()
    with protocol_autocast(), counter:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            F.linear(x, weight)
            F.linear(x, weight)  # the weight's cast is reused, the input is cast again
        with torch.autocast("cpu", dtype=torch.bfloat16):
            F.linear(x, weight)  # a new outermost region: cast anew
    assert counter.casts.count(torch.bfloat16) == 5


def test_torch_autocast_is_itself_outside_a_step_and_after_a_step_that_raised() -> None:
    original = (autocast_mode.autocast.__enter__, autocast_mode.autocast.__exit__)
    with pytest.raises(RuntimeError, match="inside"), protocol_autocast(), torch.autocast("cpu", dtype=torch.bfloat16):
        raise RuntimeError("the task's code failed inside its region")
    assert (autocast_mode.autocast.__enter__, autocast_mode.autocast.__exit__) == original
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert torch.is_autocast_enabled("cpu")
        assert torch.mm(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.bfloat16  # torch's own
    assert F.linear(torch.ones(2, 2), torch.ones(2, 2)).dtype == torch.float32


def test_a_mixed_precision_step_has_one_graph_on_every_device_and_trains_close_to_torch_autocast() -> None:
    task = load_task(REPO / "examples" / "tasks" / "autocast.py")
    job = make_job(task, 6, 3)
    real = record_step(Session(job, task), skeleton=True).skeleton
    meta = record_step(Session(job, task, meta=True), skeleton=True).skeleton
    assert meta == real
    assert sum(1 for node in real.nodes if node.op == "aten::_to_copy.default") > 10
    reproducible, native = Session(job, task), Session(job, task)
    for step in range(6):
        with ReproducibleMode(RngContext(job.seed, step), lambda device: FAST):
            mine = reproducible.run_step().item()
        theirs = native._update().item()  # torch's own autocast and kernels
        native.advance()
        assert math.isclose(mine, theirs, rel_tol=2e-3), (step, mine, theirs)
