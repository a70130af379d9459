"""Shared pieces of the kernel test suite: the two implementations, input generators, bit checks.

Every property test runs against both implementations (STYLE.md, item 7): `protocol.semantics`
(the reference, which defines the bits) and `prover.kernels` (the fast CPU kernels).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numba
import numpy as np
import torch
from hypothesis import strategies as st

import prover.kernels as fast
from protocol import semantics

SPECIALS = np.array(
    [0.0, -0.0, np.inf, -np.inf, np.nan, 2.0**-149, -(2.0**-149), 2.0**-130, 2.0**-126, 1e-38,
     3.0e38, -3.0e38, 1e30, -1e30, 1.0, -1.0, 0.5],
    dtype=np.float32,
)
"""Values the generators mix in: zeros of both signs, infinities, NaN, subnormals, huge and tiny."""

NAN_PAYLOADS = np.array([0x7FC12345, 0xFFC00000, 0x7F800001, 0xFFFFFFFF], dtype=np.uint32).view(np.float32)
"""NaNs with payloads, signalling bits and signs: results must still be the canonical NaN."""


@dataclass(frozen=True)
class Implementation:
    """One implementation of the kernel set, by name."""

    name: str
    ops: Any  # a module exposing mm, bmm, rowsum, …

    def __call__(self, op: str, *args: torch.Tensor) -> torch.Tensor:
        return getattr(self.ops, op)(*args)


class _ReferenceOps:
    mm = staticmethod(semantics.reference_mm)
    bmm = staticmethod(semantics.reference_bmm)
    rowsum = staticmethod(semantics.reference_rowsum)
    rowmax = staticmethod(semantics.reference_rowmax)
    rowargmax = staticmethod(semantics.reference_rowargmax)
    exp = staticmethod(semantics.reference_exp)
    log = staticmethod(semantics.reference_log)
    tanh = staticmethod(semantics.reference_tanh)
    erf = staticmethod(semantics.reference_erf)
    sqrt = staticmethod(semantics.reference_sqrt)
    rsqrt = staticmethod(semantics.reference_rsqrt)


MAX_THREADS: int = numba.config.NUMBA_NUM_THREADS  # type: ignore[attr-defined]
"""The most threads numba may use in this process."""

REFERENCE = Implementation("reference", _ReferenceOps)
FAST = Implementation("fast", fast)
IMPLEMENTATIONS = [REFERENCE, FAST]
ELEMENTWISE = ["exp", "log", "tanh", "erf", "sqrt", "rsqrt"]


def bits(x: torch.Tensor) -> torch.Tensor:
    """The int32 bit patterns of a float32 tensor."""
    return x.contiguous().view(torch.int32)


def assert_same_bits(actual: torch.Tensor, expected: torch.Tensor, what: str = "") -> None:
    """Bit-for-bit equality (NaNs included: every NaN must be the canonical one on both sides)."""
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    assert actual.dtype == expected.dtype, f"{what}: dtype {actual.dtype} != {expected.dtype}"
    if actual.dtype != torch.float32:
        assert torch.equal(actual, expected), what
        return
    a, e = bits(actual), bits(expected)
    if not torch.equal(a, e):
        differ = (a != e).reshape(-1).nonzero().reshape(-1)
        first = int(differ[0])
        got, want = int(a.reshape(-1)[first]) & 0xFFFFFFFF, int(e.reshape(-1)[first]) & 0xFFFFFFFF
        raise AssertionError(f"{what}: {len(differ)} elements differ; flat index {first}: {got:#010x} != {want:#010x}")


def make_values(shape: tuple[int, ...], seed: int, mode: str, special_rate: float) -> torch.Tensor:
    """A float32 tensor: 'normal' N(0,1) values, 'wide' values spanning 2**-140 … 2**100 in
    magnitude, or 'bits' (uniformly random bit patterns: every class of float32); a fraction
    `special_rate` replaced by SPECIALS and NaN payloads."""
    rng = np.random.default_rng(seed)
    count = int(np.prod(shape)) if shape else 1
    if mode == "normal":
        values = rng.standard_normal(count).astype(np.float32)
    elif mode == "wide":
        magnitudes = np.exp2(rng.uniform(-140, 100, count))
        values = (magnitudes * rng.choice([-1.0, 1.0], count)).astype(np.float32)
    else:
        values = rng.integers(0, 2**32, count, dtype=np.uint64).astype(np.uint32).view(np.float32)
    if special_rate > 0:
        mask = rng.random(count) < special_rate
        pool = np.concatenate([SPECIALS, NAN_PAYLOADS])
        values = np.where(mask, pool[rng.integers(0, len(pool), count)], values).astype(np.float32)
    return torch.from_numpy(values.reshape(shape).copy())


def relayout(x: torch.Tensor, layout: str) -> torch.Tensor:
    """The same values in another memory layout: 'contiguous', 'transposed' (column-major storage),
    'strided' (every other element of a larger buffer) or 'offset' (a view into a bigger buffer)."""
    if layout == "contiguous" or x.dim() == 0:
        return x.contiguous()
    if layout == "transposed":
        return x.transpose(-1, -2).contiguous().transpose(-1, -2) if x.dim() >= 2 else x.contiguous()
    if layout == "strided":
        big = torch.full((*x.shape[:-1], 2 * x.shape[-1] + 1), float("nan"))
        big[..., 1::2] = x
        return big[..., 1::2]
    big = torch.full((x.shape[0] + 3, *x.shape[1:]), float("nan"))
    big[3:] = x
    return big[3:]


LAYOUTS = ["contiguous", "transposed", "strided", "offset"]
MODES = ["normal", "wide", "bits"]

seeds = st.integers(min_value=0, max_value=2**32 - 1)
modes = st.sampled_from(MODES)
special_rates = st.sampled_from([0.0, 0.02, 0.3])
layouts = st.sampled_from(LAYOUTS)


def f32(bits_value: int) -> float:
    """The float32 with the given bit pattern."""
    return float(np.array([bits_value], dtype=np.uint32).view(np.float32)[0])


def kernel_digests() -> dict[str, str]:
    """SHA-256 of a fixed set of fast-kernel results (compared across processes and builds)."""
    import hashlib

    a, w = make_values((70, 300), 1, "normal", 0.01), make_values((130, 300), 2, "wide", 0.01)
    x = make_values((64, 700), 3, "bits", 0.0)
    results = {
        "mm": fast.mm(a, w.t()),
        "mm-small": fast.mm(a[:5, :40], w[:9, :40].t()),
        "bmm": fast.bmm(a[:60].reshape(3, 20, 300), w[:120].reshape(3, 40, 300).transpose(1, 2)),
        "rowsum": fast.rowsum(x),
        "rowmax": fast.rowmax(x),
        "rowargmax": fast.rowargmax(x),
    }
    for name in ELEMENTWISE:
        results[name] = getattr(fast, name)(x)
    return {k: hashlib.sha256(v.contiguous().numpy().tobytes()).hexdigest() for k, v in results.items()}
