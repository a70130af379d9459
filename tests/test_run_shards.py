"""A run's checkpoints as erasure-coded shards: coded while training without changing a bit of the run,
bound by the signed run commitment, and used by a dispute when a party's checkpoint files are gone: the
honest party rebuilds them from any k shards that prove themselves (holders of the others named) and
reaches the right verdict; with fewer than k it is silent and loses on its clock, never an abort."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from pinpoint.cli import main
from protocol.availability import (
    CHECKPOINT_K,
    CHECKPOINT_N,
    NO_CHECKPOINT,
    compute_commitment_json,
    compute_run_availability_tree,
    compute_shard_size,
    get_run_availability_problem,
    is_run_checkpoint,
)
from protocol.game.commitments import NO_AVAILABILITY
from protocol.recording import Tamper
from protocol.types import Root
from prover.files import FileFormatError
from prover.run import (
    RunError,
    checkpoint_path,
    default_key_path,
    load_run,
    read_checkpoint,
    restore_session,
    train,
)
from prover.shards import (
    MAX_CHECKPOINT_BYTES,
    read_availability,
    read_held_shards,
    recover_checkpoint,
    shard_folder,
    shard_path,
    write_availability,
)
from verifier.dispute import dispute_runs


@pytest.fixture(scope="module")
def cheat(tmp_path_factory: pytest.TempPathFactory, mlp_run: Path) -> Path:
    out = tmp_path_factory.mktemp("shard-cheat") / "cheat"
    train(load_run(mlp_run).job, out, checkpoint_every=2, tamper=Tamper.parse("output@2:37"))
    return out


def copy_with_key(source: Path, target: Path) -> Path:
    """The same party's run in another place: its files and its key, its signed commitment untouched."""
    shutil.copytree(source, target)
    shutil.copy(default_key_path(source), default_key_path(target))
    return target


def test_sharding_changes_no_bit_of_the_run(mlp_run: Path, tmp_path: Path) -> None:
    run = load_run(mlp_run)
    plain = train(run.job, tmp_path / "plain", checkpoint_every=2, code=None)
    assert plain.roots == run.roots and plain.chain_root == run.chain_root
    for step in (0, 2, 4):  # the same tensors (the files' bytes differ: safetensors orders its metadata at random)
        mine, theirs = read_checkpoint(checkpoint_path(plain.path, step)), read_checkpoint(checkpoint_path(run.path, step))
        assert mine.keys() == theirs.keys() and all(torch.equal(mine[name], theirs[name]) for name in mine)
    assert plain.commitment.commitment.availability_root == NO_AVAILABILITY and plain.availability == ()
    assert not (plain.path / "shards").exists()
    seconds = json.loads((mlp_run / "run.json").read_text())["seconds"]
    assert seconds["shards"] > 0


def test_every_checkpoint_is_coded_under_the_signed_root(mlp_run: Path) -> None:
    run = load_run(mlp_run)
    signed_root = run.commitment.commitment.availability_root
    assert run.availability_problem is None and [c.step for c in run.availability] == [0, 2, 4]
    assert get_run_availability_problem(run.job_id, run.roots, signed_root, run.availability) is None
    tree = compute_run_availability_tree(run.job.steps, run.availability)
    assert tree.root == signed_root and tree.levels[0][1] == tree.levels[0][3]  # s_1 and s_3: no checkpoint
    for c in run.availability:
        assert (c.k, c.n, c.step, c.state_root) == (CHECKPOINT_K, CHECKPOINT_N, c.step, run.roots[c.step])
        assert is_run_checkpoint(signed_root, run.job.steps, c, tree.prove(c.step))
        assert not is_run_checkpoint(signed_root, run.job.steps, replace(c, step=c.step + 1), tree.prove(c.step))
        recovery, unreadable = recover_checkpoint(run.path, c)
        assert recovery.data == checkpoint_path(run.path, c.step).read_bytes() and unreadable == []
        assert recovery.used == tuple(range(CHECKPOINT_K))  # the data shards: nothing to recompute
    assert compute_run_availability_tree(1, []).root != bytes(NO_CHECKPOINT)


def test_checkpoint_commitments_that_do_not_fit_the_run_are_refused(mlp_run: Path) -> None:
    run = load_run(mlp_run)
    root, entries = run.commitment.commitment.availability_root, list(run.availability)
    cases = {
        "another job": [replace(entries[0], job_id=bytes(32)), *entries[1:]],
        "increasing order": [entries[1], entries[0], entries[2]],
        "not of the run's s_2": [entries[0], replace(entries[1], state_root=Root(bytes(32))), entries[2]],
        "under the signed availability root": entries[:2],
        "numbers fitting": [replace(entries[0], shard_size=1), *entries[1:]],
    }
    assert get_run_availability_problem(run.job_id, run.roots, root, entries) is None
    for expected, bad in cases.items():
        problem = get_run_availability_problem(run.job_id, run.roots, root, bad)
        assert problem is not None and (expected in problem or "numbers" in expected), (expected, problem)


def test_a_tampered_availability_file_leaves_the_shards_unused(mlp_run: Path, tmp_path: Path) -> None:
    party = copy_with_key(mlp_run, tmp_path / "party")
    entries = json.loads((party / "availability.json").read_text())
    entries[1]["shards_root"] = "00" * 32
    (party / "availability.json").write_text(json.dumps(entries))
    shutil.rmtree(party / "checkpoints")
    run = load_run(party)  # the run still loads: the shards are a fallback
    assert run.availability == () and "not those under the signed availability root" in str(run.availability_problem)
    with pytest.raises(RunError, match="shards cannot be used"):
        restore_session(run, 2)


def test_a_coded_checkpoint_larger_than_a_checkpoint_may_be_is_refused(mlp_run: Path, tmp_path: Path) -> None:
    """Signed or not, a size no checkpoint file may have is never read: the shards are refused before any is."""
    run = load_run(mlp_run)
    size = MAX_CHECKPOINT_BYTES + 1
    huge = [replace(c, size=size, shard_size=compute_shard_size(size, c.k)) for c in run.availability]
    write_availability(tmp_path, huge)
    root = compute_run_availability_tree(run.job.steps, huge).root
    with pytest.raises(FileFormatError, match="larger than the limit"):
        read_availability(tmp_path, run.job_id, run.roots, root)


def test_hostile_shard_files_are_set_aside_with_their_holders(mlp_run: Path, tmp_path: Path) -> None:
    party = copy_with_key(mlp_run, tmp_path / "party")
    c = load_run(party).get_availability(2)
    assert c is not None
    shard_path(party, 2, 0).unlink()
    shard_path(party, 2, 1).write_bytes(b"\0" * (1 << 22))  # larger than a shard file can be: never read whole
    shard_path(party, 2, 2).unlink()
    os.symlink("/dev/zero", shard_path(party, 2, 2))  # a device behind a link: never read
    flipped = bytearray(shard_path(party, 2, 3).read_bytes())
    flipped[-1] ^= 1
    shard_path(party, 2, 3).write_bytes(bytes(flipped))
    shard_path(party, 2, 4).write_bytes(shard_path(party, 2, 5).read_bytes())  # another holder's shard and proof
    held, unreadable = read_held_shards(party, c)
    reasons = dict(unreadable)
    assert reasons["shards/step-00000002/shard-000.bin"] == "missing"
    assert "more than the limit" in reasons["shards/step-00000002/shard-001.bin"]
    assert "not a regular file" in reasons["shards/step-00000002/shard-002.bin"]
    recovery, _ = recover_checkpoint(party, c)
    assert recovery.data is None and "only 3 valid shards of the 4" in str(recovery.problem)
    assert {(d.holder, d.index) for d in recovery.discarded} == {("shards/step-00000002/shard-003.bin", 3),
                                                               ("shards/step-00000002/shard-004.bin", 4)}


def test_an_honest_worker_without_checkpoints_wins_from_its_shards(mlp_run: Path, cheat: Path, tmp_path: Path) -> None:
    """Every checkpoint file gone and, of each checkpoint's eight shards, one corrupt, one of another holder
    and one deleted: five remain, k = 4 suffice, and the game reaches the verdict the files would have."""
    party = copy_with_key(mlp_run, tmp_path / "worker")
    shutil.rmtree(party / "checkpoints")
    for step in (0, 2, 4):
        corrupt = bytearray(shard_path(party, step, 0).read_bytes())
        corrupt[-1] ^= 0x80
        shard_path(party, step, 0).write_bytes(bytes(corrupt))
        shard_path(party, step, 5).write_bytes(shard_path(party, step, 6).read_bytes())
        shard_path(party, step, 7).unlink()
    lines: list[str] = []
    verdict = dispute_runs(party, cheat, on_progress=lines.append).to_json()
    assert verdict["winner"]["role"] == "worker" and verdict["winner"]["run"] == str(party)
    assert verdict["loser"]["role"] == "challenger" and verdict["failures"] == []
    assert verdict["step"] == 2 and verdict["tree"] == "ops" and verdict["node"] == 37
    set_aside = {(item["run"], item["holder"]) for item in verdict["shards_set_aside"]}
    assert (str(party), "shards/step-00000002/shard-000.bin") in set_aside
    assert (str(party), "shards/step-00000002/shard-005.bin") in set_aside
    assert any("from shards: rebuilt from shards" in line for line in lines)


def test_an_honest_challenger_without_checkpoints_convicts_from_its_shards(mlp_run: Path, cheat: Path, tmp_path: Path) -> None:
    party = copy_with_key(mlp_run, tmp_path / "challenger")
    for step in (0, 2, 4):  # the files are there but hold garbage, and one shard of each is another's
        checkpoint_path(party, step).write_bytes(b"not a checkpoint")
        shard_path(party, step, 1).write_bytes(shard_path(party, step, 2).read_bytes())
    result = CliRunner().invoke(main, ["dispute", str(cheat), str(party)])
    assert result.exit_code == 0, result.output
    assert f"winner   challenger  {party}" in result.output and f"loser    worker  {cheat}" in result.output
    assert "op aten::" in result.output and "silent" not in result.output
    assert f"shard    {party}/shards/step-00000002/shard-001.bin set aside: shard 1 fails its inclusion proof" in result.output


def test_withholding_below_k_loses_on_the_clock(mlp_run: Path, cheat: Path, tmp_path: Path) -> None:
    """The honest run with its checkpoint files deleted and only k - 1 shards of each checkpoint left
    cannot answer: it is silent, and the cheater wins on the clock: a verdict, not an abort."""
    party = copy_with_key(mlp_run, tmp_path / "worker")
    shutil.rmtree(party / "checkpoints")
    for step in (0, 2, 4):
        for index in range(CHECKPOINT_K - 1, CHECKPOINT_N):
            shard_path(party, step, index).unlink()
    assert len(list(shard_folder(party, 2).iterdir())) == CHECKPOINT_K - 1
    verdict = dispute_runs(party, cheat).to_json()
    assert verdict["disputed"] and verdict["winner"]["role"] == "challenger" and verdict["loser"]["role"] == "worker"
    assert verdict["reason"] == "silent past its clock"
    assert [failure["role"] for failure in verdict["failures"]] == ["worker"]
    assert "only 3 valid shards of the 4" in json.dumps(verdict["failures"])


def test_the_commitment_json_of_a_coded_checkpoint_round_trips(mlp_run: Path) -> None:
    entries = json.loads((mlp_run / "availability.json").read_text())
    assert entries == [compute_commitment_json(c) for c in load_run(mlp_run).availability]
