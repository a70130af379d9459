"""Named job presets for the command line: model sizes and optimizer settings that train well."""

from __future__ import annotations

from typing import Any

import torch

from protocol.job import JobSpec, OptimizerSpec
from prover.data import get_vocabulary

MODEL_SIZES: dict[str, dict[str, dict[str, Any]]] = {
    "mlp": {
        "small": {"hidden": 64, "layers": 2},
        "mid": {"hidden": 256, "layers": 3},
    },
    "transformer": {
        # ~60k parameters: seconds per step on a laptop core, used by tests and the demo
        "small": {"d_model": 64, "heads": 4, "layers": 2, "d_ff": 256, "context": 32},
        # the benchmark's mid-size model: 4 layers, d_model 256, sequence 128
        "mid": {"d_model": 256, "heads": 8, "layers": 4, "d_ff": 1024, "context": 128},
    },
}
BATCH_SIZES = {("mlp", "small"): 32, ("mlp", "mid"): 64, ("transformer", "small"): 8, ("transformer", "mid"): 16}
LEARNING_RATES = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3}


def make_job(model: str, optimizer: str, steps: int, seed: int, size: str = "small", batch_size: int | None = None) -> JobSpec:
    """A job spec from the command line's choices."""
    config = dict(MODEL_SIZES.get(model, {}).get(size, {}))
    if model == "transformer":
        config["vocab"] = len(get_vocabulary())
    spec = OptimizerSpec(name=optimizer, lr=LEARNING_RATES.get(optimizer, 0.01), weight_decay=0.01 if optimizer == "adamw" else 0.0)
    return JobSpec(
        model=model,
        optimizer=spec,
        steps=steps,
        seed=seed,
        batch_size=batch_size or BATCH_SIZES.get((model, size), 16),
        model_config=config,
        torch_version=torch.__version__.split("+")[0],
    )
