"""Side-by-side timing: callables measured in interleaved rounds, so drift hits them all alike."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def measure(candidates: dict[str, Callable[[], object]], rounds: int = 7, target_seconds: float = 0.2,
            remote: dict[str, Callable[[int], list[float]]] | None = None) -> dict[str, dict[str, float]]:
    """Median and minimum seconds per call of each candidate, measured round-robin.

    Each sample repeats a candidate enough times to last about `target_seconds`. A `remote` candidate
    runs elsewhere (a `Child`): called with a count, it makes that many calls and returns the seconds
    of each, timed where they ran; its sample is their mean, like a local one's."""
    local: dict[str, Callable[[int], list[float]]] = {name: _timed(function) for name, function in candidates.items()}
    everyone = {**local, **(remote or {})}
    repeats: dict[str, int] = {}
    for name, timed in everyone.items():
        timed(1)  # warm up: compile kernels, fill caches
        elapsed = timed(1)[0]
        repeats[name] = max(1, min(1000, int(target_seconds / max(elapsed, 1e-6))))
    samples: dict[str, list[float]] = {name: [] for name in everyone}
    for _ in range(rounds):
        for name, timed in everyone.items():
            samples[name].append(statistics.fmean(timed(repeats[name])))
            if name in (remote or {}):
                time.sleep(0.1)  # the other process's idle threads go to sleep before the next turn
    return {name: {"median": statistics.median(values), "min": min(values)} for name, values in samples.items()}


def _timed(function: Callable[[], object]) -> Callable[[int], list[float]]:
    """`function` as a remote candidate: n calls, the mean seconds per call (n times, for fmean)."""

    def timed(n: int) -> list[float]:
        start = time.perf_counter()
        for _ in range(n):
            function()
        return [(time.perf_counter() - start) / n] * n

    return timed


def ratio(results: dict[str, dict[str, float]], numerator: str, denominator: str) -> float:
    return results[numerator]["median"] / results[denominator]["median"]


# --- measurement children ---------------------------------------------------------------------------

RUNNER = Path(__file__).resolve().parent / "runner.py"
# Settings pinpoint (or the Makefile) adds to its own processes; a user running plain torch has none.
_NOT_NATIVE = ("OMP_", "GOMP_", "KMP_", "MKL_", "NUMBA_")


def get_clean_environment() -> dict[str, str]:
    """The environment of a process that never saw pinpoint: no OpenMP or numba settings."""
    return {name: value for name, value in os.environ.items() if not name.startswith(_NOT_NATIVE)}


class Child:
    """A measurement process (`runner.py`): started in its own environment, asked over a pipe.

    Its first message (ready, or an error) is in `hello`."""

    def __init__(self, *args: str, clean: bool = False) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(RUNNER), *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
            env=get_clean_environment() if clean else dict(os.environ), stderr=subprocess.DEVNULL,
        )
        self._hello: dict[str, Any] | None = None

    @property
    def hello(self) -> dict[str, Any]:
        if self._hello is None:
            self._hello = self._read()
        return self._hello

    @property
    def ready(self) -> bool:
        return bool(self.hello.get("ready"))

    def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            return {"error": f"the measurement process ended (exit code {self.process.wait()})"}
        message: dict[str, Any] = json.loads(line)
        return message

    def ask(self, what: str, n: int, **options: Any) -> dict[str, Any]:
        """Run `what` n times in the child; its answer holds the seconds of each ("times")."""
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps({"do": what, "n": n, **options}) + "\n")
        self.process.stdin.flush()
        answer = self._read()
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                assert self.process.stdin is not None
                self.process.stdin.write(json.dumps({"do": "quit"}) + "\n")
                self.process.stdin.close()
                self.process.wait(timeout=30)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
