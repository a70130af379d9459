"""The dispute game on real training runs: honest parties win against cheating runs, as worker and
as challenger; verdicts re-check offline; the command line speaks JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pinpoint.cli import main
from protocol.game.enums import Outcome
from protocol.recording import Tamper
from prover.run import load_run, train
from verifier.dispute import dispute_runs, verify_dispute_transcript


@pytest.fixture(scope="module")
def cheats(tmp_path_factory: pytest.TempPathFactory, mlp_run: Path) -> dict[str, Path]:
    job = load_run(mlp_run).job
    folder = tmp_path_factory.mktemp("cheats")
    runs = {}
    for name, tamper in {"output": "output@2:37", "state": "state@1", "first": "output@0:3", "last": "output@3:100"}.items():
        runs[name] = folder / name
        train(job, runs[name], checkpoint_every=2, tamper=Tamper.parse(tamper))
    return runs


@pytest.mark.parametrize(("cheat", "step", "tree"), [("output", 2, "ops"), ("state", 1, "state_after"), ("first", 0, "ops"), ("last", 3, "ops")])
def test_honest_challenger_beats_a_cheating_worker(mlp_run: Path, cheats: dict[str, Path], tmp_path: Path, cheat: str, step: int, tree: str) -> None:
    transcript = tmp_path / "transcript.json"
    report = dispute_runs(cheats[cheat], mlp_run, arity=2, transcript_path=transcript)
    verdict = report.to_json()
    assert verdict["winner"]["role"] == "challenger" and verdict["winner"]["run"] == str(mlp_run)
    assert verdict["loser"]["role"] == "worker"
    assert verdict["step"] == step and verdict["tree"] == tree
    if cheat == "output":
        assert verdict["node"] == 37 and verdict["op"] is not None
    assert verdict["referee_meta_steps"] == 1  # agreed structure hints: one meta step whatever the step
    assert verify_dispute_transcript(transcript).valid


@pytest.mark.parametrize("arity", [2, 4, 16])
def test_honest_worker_beats_a_cheating_challenger(mlp_run: Path, cheats: dict[str, Path], arity: int) -> None:
    report = dispute_runs(mlp_run, cheats["output"], arity=arity)
    verdict = report.to_json()
    assert report.result is not None and report.result.verdict.outcome is Outcome.DECIDED
    assert verdict["winner"]["role"] == "worker" and verdict["loser"]["role"] == "challenger"
    steps, nodes = 4, 112
    bound = _ceil_log(steps + 1, arity) + _ceil_log(nodes, arity) + 8
    assert verdict["rounds"]["total"] <= bound


def _ceil_log(n: int, k: int) -> int:
    rounds, reach = 0, 1
    while reach < n:
        reach *= k
        rounds += 1
    return rounds


def test_transformer_dispute_lands_on_the_tampered_node(tmp_path: Path, transformer_run: Path) -> None:
    job = load_run(transformer_run).job
    cheat = tmp_path / "cheat"
    train(job, cheat, checkpoint_every=2, tamper=Tamper.parse("output@1:149"))
    verdict = dispute_runs(cheat, transformer_run).to_json()
    assert verdict["winner"]["role"] == "challenger" and (verdict["step"], verdict["node"]) == (1, 149)
    assert verdict["referee_meta_steps"] == 1


def test_transcript_tampering_is_rejected(mlp_run: Path, cheats: dict[str, Path], tmp_path: Path) -> None:
    transcript = tmp_path / "t.json"
    dispute_runs(cheats["output"], mlp_run, transcript_path=transcript)
    body = json.loads(transcript.read_text())
    body["verdict"]["reason"] = "silent past its clock"
    forged = tmp_path / "forged.json"
    forged.write_text(json.dumps(body))
    assert not verify_dispute_transcript(forged).valid
    truncated = tmp_path / "truncated.json"
    truncated.write_bytes(transcript.read_bytes()[:200])
    assert not verify_dispute_transcript(truncated).valid


def test_agreeing_runs_have_nothing_to_dispute(mlp_run: Path, tmp_path: Path) -> None:
    twin = tmp_path / "twin"
    train(load_run(mlp_run).job, twin, checkpoint_every=4)
    result = CliRunner().invoke(main, ["dispute", str(mlp_run), str(twin)])
    assert result.exit_code == 0 and "nothing to dispute" in result.output


def test_cli_dispute_json_has_the_documented_keys(mlp_run: Path, cheats: dict[str, Path], tmp_path: Path) -> None:
    transcript = tmp_path / "t.json"
    result = CliRunner().invoke(main, ["dispute", str(cheats["output"]), str(mlp_run), "--json", "--arity", "4", "--transcript", str(transcript)])
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.output)
    for key in ("winner", "loser", "step", "node", "op", "reason", "rounds", "bytes"):
        assert key in verdict
    check = CliRunner().invoke(main, ["verify-transcript", str(transcript)])
    assert check.exit_code == 0 and "valid" in check.output


def test_dispute_between_different_jobs_is_refused(mlp_run: Path, transformer_run: Path) -> None:
    result = CliRunner().invoke(main, ["dispute", str(mlp_run), str(transformer_run)])
    assert result.exit_code == 3 and "different jobs" in result.output


def test_dispute_needs_the_signing_key(mlp_run: Path, cheats: dict[str, Path], tmp_path: Path) -> None:
    keyless = tmp_path / "keyless"
    shutil.copytree(cheats["output"], keyless)  # the run alone: its key stays beside the original
    assert not list(keyless.rglob("*.key"))
    result = CliRunner().invoke(main, ["dispute", str(keyless), str(mlp_run)])
    assert result.exit_code == 3 and "no key" in result.output
    key = cheats["output"].parent / f"{cheats['output'].name}.key"
    result = CliRunner().invoke(main, ["dispute", str(keyless), str(mlp_run), "--worker-key", str(key), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["winner"]["role"] == "challenger"
