"""Write tests/vectors/float64.json: fixed float64 inputs and the reference outputs' bits.

Run `python -m tests.make_float64_vectors` after a deliberate change of a float64 definition. Every
float64 is its 64-bit pattern in 16 hex digits, tensors are row-major, every NaN output is
7ff8000000000000. A port of `protocol.semantics.float64` checks itself against this file.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from protocol import semantics

PATH = Path(__file__).parent / "vectors" / "float64.json"
SEED = 20261203
SPECIALS = [0.0, -0.0, 1.0, -1.0, 0.5, 2.0, float("inf"), float("-inf"), float("nan"), 5e-324, -5e-324,
            2.2250738585072014e-308, 1.7976931348623157e308, -1.7976931348623157e308]
RANGES = {"exp": (-746, 710), "log": (0, 1e6), "tanh": (-20, 20), "erf": (-7, 7), "sqrt": (0, 1e6),
          "rsqrt": (0, 1e6), "sin": (-100, 100), "cos": (-100, 100)}
ELEMENTWISE = tuple(RANGES)


def encode(x: torch.Tensor) -> dict[str, object]:
    """{"shape", "bits"}: 16-hex-digit patterns of a float64 tensor, row-major."""
    patterns = x.contiguous().view(torch.int64).reshape(-1).numpy().view(np.uint64)
    return {"shape": list(x.shape), "bits": [f"{int(v):016x}" for v in patterns]}


def decode(item: dict[str, Any]) -> torch.Tensor:
    """The float64 tensor of `encode`'s form."""
    patterns = np.array([int(h, 16) for h in item["bits"]], dtype=np.uint64)
    return torch.from_numpy(patterns.view(np.float64).copy()).reshape(tuple(item["shape"]))


def _elementwise_inputs(name: str, rng: np.random.Generator) -> torch.Tensor:
    low, high = RANGES[name]
    dense = rng.uniform(low, high, 32)
    small = rng.uniform(-1, 1, 16) * 10.0 ** rng.integers(-300, 1, 16)
    patterns = rng.integers(0, 2**63, 16, dtype=np.int64).view(np.float64)  # any bits, NaN payloads too
    return torch.from_numpy(np.concatenate([np.array(SPECIALS), dense, small, patterns]))


def build_cases() -> list[dict[str, Any]]:
    """Every case: op, inputs and the reference output (the definition of the expected bits)."""
    rng = np.random.default_rng(SEED)
    cases: list[tuple[str, tuple[torch.Tensor, ...]]] = [
        ("mm", (torch.tensor([[1e16, 1.0, -1e16, 1.0]], dtype=torch.float64), torch.ones(4, 1, dtype=torch.float64))),
        ("mm", (torch.from_numpy(rng.standard_normal((5, 9))), torch.from_numpy(rng.standard_normal((9, 4))))),
        ("bmm", (torch.from_numpy(rng.standard_normal((2, 3, 4))), torch.from_numpy(rng.standard_normal((2, 4, 5))))),
        ("rowsum", (torch.from_numpy(rng.standard_normal((3, 37)) * 10.0 ** rng.integers(-5, 6, (3, 37))),)),
        ("rowmax", (torch.tensor([[-0.0, 0.0, -0.0], [-0.0, -1.0, float("nan")]], dtype=torch.float64),)),
    ]
    for name in ELEMENTWISE:
        cases.append((name, (_elementwise_inputs(name, rng),)))
    return [
        {"op": op, "inputs": [encode(x) for x in inputs], "output": encode(getattr(semantics, f"reference_{op}")(*inputs))}
        for op, inputs in cases
    ]


def main() -> None:
    cases = build_cases()
    lines = ['{', ' "encoding": "float64 values as their 64-bit patterns in 16 hex digits; row-major",', ' "cases": [']
    lines += [f"  {json.dumps(case)}" + ("," if i + 1 < len(cases) else "") for i, case in enumerate(cases)]
    lines += [" ]", "}"]
    PATH.write_text("\n".join(lines) + "\n")
    print(f"wrote {len(cases)} cases to {PATH}")


if __name__ == "__main__":
    main()
