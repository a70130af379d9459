"""Tasks: a user's own model, optimizer, data and loss, bound into the job by digests.

The job binds the task file's bytes, the data set's content root and s_0's root: a party whose
task, data or initial state differs refuses before training or judging, and a one-element change
of the data set is another job. A task file is executed only when the user names it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from pinpoint.cli import main
from protocol.job import JobSpec, JobSpecError, compute_job_id
from protocol.ops import UnsupportedOperator
from protocol.recording import Tamper
from protocol.session import Session, make_job
from protocol.state import compute_state_root
from prover.coverage import check_coverage
from prover.presets import find_preset, preset_source, preset_task, resolve_task
from prover.run import RunError, load_run, regenerate_trace, restore_session, train
from prover.task import Task, TaskError, load_task, task_from_source
from verifier.dispute import dispute_runs
from verifier.referee import TraceReferee

TINY_TASK = '''
import torch
import torch.nn.functional as F
from torch import nn

batch_size = 8
protocol_init = True


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 3))

    def forward(self, x):
        return self.body(x)


def build_model():
    return Net()


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.1, momentum=0.9, foreach=False)


def build_scheduler(optimizer):
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)


def load_data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 4, generator=g)
    return {"x": x, "y": (x.sum(1) > 0).long() + (x[:, 0] > 1).long()}


def compute_loss(model, batch):
    return F.cross_entropy(model(batch["x"]), batch["y"])
'''


@pytest.fixture(scope="module")
def tiny_task_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("tasks") / "tiny.py"
    path.write_text(TINY_TASK)
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory, tiny_task_file: Path) -> Path:
    task = load_task(tiny_task_file)
    out = tmp_path_factory.mktemp("runs") / "tiny"
    train(make_job(task, 5, 3), out, checkpoint_every=2, task=task)
    return out


def test_a_task_file_trains_traces_and_replays_its_schedule(tiny_run: Path, tiny_task_file: Path) -> None:
    task = load_task(tiny_task_file)
    run = load_run(tiny_run)
    assert run.job.task == task.digest.hex()
    # step 3 replays from the checkpoint at step 2: the scheduler is brought to step 2 and checked
    trace = regenerate_trace(run, 3, task=task)
    assert trace.state_before["lr/0"] != trace.state_after["lr/0"]  # StepLR halves: s_3 has 0.05, s_4 0.025
    assert regenerate_trace(run, 3, task=task).state_before == trace.state_before
    session = Session(run.job, task)
    assert float(session.state_tensors()["lr/0"]) == 0.1
    lrs = []
    for step in range(5):
        lrs.append(float(restore_session(run, step, task=task).state_tensors()["lr/0"]))
    assert lrs == [0.1, 0.1, 0.05, 0.05, 0.025]


def test_a_job_that_is_not_a_preset_needs_the_users_task(tiny_run: Path, tiny_task_file: Path) -> None:
    run = load_run(tiny_run)
    (tiny_run / "task.py").write_text("raise SystemExit('a party's code must never run')\n")
    with pytest.raises(TaskError, match="--task"):
        regenerate_trace(run, 1)
    with pytest.raises(TaskError, match="--task"):
        resolve_task(run.job)
    other = task_from_source(TINY_TASK.replace("lr=0.1", "lr=0.2").encode(), "other.py")
    with pytest.raises(TaskError, match="not this job's task"):
        regenerate_trace(run, 1, task=other)
    with pytest.raises(TaskError, match="not the job's task"):
        Session(run.job, other)
    with pytest.raises(TaskError, match="not this job's task"):
        TraceReferee(run.job, other)
    cli = CliRunner()
    refused = cli.invoke(main, ["trace", str(tiny_run), "--step", "1"])
    assert refused.exit_code == 3 and "--task" in refused.output
    ok = cli.invoke(main, ["trace", str(tiny_run), "--step", "1", "--task", str(tiny_task_file)])
    assert ok.exit_code == 0, ok.output


def test_a_cheat_on_a_users_task_loses_the_dispute(tiny_run: Path, tiny_task_file: Path, tmp_path: Path) -> None:
    task = load_task(tiny_task_file)
    job = load_run(tiny_run).job
    train(job, tmp_path / "cheat", checkpoint_every=2, tamper=Tamper("output", 3, 7), task=task)
    report = dispute_runs(tmp_path / "cheat", tiny_run, arity=2, task=task, transcript_path=tmp_path / "t.json").to_json()
    assert report["winner"]["role"] == "challenger" and report["step"] == 3
    from verifier.dispute import verify_dispute_transcript

    assert verify_dispute_transcript(tmp_path / "t.json", task).valid
    assert not verify_dispute_transcript(tmp_path / "t.json").valid  # no task, not a preset: cannot judge


def test_data_task_and_initial_state_that_differ_from_the_job_are_refused(tiny_task_file: Path, tmp_path: Path) -> None:
    task = load_task(tiny_task_file)
    job = make_job(task, 2, 1)
    # the same task bytes, other data (as a different package release would load): refused
    changed = dataclasses.replace(task, load_data=lambda: {"x": torch.zeros(64, 4), "y": torch.zeros(64, dtype=torch.int64)})
    with pytest.raises(TaskError, match="data set"):
        train(job, tmp_path / "a", task=changed)
    with pytest.raises(TaskError, match="data set"):
        TraceReferee(job, changed)
    # an initial state other than the job's: refused before any step
    wrong = dataclasses.replace(job, initial="00" * 32)
    with pytest.raises(RunError, match="s_0"):
        train(wrong, tmp_path / "b", task=task)
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    assert not list(tmp_path.iterdir())  # no partial directory left behind


def test_one_element_of_the_data_set_changes_the_job_id(tiny_task_file: Path) -> None:
    task = load_task(tiny_task_file)
    data = task.data()
    edited = {name[len("data/") :]: t.clone() for name, t in data.items()}
    edited["x"][17, 2] = torch.nextafter(edited["x"][17, 2], torch.tensor(1e9))
    changed = dataclasses.replace(task, load_data=lambda: edited)
    assert compute_job_id(make_job(task, 2, 1)) != compute_job_id(make_job(changed, 2, 1))
    assert compute_job_id(make_job(task, 2, 1)) == compute_job_id(make_job(task, 2, 1))


ROOT = "ab" * 32
SPEC = JobSpec(task=ROOT, data=ROOT, initial=ROOT, steps=4, seed=1, batch_size=8, torch_version="2.13.0")


@given(st.sampled_from(["task", "data", "initial", "steps", "seed", "batch_size", "torch_version", "posting"]), st.integers(1, 1000))
def test_the_job_id_changes_with_every_field(field: str, delta: int) -> None:
    value = getattr(SPEC, field)
    if isinstance(value, int):
        changed = value + delta
    elif field in ("task", "data", "initial"):
        changed = f"{delta:064x}"
    else:
        changed = value + str(delta)
    assert compute_job_id(dataclasses.replace(SPEC, **{field: changed})) != compute_job_id(SPEC)
    assert JobSpec.from_json(json.loads(json.dumps(SPEC.to_json()))) == SPEC


@pytest.mark.parametrize(
    "body",
    [
        [],
        dict(SPEC.to_json(), extra=1),
        dict(SPEC.to_json(), task="AB" * 32),
        dict(SPEC.to_json(), data="ab" * 31),
        dict(SPEC.to_json(), steps=0),
        dict(SPEC.to_json(), steps=True),
        dict(SPEC.to_json(), seed=-1),
        dict(SPEC.to_json(), batch_size="8"),
        dict(SPEC.to_json(), protocol="pinpoint/v1"),
        {k: v for k, v in SPEC.to_json().items() if k != "seed"},
    ],
)
def test_malformed_job_specs_are_refused(body: object) -> None:
    with pytest.raises(JobSpecError):
        JobSpec.from_json(body)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("def build_model(:\n", "not valid Python"),
        ("import no_such_module_here\n", "failed while loading"),
        ("def build_model(): pass\n", "does not define build_optimizer, load_data, compute_loss"),
        (TINY_TASK.replace("batch_size = 8", "batch_size = -1"), "batch_size"),
        (TINY_TASK + "\naccumulation_steps = 0\n", "accumulation_steps"),
        (TINY_TASK + "\ngrad_clip = 'big'\n", "grad_clip"),
    ],
)
def test_bad_task_files_get_clear_errors(source: str, message: str) -> None:
    with pytest.raises(TaskError, match=message):
        task_from_source(source.encode(), "bad.py")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({}, "non-empty dict"),
        ({"x": torch.zeros(3, 2), "y": torch.zeros(4)}, "same, non-zero number"),
        ({"a/b": torch.zeros(3)}, "without '/'"),
        ({"x": torch.tensor(1.0)}, "examples dimension"),
        ({"x": [1, 2, 3]}, "not a dense tensor"),
    ],
)
def test_bad_data_sets_get_clear_errors(tiny_task_file: Path, data: dict[str, object], message: str) -> None:
    task = dataclasses.replace(load_task(tiny_task_file), load_data=lambda: data)
    with pytest.raises(TaskError, match=message):
        task.data()


UNSUPPORTED_TASK = TINY_TASK.replace(
    "return self.body(x)", "return self.body(torch.cumsum(x, dim=1))"
).replace("nn.Linear(8, 3))", "nn.Linear(8, 3))\n        self.mix = nn.Identity()")


def test_check_and_train_name_undefined_operators_and_where_they_are_called(tmp_path: Path) -> None:
    path = tmp_path / "cumsum.py"
    path.write_text(UNSUPPORTED_TASK)
    task = load_task(path)
    coverage = check_coverage(make_job(task, 1, 0), task)
    assert "aten::cumsum.default" in coverage.missing
    assert coverage.places["aten::cumsum.default"] == ["Net"]
    assert "aten::mm.default" in coverage.defined
    result = CliRunner().invoke(main, ["check", "--task", str(path), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert [m["op"] for m in report["missing"]] == coverage.missing
    with pytest.raises(UnsupportedOperator, match=r"cumsum.*called in Net"):
        train(make_job(task, 2, 0), tmp_path / "run", task=task)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cumsum.py"]
    clean = CliRunner().invoke(main, ["check", "--model", "mlp", "--optimizer", "adam"])
    assert clean.exit_code == 0 and "0 undefined" in clean.output


def _notebook_model() -> torch.nn.Module:
    return torch.nn.Sequential(torch.nn.Linear(4, 6), torch.nn.Tanh(), torch.nn.Linear(6, 2))


def _notebook_optimizer(params: object) -> torch.optim.Optimizer:
    return torch.optim.Adam(params, lr=0.01, foreach=False)  # type: ignore[arg-type]


def _notebook_data() -> dict[str, torch.Tensor]:
    x = torch.linspace(-1, 1, 40).reshape(10, 4)
    return {"x": x, "y": (x[:, 0] > 0).long()}


def _notebook_loss(model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(model(batch["x"]), batch["y"])


def test_a_notebook_task_from_callables(tmp_path: Path) -> None:
    made = Task.from_callables(_notebook_model, _notebook_optimizer, _notebook_data, _notebook_loss, batch_size=4)
    again = Task.from_callables(_notebook_model, _notebook_optimizer, _notebook_data, _notebook_loss, batch_size=5)
    assert made.digest != again.digest  # the settings are part of what the digest covers
    run = train(make_job(made, 2, 0), tmp_path / "nb", task=made)
    assert len(run.roots) == 3 and run.job.task == made.digest.hex()
    with pytest.raises(TaskError, match="source"):
        Task.from_callables(preset_task("mlp", "sgd").build_model, _notebook_optimizer, _notebook_data, _notebook_loss)


def test_presets_are_task_files_found_by_digest() -> None:
    source = preset_source("transformer", "adam", "tiny")
    assert b'OPTIMIZER = "adam"' in source and b'SIZE = "tiny"' in source
    job = make_job(preset_task("mlp", "adamw"), 1, 0)
    found = find_preset(job)
    assert found is not None and found.digest.hex() == job.task
    with pytest.raises(TaskError, match="sizes"):
        preset_source("mlp", "sgd", "tiny")


TORCH_INIT_TASK = TINY_TASK.replace("protocol_init = True", "protocol_init = False")


def test_a_job_whose_s0_this_machine_cannot_draw_trains_from_a_shipped_s0(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The task keeps torch's own initialisation; another machine drawing other bits (emulated by
    another generator seed) refuses the job, and trains it bit for bit from the job's s_0 file, which
    any party may hand over: its root is checked."""
    import protocol.session

    path = tmp_path / "torch_init.py"
    path.write_text(TORCH_INIT_TASK)
    task = load_task(path)
    job = make_job(task, 3, 4)
    first = train(job, tmp_path / "first", checkpoint_every=2, task=task)
    shipped = tmp_path / "first" / "checkpoints" / "step-00000000.safetensors"

    drawn_elsewhere = protocol.session.seed_initialisation
    monkeypatch.setattr(protocol.session, "seed_initialisation", lambda seed: drawn_elsewhere(seed + 1))
    with pytest.raises(RunError, match="--initial"):
        train(job, tmp_path / "refused", task=task)
    from prover.run import read_checkpoint

    second = train(job, tmp_path / "second", checkpoint_every=2, task=task, initial=read_checkpoint(shipped))
    assert second.chain_root == first.chain_root

    cli = CliRunner().invoke(main, [
        "train", "--job", str(tmp_path / "first" / "run.json"), "--task", str(path), "--initial", str(shipped),
        "--out", str(tmp_path / "third"), "--json",
    ])
    assert cli.exit_code == 0, cli.output
    assert json.loads(cli.output.strip().splitlines()[-1])["chain_root"] == first.chain_root.hex()
    wrong = first.path / "checkpoints" / "step-00000002.safetensors"  # s_2 is not s_0
    refused = CliRunner().invoke(main, ["train", "--job", str(first.path / "run.json"), "--task", str(path),
                                        "--initial", str(wrong), "--out", str(tmp_path / "fourth")])
    assert refused.exit_code == 3 and "s_0" in refused.output


def test_a_step_the_referee_cannot_rebuild_is_refused_before_anything_is_committed(tmp_path: Path) -> None:
    """A forward that reads a tensor's value (.item()) has no skeleton on meta tensors."""
    path = tmp_path / "reads.py"
    path.write_text(TINY_TASK.replace("return F.cross_entropy(model(batch[\"x\"]), batch[\"y\"])",
                                      "return F.cross_entropy(model(batch[\"x\"]) / batch[\"x\"].abs().sum().item(), batch[\"y\"])"))
    task = load_task(path)
    with pytest.raises(RunError, match="cannot be judged"):
        train(make_job(task, 2, 0), tmp_path / "run", task=task)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["reads.py"]


def test_metric_driven_schedulers_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "plateau.py"
    path.write_text(TINY_TASK.replace("torch.optim.lr_scheduler.StepLR(optimizer, step_size=2, gamma=0.5)",
                                      "torch.optim.lr_scheduler.ReduceLROnPlateau(optimizer)"))
    task = load_task(path)
    with pytest.raises(TaskError, match="without arguments"):
        make_job(task, 2, 0)


def test_an_integer_learning_rate_gives_one_graph_fresh_restored_and_judged(tmp_path: Path) -> None:
    """lr=1 (an int) is recorded as the float 1.0 by a fresh session, a restored one and the referee."""
    path = tmp_path / "int_lr.py"
    path.write_text(TINY_TASK.replace("lr=0.1", "lr=1"))
    task = load_task(path)
    run = train(make_job(task, 3, 0), tmp_path / "run", checkpoint_every=3, task=task)
    trace = regenerate_trace(run, 1, task=task)
    referee = TraceReferee(run.job, task)
    proven = TraceReferee(run.job, task).get_skeleton(1, compute_state_root(trace.state_before), (trace.hint, trace.hint))
    assert referee.replay_skeleton(1) == trace.skeleton == proven


def test_a_hostile_step_counter_in_a_shipped_state_is_refused_at_once(tmp_path: Path, tiny_task_file: Path) -> None:
    from prover.run import read_checkpoint

    task = load_task(tiny_task_file)
    job = make_job(task, 2, 0)
    first = train(job, tmp_path / "first", task=task)
    state = read_checkpoint(first.path / "checkpoints" / "step-00000000.safetensors")
    state["step"] = torch.tensor(10**12)
    with pytest.raises(RunError, match="outside the job's steps"):
        train(job, tmp_path / "second", task=task, initial=state)
