"""Write tests/kernels/vectors/kernels.json: fixed inputs and the reference's output bits.

Run `python -m tests.kernels.make_vectors` after a deliberate change of a reference's definition.
A port of the kernels to another language checks itself against this file: every float32 is an
8-hex-digit bit pattern, tensors are row-major, every NaN output is 7fc00000.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from protocol import semantics
from tests.kernels.support import NAN_PAYLOADS, SPECIALS, make_values

PATH = Path(__file__).parent / "vectors" / "kernels.json"
SEED = 20240917


def _encode(x: torch.Tensor) -> dict[str, object]:
    if x.dtype == torch.int64:
        return {"shape": list(x.shape), "int64": [int(v) for v in x.reshape(-1).tolist()]}
    patterns = x.contiguous().view(torch.int32).reshape(-1).numpy().view(np.uint32)
    return {"shape": list(x.shape), "bits": [f"{int(v):08x}" for v in patterns]}


def _elementwise_inputs(name: str) -> torch.Tensor:
    rng = np.random.default_rng(SEED)
    ranges = {"exp": (-104, 89), "log": (0, 4), "tanh": (-10, 10), "erf": (-4.5, 4.5), "sqrt": (0, 4), "rsqrt": (0, 4)}
    low, high = ranges[name]
    dense = rng.uniform(low, high, 40).astype(np.float32)
    patterns = rng.integers(0, 2**32, 24, dtype=np.uint64).astype(np.uint32).view(np.float32)
    return torch.from_numpy(np.concatenate([SPECIALS, NAN_PAYLOADS, dense, patterns]))


def build_cases() -> list[dict[str, Any]]:
    """Every case: op, inputs and the reference output (the definition of the expected bits)."""
    cases: list[tuple[str, tuple[torch.Tensor, ...]]] = [
        ("mm", (torch.tensor([[-(1 + 2.0**-11), 1 + 2.0**-12]]), torch.tensor([[1.0], [1 + 2.0**-12]]))),
        ("mm", (torch.tensor([[1e8, 1.0, -1e8, 1.0]]), torch.ones(4, 1))),
        ("mm", (make_values((3, 5), SEED, "wide", 0.2), make_values((5, 4), SEED + 1, "wide", 0.2))),
        ("mm", (make_values((7, 19), SEED + 2, "normal", 0.0), make_values((19, 20), SEED + 3, "normal", 0.0))),
        ("mm", (torch.empty(2, 0), torch.empty(0, 3))),
        ("bmm", (make_values((2, 3, 4), SEED + 4, "normal", 0.1), make_values((2, 4, 5), SEED + 5, "normal", 0.1))),
    ]
    for n in (0, 1, 2, 3, 5, 16, 17, 40, 513):
        cases.append(("rowsum", (make_values((2, n), SEED + n, "wide", 0.05),)))
    cases.append(("rowsum", (torch.tensor([[-0.0, -0.0, -0.0], [1e8, 1.0, -1e8]]),)))
    for n in (1, 3, 33):
        cases.append(("rowmax", (make_values((3, n), SEED + n, "wide", 0.1),)))
        cases.append(("rowargmax", (make_values((3, n), SEED + n, "wide", 0.1),)))
    cases.append(("rowmax", (torch.tensor([[-0.0, 0.0, -0.0], [-0.0, -1.0, -0.0]]),)))
    for name in ("exp", "log", "tanh", "erf", "sqrt", "rsqrt"):
        cases.append((name, (_elementwise_inputs(name),)))
    out = []
    for op, inputs in cases:
        result = getattr(semantics, f"reference_{op}")(*inputs)
        out.append({"op": op, "inputs": [_encode(x) for x in inputs], "output": _encode(result)})
    return out


def main() -> None:
    cases = build_cases()
    header = {
        "description": "pinpoint reproducible kernels: inputs and expected outputs of protocol.semantics",
        "encoding": "float32 values as their 32-bit patterns in 8 hex digits; int64 as numbers; row-major",
    }
    lines = ["{"] + [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in header.items()] + [' "cases": [']
    lines += [f"  {json.dumps(case)}" + ("," if i + 1 < len(cases) else "") for i, case in enumerate(cases)]
    lines += [" ]", "}"]
    PATH.parent.mkdir(parents=True, exist_ok=True)
    PATH.write_text("\n".join(lines) + "\n")
    print(f"wrote {len(cases)} cases to {PATH}")


if __name__ == "__main__":
    main()
