"""bfloat16 and float16 by definition: operands widened to float32 exactly, the float32 definition,
one rounding of each 16-bit output. A task whose model is bfloat16 is verified like any other: same
bits on 1 and 2 threads, every node re-executes, the skeleton is its structure.

torch.autocast regions are the protocol's own (tests/test_autocast.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from protocol.encoding import DTYPE_CODES, compute_digest
from protocol.ops import execute
from protocol.ops.canonical import canonicalize_call
from protocol.ops.prims import REFERENCE
from protocol.session import make_job
from prover.fast import FAST
from prover.run import load_run, regenerate_trace, train
from prover.task import load_task
from tests.referee_replay import assert_nodes_re_execute
from verifier.referee import TraceReferee

BF16_TASK = '''
import torch
import torch.nn.functional as F
from torch import nn

batch_size = 8
protocol_init = True


def build_model():
    return nn.Sequential(nn.Linear(6, 16), nn.GELU(), nn.LayerNorm(16), nn.Linear(16, 3)).to(torch.bfloat16)


def build_optimizer(params):
    return torch.optim.AdamW(params, lr=1e-2)


def load_data():
    x = torch.linspace(-2, 2, 6 * 40).reshape(40, 6)
    return {"x": x, "y": (x.sum(1) > 0).long() + (x[:, 0] > 1).long()}


def compute_loss(model, batch):
    logits = model(batch["x"].to(torch.bfloat16))
    return F.cross_entropy(logits.float(), batch["y"])
'''


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_a_16_bit_product_is_the_float32_definition_rounded_once(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(7, 33, generator=g).to(dtype), torch.randn(33, 5, generator=g).to(dtype)
    call = canonicalize_call(torch.ops.aten.mm.default, (a, b), {})
    (reference,) = execute(call.op, call.args, call.inputs, REFERENCE)
    (fast,) = execute(call.op, call.args, call.inputs, FAST)
    (wide,) = execute(call.op, call.args, (a.float(), b.float()), REFERENCE)
    assert reference is not None and fast is not None and wide is not None
    assert reference.dtype == dtype and compute_digest(reference) == compute_digest(fast) == compute_digest(wide.to(dtype))
    assert torch.allclose(reference.float(), (a.float() @ b.float()), atol=0.1, rtol=0.02)


@pytest.fixture(scope="module")
def bf16_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("bf16")
    path = folder / "bf16.py"
    path.write_text(BF16_TASK)
    task = load_task(path)
    train(make_job(task, 3, 2), folder / "run", checkpoint_every=2, task=task)
    return path, folder / "run"


def test_bf16_training_gives_the_same_bits_on_one_and_two_threads(bf16_run: tuple[Path, Path], tmp_path: Path) -> None:
    path, run_dir = bf16_run
    task = load_task(path)
    run = load_run(run_dir)
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = train(run.job, tmp_path / "one", task=task)
    finally:
        torch.set_num_threads(previous)
    assert one.chain_root == run.chain_root


def test_every_node_of_a_bf16_step_re_executes_and_matches_the_skeleton(bf16_run: tuple[Path, Path]) -> None:
    path, run_dir = bf16_run
    task = load_task(path)
    run = load_run(run_dir)
    tensors: dict[bytes, torch.Tensor] = {}
    trace = regenerate_trace(run, 1, tensors=tensors, task=task)
    bf16 = DTYPE_CODES[torch.bfloat16]
    assert any(o is not None and o.dtype == bf16 for node in trace.nodes for o in node.structure.outputs)
    names = sorted(trace.state_before, key=str.encode)
    checked = assert_nodes_re_execute(trace.nodes, [trace.state_before[name] for name in names], tensors)
    assert "aten::addmm.default" in checked or "aten::mm.default" in checked
    assert TraceReferee(run.job, task).replay_skeleton(1) == trace.skeleton
