"""Reference sine and cosine of float32 tensors: float64 steps, then one rounding to float32.

Every step below is one IEEE 754 binary64 operation, correctly rounded to nearest-even, in the order
written (no fused multiply-add, no reassociation); the float32 input converts to float64 exactly.

    x      = float64(input)
    x      = fmod(x, TWO_PI)                           if |x| >= LARGE (an exact operation)
    t      = fl(x * TWO_OVER_PI)
    k      = t                                         if |t| >= 2**52 (already an integer)
             fl(fl(t + ROUND_MAGIC) - ROUND_MAGIC)     otherwise (round to nearest, ties to even)
    r      = fl(fl(fl(x - fl(k * PIO2_1)) - fl(k * PIO2_2)) - fl(k * PIO2_3))
    q      = fl(k - fl(4 * floor(fl(k / 4))))          the quadrant, 0 … 3 (every step exact)
    s      = fl(r * r)
    S      = fl(r + fl(fl(r * s) * Horner(SIN, s)))    sin(r), Taylor to r**15; S = r when r = ±0
    C      = fl(fl(1 - fl(0.5 * s)) + fl(fl(s * s) * Horner(COS, s)))   cos(r), Taylor to r**16
    sin    = S, C, -S, -C for q = 0, 1, 2, 3;   cos = C, -S, -C, S
    result = float32(sin or cos)                        one rounding

Horner(c, s): p = c[d]; p = fl(fl(p * s) + c[i]) for i = d-1, …, 0. NaN and ±inf give the
canonical NaN; sin(±0) = ±0. PIO2_1 and PIO2_2 carry 33 significant bits, so k * PIO2_1 and
k * PIO2_2 are exact for |k| < 2**20 and the reduction is accurate for |x| < LARGE = 2**20
(1,048,576). From LARGE on, x is first replaced by its exact remainder modulo the float64 TWO_PI:
a defined value in [-1, 1], but not the sine of x (the float64 2*pi is off by 2.4e-16, times
x / 2*pi periods). Measured against float64 ground truth over |x| < 1e6: within 0.5 ulp, i.e.
correctly rounded but for rare near-halfway cases.
"""

from __future__ import annotations

import math

import torch

from protocol.semantics import float64
from protocol.semantics.floats import CANONICAL_NAN_BITS, from_bits, require_float32

TWO_OVER_PI = float.fromhex("0x1.45f306dc9c883p-1")  # 2/pi rounded to float64
ROUND_MAGIC = float.fromhex("0x1.8p+52")  # 1.5 * 2**52
INTEGER_FROM = float.fromhex("0x1p+52")  # 2**52: every float64 at or above it is an integer
LARGE = float.fromhex("0x1p+20")  # from here on, x is reduced modulo TWO_PI first
TWO_PI = float.fromhex("0x1.921fb54442d18p+2")  # 2*pi rounded to float64
PIO2_1 = float.fromhex("0x1.921fb54400000p+0")  # pi/2 truncated to 33 significant bits
PIO2_2 = float.fromhex("0x1.0b4611a600000p-34")  # the next 33 bits of pi/2
PIO2_3 = float.fromhex("0x1.3198a2e037073p-69")  # pi/2 - PIO2_1 - PIO2_2, rounded to float64
SIN = tuple(float((-1) ** (i + 1)) / math.factorial(2 * i + 3) for i in range(7))
"""(-1/3!, 1/5!, -1/7!, …, 1/15!) rounded to float64: S(r) = r + r**3 * Horner(SIN, r**2)."""
COS = tuple(float((-1) ** i) / math.factorial(2 * i + 4) for i in range(7))
"""(1/4!, -1/6!, …, 1/16!) rounded to float64: C(r) = 1 - r**2/2 + r**4 * Horner(COS, r**2)."""


def _horner(coefficients: tuple[float, ...], s: torch.Tensor) -> torch.Tensor:
    p = torch.full_like(s, coefficients[-1])
    for c in reversed(coefficients[:-1]):
        p = p * s + c  # two roundings: fl(p * s), then fl(· + c)
    return p


def compute_sincos(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sin x, cos x) for a float32 tensor, each float32 of the same shape (see the module docstring)."""
    require_float32(x, "x")
    d = x.to(torch.float64)
    d = torch.where(d.abs() >= LARGE, torch.fmod(d, TWO_PI), d)  # NaN and inf stay NaN
    t = d * TWO_OVER_PI
    k = torch.where(t.abs() >= INTEGER_FROM, t, (t + ROUND_MAGIC) - ROUND_MAGIC)
    k = torch.where(torch.isfinite(k), k, torch.zeros_like(k))  # NaN and inf: any quadrant, NaN below
    r = ((d - k * PIO2_1) - k * PIO2_2) - k * PIO2_3
    q = k - 4.0 * torch.floor(k / 4.0)
    s = r * r
    sine = torch.where(r == 0, r, r + (r * s) * _horner(SIN, s))  # keeps the sign of a zero
    cosine = (1.0 - 0.5 * s) + (s * s) * _horner(COS, s)
    swap = (q == 1.0) | (q == 3.0)
    first = torch.where(swap, cosine, sine)  # sin before its sign
    second = torch.where(swap, sine, cosine)  # cos before its sign
    sin = torch.where(q >= 2.0, -first, first)
    cos = torch.where((q == 1.0) | (q == 2.0), -second, second)
    invalid = ~torch.isfinite(x)
    nan = from_bits(torch.tensor(CANONICAL_NAN_BITS, dtype=torch.int32, device=x.device))
    return (torch.where(invalid, nan, sin.to(torch.float32)), torch.where(invalid, nan, cos.to(torch.float32)))


def reference_sin(x: torch.Tensor) -> torch.Tensor:
    """sin elementwise, float32 → float32 (see the module docstring); float64 by `float64.reference_sin64`."""
    if isinstance(x, torch.Tensor) and x.dtype == torch.float64:
        return float64.reference_sin64(x)
    return compute_sincos(x)[0]


def reference_cos(x: torch.Tensor) -> torch.Tensor:
    """cos elementwise, float32 → float32 (see the module docstring); float64 by `float64.reference_cos64`."""
    if isinstance(x, torch.Tensor) and x.dtype == torch.float64:
        return float64.reference_cos64(x)
    return compute_sincos(x)[1]
