"""Fixed test vectors (tests/kernels/vectors/kernels.json): both implementations reproduce them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.kernels.support import IMPLEMENTATIONS, Implementation, assert_same_bits

VECTORS = json.loads((Path(__file__).parent / "vectors" / "kernels.json").read_text())["cases"]


def decode(item: dict) -> torch.Tensor:
    """A tensor from its JSON form: float32 bit patterns in hex, or int64 numbers."""
    shape = tuple(item["shape"])
    if "int64" in item:
        return torch.tensor(item["int64"], dtype=torch.int64).reshape(shape)
    patterns = np.array([int(h, 16) for h in item["bits"]], dtype=np.uint32)
    return torch.from_numpy(patterns.view(np.float32).copy()).reshape(shape)


def test_vectors_cover_the_required_operators():
    assert {"mm", "bmm", "rowsum", "rowmax", "rowargmax", "exp", "log", "tanh", "erf", "sqrt", "rsqrt"} <= {
        case["op"] for case in VECTORS
    }


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda i: i.name)
@pytest.mark.parametrize("index", range(len(VECTORS)), ids=lambda i: f"{VECTORS[i]['op']}-{i}")
def test_vector(impl: Implementation, index: int):
    case = VECTORS[index]
    inputs = [decode(item) for item in case["inputs"]]
    assert_same_bits(impl(case["op"], *inputs), decode(case["output"]), f"{impl.name} {case['op']} vector {index}")
