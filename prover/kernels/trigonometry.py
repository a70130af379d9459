"""Fast CPU sine and cosine of float32 tensors, bit-equal to `protocol.semantics.trigonometry`.

The same float64 steps in the same order, as a scalar loop that numba compiles without fast-math
(every operation separately rounded, never fused); one rounding to float32 at the end.
"""

from __future__ import annotations

import numpy as np
import torch
from numba import njit, prange

from protocol.semantics import trigonometry as spec
from prover.kernels import _host
from prover.kernels._checks import require_cpu_float32

_K = np.array(
    [spec.TWO_OVER_PI, spec.ROUND_MAGIC, spec.INTEGER_FROM, spec.LARGE, spec.TWO_PI, spec.PIO2_1, spec.PIO2_2, spec.PIO2_3,
     *spec.SIN, *spec.COS],
    dtype=np.float64,
)
_NAN = np.float32(np.nan)
PARALLEL_MIN_ELEMENTS = 1 << 15


@njit(inline="always")
def _sincos(v, k):
    if not np.isfinite(v):
        return _NAN, _NAN
    d = np.float64(v)
    if abs(d) >= k[3]:
        d = np.fmod(d, k[4])
    t = d * k[0]
    kk = t if abs(t) >= k[2] else (t + k[1]) - k[1]
    r = ((d - kk * k[5]) - kk * k[6]) - kk * k[7]
    q = kk - 4.0 * np.floor(kk / 4.0)
    s = r * r
    ps = k[14]
    for i in range(13, 7, -1):
        ps = ps * s + k[i]
    pc = k[21]
    for i in range(20, 14, -1):
        pc = pc * s + k[i]
    sine = r if r == 0.0 else r + (r * s) * ps
    cosine = (1.0 - 0.5 * s) + (s * s) * pc
    swap = q == 1.0 or q == 3.0
    first = cosine if swap else sine
    second = sine if swap else cosine
    sin = -first if q >= 2.0 else first
    cos = -second if (q == 1.0 or q == 2.0) else second
    return np.float32(sin), np.float32(cos)


@njit(cache=_host.CACHE, error_model="numpy")
def _serial(x, out, which, k):
    for i in range(x.shape[0]):
        pair = _sincos(x[i], k)
        out[i] = pair[which]


@njit(cache=_host.CACHE, parallel=True, error_model="numpy")
def _parallel(x, out, which, k):
    for i in prange(x.shape[0]):
        pair = _sincos(x[i], k)
        out[i] = pair[which]


def _apply(x: torch.Tensor, which: int) -> torch.Tensor:
    require_cpu_float32(x, "x")
    flat = x.contiguous().reshape(-1)
    out = torch.empty(flat.shape, dtype=torch.float32)
    if flat.numel():
        kernel = _parallel if flat.numel() >= PARALLEL_MIN_ELEMENTS else _serial
        kernel(flat.numpy(), out.numpy(), which, _K)
    return out.reshape(x.shape)


def sin(x: torch.Tensor) -> torch.Tensor:
    """sin elementwise, equal to `reference_sin`; CPU float32 of any shape → same shape."""
    return _apply(x, 0)


def cos(x: torch.Tensor) -> torch.Tensor:
    """cos elementwise, equal to `reference_cos`; CPU float32 of any shape → same shape."""
    return _apply(x, 1)
