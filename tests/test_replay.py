"""Replay (`prover.replay`): a step's operator program, captured from eager steps, replayed without
the task's Python. Whatever a task does, the states are the eager step's, bit for bit: a task whose
step can be replayed is replayed, and one whose step depends on what replay cannot reproduce (a
Python counter, a branch on a tensor's value, a literal that changes, a hyperparameter a scheduler
moves) is refused and trained eagerly, with the reason said."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import prover.replay
from protocol.recording import ReproducibleMode, RngContext
from protocol.scalar_mode import ProtocolFloat
from protocol.session import Session, make_job
from protocol.state import compute_state_root
from prover.replay import _LOCAL, ARITHMETIC, Replayer, TrackedFloat, _Builder, _Capture, evaluate
from prover.run import compute_state_digests, get_primitives_for, list_checkpoints, restore_session, train
from prover.task import Task, load_task, task_from_source

REPO = Path(__file__).resolve().parents[1]
TASKS = sorted(path.stem for path in (REPO / "examples" / "tasks").glob("*.py"))


def _root(session: Session) -> bytes:
    return compute_state_root(compute_state_digests(session.state_tensors()))


def run_side_by_side(task: Task, steps: int, audit_every: int = 3) -> Replayer:
    """`steps` steps eagerly and by a Replayer, from the same s_0: every state and loss must agree."""
    job = make_job(task, 1 << 20, 3)
    primitives_for = get_primitives_for()
    eager, replayed = Session(job, task), Session(job, task)
    replayer = Replayer(replayed, primitives_for, audit_every=audit_every)
    for t in range(steps):
        with ReproducibleMode(RngContext(job.seed, t), primitives_for):
            expected = eager.run_step()
        loss = replayer.run_step()
        assert _root(replayed) == _root(eager), f"step {t}: the replayer's state differs from the eager step's ({replayer.counts})"
        assert loss.dtype == expected.dtype and torch.equal(loss.view(-1).view(torch.uint8), expected.view(-1).view(torch.uint8))
    return replayer


@pytest.mark.parametrize("name", TASKS)
def test_every_zoo_task_replays_to_the_eager_states(name: str) -> None:
    replayer = run_side_by_side(load_task(REPO / "examples" / "tasks" / f"{name}.py"), steps=8)
    counts = replayer.counts
    # two captures that agree (three when the optimizer makes its state in step 0), then replays,
    # with an eager audit every 3 replayed steps
    assert counts.replayed >= 4 and counts.eager == 0 and counts.reason == "", counts


def test_train_with_replay_commits_the_same_run(tmp_path: Path) -> None:
    task = load_task(REPO / "examples" / "tasks" / "gpt.py")
    job = make_job(task, 7, 1)
    eager = train(job, tmp_path / "eager", task=task, code=None)
    replayed = train(job, tmp_path / "replayed", task=task, code=None, replay=True)
    assert replayed.roots == eager.roots and replayed.chain_root == eager.chain_root
    counts = json.loads((tmp_path / "replayed" / "run.json").read_text())["replay"]
    assert counts["replayed"] >= 3 and counts["captured"] + counts["replayed"] + counts["eager"] == 7


def test_a_restore_far_from_its_checkpoint_replays_and_reaches_the_committed_roots(tmp_path: Path) -> None:
    task = load_task(REPO / "examples" / "tasks" / "llama.py")
    run = train(make_job(task, 12, 2), tmp_path / "sparse", task=task, code=None, checkpoint_every=12)
    assert list_checkpoints(run.path) == [0, 12]
    # eleven steps from s_0, each state checked against its committed root as it is reached
    session = restore_session(run, 11, task=task)
    assert _root(session) == run.roots[11]


def test_a_replay_that_reaches_another_state_is_redone_eagerly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a replay is only a shortcut: were it ever wrong, restoring a state falls back to eager steps
    task = load_task(REPO / "examples" / "tasks" / "mlp.py")
    run = train(make_job(task, 10, 2), tmp_path / "sparse", task=task, code=None, checkpoint_every=10)
    honest = prover.replay.run_program

    def wrong(*args: Any) -> torch.Tensor:
        total = honest(*args)
        with torch.no_grad():
            next(args[1].model.parameters()).view(-1)[0] += 1.0
        return total

    monkeypatch.setattr(prover.replay, "run_program", wrong)
    session = restore_session(run, 9, task=task)
    assert _root(session) == run.roots[9]


def test_a_read_that_stops_being_what_both_captures_saw_undoes_the_replay() -> None:
    # NAdam's running product of momenta underflows to 0.0 after about 200 steps: two captures then
    # read the same value, which may hide a number derived from it; the program keeps it as a fixed
    # read, and a replay that reads anything else puts the state back and runs the step eagerly
    task = make_task(optimizer="torch.optim.NAdam(params, lr=0.01)")
    job = make_job(task, 1 << 20, 3)
    primitives_for = get_primitives_for()
    eager, replayed = Session(job, task), Session(job, task)
    replayer = Replayer(replayed, primitives_for, audit_every=100)
    for t in range(8):
        with ReproducibleMode(RngContext(job.seed, t), primitives_for):
            eager.run_step()
        replayer.run_step()
        if t == 4:
            assert replayer.program is not None and replayer.program.items
            replayer.program.fixed = {index: -1.0 for index in replayer.program.items}  # what no step reads
        assert _root(replayed) == _root(eager), f"step {t}"
    assert replayer.counts.captured == 4 and replayer.counts.replayed == 4, replayer.counts


TASK = '''
import torch
import torch.nn.functional as F
from torch import nn

batch_size = 8
protocol_init = True


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 3))
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        out = self.body(x)
{forward}
        return out


def build_model():
    return Net()


def build_optimizer(params):
    return {optimizer}


{scheduler}


def load_data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    return {{"x": x, "y": (x.sum(1) > 0).long() + (x[:, 0] > 1).long()}}


def compute_loss(model, batch):
    loss = F.cross_entropy(model(batch["x"]), batch["y"])
{loss}
    return loss
'''


def make_task(forward: str = "", optimizer: str = "torch.optim.SGD(params, lr=0.1, momentum=0.9)", scheduler: str = "",
              loss: str = "") -> Task:
    source = TASK.format(forward=forward or "        pass", optimizer=optimizer, scheduler=scheduler, loss=loss or "    pass")
    return task_from_source(source.encode(), "adversarial")


REFUSED = {
    "a number from a Python counter": (dict(forward="        out = out * (1.0 + 0.01 * self.calls)"), "changes from step to step"),
    "a literal that changes": (dict(forward="        out = out + torch.tensor([0.01 * self.calls])"), "changes from step to step"),
    "a branch on a loss value": (dict(loss="    if float(loss.detach()) > 100.0:\n        loss = loss * 0.5"), "reads a tensor's value"),
    "RAdam's rectification test": (dict(optimizer="torch.optim.RAdam(params, lr=0.01)"), "branches on"),
    "a read through math in the task's code": (dict(forward="        import math\n"
                                                             "        if math.sqrt(abs(out.detach().sum().item())) > 1.5:\n"
                                                             "            out = out * 2.0"), "in torch's own optimizer"),
    "a read through tolist": (dict(loss="    if loss.detach().tolist() < 0.9:\n        loss = loss * 0.5"), "Tensor.tolist"),
    "a shape that depends on values": (dict(loss="    kept = loss.detach().reshape(1)\n"
                                                 "    if kept[kept < 0.9].shape[0]:\n        loss = loss * 0.5"), "shape depends"),
    "a literal written in place": (dict(forward="        scale = torch.tensor([1.0, 1.0, 1.0])\n        scale.mul_(2.0)\n"
                                                "        out = out * scale"), "writes a tensor made outside"),
    "parameters swapped by .data": (dict(forward="        for p in self.parameters():\n            p.data = p.data.clamp(-0.2, 0.2)"),
                                    "replaces state tensors"),
    "a detached parameter restrided": (dict(forward="        w = self.body[0].weight.detach()\n        w.transpose_(0, 1)\n"
                                                    "        w.transpose_(0, 1)"), "shape or strides in place"),
    "an optimizer of the task's own": (dict(optimizer="type('Own', (torch.optim.SGD,), {'step': lambda self, closure=None: "
                                                      "torch.optim.SGD.step(self, closure)})(params, lr=0.1)"), "task's own code"),
    "a momentum a scheduler cycles": (dict(scheduler="def build_scheduler(optimizer):\n"
                                                     "    return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.2, total_steps=40)"),
                                      "changes from step to step"),
}


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_step_replay_cannot_reproduce_is_refused_and_trained_eagerly(case: str) -> None:
    settings_, reason = REFUSED[case]
    replayer = run_side_by_side(make_task(**settings_), steps=7)
    assert replayer.counts.replayed == 0 and reason in replayer.counts.reason, replayer.counts


def test_a_learning_rate_that_changes_now_and_then_is_replayed_with_each_value() -> None:
    # StepLR halves the rate every 3 steps: captured while it is constant, the rate is frozen, so the
    # first step after a change runs eagerly and is captured again; Adam's step counter is tracked
    task = make_task(optimizer="torch.optim.Adam(params, lr=0.05)",
                     scheduler="def build_scheduler(optimizer):\n    return torch.optim.lr_scheduler.StepLR(optimizer, 3, 0.5)")
    replayer = run_side_by_side(task, steps=14, audit_every=100)
    assert replayer.counts.replayed >= 5 and replayer.counts.captured >= 4, replayer.counts


def test_a_cosine_schedule_is_replayed_through_its_tracked_learning_rate() -> None:
    task = make_task(optimizer="torch.optim.AdamW(params, lr=0.05, weight_decay=0.1)",
                     scheduler="def build_scheduler(optimizer):\n"
                               "    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=20)")
    replayer = run_side_by_side(task, steps=12, audit_every=100)
    assert replayer.counts.replayed == 9 and replayer.counts.captured == 3, replayer.counts


# --- the numbers a step tracks ---------------------------------------------------------------------

finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False).filter(lambda x: abs(x) > 1e-3)
operations = st.lists(st.tuples(st.sampled_from(ARITHMETIC), st.one_of(finite, st.integers(-5, 5)), st.booleans()),
                      min_size=1, max_size=12)


def _apply(sequence: list[tuple[str, float | int, bool]], value: float, other: float) -> tuple[float, list[int]]:
    """The Python a step might run on an item read (`value`) and a learning rate (`other`): each
    operation with a constant, or with the other source when the flag says so (powers take small
    integer constants). Returns the result and which operations applied (the rest overflowed)."""
    applied = []
    for index, (name, constant, with_other) in enumerate(sequence):
        if name in ("__neg__", "__pos__", "__abs__"):
            operands: tuple[float | int, ...] = ()
        elif name in ("__pow__", "__rpow__"):
            operands = (abs(int(constant)) % 4,)
        else:
            operands = (other if with_other else constant,)
        try:
            result = getattr(value, name)(*operands)
        except (ZeroDivisionError, OverflowError, ValueError):
            continue
        if not isinstance(result, float) or not math.isfinite(result) or abs(result) > 1e30:
            continue
        value = result
        applied.append(index)
    return value, applied


@settings(max_examples=150, deadline=None)
@given(operations, finite, finite, finite, finite)
def test_a_tracked_number_evaluates_to_what_the_step_computed(sequence: list[tuple[str, float | int, bool]],
                                                               item: float, lr: float, item2: float, lr2: float) -> None:
    result, applied = _apply(sequence, TrackedFloat(item, ("item", 0)), TrackedFloat(lr, ("lr", 0)))
    assert isinstance(result, TrackedFloat)
    assert float.hex(float(evaluate(result.expr, {0: item}, [lr]))) == float.hex(float(result))
    # the next step's sources through the same operations, as the eager step computes them
    expected, applied2 = _apply(sequence, ProtocolFloat(item2), ProtocolFloat(lr2))
    if applied2 == applied:
        assert float.hex(float(evaluate(result.expr, {0: item2}, [lr2]))) == float.hex(float(expected))


def test_branching_on_a_read_value_is_a_problem_and_on_a_rate_a_guard() -> None:
    capture = _Capture(_Builder({}))
    _LOCAL.capture = capture
    try:
        read, rate = TrackedFloat(3.0, ("item", 7)), TrackedFloat(0.1, ("lr", 1))
        assert (rate * 2 > 0.1) and not capture.problems
        assert capture.frozen == {1}
        assert bool(1 - 0.9 ** read)
        assert capture.problems and "branches on" in capture.problems[0]
    finally:
        _LOCAL.capture = None
