"""Every command survives its user: each class of bad input gives its exit code and one line on stderr
naming what was refused, and leaves every file on disk as it was.

The table runs the real command line in this process (`main(argv)`, as the console script does);
the fixture holds two small runs and a transcript of their dispute. The SIGKILL and SIGTERM tests run
`pinpoint train` as a real process and look at the neighbourhood of `--out` afterwards.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pinpoint.cli import EXIT_FAILED, EXIT_INTERNAL, EXIT_REJECTED, EXIT_TERMINATED, EXIT_USAGE, main

REPO = Path(__file__).resolve().parents[1]
TRAIN = ["train", "--model", "mlp", "--optimizer", "sgd", "--steps", "2"]
BROKEN_TASK = """
import torch
from torch import nn
def build_model(): return nn.Linear(2, 2)
def build_optimizer(params): return torch.optim.SGD(params, lr=0.1)
def load_data(): return {"x": torch.ones(8, 2), "y": torch.zeros(8, dtype=torch.long)}
def compute_loss(model, batch): return 1 / 0
"""


@dataclass(frozen=True)
class Case:
    command: str  # what the table in the README's closing note calls it
    what: str  # the class of bad input
    argv: Callable[[Path], list[str]]  # the arguments, given the workspace
    code: int
    message: str  # a fragment of the one stderr line


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two runs of one job (one cheats), their transcript, and files of every bad kind."""
    root = tmp_path_factory.mktemp("workspace")
    runner = CliRunner()
    for name, extra in (("honest", []), ("cheat", ["--tamper", "output@1:3"])):
        result = runner.invoke(main, [*TRAIN, *extra, "--out", str(root / name), "--json"])
        assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["dispute", str(root / "cheat"), str(root / "honest"), "--transcript", str(root / "t.json"), "--json"])
    assert result.exit_code == 0, result.output
    forged = json.loads((root / "t.json").read_text())
    forged["verdict"]["reason"] = "bad proof"  # a verdict the events do not lead to
    (root / "forged.json").write_text(json.dumps(forged))
    (root / "notjson.json").write_text("{ not json")
    (root / "deep.json").write_text("[" * 100_000 + "]" * 100_000)
    (root / "nojob.json").write_text(json.dumps({"setup": {"context": None}}))
    with open(root / "huge.json", "wb") as handle:  # sparse: larger than any limit, costs no disk
        handle.truncate((1 << 36) + 1)
    os.symlink("/dev/zero", root / "zero")
    (root / "afile").write_text("a file, not a folder")
    (root / "bad.key").write_text("not a key")
    (root / "broken.py").write_text(BROKEN_TASK)
    (root / "garbage.py").write_text("def (:")
    (root / "deep.toml").write_text("a = " + "[" * 5000 + "1" + "]" * 5000 + "\n")
    (root / "full").mkdir()
    (root / "full" / "keep.txt").write_text("earlier results")
    (root / "copy").mkdir()
    for name in ("run.json", "roots.json", "commitment.json"):
        (root / "copy" / name).write_bytes((root / "honest" / name).read_bytes())
    (root / "copy" / "run.json").write_text("{ truncated")
    return root


def w(*parts: str) -> Callable[[Path], list[str]]:
    """Arguments with `{w}` standing for the workspace."""
    return lambda root: [part.replace("{w}", str(root)) for part in parts]


CASES = [
    Case("pinpoint", "unknown command", w("bogus"), EXIT_USAGE, "No such command"),
    Case("train", "missing argument", w("train", "--model", "mlp", "--optimizer", "sgd", "--out", "{w}/new"), EXIT_USAGE, "give --steps"),
    Case("train", "unknown option", w(*TRAIN, "--bogus", "--out", "{w}/new"), EXIT_USAGE, "No such option"),
    Case("train", "bad value", w("train", "--model", "resnet", "--optimizer", "sgd", "--steps", "2", "--out", "{w}/new"), EXIT_USAGE, "resnet"),
    Case("train", "bad tamper", w(*TRAIN, "--tamper", "output@1", "--out", "{w}/new"), EXIT_USAGE, "names a node"),
    Case("train", "unknown device", w(*TRAIN, "--device", "tpu", "--out", "{w}/new"), EXIT_USAGE, "'tpu' is not a device"),
    Case("train", "unavailable device", w(*TRAIN, "--device", "cuda", "--out", "{w}/new"), EXIT_REJECTED, "no CUDA device"),
    Case("train", "--out .", w(*TRAIN, "--out", "."), EXIT_REJECTED, "names no new folder"),
    Case("train", "--out holds a run", w(*TRAIN, "--out", "{w}/honest"), EXIT_REJECTED, "already exists"),
    Case("train", "--out under a file", w(*TRAIN, "--out", "{w}/afile/run"), EXIT_REJECTED, "is not a folder"),
    Case("train", "--key under a file", w(*TRAIN, "--key", "{w}/afile/k", "--out", "{w}/new"), EXIT_REJECTED, "is not a folder"),
    Case("train", "corrupt key", w(*TRAIN, "--key", "{w}/bad.key", "--out", "{w}/new"), EXIT_REJECTED, "not an Ed25519 key"),
    Case("train", "key is a device", w(*TRAIN, "--key", "{w}/zero", "--out", "{w}/new"), EXIT_REJECTED, "not a regular file"),
    Case("train", "missing task", w("train", "--task", "{w}/missing.py", "--steps", "2", "--out", "{w}/new"), EXIT_REJECTED, "no task file"),
    Case("train", "task is not Python", w("train", "--task", "{w}/garbage.py", "--steps", "2", "--out", "{w}/new"), EXIT_REJECTED, "not valid Python"),
    Case("train", "missing job", w("train", "--job", "{w}/missing.json", "--out", "{w}/new"), EXIT_REJECTED, "job file not found"),
    Case("train", "corrupt job", w("train", "--job", "{w}/notjson.json", "--out", "{w}/new"), EXIT_REJECTED, "corrupt"),
    Case("train", "deeply nested job", w("train", "--job", "{w}/deep.json", "--out", "{w}/new"), EXIT_REJECTED, "nests deeper"),
    Case("train", "oversized job", w("train", "--job", "{w}/huge.json", "--out", "{w}/new"), EXIT_REJECTED, "more than the limit"),
    Case("train", "job is a device", w("train", "--job", "{w}/zero", "--out", "{w}/new"), EXIT_REJECTED, "not a regular file"),
    Case("train", "not a job", w("train", "--job", "{w}/nojob.json", "--out", "{w}/new"), EXIT_REJECTED, "is not a job spec"),
    Case("train", "missing initial state", w(*TRAIN, "--initial", "{w}/missing.safetensors", "--out", "{w}/new"), EXIT_REJECTED, "checkpoint not found"),
    Case("train", "corrupt initial state", w(*TRAIN, "--initial", "{w}/notjson.json", "--out", "{w}/new"), EXIT_REJECTED, "corrupt or truncated"),
    Case("train", "tamper past the step", w(*TRAIN, "--tamper", "output@1:99999", "--out", "{w}/new"), EXIT_REJECTED, "the step has"),
    Case("train", "tamper on a view", w(*TRAIN, "--tamper", "output@1:2", "--out", "{w}/new"), EXIT_REJECTED, "aten::t.default"),
    Case("train", "tamper on the loss", w(*TRAIN, "--tamper", "output@1:14", "--out", "{w}/new"), EXIT_REJECTED, "leaves s_2 unchanged"),
    Case("train", "tamper past the job", w(*TRAIN, "--tamper", "state@5", "--out", "{w}/new"), EXIT_REJECTED, "cannot tamper with step 5"),
    Case("train", "task that fails", w("train", "--task", "{w}/broken.py", "--steps", "1", "--out", "{w}/new"), EXIT_INTERNAL, "traceback is in"),
    Case("check", "no task", w("check"), EXIT_USAGE, "give --task"),
    Case("check", "task is a device", w("check", "--task", "{w}/zero"), EXIT_REJECTED, "not a regular file"),
    Case("check", "task is a folder", w("check", "--task", "{w}/full"), EXIT_USAGE, "is a directory"),
    Case("trace", "negative step", w("trace", "{w}/honest", "--step", "-1"), EXIT_USAGE, "--step"),
    Case("trace", "missing run", w("trace", "{w}/missing", "--step", "0"), EXIT_REJECTED, "no run directory"),
    Case("trace", "step outside the run", w("trace", "{w}/honest", "--step", "2"), EXIT_REJECTED, "outside the run's steps"),
    Case("trace", "corrupt run", w("trace", "{w}/copy", "--step", "0"), EXIT_REJECTED, "corrupt"),
    Case("dispute", "bad arity", w("dispute", "{w}/cheat", "{w}/honest", "--arity", "3"), EXIT_USAGE, "power of two"),
    Case("dispute", "missing run", w("dispute", "{w}/missing", "{w}/honest"), EXIT_REJECTED, "no run directory"),
    Case("dispute", "transcript over the run", w("dispute", "{w}/cheat", "{w}/honest", "--transcript", "{w}/honest/run.json"), EXIT_REJECTED, "already exists"),
    Case("dispute", "transcript under a file", w("dispute", "{w}/cheat", "{w}/honest", "--transcript", "{w}/afile/t.json"), EXIT_REJECTED, "is not a folder"),
    Case("dispute", "corrupt key", w("dispute", "{w}/cheat", "{w}/honest", "--worker-key", "{w}/bad.key"), EXIT_REJECTED, "not an Ed25519 key"),
    Case("dispute", "wrong key", w("dispute", "{w}/cheat", "{w}/honest", "--worker-key", "{w}/honest.key"), EXIT_REJECTED, "is not the key that signed"),
    Case("verify-transcript", "missing", w("verify-transcript", "{w}/missing.json"), EXIT_REJECTED, "transcript not found"),
    Case("verify-transcript", "corrupt", w("verify-transcript", "{w}/notjson.json"), EXIT_REJECTED, "corrupt"),
    Case("verify-transcript", "deeply nested", w("verify-transcript", "{w}/deep.json"), EXIT_REJECTED, "nests deeper"),
    Case("verify-transcript", "a device", w("verify-transcript", "{w}/zero"), EXIT_REJECTED, "not a regular file"),
    Case("verify-transcript", "oversized", w("verify-transcript", "{w}/huge.json"), EXIT_REJECTED, "more than the limit"),
    Case("verify-transcript", "not a transcript", w("verify-transcript", "{w}/nojob.json"), EXIT_REJECTED, "not a dispute transcript"),
    Case("demo", "bad seed", w("demo", "--seed", "x"), EXIT_USAGE, "--seed"),
    Case("demo", "--out exists", w("demo", "--out", "{w}/full"), EXIT_REJECTED, "already exists"),
    Case("simulate", "both pools", w("simulate", "--config", "{w}/deep.toml", "--out", "{w}/new", "--workers", "1", "--scheduler", "tcp://h:1"), EXIT_USAGE, "give one of them"),
    Case("simulate", "missing config", w("simulate", "--config", "{w}/missing.toml", "--out", "{w}/new"), EXIT_REJECTED, "config not found"),
    Case("simulate", "deeply nested config", w("simulate", "--config", "{w}/deep.toml", "--out", "{w}/new"), EXIT_REJECTED, "too deeply"),
    Case("simulate", "config is a device", w("simulate", "--config", "{w}/zero", "--out", "{w}/new"), EXIT_REJECTED, "not a regular file"),
    Case("simulate", "oversized config", w("simulate", "--config", "{w}/huge.json", "--out", "{w}/new"), EXIT_REJECTED, "more than the limit"),
    Case("simulate", "--out holds results", w("simulate", "--config", "{root}/examples/simulations/verifiers-dilemma.toml", "--out", "{w}/full"), EXIT_REJECTED, "not an empty directory"),
]


def snapshot(root: Path) -> dict[str, str]:
    """Every entry under `root` (hidden ones too) with its content digest; symlinks by target."""
    entries: dict[str, str] = {}
    for path in sorted(root.rglob("*")):
        name = str(path.relative_to(root))
        if path.is_symlink():
            entries[name] = f"-> {os.readlink(path)}"
        elif path.is_file():
            entries[name] = hashlib.blake2b(path.read_bytes()).hexdigest() if path.stat().st_size < 1 << 20 else f"{path.stat().st_size} bytes"
        else:
            entries[name] = "folder"
    return entries


@pytest.mark.parametrize("case", CASES, ids=[f"{c.command}: {c.what}" for c in CASES])
def test_bad_input_is_one_line_an_exit_code_and_nothing_changed(case: Case, workspace: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(workspace)
    before = snapshot(workspace)
    argv = [arg.replace("{root}", str(REPO)) for arg in case.argv(workspace)]
    result = CliRunner().invoke(main, argv)
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == case.code, (result.exit_code, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: ") and case.message in lines[0], result.stderr
    assert snapshot(workspace) == before
    if case.code == EXIT_INTERNAL:
        written = Path(lines[0].rsplit("traceback is in ", 1)[1])
        assert "ZeroDivisionError" in written.read_text()
        written.unlink()


def test_a_verdict_that_does_not_follow_is_not_an_unreadable_file(workspace: Path) -> None:
    good = CliRunner().invoke(main, ["verify-transcript", str(workspace / "t.json")])
    assert good.exit_code == 0 and good.output.startswith("valid")
    forged = CliRunner().invoke(main, ["verify-transcript", str(workspace / "forged.json")])
    assert forged.exit_code == EXIT_FAILED and forged.output.startswith("INVALID: the recorded verdict does not follow")


def test_the_verdict_is_printed_before_an_unwritable_transcript(workspace: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The transcript's folder turns into a file while the game runs: the verdict is printed all the same."""
    import verifier.dispute

    target = tmp_path / "gone" / "t.json"
    target.parent.mkdir()
    play = verifier.dispute.dispute_runs

    def play_then_lose_the_folder(*args: Any, **kwargs: Any) -> Any:
        report = play(*args, **kwargs)
        target.parent.rmdir()
        target.parent.write_text("now a file")
        return report

    monkeypatch.setattr(verifier.dispute, "dispute_runs", play_then_lose_the_folder)
    result = CliRunner().invoke(main, ["dispute", str(workspace / "cheat"), str(workspace / "honest"), "--transcript", str(target), "--json"])
    assert result.exit_code == EXIT_REJECTED
    assert json.loads(result.stdout)["winner"]["role"] == "challenger"  # the verdict was printed
    assert "the verdict above stands" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_help_and_argument_errors_do_not_load_torch() -> None:
    code = ("import sys; from pinpoint.cli import main\n"
            "for argv in (['--help'], ['train', '--help'], ['train', '--bogus'], ['simulate', '--help']):\n"
            "    try: main(argv)\n"
            "    except SystemExit: pass\n"
            "assert 'torch' not in sys.modules, sorted(sys.modules)\n")
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, cwd=REPO)


# --- interrupted runs -------------------------------------------------------------------------------


def _neighbourhood(folder: Path) -> list[str]:
    return sorted(path.name.split(".partial-")[0] + ".partial-*" if ".partial-" in path.name else path.name for path in folder.iterdir())


def _start_train(folder: Path) -> subprocess.Popen[bytes]:
    argv = [sys.executable, "-m", "pinpoint.cli", "train", "--model", "mlp", "--optimizer", "sgd", "--steps", "100000", "--out", str(folder / "run")]
    return subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _wait_for(condition: Callable[[], bool], process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    while not condition():
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.005)


def _checkpoints(folder: Path) -> int:
    return sum(len(list(partial.glob("checkpoints/*.safetensors"))) for partial in folder.glob(".run.partial-*"))


@pytest.mark.parametrize("point", ["started", "s_0 written", "5 checkpoints"])
def test_sigkill_leaves_a_partial_run_the_next_start_removes(tmp_path: Path, point: str) -> None:
    process = _start_train(tmp_path)
    conditions = {
        "started": lambda: any(tmp_path.glob(".run.partial-*")),
        "s_0 written": lambda: _checkpoints(tmp_path) >= 1,
        "5 checkpoints": lambda: _checkpoints(tmp_path) >= 5,
    }
    _wait_for(conditions[point], process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    # what a SIGKILL leaves: the hidden partial run, and neither the run nor a key
    assert _neighbourhood(tmp_path) == [".run.partial-*"]
    assert not list(tmp_path.rglob("*.key"))
    result = CliRunner().invoke(main, [*TRAIN, "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "note: removed" in result.stderr and "killed" in result.stderr
    assert _neighbourhood(tmp_path) == ["run", "run.key"]
    assert not list((tmp_path / "run").rglob("*.key"))


def test_sigterm_removes_the_partial_run_and_a_second_writer_is_refused(tmp_path: Path) -> None:
    process = _start_train(tmp_path)
    _wait_for(lambda: _checkpoints(tmp_path) >= 2, process)
    second = CliRunner().invoke(main, [*TRAIN, "--out", str(tmp_path / "run")])
    assert second.exit_code == EXIT_REJECTED and "another process is training into" in second.stderr
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == EXIT_TERMINATED, stderr
    assert stderr.decode().strip().splitlines()[-1] == "error: terminated; partial outputs were removed"
    assert _neighbourhood(tmp_path) == []
