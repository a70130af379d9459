"""Side-by-side timing: callables measured in interleaved rounds, so drift hits them all alike."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def measure(candidates: dict[str, Callable[[], object]], rounds: int = 7, target_seconds: float = 0.2) -> dict[str, dict[str, float]]:
    """Median and minimum seconds per call of each candidate, measured round-robin.

    Each sample repeats a candidate enough times to last about `target_seconds`."""
    repeats: dict[str, int] = {}
    for name, function in candidates.items():
        function()  # warm up: compile kernels, fill caches
        start = time.perf_counter()
        function()
        elapsed = time.perf_counter() - start
        repeats[name] = max(1, min(1000, int(target_seconds / max(elapsed, 1e-6))))
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, function in candidates.items():
            start = time.perf_counter()
            for _ in range(repeats[name]):
                function()
            samples[name].append((time.perf_counter() - start) / repeats[name])
    return {name: {"median": statistics.median(values), "min": min(values)} for name, values in samples.items()}


def ratio(results: dict[str, dict[str, float]], numerator: str, denominator: str) -> float:
    return results[numerator]["median"] / results[denominator]["median"]
