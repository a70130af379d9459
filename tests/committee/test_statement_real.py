"""On a real training dispute, the verdict statement a committee signs is the one a transcript check
produces: from the live game, from the protocol's replay and from the verifier's `verify_transcript`."""

from __future__ import annotations

from pathlib import Path

from protocol.committee import compute_statement_json, compute_transcript_statement, compute_verdict_statement
from protocol.game import Outcome, Reason, Role
from protocol.game.transcript import parse_transcript_json
from protocol.trace import decode_node
from tests.test_game_real import Arena
from verifier.game.adversaries import Scenario
from verifier.game.transcript import read_transcript_json, verify_transcript, write_transcript
from verifier.referee import TraceReferee


def test_the_committee_statement_of_a_real_game_is_the_transcript_checks(mlp_run: Path, tmp_path: Path) -> None:
    arena = Arena(mlp_run)
    result = arena.play("wrong-op-leaf", Role.CHALLENGER, Scenario(step=1, node=37))  # the worker lies at node 37
    verdict = result.verdict
    assert verdict.outcome is Outcome.DECIDED and verdict.reason is Reason.WRONG_LEAF
    live = compute_verdict_statement(result.state, arena.referee)

    path = write_transcript(tmp_path / "transcript.json", result.transcript)
    value = read_transcript_json(path)
    fresh = TraceReferee(arena.run.job, arena.referee.task)  # offline: a referee built from the job alone
    replayed = compute_transcript_statement(parse_transcript_json(value), fresh)
    checked = verify_transcript(value, fresh)
    assert checked.valid and checked.state is not None, checked.reason
    assert compute_verdict_statement(checked.state, fresh) == replayed == live

    # the statement names the node, both parties' leaves and the digests the referee recomputed
    body = compute_statement_json(live)
    assert (body["step"], body["tree"], body["index"]) == (1, "ops", 37)
    assert body["winner"] == "challenger" and body["losers"] == ["worker"]
    assert live.leaves is not None and live.leaves[0] != live.leaves[1] and live.expected_leaf == live.leaves[1]
    true_leaf = arena.provider.get_op_leaf(1, 37)  # type: ignore[arg-type]
    assert live.outputs == tuple(decode_node(true_leaf).digests)
