"""Reproducible training runs: chain roots across threads, processes and repeats; traces, skeletons,
tampering and bad input."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from protocol.encoding import compute_digest
from protocol.job import compute_job_id
from protocol.merkle import hash_leaf, verify_inclusion
from protocol.ops import UnsupportedOperator
from protocol.recording import ReproducibleMode, RngContext, Tamper
from protocol.session import compute_skeleton
from protocol.signing import generate_private_key
from protocol.state import compute_state_root
from protocol.trace import compute_influential_outputs, decode_node, encode_node
from prover.run import (
    RunError,
    TamperError,
    checkpoint_path,
    load_run,
    regenerate_trace,
    restore_session,
    train,
)
from tests.conftest import small_job

REPO = Path(__file__).resolve().parents[1]


def _chain_root_in_subprocess(out: Path, model: str, optimizer: str, threads: int) -> str:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    code = (
        "import sys, torch; torch.set_num_threads(int(sys.argv[4]));"
        "from tests.conftest import small_job; from prover.run import train;"
        "from protocol.signing import generate_private_key;"
        "run = train(small_job(sys.argv[2], sys.argv[3], steps=3), sys.argv[1], generate_private_key());"
        "print(run.chain_root.hex())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(out), model, optimizer, str(threads)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=True,
    )
    return result.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize(("model", "optimizer"), [("mlp", "sgd"), ("transformer", "adamw")])
def test_chain_root_is_identical_across_threads_processes_and_repeats(tmp_path: Path, model: str, optimizer: str) -> None:
    one = _chain_root_in_subprocess(tmp_path / "one", model, optimizer, threads=1)
    two = _chain_root_in_subprocess(tmp_path / "two", model, optimizer, threads=2)
    here = train(small_job(model, optimizer, steps=3), tmp_path / "here", generate_private_key()).chain_root.hex()
    assert one == two == here


def test_plain_training_holds_no_outputs_and_reaches_the_traced_state() -> None:
    """Training keeps no output alive (the step's memory is torch's), so autograd may steal gradients
    it clones while a trace holds everything, and accumulate in place what a trace adds out of place:
    fewer nodes, the same state, bit for bit (the llama task accumulates over two micro-batches)."""
    from protocol.session import Session, make_job, record_step
    from prover.fast import FAST
    from prover.task import load_task

    task = load_task(REPO / "examples" / "tasks" / "llama.py")
    job = make_job(task, 2, 0)
    trained, traced = Session(job, task), Session(job, task)
    for step in range(2):
        mode = ReproducibleMode(RngContext(job.seed, step), lambda device: FAST)
        with mode:
            trained.run_step()
        trace = record_step(traced, primitives_for=lambda device: FAST)
        assert mode.outputs_alive == [] and mode.node_count < len(trace.nodes)
        assert trace.state_after == {name: compute_digest(tensor) for name, tensor in trained.state_tensors().items()}


def test_same_job_same_root_different_seed_different_job(tmp_path: Path) -> None:
    a = train(small_job("mlp", "sgd", steps=2, seed=1), tmp_path / "a", generate_private_key())
    b = train(small_job("mlp", "sgd", steps=2, seed=1), tmp_path / "b", generate_private_key())
    c = train(small_job("mlp", "sgd", steps=2, seed=2), tmp_path / "c", generate_private_key())
    assert a.chain_root == b.chain_root and a.job_id == b.job_id
    assert a.worker_key != b.worker_key
    assert c.job_id != a.job_id and c.chain_root != a.chain_root
    assert compute_job_id(small_job("mlp", "adam", steps=2, seed=1)) != a.job_id


def test_regenerated_traces_reproduce_committed_roots_and_skeletons(mlp_run: Path, transformer_run: Path) -> None:
    for path in (mlp_run, transformer_run):
        run = load_run(path)
        tree = run.chain_tree()
        for step in range(run.job.steps):
            trace = regenerate_trace(run, step)
            assert compute_state_root(trace.state_before) == run.roots[step]
            assert compute_state_root(trace.state_after) == run.roots[step + 1]
            assert verify_inclusion(run.chain_root, len(run.roots), step + 1, hash_leaf(run.roots[step + 1]), tree.prove(step + 1))
            for node in trace.nodes[:50]:
                assert decode_node(encode_node(node)) == node
            session = restore_session(run, step)
            tensors = session.state_tensors()
            shapes = {name: (t.dtype, tuple(t.shape)) for name, t in tensors.items()}
            scalars = {name: t for name, t in tensors.items() if t.numel() == 1}
            assert compute_skeleton(run.job, session.task, shapes, scalars) == trace.skeleton


def test_trace_covers_forward_backward_and_optimizer(transformer_run: Path) -> None:
    trace = regenerate_trace(load_run(transformer_run), 1)
    ops = {node.structure.op for node in trace.nodes}
    for expected in (
        "aten::native_layer_norm.default", "aten::_softmax.default", "aten::gelu.default", "aten::bernoulli_.float",
        "aten::native_layer_norm_backward.default", "aten::embedding_dense_backward.default", "aten::bmm.default",
        "aten::addcdiv_.default", "pinpoint::batch_indices.default",
    ):
        assert expected in ops


def test_output_tamper_changes_roots_from_the_step_on_and_replays(tmp_path: Path, mlp_run: Path) -> None:
    honest = load_run(mlp_run)
    cheat = train(honest.job, tmp_path / "cheat", generate_private_key(), checkpoint_every=2, tamper=Tamper.parse("output@2:37"))
    assert cheat.roots[:3] == honest.roots[:3]
    assert all(a != b for a, b in zip(cheat.roots[3:], honest.roots[3:], strict=True))
    trace = regenerate_trace(cheat, 2)  # the cheater can answer from its own (tampered) computation
    honest_trace = regenerate_trace(honest, 2)
    differing = [j for j, (a, b) in enumerate(zip(trace.nodes, honest_trace.nodes, strict=True)) if a != b]
    assert differing[0] == 37


def test_state_tamper_keeps_ops_and_changes_state(tmp_path: Path, mlp_run: Path) -> None:
    honest = load_run(mlp_run)
    cheat = train(honest.job, tmp_path / "cheat", generate_private_key(), tamper=Tamper.parse("state@1"))
    assert cheat.roots[:2] == honest.roots[:2] and cheat.roots[2] != honest.roots[2]
    trace, honest_trace = regenerate_trace(cheat, 1), regenerate_trace(honest, 1)
    assert trace.nodes == honest_trace.nodes
    assert trace.state_after != honest_trace.state_after


@pytest.mark.parametrize(("node", "message"), [
    (99_999, "the step has 109 nodes"),  # past the step's last node
    (2, "aten::t.default"),  # a view: its bits are its input's
    (14, "leaves s_2 unchanged"),  # the loss: backward never reads it
])
def test_a_tamper_that_would_not_change_the_run_is_refused(tmp_path: Path, mlp_run: Path, node: int, message: str) -> None:
    job = load_run(mlp_run).job
    with pytest.raises(TamperError, match=message):
        train(job, tmp_path / "cheat", generate_private_key(), tamper=Tamper("output", 1, node))
    assert not (tmp_path / "cheat").exists() and not list(tmp_path.iterdir())


def test_the_influential_nodes_are_those_that_reach_the_state(mlp_run: Path) -> None:
    skeleton = regenerate_trace(load_run(mlp_run), 1).skeleton
    influential = compute_influential_outputs(skeleton)
    ops = [node.op for node in skeleton.nodes]
    assert ops[14] == "aten::nll_loss_forward.default" and (14, 0) not in influential and (14, 1) in influential
    assert all((j, 0) in influential for j, op in enumerate(ops) if op == "aten::addmm.default")


@pytest.mark.parametrize("text", ["output@1", "output@x:2", "bogus@1:2", "state@-1", ""])
def test_bad_tamper_specs_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        Tamper.parse(text)


def test_unsupported_operator_is_named_before_anything_is_committed() -> None:
    x = torch.randn(4, 4)
    with pytest.raises(UnsupportedOperator, match="aten::cumsum"), ReproducibleMode(RngContext(0, 0)):
        torch.cumsum(x, 0)


def _copy_run(source: Path, target: Path) -> Path:
    shutil.copytree(source, target)
    return target


def _only_the_checkpoint_files(run_dir: Path, *steps: int) -> None:
    """Leave no stand-in for the checkpoints of `steps`: the shards and every other checkpoint file go."""
    shutil.rmtree(run_dir / "shards")
    for path in (run_dir / "checkpoints").iterdir():
        if int(path.stem.split("-")[1]) not in steps:
            path.unlink()


def test_corrupt_and_truncated_checkpoints_are_clear_errors(tmp_path: Path, mlp_run: Path) -> None:
    """A corrupt checkpoint is rebuilt from its shards; without them (and no earlier checkpoint) it is an error."""
    run_dir = _copy_run(mlp_run, tmp_path / "run")
    path = checkpoint_path(run_dir, 2)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    regenerate_trace(load_run(run_dir), 3)  # from the shards of s_2: s_4 reproduced, or it raises
    _only_the_checkpoint_files(run_dir, 2)
    with pytest.raises(RunError, match="corrupt or truncated"):
        regenerate_trace(load_run(run_dir), 3)
    path.write_bytes(b"\x00" * 64)
    with pytest.raises(RunError, match="corrupt or truncated"):
        regenerate_trace(load_run(run_dir), 2)
    path.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))
    with pytest.raises(RunError):
        regenerate_trace(load_run(run_dir), 2)


def test_wrong_dtype_or_shape_in_checkpoint_is_a_clear_error(tmp_path: Path, mlp_run: Path) -> None:
    from safetensors.torch import load_file, save_file

    run_dir = _copy_run(mlp_run, tmp_path / "run")
    _only_the_checkpoint_files(run_dir, 2)
    path = checkpoint_path(run_dir, 2)
    tensors = load_file(path)
    name = next(n for n in tensors if n.startswith("param/") and tensors[n].dim() == 2)
    save_file({**tensors, name: tensors[name].double()}, path)
    with pytest.raises(RunError, match="does not fit the job"):
        regenerate_trace(load_run(run_dir), 2)
    save_file({**tensors, name: tensors[name].reshape(-1)}, path)
    with pytest.raises(RunError, match="does not fit the job"):
        regenerate_trace(load_run(run_dir), 2)


def test_missing_or_malformed_run_files_are_clear_errors(tmp_path: Path, mlp_run: Path) -> None:
    run_dir = _copy_run(mlp_run, tmp_path / "run")
    (run_dir / "checkpoints" / "step-00000002.safetensors").unlink()
    regenerate_trace(load_run(run_dir), 1)  # step 0's checkpoint still serves
    (run_dir / "roots.json").write_text("[not json")
    with pytest.raises(RunError, match="roots.json"):
        load_run(run_dir)
    (run_dir / "roots.json").unlink()
    with pytest.raises(RunError, match="not found"):
        load_run(run_dir)
    with pytest.raises(RunError, match="no run directory"):
        load_run(tmp_path / "nowhere")


def test_commitment_tampering_is_detected(tmp_path: Path, mlp_run: Path) -> None:
    run_dir = _copy_run(mlp_run, tmp_path / "run")
    commitment = json.loads((run_dir / "commitment.json").read_text())
    commitment["signature"] = ("0" if commitment["signature"][0] != "0" else "1") + commitment["signature"][1:]
    (run_dir / "commitment.json").write_text(json.dumps(commitment))
    with pytest.raises(RunError, match="signature"):
        load_run(run_dir)


def test_training_refuses_to_overwrite_a_run(mlp_run: Path) -> None:
    with pytest.raises(RunError, match="already exists and is not an empty directory"):
        train(load_run(mlp_run).job, mlp_run, generate_private_key())


def test_cached_meta_results_give_the_same_skeletons(transformer_run: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Skeletons reuse the output metadata of functional operators seen before; with and without the
    cache they are the same, and both equal the skeleton of the real trace."""
    import protocol.recording
    from prover.presets import resolve_task
    from verifier.referee import TraceReferee

    run = load_run(transformer_run)
    monkeypatch.setattr(protocol.recording, "_META_RESULTS", {})
    cold = TraceReferee(run.job, resolve_task(run.job)).replay_skeleton(2)
    assert protocol.recording._META_RESULTS  # filled
    warm = TraceReferee(run.job, resolve_task(run.job)).replay_skeleton(2)
    monkeypatch.setattr(protocol.recording, "MAX_META_RESULTS", 0)
    monkeypatch.setattr(protocol.recording, "_META_RESULTS", {})
    uncached = TraceReferee(run.job, resolve_task(run.job)).replay_skeleton(2)
    assert cold == warm == uncached == regenerate_trace(run, 2).skeleton


def test_meta_cache_keys_include_the_memory_format(monkeypatch: pytest.MonkeyPatch) -> None:
    """clone() of a transposed tensor keeps its strides; contiguous() is a clone with another memory
    format: a cache that confused the two would hand contiguous() the transposed strides."""
    import protocol.recording
    from protocol.recording import Recorder

    monkeypatch.setattr(protocol.recording, "_META_RESULTS", {})
    x = torch.empty(8, 4, device="meta")
    recorder = Recorder(skeleton=True)
    recorder.bind_state(["x"], {"x": x})
    with ReproducibleMode(RngContext(0, 0), recorder=recorder):
        transposed = x.t()
        assert transposed.clone().stride() == (1, 4)
        contiguous = transposed.contiguous()
        assert contiguous.stride() == (8, 1)
        contiguous.view(32)
