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
    from pinpoint.presets import make_job

    job = make_job(model, optimizer, steps, seed, "small")
    if model == "transformer":
        # a tiny transformer keeps the suite fast; the CLI's small preset is larger
        config = dict(job.model_config, d_model=32, heads=2, layers=1, d_ff=64, context=16)
        job = JobSpec(
            model=job.model, optimizer=job.optimizer, steps=steps, seed=seed, batch_size=4,
            model_config=config, torch_version=job.torch_version,
        )
    return job


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
