"""Reference elementwise functions: fixed sequences of correctly rounded float32 operations.

Notation: every arithmetic step is one float32 operation rounded to nearest-even, evaluated exactly
in the order written (no fused multiply-add, no reassociation); `bits(v)` is the int32 pattern of a
float32 and `float(b)` the float32 with pattern b; int32 operations are exact; `t → int` truncates a
float32 holding an integer. Constants are float32 bit patterns (below). Horner(c, z) means

    p = c[d]; for i = d-1, d-2, …, 0:  p = fl(fl(p * z) + c[i])

Every NaN input gives the canonical NaN 0x7FC00000, and so does every invalid operation (log of a
negative number, sqrt of one). Subnormal inputs and outputs are handled as ordinary values: the
floating-point environment must not flush them to zero.

Accuracy (max error in units in the last place of the float32 result, against float64 ground truth,
measured over every float32 input): exp 0.98, log 0.91, tanh 1.04, erf 1.22, sqrt 0.5 (correctly
rounded), rsqrt 1.50 (see each function).

float64 tensors are defined by the float64 sequences of `protocol.semantics.float64`, to which each
function here hands them.
"""

from __future__ import annotations

import torch

from protocol.semantics import float64
from protocol.semantics.floats import (
    CANONICAL_NAN_BITS,
    OperandError,
    as_bits,
    constant,
    from_bits,
    require_float32,
)

# ---- constants (float32 bit patterns) ------------------------------------------------------------
ONE = 0x3F800000
TWO = 0x40000000
HALF = 0x3F000000
POSITIVE_INFINITY = 0x7F800000
NEGATIVE_INFINITY = 0xFF800000

EXP_CLAMP_HIGH = 0x42B20000
"""89.0: exp of anything above overflows; clamping keeps n small and still yields +inf."""
EXP_CLAMP_LOW = 0xC2D00000
"""-104.0: exp of anything below rounds to +0.0; clamping keeps n small and still yields +0.0."""
LOG2E = 0x3FB8AA3B
"""1.44269502…, log2(e) rounded to float32."""
ROUND_MAGIC = 0x4B400000
"""1.5 * 2**23: (v + ROUND_MAGIC) - ROUND_MAGIC rounds |v| < 2**22 to an integer, ties to even."""
LN2_HIGH = 0x3F317200
"""45426 / 65536 = 0.693145751953125, ln 2 to 16 bits: n * LN2_HIGH is exact for |n| < 256."""
LN2_LOW = 0x35BFBE8E
"""1.4286068e-06, ln 2 - LN2_HIGH rounded to float32."""
EXP_POLY = (0x3EFFFFFE, 0x3E2AAA45, 0x3D2AAC8B, 0x3C091FE9, 0x3AB50D2F)
"""q(r) ≈ (e**r - 1 - r) / r**2 on |r| <= 0.35 (near-minimax; c0 ≈ 1/2, c1 ≈ 1/6, …)."""

LOG_SMALLEST_NORMAL = 0x00800000
"""2**-126: inputs below it (subnormals) are scaled by 2**23 first."""
LOG_SUBNORMAL_SCALE = 0x4B000000
"""2**23."""
LOG_SQRT2 = 0x3FB504F3
"""1.41421354, sqrt(2) rounded: mantissas above it are halved so f = m - 1 lies in [-0.293, 0.415]."""
LOG_POLY = (0x3EAAAAAA, 0xBE800114, 0x3E4CD009, 0xBE2A38FB, 0x3E116C85, 0xBE06C3AE, 0x3E02B24B, 0xBD9C60CE)
"""Q(f) ≈ (log1p(f) - f + f**2/2) / f**3 on [-0.293, 0.415] (near-minimax relative; c0 ≈ 1/3)."""

TANH_SMALL = 0x3F600000
"""0.875: below it tanh uses its odd polynomial, from it on the exp formula."""
TANH_POLY = (0xBEAAAAA8, 0x3E0887D3, 0xBD5CECF5, 0x3CB1B9A9, 0xBC087927, 0x3B2D94C5, 0xB9FC6BFA)
"""P(s) ≈ (tanh(x) - x) / x**3 with s = x**2, |x| < 0.875 (near-minimax relative; c0 ≈ -1/3)."""

ERF_SMALL = 0x3F600000
"""0.875: below it erf uses its odd polynomial, from it on 1 - exp(-x**2) * R(x)."""
ERF_ONE = 0x407AD445
"""3.91920590…: the least float32 whose erf rounds to 1.0 (erfc(x) < 2**-25 from here on)."""
ERF_POLY = (0x3E0375D4, 0xBEC093A2, 0x3DE71741, 0xBCDC0CC1, 0x3BAA9C92, 0xBA5737C4, 0x38B5D170)
"""P(s) ≈ erf(x)/x - 1 with s = x**2, |x| < 0.875 (near-minimax relative; c0 ≈ 2/sqrt(pi) - 1)."""
ERF_CENTER = 0x40180000
"""2.375, the expansion point of R."""
ERF_TAIL_POLY = (
    0x3E61CC44, 0xBDA5D881, 0x3CE6C7F8, 0xBC197E92, 0x3B470AD7,
    0xBA4F85E7, 0x39A632B3, 0xB926658F, 0xB896E09D, 0xB82003B3,
)
"""R(z) ≈ erfc(x) * e**(x**2) with z = x - 2.375, 0.875 <= x <= 3.9193 (near-minimax in erf)."""

POW_EXPONENTS = (0.0, 1.0, 2.0, 3.0, -1.0, -2.0, 0.5, -0.5)
"""The exponents `reference_pow_scalar` defines."""


def _c(bits: int, like: torch.Tensor) -> torch.Tensor:
    return constant(bits, like)


def compute_horner(coefficients: tuple[int, ...], z: torch.Tensor) -> torch.Tensor:
    """Horner(c, z) of the module docstring: p = c[d]; p = fl(fl(p * z) + c[i]) for i = d-1 … 0."""
    p = _c(coefficients[-1], z).expand_as(z)
    for bits in reversed(coefficients[:-1]):
        p = torch.add(torch.mul(p, z), _c(bits, z))
    return p


def _nan_where_input_nan(x: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
    nan = _c(CANONICAL_NAN_BITS, x)
    return torch.where((x != x) | (result != result), nan, result)


def compute_exp_core(x: torch.Tensor) -> torch.Tensor:
    """exp without the final NaN rule (what tanh and erf build on); see `reference_exp`."""
    xc = torch.where(x < _c(EXP_CLAMP_HIGH, x), x, _c(EXP_CLAMP_HIGH, x))  # a NaN becomes 89.0 here
    xc = torch.where(xc > _c(EXP_CLAMP_LOW, x), xc, _c(EXP_CLAMP_LOW, x))
    magic = _c(ROUND_MAGIC, x)
    t = torch.sub(torch.add(torch.mul(xc, _c(LOG2E, x)), magic), magic)  # n = rint(x / ln 2)
    r = torch.sub(xc, torch.mul(t, _c(LN2_HIGH, x)))  # exact
    r = torch.sub(r, torch.mul(t, _c(LN2_LOW, x)))
    q = compute_horner(EXP_POLY, r)
    y = torch.add(_c(ONE, x), torch.add(r, torch.mul(torch.mul(r, r), q)))  # 1 + (r + r*r*q)
    n = t.to(torch.int32)  # -150 <= n <= 128
    n1 = torch.bitwise_right_shift(n, 1)  # floor(n / 2)
    n2 = n - n1
    s1 = from_bits(torch.bitwise_left_shift(n1 + 127, 23))  # 2**n1, a normal float32
    s2 = from_bits(torch.bitwise_left_shift(n2 + 127, 23))
    return torch.mul(torch.mul(y, s1), s2)  # y * 2**n1 is exact; one rounding at * 2**n2


def reference_exp(x: torch.Tensor) -> torch.Tensor:
    """e**x, elementwise; x float32 of any shape → float32. Max error 0.98 ulp (all float32 inputs).

    xc = min(max(x, -104.0), 89.0)               (compare-and-select; x NaN → 89.0, fixed at the end)
    t  = fl(fl(fl(xc * LOG2E) + MAGIC) - MAGIC)  (an integer n, -150 <= n <= 128)
    r  = fl(fl(xc - fl(t * LN2_HIGH)) - fl(t * LN2_LOW))
    y  = fl(1 + fl(r + fl(fl(r * r) * Horner(EXP_POLY, r))))
    n = t → int; n1 = n >> 1 (arithmetic); n2 = n - n1
    result = fl(fl(y * float((n1 + 127) << 23)) * float((n2 + 127) << 23))
    NaN → NaN. Hence exp(±0) = 1, exp(+inf) = +inf, exp(-inf) = +0.0, x > 88.7228… → +inf,
    x < -103.972… → +0.0, results below 2**-126 are correctly scaled subnormals.
    """
    if isinstance(x, torch.Tensor) and x.dtype == torch.float64:
        return float64.reference_exp64(x)
    require_float32(x, "x")
    return _nan_where_input_nan(x, compute_exp_core(x))


def reference_log(x: torch.Tensor) -> torch.Tensor:
    """Natural logarithm, elementwise; float32 → float32. Max error 0.91 ulp (all float32 inputs).

    sub = x < 2**-126; v = fl(x * 2**23) if sub else x     (exact scaling of subnormals)
    e = ((bits(v) >> 23) & 0xFF) - 127 - (23 if sub else 0)
    m = float((bits(v) & 0x7FFFFF) | 0x3F800000)           (1 <= m < 2)
    if m > LOG_SQRT2: m = fl(m * 0.5); e = e + 1             (exact)
    f = fl(m - 1)                                            (exact)
    f2 = fl(f * f); lo = fl(fl(fl(f2 * f) * Horner(LOG_POLY, f)) - fl(f2 * 0.5))
    E = float(e) (exact); result = fl(fl(E * LN2_HIGH) + fl(f + fl(lo + fl(E * LN2_LOW))))
    Special values: x = ±0 → -inf; x < 0 → NaN; +inf → +inf; NaN → NaN; log(1) = +0.0.
    """
    if isinstance(x, torch.Tensor) and x.dtype == torch.float64:
        return float64.reference_log64(x)
    require_float32(x, "x")
    small = x < _c(LOG_SMALLEST_NORMAL, x)
    v = torch.where(small, torch.mul(x, _c(LOG_SUBNORMAL_SCALE, x)), x)
    ix = as_bits(v).reshape(x.shape)
    e = torch.bitwise_and(torch.bitwise_right_shift(ix, 23), 0xFF) - 127
    e = torch.where(small, e - 23, e)
    m = from_bits(torch.bitwise_or(torch.bitwise_and(ix, 0x7FFFFF), 0x3F800000)).reshape(x.shape)
    big = m > _c(LOG_SQRT2, x)
    m = torch.where(big, torch.mul(m, _c(HALF, x)), m)
    e = torch.where(big, e + 1, e)
    f = torch.sub(m, _c(ONE, x))
    f2 = torch.mul(f, f)
    lo = torch.sub(torch.mul(torch.mul(f2, f), compute_horner(LOG_POLY, f)), torch.mul(f2, _c(HALF, x)))
    ef = e.to(torch.float32)
    tail = torch.add(f, torch.add(lo, torch.mul(ef, _c(LN2_LOW, x))))
    result = torch.add(torch.mul(ef, _c(LN2_HIGH, x)), tail)
    result = torch.where(x == _c(POSITIVE_INFINITY, x), x, result)
    result = torch.where(x == 0, _c(NEGATIVE_INFINITY, x), result)
    result = torch.where(x < 0, _c(CANONICAL_NAN_BITS, x), result)
    return _nan_where_input_nan(x, result)


def reference_tanh(x: torch.Tensor) -> torch.Tensor:
    """Hyperbolic tangent, elementwise; float32 → float32. Max error 1.04 ulp (all float32 inputs).

    a = |x|; s = fl(x * x)
    small = fl(x + fl(x * fl(s * Horner(TANH_POLY, s))))                 (used when a < 0.875)
    g = fl(1 - fl(2 / fl(exp(fl(a + a)) + 1)))  with exp the core of `reference_exp` (no NaN rule)
    result = small if a < 0.875 else (-g if x < 0 else g);  result = x if x == 0
    Hence tanh(±0) = ±0, subnormals map to themselves, |x| >= 9.01… → ±1, ±inf → ±1, NaN → NaN.
    """
    if isinstance(x, torch.Tensor) and x.dtype == torch.float64:
        return float64.reference_tanh64(x)
    require_float32(x, "x")
    a = torch.abs(x)
    s = torch.mul(x, x)
    small = torch.add(x, torch.mul(x, torch.mul(s, compute_horner(TANH_POLY, s))))
    big_exp = compute_exp_core(torch.add(a, a))
    g = torch.sub(_c(ONE, x), torch.div(_c(TWO, x), torch.add(big_exp, _c(ONE, x))))
    large = torch.where(x < 0, torch.neg(g), g)
    result = torch.where(a < _c(TANH_SMALL, x), small, large)
    result = torch.where(x == 0, x, result)  # the polynomial would turn -0.0 into +0.0
    return _nan_where_input_nan(x, result)


def reference_erf(x: torch.Tensor) -> torch.Tensor:
    """Error function, elementwise; float32 → float32. Max error 1.22 ulp (all float32 inputs).

    a = |x|; s = fl(x * x)
    small = fl(x + fl(x * Horner(ERF_POLY, s)))                                 (used when a < 0.875)
    ac = a if a < ERF_ONE else ERF_ONE;  z = fl(ac - 2.375)
    g = fl(1 - fl(exp(-fl(ac * ac)) * Horner(ERF_TAIL_POLY, z)))  with exp the core of `reference_exp`
    g = 1 if a >= ERF_ONE
    result = small if a < 0.875 else (-g if x < 0 else g)
    Hence erf(±0) = ±0, ±inf → ±1, NaN → NaN.
    """
    if isinstance(x, torch.Tensor) and x.dtype == torch.float64:
        return float64.reference_erf64(x)
    require_float32(x, "x")
    a = torch.abs(x)
    s = torch.mul(x, x)
    small = torch.add(x, torch.mul(x, compute_horner(ERF_POLY, s)))
    limit = _c(ERF_ONE, x)
    ac = torch.where(a < limit, a, limit)
    z = torch.sub(ac, _c(ERF_CENTER, x))
    tail = torch.mul(compute_exp_core(torch.neg(torch.mul(ac, ac))), compute_horner(ERF_TAIL_POLY, z))
    g = torch.sub(_c(ONE, x), tail)
    g = torch.where(a >= limit, _c(ONE, x), g)
    large = torch.where(x < 0, torch.neg(g), g)
    result = torch.where(a < _c(ERF_SMALL, x), small, large)
    return _nan_where_input_nan(x, result)


def _next_toward_inf(y: torch.Tensor) -> torch.Tensor:
    return from_bits(as_bits(y) + 1).reshape(y.shape)


def _next_toward_zero(y: torch.Tensor) -> torch.Tensor:
    return from_bits(as_bits(y) - 1).reshape(y.shape)


def reference_sqrt(x: torch.Tensor) -> torch.Tensor:
    """Square root, correctly rounded; float32 → float32 (0.5 ulp). Needs float64 on the device.

    y = the float32 nearest to sqrt64(float64(x)), then one exact correction step: for finite
    x > 0 with lo = (prev(y) + y) / 2 and hi = (y + next(y)) / 2 (computed in float64, exact),
    y = prev(y) if x < lo*lo, y = next(y) if x > hi*hi (lo and hi have <= 25 significant bits,
    so their squares are exact in float64). For a float32 x, sqrt(x) is never within 2**-51
    relative of a float32 rounding boundary, so the result is the correctly rounded square root
    whenever the device's float64 sqrt is within one float32 ulp — and the check repairs it if not.
    Special values: sqrt(±0) = ±0, sqrt(+inf) = +inf, x < 0 → NaN, NaN → NaN.
    """
    if isinstance(x, torch.Tensor) and x.dtype == torch.float64:
        return float64.reference_sqrt64(x)
    require_float32(x, "x")
    x64 = x.to(torch.float64)
    y = torch.sqrt(x64).to(torch.float32)
    regular = (x > 0) & (x < _c(POSITIVE_INFINITY, x)) & (y > 0) & (y < _c(POSITIVE_INFINITY, x))
    safe = torch.where(regular, y, _c(ONE, x))  # keeps the neighbour arithmetic finite elsewhere
    y64 = safe.to(torch.float64)
    below = torch.div(torch.add(_next_toward_zero(safe).to(torch.float64), y64), 2.0)  # exact
    above = torch.div(torch.add(y64, _next_toward_inf(safe).to(torch.float64)), 2.0)  # exact
    corrected = torch.where(x64 < torch.mul(below, below), _next_toward_zero(safe), safe)
    corrected = torch.where(x64 > torch.mul(above, above), _next_toward_inf(safe), corrected)
    result = torch.where(regular, corrected, y)
    result = torch.where(x < 0, _c(CANONICAL_NAN_BITS, x), result)
    return _nan_where_input_nan(x, result)


def reference_rsqrt(x: torch.Tensor) -> torch.Tensor:
    """1 / sqrt(x) with two roundings: fl(1 / reference_sqrt(x)); float32 → float32. Max 1.50 ulp.

    Special values: +0 → +inf, -0 → -inf, +inf → +0, x < 0 → NaN, NaN → NaN.
    """
    if isinstance(x, torch.Tensor) and x.dtype == torch.float64:
        return float64.reference_rsqrt64(x)
    require_float32(x, "x")
    return _nan_where_input_nan(x, torch.div(_c(ONE, x), reference_sqrt(x)))


def reference_pow_scalar(x: torch.Tensor, exponent: float) -> torch.Tensor:
    """x ** exponent for the exponents in POW_EXPONENTS, by fixed sequences; float32 → float32.

    0 → 1 (even for NaN x, as IEEE pow); 1 → x; 2 → fl(x*x); 3 → fl(fl(x*x)*x); -1 → fl(1/x);
    -2 → fl(1/fl(x*x)); 0.5 → reference_sqrt(x); -0.5 → reference_rsqrt(x). Other exponents raise
    OperandError. (0.5 follows sqrt, so (-0)**0.5 = -0 and (-inf)**0.5 = NaN, unlike C's pow.)
    """
    if not (isinstance(x, torch.Tensor) and x.dtype == torch.float64):
        require_float32(x, "x")
    if exponent not in POW_EXPONENTS:
        raise OperandError(f"pow exponent {exponent!r} has no reference; defined for {POW_EXPONENTS}")
    if exponent == 0.0:
        return torch.ones_like(x)
    if exponent == 1.0:
        result = x.clone()
    elif exponent == 2.0:
        result = torch.mul(x, x)
    elif exponent == 3.0:
        result = torch.mul(torch.mul(x, x), x)
    elif exponent == -1.0:
        result = torch.div(_c(ONE, x), x)
    elif exponent == -2.0:
        result = torch.div(_c(ONE, x), torch.mul(x, x))
    elif exponent == 0.5:
        return reference_sqrt(x)
    else:
        return reference_rsqrt(x)
    return _nan_where_input_nan(x, result)
