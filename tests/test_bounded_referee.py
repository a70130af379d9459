"""The referee's work per verdict is bounded whatever the disputed step: a hostile transcript for a
self-made job claiming 2^32 steps, disputed at step 2^20 or 2^31, is played and re-verified in seconds
and bounded memory, whether the parties' structure hints differ (one is not proven: its sender loses
without a meta step) or agree (one meta step from the proven layout of s_t)."""

from __future__ import annotations

import time
import tracemalloc
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
import torch

from protocol.encoding import compute_digest
from protocol.game import Reason, Role
from protocol.game.commitments import MAX_STEPS, TraceCommitment
from protocol.game.rules import compute_empty_root
from protocol.hint import compute_structure_hint
from protocol.job import JobSpec, compute_job_id
from protocol.merkle import compute_height, hash_leaf, hash_node
from protocol.session import Session, compute_skeleton, make_job
from protocol.signing import generate_private_key
from protocol.state import compute_state_root
from protocol.types import Root, StepIndex
from prover.presets import resolve_task
from prover.task import Task, load_task
from tests.conftest import small_job
from verifier.dispute import make_game_config, verify_dispute_transcript
from verifier.game.driver import play_game
from verifier.game.strategy import HonestStrategy
from verifier.referee import TraceReferee

CLAIMED_STEPS = MAX_STEPS  # 2^32: the most a job (and so a run commitment) may claim
MAX_SECONDS = 60.0  # generous: the bounded path takes well under a second here; a replay to 2^20 takes hours
MAX_PEAK_BYTES = 256 << 20  # traced Python allocations; a replay to 2^20 keeps ~60 KB per step (~60 GB)


def make_state(job: JobSpec, step: int, task: Task | None = None) -> dict[str, torch.Tensor]:
    """A state before step `step` of `job` as its task lays it out after the optimizer's first step,
    every counter at `step`: what a self-made job's s_t would look like."""
    session = Session(job, task if task is not None else resolve_task(job))
    for param in session.model.parameters():
        param.grad = torch.zeros_like(param)
    session.optimizer.step()
    tensors = session.state_tensors()
    for name, tensor in tensors.items():
        if tensor.numel() == 1 and (name.endswith("/step") or name == "step"):
            tensor.fill_(step)
    return {name: tensor.detach().clone() for name, tensor in tensors.items()}


class SparseChain:
    """The chain tree of s_0 … s_T with s_1 … s_t all equal to `agreed` and s_{t+1} … s_T all equal to
    `own`: any node, reveal or proof in O(height) hashes, without the 2^32 leaves."""

    def __init__(self, initial: Root, agreed: Root, own: Root, step: int, steps: int) -> None:
        self.leaves = (initial, agreed, own)
        self.step, self.size = step, steps + 1
        self.node = lru_cache(maxsize=None)(self._node)
        self.height = compute_height(self.size)
        self.root = self.node(self.height, 0)

    def leaf(self, index: int) -> Root:
        return self.leaves[0] if index == 0 else self.leaves[1] if index <= self.step else self.leaves[2]

    def _node(self, height: int, index: int) -> Root:
        low, high = index << height, (index + 1) << height
        if low >= self.size:
            return compute_empty_root(height)
        if height == 0:
            return hash_leaf(self.leaf(low))
        if high <= self.size and (low >= 1 and high - 1 <= self.step or low > self.step):
            child = self.node(height - 1, 2 * index)  # a run of equal leaves: both halves alike
            return hash_node(child, child)
        return hash_node(self.node(height - 1, 2 * index), self.node(height - 1, 2 * index + 1))

    def children(self, height: int, index: int, depth: int) -> tuple[Root, ...]:
        return tuple(self.node(height - depth, (index << depth) + k) for k in range(1 << depth))

    def prove(self, index: int) -> tuple[Root, ...]:
        return tuple(self.node(h, (index >> h) ^ 1) for h in range(self.height))


class HostileProvider:
    """A self-made party: a sparse chain and a trace commitment for step t with the hint it chooses."""

    def __init__(self, job: JobSpec, chain: SparseChain, trace: TraceCommitment) -> None:
        self.job_id, self.chain, self.trace = compute_job_id(job), chain, trace

    def get_job_id(self) -> bytes:
        return self.job_id

    def get_steps(self) -> int:
        return self.chain.size - 1

    def get_chain_tree(self) -> Any:
        return self.chain

    def get_state_root(self, index: int) -> Root:
        return self.chain.leaf(index)

    def get_trace_commitment(self, step: StepIndex) -> TraceCommitment:
        return self.trace


def play_hostile(step: int, hints: tuple[bytes, bytes] | None, num_ops: tuple[int, int] | None,
                 transcript: Path, job_steps: int = CLAIMED_STEPS) -> tuple[Any, TraceReferee, int]:
    """Play the game of two self-made parties whose run commitments claim 2^32 steps, disputing step
    `step`; returns the result, the referee and the true op count of the step."""
    job = small_job("mlp", "adam", steps=job_steps)
    task = resolve_task(job)
    state = make_state(job, step)
    agreed = compute_state_root({name: compute_digest(tensor) for name, tensor in state.items()})
    true_hint = compute_structure_hint(state)
    layout = {name: (tensor.dtype, tuple(tensor.shape)) for name, tensor in state.items()}
    scalars = {name: tensor for name, tensor in state.items() if tensor.numel() == 1}
    if step < job.steps:
        truth = compute_skeleton(job, task, layout, scalars)
        true_ops, true_leaves = len(truth.nodes), len(truth.bindings)
    else:  # the job has no such step: any counts
        true_ops, true_leaves = 1, 1
    counts = num_ops or (true_ops, true_ops)
    strategies = []
    for index, own in enumerate((Root(b"\x01" * 32), Root(b"\x02" * 32))):
        chain = SparseChain(Root(bytes.fromhex(job.initial)), agreed, own, step, CLAIMED_STEPS)
        hint = true_hint if hints is None else hints[index]
        trace = TraceCommitment(compute_job_id(job), StepIndex(step), agreed, own, Root(bytes([index]) * 32),
                                counts[index], true_leaves, hint)
        strategies.append(HonestStrategy(HostileProvider(job, chain, trace), generate_private_key()))  # type: ignore[arg-type]
    referee = TraceReferee(job, task)
    result = play_game(strategies[0], strategies[1], referee, make_game_config(16), context={"job": job.to_json()},
                       transcript_path=transcript)
    return result, referee, true_ops


def _bounded(call: Any) -> tuple[Any, float, int]:
    tracemalloc.start()
    start = time.perf_counter()
    try:
        value = call()
    finally:
        seconds = time.perf_counter() - start
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return value, seconds, peak


@pytest.mark.parametrize("log2_step", [20, 31])
def test_differing_hints_at_a_far_step_are_decided_by_the_proof(log2_step: int, tmp_path: Path) -> None:
    step = 1 << log2_step
    job = small_job("mlp", "adam", steps=CLAIMED_STEPS)
    state = make_state(job, step)
    wrong = compute_structure_hint(dict(state, step=torch.tensor(step + 1)))  # a hint of another state
    path = tmp_path / "transcript.json"
    (result, referee, _), seconds, peak = _bounded(lambda: play_hostile(step, (compute_structure_hint(state), wrong), None, path))
    verdict = result.verdict
    assert verdict.step == step and verdict.reason is Reason.BAD_PROOF and "structure hint" in verdict.detail
    assert verdict.winner is not None and verdict.winner.role is Role.WORKER
    assert referee.replayed_steps == 0  # decided by the proof: no meta step at all
    assert seconds < MAX_SECONDS and peak < MAX_PEAK_BYTES, (seconds, peak)
    verification, seconds, peak = _bounded(lambda: verify_dispute_transcript(path))
    assert verification.valid, verification.reason
    assert seconds < MAX_SECONDS and peak < MAX_PEAK_BYTES, (seconds, peak)


@pytest.mark.parametrize("log2_step", [20, 31])
def test_agreed_hints_at_a_far_step_take_one_meta_step(log2_step: int, tmp_path: Path) -> None:
    step = 1 << log2_step
    path = tmp_path / "transcript.json"
    job = small_job("mlp", "adam", steps=CLAIMED_STEPS)
    truth = len(compute_skeleton(job, resolve_task(job), *_layout(make_state(job, step))).nodes)
    (result, referee, true_ops), seconds, peak = _bounded(lambda: play_hostile(step, None, (truth + 1, truth), path))
    verdict = result.verdict
    assert true_ops == truth and verdict.step == step and verdict.reason is Reason.WRONG_STRUCTURE
    assert verdict.winner is not None and verdict.winner.role is Role.CHALLENGER  # the one with the true count
    assert referee.replayed_steps == 1
    assert seconds < MAX_SECONDS and peak < MAX_PEAK_BYTES, (seconds, peak)
    verification, seconds, peak = _bounded(lambda: verify_dispute_transcript(path))
    assert verification.valid, verification.reason
    assert seconds < MAX_SECONDS and peak < MAX_PEAK_BYTES, (seconds, peak)


def _layout(state: dict[str, torch.Tensor]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    return ({name: (tensor.dtype, tuple(tensor.shape)) for name, tensor in state.items()},
            {name: tensor for name, tensor in state.items() if tensor.numel() == 1})


def test_a_transcript_whose_commitments_claim_more_steps_than_its_job_is_refused(tmp_path: Path) -> None:
    """The job fixes T: commitments claiming 2^32 steps for a job of 2^20 judge nothing, and a dispute
    past the job's last step has no true step (both lose)."""
    path = tmp_path / "transcript.json"
    result, referee, _ = play_hostile(1 << 21, None, (1, 2), path, job_steps=1 << 20)
    assert result.verdict.reason is Reason.WRONG_STRUCTURE and result.verdict.winner is None
    assert referee.replayed_steps == 0
    verification = verify_dispute_transcript(path)
    assert not verification.valid and "steps" in verification.reason


def test_a_task_with_a_scheduler_keeps_its_position_in_the_state_so_a_far_step_takes_one_meta_step() -> None:
    """The scheduler's position is part of s_t (`sched/*`): restoring s_t never steps the scheduler
    t times, and the structure of a step far out is one meta step from the proven numbers."""
    task = load_task(Path(__file__).resolve().parents[1] / "examples" / "tasks" / "float64.py")  # cosine schedule
    job = make_job(task, CLAIMED_STEPS, 3)
    session = Session(job, task)
    assert {"sched/last_epoch", "sched/_step_count", "sched/base_lrs/0"} <= set(session.state_tensors())
    far = make_state(job, 2**31, task)
    for name in ("sched/last_epoch", "sched/_step_count"):
        far[name].fill_(2**31)
    shapes, scalars = _layout(far)
    skeleton, seconds, _ = _bounded(lambda: compute_skeleton(job, task, shapes, scalars))
    assert seconds < MAX_SECONDS and skeleton.nodes
    restored = Session(job, task)
    restored.load_state({name: tensor for name, tensor in far.items() if not name.startswith("data/")})
    assert restored.scheduler is not None and restored.scheduler.last_epoch == 2**31
