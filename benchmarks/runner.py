"""A measurement child: one process that loads one task (or a set of kernels) and times it on request.

The benchmarks start each side in its own process, so neither disturbs the other's thread pools or
environment, and ask them in turn (A B A B) over a pipe; each side times itself and reports seconds.

    python runner.py native TASK_FILE          a plain PyTorch loop; imports nothing of pinpoint
    python runner.py reproducible TASK_FILE    pinpoint's session under the reproducible mode (and, asked
                                               "floor", the same session under an empty dispatch mode)
    python runner.py replay TASK_FILE          pinpoint's session run by `prover.replay.Replayer` (`train --replay`)
    python runner.py train TASK_FILE RUN STEPS check the task's operators, then train a run into RUN
    python runner.py trace TASK_FILE RUN       regenerate traces of the run in RUN
    python runner.py ops SPEC_JSON             torch's own kernels on fixed operands (bench_kernels)

Protocol: one JSON object per line. The child first answers {"ready": ...} (or {"error": ...});
then each request {"do": WHAT, "n": COUNT, ...} is answered by {"times": [seconds, ...], "maxrss_kb":
peak resident memory so far}; {"do": "quit"} ends it. The task's own printing goes to stderr, so it
cannot corrupt the protocol.

The native mode is what a user would run without pinpoint: torch's default environment and thread
settings (the parent starts it with a clean environment), the task file loaded with plain `exec`, and
the ordinary loop: zero_grad, loss, backward, clip, step, scheduler, on random batches of the data.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

Times = list[float]


def get_maxrss_kb() -> int:
    """This process's peak resident memory, in KiB (Linux reports ru_maxrss in KiB)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def load_task_module(path: Path) -> types.ModuleType:
    """The task file executed in a fresh module, as a plain script would import it."""
    module = types.ModuleType("task")
    module.__file__ = str(path)
    sys.modules["task"] = module
    exec(compile(path.read_bytes(), str(path), "exec"), module.__dict__)  # noqa: S102  (our own task files)
    return module


class NativeLoop:
    """The task trained by the ordinary PyTorch loop, with the optimizer's `foreach` setting switchable."""

    def __init__(self, path: Path, seed: int = 0) -> None:
        import torch

        self.torch = torch
        task = load_task_module(path)
        self.task = task
        torch.manual_seed(seed)
        self.model = task.build_model()
        self.optimizer = task.build_optimizer(self.model.parameters())
        self.scheduler = task.build_scheduler(self.optimizer) if hasattr(task, "build_scheduler") else None
        self.data = task.load_data()
        self.examples = int(next(iter(self.data.values())).shape[0])
        self.batch_size = int(getattr(task, "batch_size", None) or 32)
        self.accumulation = int(getattr(task, "accumulation_steps", 1))
        self.grad_clip = getattr(task, "grad_clip", None)
        self.generator = torch.Generator().manual_seed(seed)
        has_foreach = all("foreach" in group for group in self.optimizer.param_groups)
        self.written = [group.get("foreach") for group in self.optimizer.param_groups]
        # The task's optimizer as written, and with the other `foreach` choices when it has the option.
        self.configs = ["as written"]
        if has_foreach:
            self.configs += [f"foreach={value}" for value in (False, True) if any(w is not value for w in self.written)]

    def configure(self, config: str) -> None:
        for group, written in zip(self.optimizer.param_groups, self.written, strict=True):
            if "foreach" in group:
                group["foreach"] = {"as written": written, "foreach=False": False, "foreach=True": True}[config]

    def step(self) -> None:
        torch = self.torch
        count = self.batch_size * self.accumulation
        indices = torch.randint(self.examples, (count,), generator=self.generator)
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        for m in range(self.accumulation):
            part = indices[m * self.batch_size : (m + 1) * self.batch_size]
            loss = self.task.compute_loss(self.model, {name: t[part] for name, t in self.data.items()})
            if self.accumulation > 1:
                loss = loss / self.accumulation
            loss.backward()
        if self.grad_clip is not None:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.grad_clip)
        self.optimizer.step()
        if self.scheduler is not None:
            self.scheduler.step()


def time_calls(function: Callable[[], object], n: int) -> Times:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return times


def serve_native(path: Path, reply: Callable[[dict[str, Any]], None], requests: TextIO) -> None:
    import torch

    loop = NativeLoop(path)
    for config in loop.configs:  # warm up every configuration (allocator, lazy initialisation)
        loop.configure(config)
        loop.step()
    reply({"ready": True, "threads": torch.get_num_threads(), "configs": loop.configs,
           "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"), "maxrss_kb": get_maxrss_kb()})
    for request in map(json.loads, requests):
        if request["do"] == "quit":
            return
        loop.configure(request.get("config", "as written"))
        reply({"times": time_calls(loop.step, request["n"]), "maxrss_kb": get_maxrss_kb()})


def serve_reproducible(path: Path, reply: Callable[[dict[str, Any]], None], requests: TextIO) -> None:
    import tempfile  # noqa: I001  (prover first: its process settings come before torch loads)

    import prover  # noqa: F401
    import torch
    from protocol.recording import ReproducibleMode, RngContext
    from prover.process import tune_process
    from prover.run import Committer, get_primitives_for
    from protocol.session import Session, make_job
    from prover.task import load_task
    from torch.utils._python_dispatch import TorchDispatchMode

    tune_process()
    task = load_task(path)
    job = make_job(task, 1 << 20, 0)
    session = Session(job, task)
    primitives_for = get_primitives_for()
    folder = Path(tempfile.mkdtemp(prefix="pinpoint-bench-commit-"))
    committer = Committer(folder, 1, job.steps)
    operators = [0]

    def step() -> None:
        mode = ReproducibleMode(RngContext(job.seed, int(session.step)), primitives_for)
        with mode:
            session.run_step()
        operators[0] = mode.node_count

    floor_session = Session(job, task)

    class EmptyMode(TorchDispatchMode):
        """Every operator straight to torch's own kernel: what intercepting operators costs by itself."""

        def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (), kwargs: Any = None) -> Any:
            return func(*args, **(kwargs or {}))

    def floor_step() -> None:
        with EmptyMode():
            floor_session.run_step()

    def committed(n: int) -> Times:
        """n steps as `train --checkpoint-every 1` runs them: each state hashed and written on a
        background thread while the next step computes. Each step's time includes waiting for the
        previous state's commit (so the pipeline is one deep, as in a long run) and snapshotting its
        own state; the last commit is drained untimed, before the other side's turn."""
        committer.submit(int(session.step), session.state_tensors())
        times = []
        for _ in range(n):
            start = time.perf_counter()
            step()
            committer.pending.pop().result()
            committer.submit(int(session.step), session.state_tensors())
            times.append(time.perf_counter() - start)
        committer.finish()
        committer.pending.clear()
        for file in (folder / "checkpoints").glob("*"):
            file.unlink()
        return times

    try:
        step()  # warm up: loads the compiled kernels
        step()
        floor_step()
    except Exception as error:  # an operator not defined yet: reported, not raised
        reply({"error": f"{type(error).__name__}: {error}"})
        return
    reply({"ready": True, "threads": torch.get_num_threads(), "operators": operators[0], "maxrss_kb": get_maxrss_kb()})
    try:
        for request in map(json.loads, requests):
            if request["do"] == "quit":
                return
            if request["do"] == "committed":
                times = committed(request["n"])
            else:
                times = time_calls(floor_step if request["do"] == "floor" else step, request["n"])
            reply({"times": times, "maxrss_kb": get_maxrss_kb()})
    finally:
        committer.close()


def serve_replay(path: Path, reply: Callable[[dict[str, Any]], None], requests: TextIO) -> None:
    import prover  # noqa: F401, I001  (prover first: its process settings come before torch loads)
    from protocol.session import Session, make_job
    from prover.process import tune_process
    from prover.replay import Replayer
    from prover.run import get_primitives_for
    from prover.task import load_task

    tune_process()
    task = load_task(path)
    job = make_job(task, 1 << 20, 0)
    replayer = Replayer(Session(job, task), get_primitives_for())
    for _ in range(4):  # two captured steps that agree, then replayed ones (warm)
        replayer.run_step()
    reply({"ready": True, "replaying": replayer.program is not None, "reason": replayer.counts.reason,
           "maxrss_kb": get_maxrss_kb()})
    for request in map(json.loads, requests):
        if request["do"] == "quit":
            return
        times = time_calls(replayer.run_step, request["n"])
        counts = replayer.counts
        reply({"times": times, "maxrss_kb": get_maxrss_kb(),
               "counts": {"replayed": counts.replayed, "captured": counts.captured, "eager": counts.eager}})


def serve_train(path: Path, run: Path, steps: int, reply: Callable[[dict[str, Any]], None]) -> None:
    from protocol.session import make_job
    from prover.coverage import check_coverage
    from prover.process import tune_process
    from prover.run import train
    from prover.task import load_task

    tune_process()
    task = load_task(path)
    job = make_job(task, steps, 0)
    coverage = check_coverage(job, task)
    if coverage.missing:
        reply({"undefined": list(coverage.missing), "describe": coverage.describe_missing()})
        return
    start = time.perf_counter()
    train(job, run, checkpoint_every=1, task=task)
    reply({"ready": True, "seconds": time.perf_counter() - start, "maxrss_kb": get_maxrss_kb()})


def serve_trace(path: Path, run_path: Path, reply: Callable[[dict[str, Any]], None], requests: TextIO) -> None:
    from prover.process import tune_process
    from prover.run import load_run, regenerate_trace
    from prover.task import load_task

    tune_process()
    task = load_task(path)
    run = load_run(run_path)
    last = run.job.steps - 1
    nodes = [0]

    def regenerate() -> None:
        nodes[0] = len(regenerate_trace(run, last, task=task).nodes)

    regenerate()  # warm up
    reply({"ready": True, "nodes": nodes[0], "maxrss_kb": get_maxrss_kb()})
    for request in map(json.loads, requests):
        if request["do"] == "quit":
            return
        reply({"times": time_calls(regenerate, request["n"]), "maxrss_kb": get_maxrss_kb()})


def serve_ops(spec: list[dict[str, Any]], reply: Callable[[dict[str, Any]], None], requests: TextIO) -> None:
    """torch's kernels on the operands `spec` describes: [{"name", "op", "shapes", "positive",
    "transpose", "transpose_left"}]; a request {"do": NAME, "n": repeats, "rounds": samples} answers seconds per call."""
    import torch

    named: dict[str, Callable[..., object]] = {"matmul": torch.matmul, "bmm": torch.bmm,
                                               "rowsum": lambda v: torch.sum(v, dim=1), "rowmax": lambda v: torch.amax(v, dim=1)}

    def bind(function: Callable[..., object], operands: list[Any]) -> Callable[[], object]:
        return lambda: function(*operands)

    calls: dict[str, Callable[[], object]] = {}
    for entry in spec:
        operands = []
        for shape in entry["shapes"]:
            x = torch.randn(*shape, generator=torch.Generator().manual_seed(sum(shape)))
            operands.append(x.abs() + 1e-3 if entry.get("positive") else x)
        if entry.get("transpose"):
            operands[-1] = operands[-1].t()
        if entry.get("transpose_left"):
            operands[0] = operands[0].t()
        calls[entry["name"]] = bind(named.get(entry["op"]) or getattr(torch, entry["op"]), operands)
    for call in calls.values():
        call()
    reply({"ready": True, "threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY")})
    for request in map(json.loads, requests):
        if request["do"] == "quit":
            return
        call = calls[request["do"]]
        samples = []
        for _ in range(request.get("rounds", 1)):
            start = time.perf_counter()
            for _ in range(request["n"]):
                call()
            samples.append((time.perf_counter() - start) / request["n"])
        reply({"times": samples, "maxrss_kb": get_maxrss_kb()})


def main() -> None:
    protocol = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)  # the task's own output goes to stderr
    sys.stdout = sys.stderr

    def reply(message: dict[str, Any]) -> None:
        protocol.write(json.dumps(message) + "\n")
        protocol.flush()

    mode, *args = sys.argv[1:]
    try:
        if mode == "native":
            serve_native(Path(args[0]), reply, sys.stdin)
        elif mode == "reproducible":
            serve_reproducible(Path(args[0]), reply, sys.stdin)
        elif mode == "replay":
            serve_replay(Path(args[0]), reply, sys.stdin)
        elif mode == "train":
            serve_train(Path(args[0]), Path(args[1]), int(args[2]), reply)
        elif mode == "trace":
            serve_trace(Path(args[0]), Path(args[1]), reply, sys.stdin)
        elif mode == "ops":
            serve_ops(json.loads(args[0]), reply, sys.stdin)
        else:
            reply({"error": f"unknown mode {mode!r}"})
    except Exception as error:
        reply({"error": f"{type(error).__name__}: {error}"})


if __name__ == "__main__":
    main()
