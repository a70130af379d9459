"""pinpoint's own operators, registered with torch's dispatcher so they are traced like aten ones."""

from __future__ import annotations

from typing import Any

import torch

from protocol.ops.prims import Primitives
from protocol.ops.random import compute_batch_indices
from protocol.ops.table import OpKind, Outputs, _register


@torch.library.custom_op("pinpoint::batch_indices", mutates_args=())
def batch_indices(seed: torch.Tensor, step: torch.Tensor, dataset_size: int, batch_size: int) -> torch.Tensor:
    """int64 [batch_size]: the data indices of `step` (see protocol.ops.random.compute_batch_indices)."""
    return compute_batch_indices(int(seed), int(step), dataset_size, batch_size).to(seed.device)


@batch_indices.register_fake
def _batch_indices_shape(seed: torch.Tensor, step: torch.Tensor, dataset_size: int, batch_size: int) -> torch.Tensor:
    return seed.new_empty((batch_size,), dtype=torch.int64)


def _batch_indices_definition(_: Primitives, a: dict[str, Any]) -> Outputs:
    return compute_batch_indices(int(a["seed"]), int(a["step"]), a["dataset_size"], a["batch_size"]).to(a["seed"].device)


_register("pinpoint::batch_indices.default", OpKind.DEFINED, _batch_indices_definition)
