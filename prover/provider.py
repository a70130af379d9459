"""Answering a dispute's queries from a run on disk (the game's `TraceProvider`).

Everything about the disputed step is regenerated once, lazily, from the checkpoint before it and
kept: the trace, its ops tree, the state trees on either side, and every tensor the step touched (so
the party can hand the referee any input it asks for). States away from the disputed step are
rebuilt by replaying from the nearest checkpoint. A checkpoint whose file is missing or corrupt is
rebuilt from its shards; every shard refused on the way is kept with its holder's name (`set_aside`).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from protocol.availability import Discarded, Recovery
from protocol.encoding import encode_tensor
from protocol.game.commitments import TraceCommitment
from protocol.merkle import MerkleTree
from protocol.state import compute_state_leaf, compute_state_root, compute_state_tree, get_sorted_names
from protocol.trace import StepTrace, encode_node
from protocol.types import Root, StepIndex
from prover.presets import resolve_task
from prover.run import Run, compute_state_digests, regenerate_trace, restore_session
from prover.task import Task


class RunTraceProvider:
    """A `protocol.game.interfaces.TraceProvider` over a run directory."""

    def __init__(self, run: Run, on_progress: Callable[[str], None] | None = None, task: Task | None = None) -> None:
        self.run = run
        self.task = resolve_task(run.job, task)
        self.on_progress = on_progress
        self._chain = run.chain_tree()
        self._digests: dict[int, dict[str, Root]] = {}
        self._traces: dict[int, StepTrace] = {}
        self._ops_trees: dict[int, MerkleTree] = {}
        self._tensors: dict[int, dict[bytes, torch.Tensor]] = {}
        self.set_aside: list[Discarded] = []  # shards refused while rebuilding checkpoints, each naming its holder

    # --- the chain --------------------------------------------------------------------------------

    def get_job_id(self) -> bytes:
        return self.run.job_id

    def get_steps(self) -> int:
        return self.run.job.steps

    def get_chain_tree(self) -> MerkleTree:
        return self._chain

    def get_state_root(self, index: int) -> Root:
        return self.run.roots[index]

    def _state_digests(self, index: int) -> dict[str, Root]:
        if index - 1 in self._traces:
            return self._traces[index - 1].state_after
        if index in self._traces:
            return self._traces[index].state_before
        if index not in self._digests:
            self._progress(f"rebuilding state s_{index}")
            session = restore_session(self.run, index, task=self.task, on_shards=self._on_shards)
            self._digests[index] = compute_state_digests(session.state_tensors())
        return self._digests[index]

    def get_state_tree(self, index: int) -> MerkleTree:
        return compute_state_tree(self._state_digests(index))

    def get_state_leaf(self, index: int, leaf: int) -> bytes:
        digests = self._state_digests(index)
        name = get_sorted_names(digests)[leaf]
        return compute_state_leaf(name, digests[name])

    # --- one step ---------------------------------------------------------------------------------

    def get_trace(self, step: int) -> StepTrace:
        if step not in self._traces:
            self._progress(f"regenerating step {step} from its checkpoint")
            tensors: dict[bytes, torch.Tensor] = {}
            trace = regenerate_trace(self.run, step, tensors=tensors, task=self.task, on_shards=self._on_shards)
            self._traces[step] = trace
            self._tensors[step] = tensors
            self._ops_trees[step] = trace.ops_tree()
        return self._traces[step]

    def get_trace_commitment(self, step: StepIndex) -> TraceCommitment:
        trace = self.get_trace(step)
        return TraceCommitment(
            job_id=self.run.job_id,
            step=step,
            state_before=compute_state_root(trace.state_before),
            state_after=compute_state_root(trace.state_after),
            ops_root=self._ops_trees[step].root,
            num_ops=len(trace.nodes),
            num_state_after=len(trace.state_after),
            hint=trace.hint,
        )

    def get_ops_tree(self, step: StepIndex) -> MerkleTree:
        self.get_trace(step)
        return self._ops_trees[step]

    def get_op_leaf(self, step: StepIndex, index: int) -> bytes:
        return encode_node(self.get_trace(step).nodes[index])

    def get_tensor(self, step: StepIndex, digest: Root) -> bytes | None:
        self.get_trace(step)
        tensor = self._tensors[step].get(bytes(digest))
        return None if tensor is None else encode_tensor(tensor)

    def _on_shards(self, step: int, line: str, recovery: Recovery) -> None:
        self._progress(f"checkpoint {step} from shards: {line}")
        self.set_aside.extend(d for d in recovery.discarded if d not in self.set_aside)

    def _progress(self, message: str) -> None:
        if self.on_progress is not None:
            self.on_progress(message)
