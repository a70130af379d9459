"""Shared fixtures: small jobs and runs trained once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

import prover  # noqa: F401  (first: sets the OpenMP wait policy before torch loads)
from protocol.job import JobSpec

settings.register_profile("ci", max_examples=40, deadline=None, derandomize=True)
settings.register_profile("dev", max_examples=40, deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


def small_job(model: str = "mlp", optimizer: str = "sgd", steps: int = 4, seed: int = 7) -> JobSpec:
    """A preset job at test size (the transformer's "tiny" preset keeps the suite fast)."""
    from pinpoint.presets import make_job

    return make_job(model, optimizer, steps, seed, "tiny" if model == "transformer" else "small")


@pytest.fixture(scope="session")
def mlp_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from prover.run import train

    out = tmp_path_factory.mktemp("runs") / "mlp"
    train(small_job("mlp", "adam", steps=4), out, checkpoint_every=2)
    return out


@pytest.fixture(scope="session")
def transformer_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from prover.run import train

    out = tmp_path_factory.mktemp("runs") / "transformer"
    train(small_job("transformer", "adamw", steps=3), out, checkpoint_every=2)
    return out
