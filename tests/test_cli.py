"""The command line's train and trace: keys, JSON output and clear errors."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from click.testing import CliRunner

from pinpoint.cli import main


def test_train_creates_an_owner_only_key_and_never_overwrites_it(tmp_path: Path) -> None:
    key = tmp_path / "keys" / "worker.key"
    runner = CliRunner()
    first = runner.invoke(main, ["train", "--model", "mlp", "--optimizer", "sgd", "--steps", "2", "--key", str(key), "--out", str(tmp_path / "a"), "--json"])
    assert first.exit_code == 0, first.output
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    content = key.read_bytes()
    second = runner.invoke(main, ["train", "--model", "mlp", "--optimizer", "sgd", "--steps", "2", "--key", str(key), "--out", str(tmp_path / "b"), "--json"])
    assert second.exit_code == 0, second.output
    assert key.read_bytes() == content
    a, b = json.loads(first.output), json.loads(second.output)
    assert a["worker_key"] == b["worker_key"] and a["chain_root"] == b["chain_root"]
    assert not (tmp_path / "a" / "worker.key").exists()


def test_trace_prints_root_and_nodes(tmp_path: Path) -> None:
    runner = CliRunner()
    out = tmp_path / "run"
    assert runner.invoke(main, ["train", "--model", "mlp", "--optimizer", "adam", "--steps", "3", "--checkpoint-every", "2", "--out", str(out), "--json"]).exit_code == 0
    key = tmp_path / "run.key"  # beside the run, never inside it
    assert key.exists() and stat.S_IMODE(key.stat().st_mode) == 0o600
    assert sorted(p.name for p in out.iterdir()) == ["availability.json", "checkpoints", "commitment.json", "roots.json", "run.json",
                                                     "shards"]
    result = runner.invoke(main, ["trace", str(out), "--step", "2", "--json"])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output)
    assert body["nodes"] == len(body["trace"]) and len(body["trace_root"]) == 64
    assert body["trace"][0]["op"].startswith("aten::")
    assert runner.invoke(main, ["trace", str(out), "--step", "3"]).exit_code == 3


def test_bad_input_is_a_clear_error_with_nothing_written(tmp_path: Path) -> None:
    runner = CliRunner()
    unknown = runner.invoke(main, ["train", "--model", "resnet", "--optimizer", "sgd", "--steps", "2", "--out", str(tmp_path / "x")])
    assert unknown.exit_code == 2 and "resnet" in unknown.output
    bad_tamper = runner.invoke(main, ["train", "--model", "mlp", "--optimizer", "sgd", "--steps", "2", "--tamper", "output@9:1", "--out", str(tmp_path / "y")])
    assert bad_tamper.exit_code == 3 and "cannot tamper with step 9" in bad_tamper.output
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()
    assert not list(tmp_path.glob(".*partial*"))
    bad_key = tmp_path / "bad.key"
    bad_key.write_text("not a key")
    result = runner.invoke(main, ["train", "--model", "mlp", "--optimizer", "sgd", "--steps", "2", "--key", str(bad_key), "--out", str(tmp_path / "z")])
    assert result.exit_code == 3 and "not an Ed25519 key" in result.output and bad_key.read_text() == "not a key"
    missing = runner.invoke(main, ["trace", str(tmp_path / "nowhere"), "--step", "0"])
    assert missing.exit_code == 3 and "no run directory" in missing.output


def test_train_replay_reports_its_steps_and_commits_the_eager_chain(tmp_path: Path) -> None:
    runner = CliRunner()
    common = ["train", "--model", "mlp", "--optimizer", "adam", "--steps", "6", "--json"]
    eager = runner.invoke(main, [*common, "--out", str(tmp_path / "eager")])
    replayed = runner.invoke(main, [*common, "--replay", "--out", str(tmp_path / "replayed")])
    assert eager.exit_code == 0 and replayed.exit_code == 0, replayed.output
    a, b = json.loads(eager.output), json.loads(replayed.output)
    assert a["chain_root"] == b["chain_root"] and "replay" not in a
    assert b["replay"]["replayed"] == 3 and b["replay"]["captured"] == 3 and b["replay"]["reason"] == ""
    both = runner.invoke(main, [*common, "--replay", "--tamper", "output@2:5", "--out", str(tmp_path / "both")])
    assert both.exit_code == 2 and "--tamper" in both.output and not (tmp_path / "both").exists()
