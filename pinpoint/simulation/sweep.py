"""Running an experiment's runs on any `concurrent.futures.Executor`.

The default is a local process pool; `dask_executor(address)` gives a Dask distributed cluster's
executor (`Client(address).get_executor()`), for sweeps across machines. Results come back in run
order whatever order the runs finish in, so the table does not depend on the executor.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, Future, ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from typing import Any

from pinpoint.simulation.config import RunSpec
from pinpoint.simulation.engine import RunResult, execute_run


class SweepError(RuntimeError):
    """A run failed (for instance an economy invariant broke); the message names the run."""


def run_sweep(
    runs: Sequence[RunSpec], executor: Executor, on_done: Callable[[RunResult], None] | None = None
) -> list[RunResult]:
    """Submit every run to `executor` and collect the results in run order; `on_done` is called as each
    finishes (for a progress bar). A failed run cancels the rest and raises SweepError."""
    futures: dict[Future[RunResult], RunSpec] = {executor.submit(execute_run, spec): spec for spec in runs}
    results: dict[int, RunResult] = {}
    try:
        for future in as_completed(futures):
            spec = futures[future]
            try:
                result = future.result()
            except Exception as error:
                point = "".join(f", {k}={v}" for k, v in spec.point)
                raise SweepError(
                    f"run {spec.index} (scenario {spec.scenario}{point}, repetition {spec.repetition}, seed {spec.seed}) "
                    f"failed: {type(error).__name__}: {error}"
                ) from error
            results[spec.index] = result
            if on_done is not None:
                on_done(result)
    finally:
        for future in futures:
            future.cancel()
    return [results[spec.index] for spec in runs]


def run_serial(runs: Sequence[RunSpec]) -> list[RunResult]:
    """Every run in this process, one after the other (for tests and profiling)."""
    return [execute_run(spec) for spec in runs]


def get_default_workers() -> int:
    """Local worker processes by default: the CPUs this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


@contextmanager
def local_executor(workers: int | None = None) -> Iterator[Executor]:
    """A process pool of `workers` processes (default: the CPU count), started with 'spawn' so no
    thread state of the parent (BLAS or OpenMP pools, a progress bar's monitor) is inherited. As with
    any spawned pool, a script that uses it guards its entry point with `if __name__ == "__main__":`."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=workers or get_default_workers(), mp_context=context) as pool:
        yield pool


@contextmanager
def dask_executor(address: str, timeout: float = 10.0) -> Iterator[Executor]:
    """The executor of a Dask distributed scheduler at `address` (e.g. tcp://10.0.0.5:8786). Raises
    SweepError if it cannot be reached within `timeout` seconds."""
    from dask.distributed import Client

    try:
        client = Client(address, timeout=timeout)
    except (OSError, TimeoutError, ValueError) as error:
        raise SweepError(f"cannot reach the Dask scheduler at {address!r}: {error}") from error
    try:
        yield client.get_executor()
    finally:
        client.close()


def describe_executor(executor: Any) -> str:
    return type(executor).__name__
