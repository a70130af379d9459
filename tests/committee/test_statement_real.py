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


def test_a_real_dispute_settles_alike_by_attestation_and_by_transcript(mlp_run: Path) -> None:
    """A real training dispute on an economy with a one-seat committee: the member signs what the live game
    yields, and settling by its attestation leaves exactly the state that settling by the transcript does."""
    from protocol.committee import compute_attestation, compute_attestation_json, sign_verdict
    from protocol.committee.bls import generate_secret_key, get_bls_public_key, prove_possession
    from protocol.economy import (
        MINIMAL,
        compute_changed_params,
        copy_state,
        create_state,
        encode_state,
        get_committee,
        process_bid,
        process_close_auction,
        process_epoch,
        process_genesis_allocation,
        process_open_dispute,
        process_post_job,
        process_register_referee,
        process_register_worker,
        process_settle_dispute,
        process_stake,
        process_submit_commitment,
    )
    from protocol.game.commitments import compute_signed_run_commitment_json
    from protocol.game.transcript import compute_transcript_json
    from protocol.job import compute_job_id
    from protocol.signing import generate_private_key, get_public_key_bytes
    from tests.test_game_real import KEYS
    from verifier.dispute import make_game_config
    from verifier.game.adversaries import CATALOGUE
    from verifier.game.clock import LocalTimeSource
    from verifier.game.driver import play_game
    from verifier.game.strategy import HonestStrategy
    from verifier.settlement import make_job_referees

    arena = Arena(mlp_run)
    witness = LocalTimeSource(generate_private_key())
    params = compute_changed_params(MINIMAL, "forced_error_rate_bps", 0)
    state = create_state(params, b"genesis", time_source=bytes(get_public_key_bytes(witness.key)))
    for name in ("user", "worker", "challenger", "r0"):
        process_genesis_allocation(state, name, 3_000)
    process_stake(state, "worker", params.base_worker_stake)
    process_register_worker(state, "worker")
    secret = generate_secret_key(bytes([0x51]) * 32)
    process_stake(state, "r0", params.referee_stake)
    process_register_referee(state, "r0", bytes(get_bls_public_key(secret)).hex(), bytes(prove_possession(secret)).hex())
    process_epoch(state, b"beacon-1")

    liar = CATALOGUE["wrong-op-leaf"].build(arena.provider, KEYS[Role.WORKER], Scenario(step=1, node=37))
    honest = HonestStrategy(arena.provider, KEYS[Role.CHALLENGER])
    job = process_post_job(state, "user", 100, 10, compute_job_id(arena.run.job).hex())
    process_bid(state, "worker", job, 100)
    process_close_auction(state, job)
    process_submit_commitment(state, "worker", job, compute_signed_run_commitment_json(liar.get_run_commitment()))
    opened = process_open_dispute(state, "challenger", job, compute_signed_run_commitment_json(honest.get_run_commitment()))
    result = play_game(liar, honest, arena.referee, make_game_config(2), context={"job": arena.run.job.to_json()},
                       dispute_id=bytes.fromhex(opened.dispute_id), time_source=witness)
    transcript = compute_transcript_json(result.transcript)

    statement = compute_verdict_statement(result.state, arena.referee)  # what the member re-checked and signs
    attestation = compute_attestation(get_committee(state, 1), statement, {0: sign_verdict(secret, statement)})
    by_transcript = copy_state(state)
    expected = process_settle_dispute(by_transcript, "", opened.number, transcript, make_job_referees())
    settled = process_settle_dispute(state, "", opened.number, attestation=compute_attestation_json(attestation),
                                     setup=transcript["setup"])
    assert settled == expected and settled.kind == "worker-slashed"
    assert encode_state(state) == encode_state(by_transcript)
