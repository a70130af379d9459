"""The model zoo of examples/tasks/, end to end at test size: for every task, the chain root is the
same on 1 and 2 threads and in another process; a cheat at a random operator of a random step loses
the dispute at that step and node, and the transcript verifies; the referee's reference
re-execution of every node of a real step reproduces the recorded digests, and its skeleton (replayed
or from a hint) equals the real step's structure."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from protocol.ops import OpKind, get_definition
from protocol.recording import Tamper
from protocol.session import make_job
from protocol.state import compute_state_root
from protocol.trace import is_derived
from prover.run import Run, TamperError, load_run, regenerate_trace, train
from prover.task import Task, load_task
from tests.referee_replay import assert_nodes_re_execute
from verifier.dispute import dispute_runs, verify_dispute_transcript
from verifier.referee import TraceReferee

REPO = Path(__file__).resolve().parents[1]
TASKS = REPO / "examples" / "tasks"
ZOO = ["resnet", "gpt", "llama", "rnn", "tabular", "float64", "autocast", "hf_llama", "hf_gpt2", "hf_bert"]
FLOAT_CODES = (1, 2, 3, 4)  # float32, float64, float16 and bfloat16 outputs: a fault there can reach the loss
STEPS = 3


def _chain_root_in_subprocess(task_file: Path, out: Path, threads: int) -> str:
    env = dict(os.environ, OMP_NUM_THREADS=str(threads), NUMBA_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    code = (
        "import sys, torch; torch.set_num_threads(int(sys.argv[3]));"
        "from prover.task import load_task; from protocol.session import make_job; from prover.run import train;"
        "from protocol.signing import generate_private_key;"
        "task = load_task(sys.argv[1]);"
        f"run = train(make_job(task, {STEPS}, 5), sys.argv[2], generate_private_key(), task=task);"
        "print(run.chain_root.hex())"
    )
    result = subprocess.run(
        [sys.executable, "-c", code, str(task_file), str(out), str(threads)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=True,
    )
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module", params=ZOO)
def zoo(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[Task, Path, Run]:
    path = TASKS / f"{request.param}.py"
    task = load_task(path)
    out = tmp_path_factory.mktemp("zoo") / request.param
    run = train(make_job(task, STEPS, 5), out, checkpoint_every=2, task=task)
    return task, path, run


def test_chain_root_is_the_same_on_one_and_two_threads_and_in_another_process(zoo: tuple[Task, Path, Run], tmp_path: Path) -> None:
    _, path, run = zoo
    assert _chain_root_in_subprocess(path, tmp_path / "one", threads=1) == run.chain_root.hex()


def test_a_cheat_at_a_random_operator_loses_at_that_step_and_node(zoo: tuple[Task, Path, Run], tmp_path: Path) -> None:
    task, _, run = zoo
    rng = random.Random(task.name)
    step = rng.randrange(STEPS)
    nodes = TraceReferee(run.job, task).replay_skeleton(step).nodes
    candidates = [
        j for j, node in enumerate(nodes)
        if not is_derived(node) and node.outputs and node.outputs[0] is not None and node.outputs[0].dtype in FLOAT_CODES
        and get_definition(node.op).kind is OpKind.DEFINED
    ]
    rng.shuffle(candidates)
    for attempt, node in enumerate(candidates[:6]):  # a fault that later roundings absorb is refused
        cheat = tmp_path / f"cheat-{attempt}"
        try:
            cheated = train(run.job, cheat, checkpoint_every=2, tamper=Tamper("output", step, node), task=task)
        except TamperError:  # refused: the fault never reaches s_{step+1}
            continue
        assert cheated.chain_root != run.chain_root
        break
    else:
        pytest.fail("no fault among six changed the run")
    transcript = tmp_path / "transcript.json"
    verdict = dispute_runs(cheat, run.path, arity=4, transcript_path=transcript, task=task).to_json()
    assert verdict["winner"]["role"] == "challenger"
    assert (verdict["step"], verdict["node"]) == (step, node), nodes[node].op
    assert verify_dispute_transcript(transcript, task).valid


def test_every_node_of_a_real_step_re_executes_from_the_reference(zoo: tuple[Task, Path, Run]) -> None:
    task, _, run = zoo
    run = load_run(run.path)
    tensors: dict[bytes, torch.Tensor] = {}
    trace = regenerate_trace(run, 1, tensors=tensors, task=task)
    names = sorted(trace.state_before, key=str.encode)
    assert_nodes_re_execute(trace.nodes, [trace.state_before[name] for name in names], tensors)
    # the referee's skeleton, from meta tensors alone, is the real step's structure node for node
    referee = TraceReferee(run.job, task)
    assert referee.replay_skeleton(1) == trace.skeleton
    assert referee.get_skeleton(1, compute_state_root(trace.state_before), (trace.hint, b"")) == trace.skeleton
