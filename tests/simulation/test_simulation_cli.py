"""`simulate` end to end through click: outputs on disk, JSON summary, errors that name the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from pinpoint.cli import main
from pinpoint.simulation.cli import simulate_command
from pinpoint.simulation.output import OutputError, prepare_output_dir, write_atomic
from tests.simulation.configs import PHASE, table, toml_text

TINY = table(PHASE, run=dict(PHASE["run"], epochs=15, repetitions=1, invariants="epoch"),
             sweep={"challengers.watchers.verify_probability": [0.2, 0.5], "protocol.params.slash_fraction_bps": [0, 5000]})


def _write(tmp_path: Path, data: dict) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(toml_text(data))
    return path


def test_simulate_writes_table_summary_and_plots(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(simulate_command, ["--config", str(_write(tmp_path, TINY)), "--out", str(out), "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output)
    assert summary["runs"] == 4 and len(summary["mechanisms"]) == 4
    assert summary["invariant_checks"] == 4 * 15
    assert set(summary["files"]) == {"runs.parquet", "runs.csv", "timeseries.png", "phase-diagram.png", "summary.json"}
    parquet = pd.read_parquet(out / "runs.parquet")
    csv = pd.read_csv(out / "runs.csv")
    assert len(parquet) == len(csv) == 4 * 15
    assert list(parquet.columns) == list(csv.columns)
    assert {"run", "scenario", "repetition", "seed", "epoch", "cheat_rate", "gini_rewards", "profit_cheater",
            "challengers.watchers.verify_probability", "protocol.params.slash_fraction_bps"} <= set(parquet.columns)
    assert json.loads((out / "summary.json").read_text())["phase"]["x"] == "challengers.watchers.verify_probability"
    for png in ("timeseries.png", "phase-diagram.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary files left


def test_simulate_human_output(tmp_path: Path) -> None:
    data = table(TINY, sweep={})
    data.pop("report")
    result = CliRunner().invoke(simulate_command, ["--config", str(_write(tmp_path, data)), "--out", str(tmp_path / "o"), "--workers", "1"])
    assert result.exit_code == 0, result.output
    assert "1 runs in" in result.output and "base: cheat rate" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--workers", "2", "--scheduler", "tcp://127.0.0.1:1"], "--workers sizes the local process pool"),
        (["--workers", "0"], "Invalid value for '--workers'"),
    ],
)
def test_option_errors(tmp_path: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["simulate", "--config", str(_write(tmp_path, TINY)), "--out", str(tmp_path / "o"), *args])
    assert result.exit_code == 2 and message in result.output


def test_config_and_output_errors(tmp_path: Path) -> None:
    bad = _write(tmp_path, table(TINY, run={"epochs": 0}))
    result = CliRunner().invoke(main, ["simulate", "--config", str(bad), "--out", str(tmp_path / "o")])
    assert result.exit_code == 3 and "run.epochs: must be at least 1" in result.output
    assert not (tmp_path / "o").exists()  # nothing written for a bad config
    afile = tmp_path / "taken"
    afile.write_text("keep me")
    result = CliRunner().invoke(main, ["simulate", "--config", str(_write(tmp_path, TINY)), "--out", str(afile), "--workers", "1"])
    assert result.exit_code == 2 and "is a file" in result.output
    assert afile.read_text() == "keep me"
    with pytest.raises(OutputError, match="exists and is not a directory"):
        prepare_output_dir(afile)


def test_atomic_write_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "summary.json"
    target.write_text("old")

    def explode(stream: object) -> None:
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_atomic(target, explode)
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["summary.json"]
    write_atomic(target, lambda stream: stream.write(b"new"))
    assert target.read_text() == "new" and oct(target.stat().st_mode & 0o777) == "0o644"


def test_simulate_on_a_dask_scheduler(tmp_path: Path) -> None:
    distributed = pytest.importorskip("dask.distributed")
    data = table(TINY, sweep={"challengers.watchers.verify_probability": [0.2, 0.5]})
    data.pop("report")
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        result = CliRunner().invoke(simulate_command, ["--config", str(_write(tmp_path, data)), "--out", str(tmp_path / "o"),
                                                      "--scheduler", cluster.scheduler_address, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["runs"] == 2
    local = CliRunner().invoke(simulate_command, ["--config", str(_write(tmp_path, data)), "--out", str(tmp_path / "p"),
                                                  "--workers", "1"])
    assert local.exit_code == 0
    assert pd.read_parquet(tmp_path / "o" / "runs.parquet").equals(pd.read_parquet(tmp_path / "p" / "runs.parquet"))
