"""The honest party wins at the system's edges: run directories edited by hand (not `--tamper`), and
transcripts forged, spliced or made up by someone holding no key but their own.

1. A party that cannot answer from its own files (roots it signed that its checkpoints do not produce,
   deleted checkpoints, a checkpoint of another step) is silent and loses on its clock, at the step
   where its claim breaks, as worker or as challenger; `pinpoint dispute` names it and writes the
   transcript.
2. A transcript is forged by dropping the honest answer and appending a clock event: refused without
   the time source's receipts. The durable ledger is a time source: it issues unique dispute ids,
   stamps every event once, and its key survives a restart.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from pinpoint.cli import main
from pinpoint.ledger import Ledger
from protocol.economy import MINIMAL, compute_dispute_id
from protocol.game import Role, create_game, process_clock, process_move
from protocol.game.messages import parse_message_json
from protocol.game.rules import get_deadline
from protocol.game.state import compute_verdict_json, parse_setup_json
from protocol.game.timesource import TimeSourceError
from prover.presets import resolve_task
from prover.run import load_run
from verifier.dispute import dispute_runs, verify_dispute_transcript
from verifier.referee import TraceReferee

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


def test_a_real_transcript_forged_into_a_timeout_is_rejected(edited: dict[str, Path], mlp_run: Path, tmp_path: Path) -> None:
    """The honest challenger's last answer dropped, a clock event at its deadline, the verdict recomputed
    (here both lose: the cheating worker was silent at that query too)."""
    transcript = tmp_path / "game.json"
    dispute_runs(edited["ulp-edited-checkpoint"], mlp_run, transcript_path=transcript)
    value = json.loads(transcript.read_text())
    assert value["verdict"]["winner"]["role"] == "challenger"
    events = [{k: v for k, v in event.items() if k != "receipt"} for event in value["events"]]
    last = max(i for i, event in enumerate(events) if event.get("message", {}).get("sender") == "challenger")
    job = load_run(mlp_run).job
    referee = TraceReferee(job, resolve_task(job))
    state = create_game(parse_setup_json(value["setup"]))
    for event in events[:last]:
        state = (process_clock(state, event["at"]) if "clock" in event
                 else process_move(state, parse_message_json(event["message"]), event["at"], referee))
    deadline = get_deadline(state, Role.CHALLENGER)
    assert deadline is not None
    state = process_clock(state, deadline)
    assert state.verdict is not None and Role.CHALLENGER in [party.role for party in state.verdict.losers]
    forged = {**value, "events": [*events[:last], {"at": deadline, "clock": True}], "verdict": compute_verdict_json(state.verdict)}
    path = tmp_path / "forged.json"
    path.write_text(json.dumps(forged))
    check = CliRunner().invoke(main, ["verify-transcript", str(path)])
    assert check.exit_code == 1 and "receipt" in check.output, check.output
    genuine = verify_dispute_transcript(transcript)
    assert genuine.valid and genuine.time_source is not None


def test_the_ledger_is_a_time_source_that_never_forks(edited: dict[str, Path], mlp_run: Path, tmp_path: Path) -> None:
    ledger = Ledger.create(tmp_path / "ledger.db", MINIMAL)
    key = ledger.get_time_source_key()
    # the economy issues dispute ids when disputes are opened: never twice, and bound to this ledger's key
    ids = {bytes.fromhex(compute_dispute_id(bytes(key).hex(), job, number)) for job, number in ((1, 0), (1, 1), (2, 2))}
    assert len(ids) == 3 and bytes(key).hex() == ledger.state.time_source
    transcript = tmp_path / "game.json"
    report = dispute_runs(edited["deleted-checkpoints"], mlp_run, transcript_path=transcript,
                          dispute_id=ids.pop(), time_source=ledger)
    assert report.to_json()["reason"] == "silent past its clock"
    game_id = bytes.fromhex(json.loads(transcript.read_text())["game_id"])
    with pytest.raises(TimeSourceError):
        ledger.open_game(game_id, 0.0)  # type: ignore[arg-type]
    ledger.close()
    with Ledger.open(tmp_path / "ledger.db") as reopened:
        assert reopened.get_time_source_key() == key
        stamped = reopened._conn.execute("SELECT COUNT(*) FROM game_events WHERE game_id = ?", (game_id.hex(),)).fetchone()[0]
    assert stamped == len(json.loads(transcript.read_text())["events"])
    result = verify_dispute_transcript(transcript, time_source=bytes(key))
    assert result.valid, result.reason
