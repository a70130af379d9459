"""The honest party wins at the system's edges: run directories edited by hand (not `--tamper`), and
transcripts forged, spliced or made up by someone holding no key but their own.

1. A party that cannot answer from its own files (roots it signed that its checkpoints do not produce,
   deleted checkpoints, a checkpoint of another step) is silent and loses on its clock, at the step
   where its claim breaks, as worker or as challenger; `pinpoint dispute` names it and writes the
   transcript.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from pinpoint.cli import main
from verifier.dispute import dispute_runs

from .run_edits import copy_run, delete_checkpoints, move_checkpoint, set_random_root, ulp_edit_forward

EDITS: dict[str, tuple[Callable[[Path], Path], int]] = {
    # name: (the edit, the step whose result the edited run cannot reproduce)
    "random-root": (lambda run: set_random_root(run, 3), 2),
    "ulp-edited-checkpoint": (lambda run: ulp_edit_forward(run, 3), 2),
    "deleted-checkpoints": (lambda run: delete_checkpoints(set_random_root(run, 2)), 1),
    "checkpoint-of-another-step": (lambda run: move_checkpoint(set_random_root(run, 3), 2, 0), 2),
}


@pytest.fixture(scope="module")
def edited(tmp_path_factory: pytest.TempPathFactory, mlp_run: Path) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("edited")
    return {name: edit(copy_run(mlp_run, folder / name)) for name, (edit, _) in EDITS.items()}


@pytest.mark.parametrize("name", sorted(EDITS))
def test_a_worker_that_cannot_answer_from_its_files_is_convicted_at_the_step(
        name: str, edited: dict[str, Path], mlp_run: Path, tmp_path: Path) -> None:
    transcript = tmp_path / "game.json"
    result = CliRunner().invoke(main, ["dispute", str(edited[name]), str(mlp_run), "--json", "--transcript", str(transcript)])
    assert result.exit_code == 0, result.output
    verdict = json.loads(result.output)
    assert verdict["winner"]["role"] == "challenger" and verdict["loser"]["role"] == "worker"
    assert verdict["loser"]["run"] == str(edited[name])
    assert verdict["step"] == EDITS[name][1]
    assert verdict["reason"] == "silent past its clock"
    assert [failure["role"] for failure in verdict["failures"]] == ["worker"]
    assert transcript.exists()
    check = CliRunner().invoke(main, ["verify-transcript", str(transcript)])
    assert check.exit_code == 0, check.output


@pytest.mark.parametrize("name", sorted(EDITS))
def test_an_honest_worker_beats_a_challenger_that_cannot_answer(name: str, edited: dict[str, Path], mlp_run: Path) -> None:
    verdict = dispute_runs(mlp_run, edited[name]).to_json()
    assert verdict["winner"]["role"] == "worker" and verdict["winner"]["run"] == str(mlp_run)
    assert verdict["step"] == EDITS[name][1] and verdict["reason"] == "silent past its clock"


def test_the_text_output_names_the_silent_party_and_why(edited: dict[str, Path], mlp_run: Path) -> None:
    result = CliRunner().invoke(main, ["dispute", str(edited["deleted-checkpoints"]), str(mlp_run)])
    assert result.exit_code == 0, result.output
    assert "loser    worker" in result.output
    assert "silent   worker could not answer query" in result.output and "no checkpoint" in result.output


def test_a_directory_without_roots_still_stands_behind_its_commitment(mlp_run: Path, tmp_path: Path) -> None:
    """Only the job and the signed commitment are needed to be held to a claim."""
    broken = set_random_root(copy_run(mlp_run, tmp_path / "broken"), 1)
    (broken / "roots.json").unlink()
    verdict = dispute_runs(broken, mlp_run).to_json()
    assert verdict["winner"]["role"] == "challenger" and verdict["reason"] == "silent past its clock"
    assert verdict["failures"][0]["seq"] == 0  # silent from the first query on
