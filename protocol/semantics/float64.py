"""Reference elementwise functions of float64 tensors: fixed sequences of correctly rounded float64
operations, the float64 counterparts of `protocol.semantics.elementwise` and `trigonometry`.

Notation as there, with float64 in place of float32: every arithmetic step is one IEEE 754 binary64
operation rounded to nearest-even, in the order written (no fused multiply-add, no reassociation);
`bits(v)` is the int64 pattern of a float64, `float(b)` the float64 with pattern b; int64 operations
are exact. Constants are written as hexadecimal float literals (`float.fromhex`), exact by
construction. Horner(c, z): p = c[d]; p = fl(fl(p * z) + c[i]) for i = d-1, …, 0.

Every NaN input gives the canonical float64 NaN 0x7FF8000000000000, and so does every invalid
operation. Subnormals are ordinary values (the environment must not flush them to zero).

Accuracy (max error in float64 ulps against 40-digit ground truth over ~5,000 log-uniform samples
of each range; the test suite asserts the bounds in brackets): exp 0.88 [1], log 0.53 [1], tanh 1.25
[1.5], erf 0.80 [1], sin and cos 1.39 [1.5] for |x| < 2**20; sqrt is correctly rounded (0.5 ulp);
rsqrt = fl(1 / sqrt) 1.38 [1.5].
"""

from __future__ import annotations

import torch

from protocol.semantics.floats import OperandError


def _hex(*literals: str) -> tuple[float, ...]:
    return tuple(float.fromhex(literal) for literal in literals)


CANONICAL_NAN64_BITS = 0x7FF8000000000000
"""The one float64 NaN the references return (positive sign, quiet, zero payload)."""

EXP_CLAMP_HIGH = 710.0
"""exp of anything above it overflows; clamping keeps n = rint(x / ln 2) <= 1025 and still gives +inf."""
EXP_CLAMP_LOW = -746.0
"""exp of anything below it rounds to +0.0; clamping keeps n >= -1077 and still gives +0.0."""
LOG2E = float.fromhex("0x1.71547652b82fep+0")
"""log2(e) rounded to float64."""
ROUND_MAGIC = float.fromhex("0x1.8p+52")
"""1.5 * 2**52: fl(fl(v + ROUND_MAGIC) - ROUND_MAGIC) rounds |v| < 2**51 to an integer, ties to even."""
LN2_HIGH = float.fromhex("0x1.62e42fee00000p-1")
"""ln 2 truncated to 32 significant bits: n * LN2_HIGH is exact for |n| < 2**21."""
LN2_LOW = float.fromhex("0x1.a39ef35793c76p-33")
"""ln 2 - LN2_HIGH rounded to float64."""
SQRT2 = float.fromhex("0x1.6a09e667f3bcdp+0")
"""sqrt(2) rounded: mantissas above it are halved, so f = m - 1 lies in [-0.293, 0.415]."""
TANH_SMALL = 0.625
"""Below it tanh uses its odd Taylor polynomial, from it on the exp formula."""
ERF_SMALL = 0.875
"""Below it erf uses its odd Taylor polynomial, from it on 1 - e**(-x**2) * erfcx(x)."""
ERF_ONE = float.fromhex("0x1.7afb48dc96627p+2")
"""5.921587195794507, the least float64 whose erf rounds to 1.0 (erfc(x) <= 2**-54 from here on)."""
ERFC_BREAKS = (1.5, 2.5, 4.0)
"""The interval bounds of the erfcx pieces (below the first: piece 0, …, from the last: piece 3)."""
ERFC_CENTERS = (1.1875, 2.0, 3.25, 5.0)
"""The expansion point of each erfcx piece."""
TRIG_LARGE = float.fromhex("0x1p+20")
"""From here on, sin and cos first reduce x modulo TWO_PI (exactly): see `compute_sincos64`."""
TWO_OVER_PI = float.fromhex("0x1.45f306dc9c883p-1")
TWO_PI = float.fromhex("0x1.921fb54442d18p+2")
INTEGER_FROM = float.fromhex("0x1p+52")
PIO2_1 = float.fromhex("0x1.921fb54400000p+0")
"""pi/2 truncated to 33 significant bits."""
PIO2_2 = float.fromhex("0x1.0b4611a600000p-34")
"""The next 33 bits of pi/2."""
PIO2_3 = float.fromhex("0x1.3198a2e037073p-69")
"""pi/2 - PIO2_1 - PIO2_2 rounded to float64."""
SIN_POLY = _hex(
    "-0x1.5555555555555p-3", "0x1.1111111111111p-7", "-0x1.a01a01a01a01ap-13", "0x1.71de3a556c734p-19",
    "-0x1.ae64567f544e4p-26", "0x1.6124613a86d09p-33", "-0x1.ae7f3e733b81fp-41", "0x1.952c77030ad4ap-49",
    "-0x1.2f49b46814157p-57",
)
"""-1/3!, 1/5!, …, 1/19! rounded: sin(r) = r + r*s*Horner(SIN_POLY, s), s = r**2, |r| <= pi/4."""
COS_POLY = _hex(
    "0x1.5555555555555p-5", "-0x1.6c16c16c16c17p-10", "0x1.a01a01a01a01ap-16", "-0x1.27e4fb7789f5cp-22",
    "0x1.1eed8eff8d898p-29", "-0x1.93974a8c07c9dp-37", "0x1.ae7f3e733b81fp-45", "-0x1.6827863b97d97p-53",
    "0x1.e542ba4020225p-62",
)
"""1/4!, -1/6!, …, 1/20! rounded: cos(r) = fl(1 - r**2/2) + s*s*Horner(COS_POLY, s)."""

EXP_POLY = _hex(
    '0x1.0000000000000p-1', '0x1.5555555555555p-3', '0x1.5555555555555p-5', '0x1.1111111111111p-7',
    '0x1.6c16c16c16c17p-10', '0x1.a01a01a01a01ap-13', '0x1.a01a01a01a01ap-16', '0x1.71de3a556c734p-19',
    '0x1.27e4fb7789f5cp-22', '0x1.ae64567f544e4p-26', '0x1.1eed8eff8d898p-29', '0x1.6124613a86d09p-33',
)
"""1/2!, 1/3!, …, 1/13!: e**r = 1 + r + r**2 * Horner(EXP_POLY, r), to 2**-57 relative on |r| <= 0.35."""

LOG_POLY = _hex(
    '0x1.5555555555555p-1', '0x1.999999999999ap-2', '0x1.2492492492492p-2', '0x1.c71c71c71c71cp-3',
    '0x1.745d1745d1746p-3', '0x1.3b13b13b13b14p-3', '0x1.1111111111111p-3', '0x1.e1e1e1e1e1e1ep-4',
    '0x1.af286bca1af28p-4', '0x1.8618618618618p-4',
)
"""2/3, 2/5, …, 2/21: log1p(f) = 2*atanh(s) with s = f / (2 + f) and R(z) = z * Horner(LOG_POLY, z), z = s**2."""

TANH_POLY = _hex(
    '-0x1.5555555555555p-2', '0x1.1111111111111p-3', '-0x1.ba1ba1ba1ba1cp-5', '0x1.664f4882c10fap-6',
    '-0x1.226e355e6c23dp-7', '0x1.d6d3d0e157de0p-9', '-0x1.7da36452b75e3p-10', '0x1.3558248036744p-11',
    '-0x1.f57d7734d1664p-13', '0x1.967e18afcafadp-14', '-0x1.497d8eea25259p-15',
    '0x1.0b132d39a6050p-16', '-0x1.b0f72d3ee24e9p-18', '0x1.5ef2da474e5b7p-19',
    '-0x1.1c77df95c1c0dp-20', '0x1.cd299de4ae6bbp-22', '-0x1.75cde6563fed9p-23',
    '0x1.2efe8db3aff1fp-24', '-0x1.eb3229047434cp-26', '0x1.8e25ff9327e2cp-27', '-0x1.42ba1a349b490p-28',
)
"""The Taylor coefficients of tanh at x**3, x**5, …, x**43: tanh(x) = x + x*s*Horner(TANH_POLY, s), s = x**2."""

ERF_POLY = _hex(
    '0x1.06eba8214db69p-3', '-0x1.812746b0379e7p-2', '0x1.ce2f21a042be2p-4', '-0x1.b82ce31288b51p-6',
    '0x1.565bcd0e6a53fp-8', '-0x1.c02db40040b86p-11', '0x1.f9a326f9b89b7p-14', '-0x1.f4d25c3e0c2ebp-17',
    '0x1.b9e6c9dc651a3p-20', '-0x1.5f742ec43e71ap-23', '0x1.fcc5720624c1cp-27',
    '-0x1.51d7181c5d36dp-30', '0x1.9e6ad5e55a730p-34', '-0x1.d8453cb0c46eap-38',
    '0x1.f683ae4a97007p-42', '-0x1.f56f071a885cfp-46', '0x1.d70b3537f4765p-50',
)
"""2/sqrt(pi) - 1, then 2/sqrt(pi) * (-1)**n / (n! (2n + 1)) for n = 1 … 16: erf(x) = x + x*Horner(ERF_POLY, x**2)."""

ERFC_TAIL_0 = _hex(
    '0x1.8674923c605e1p-2', '-0x1.c841f18283f7ap-3', '0x1.de35ab5b880c5p-4', '-0x1.cb858a0b1dd62p-5',
    '0x1.9abcc2c9dcaa4p-6', '-0x1.5908bd6b9e1b5p-7', '0x1.127f6dc29e62cp-8', '-0x1.a01de524b7018p-10',
    '0x1.2ded1b77701cap-11', '-0x1.a5103343328f1p-13', '0x1.1b13ad3261c38p-14',
    '-0x1.6ffaef2a98046p-16', '0x1.cf8dd084a1b08p-18', '-0x1.1b85f2c8e27b0p-19',
    '0x1.51629bd8683f6p-21', '-0x1.872c1ab490118p-23', '0x1.ba8307d59af47p-25', '-0x1.e909cc0229894p-27',
)
"""Taylor coefficients of erfcx(x) = erfc(x) * e**(x**2) at 1.1875, used on [0.875, 1.5)."""

ERFC_TAIL_1 = _hex(
    '0x1.058671b52c776p-2', '-0x1.b57034efd3f72p-4', '0x1.5672b9ea13de6p-5', '-0x1.fa9d3ac955d97p-7',
    '0x1.64907215a3c6ap-8', '-0x1.e028e8a56d08fp-10', '0x1.369ffa07ce05cp-11', '-0x1.8382216846e2bp-13',
    '0x1.d37ba54eaa51cp-15', '-0x1.115cfdc8ca2ddp-16', '0x1.3697726fcd065p-18',
    '-0x1.57780d4867c20p-20', '0x1.72491f74430e2p-22', '-0x1.85b9d2994a69bp-24',
    '0x1.90f75735fb153p-26', '-0x1.93b7caa70a648p-28', '0x1.8e36e3c4ebc5fp-30',
    '-0x1.81264cbd53c6ap-32', '0x1.6d94deeeae04ap-34', '-0x1.54d09d178ec3fp-36',
)
"""… at 2.0, used on [1.5, 2.5)."""

ERFC_TAIL_2 = _hex(
    '0x1.54a7a08d4bb45p-3', '-0x1.82a8522b868a1p-5', '0x1.a7eddc9ee6425p-7', '-0x1.c24b49c47a2c4p-9',
    '0x1.d085857a17f33p-11', '-0x1.d25ebba1c4911p-13', '0x1.c882f0238146ep-15',
    '-0x1.b45d025fa26b4p-17', '0x1.97dd78d7353f0p-19', '-0x1.753cab5819720p-21',
    '0x1.4ec091fecea13p-23', '-0x1.268c3c48ed430p-25', '0x1.fcf8b012f48ebp-28',
    '-0x1.b02379dea6f18p-30', '0x1.68d1f944afcebp-32', '-0x1.287953ec77ae0p-34',
    '0x1.dfbd94523a456p-37', '-0x1.7e6a9556d2d99p-39', '0x1.2c7e2ff8537a0p-41',
    '-0x1.d1bcd2110a30bp-44', '0x1.641e5537b113ep-46', '-0x1.0cc968e1344a0p-48',
)
"""… at 3.25, used on [2.5, 4.0)."""

ERFC_TAIL_3 = _hex(
    '0x1.c57239e943d1ap-4', '-0x1.5d843497d4f3ap-6', '0x1.08cf82b79a11cp-8', '-0x1.8abc198707c93p-11',
    '0x1.219f2c3353402p-13', '-0x1.a2a81d24c9405p-16', '0x1.2a41152e3a546p-18',
    '-0x1.a3193cf6de880p-21', '0x1.228a789f79fadp-23', '-0x1.8dabba3580677p-26',
    '0x1.0cc74e59d7da8p-28', '-0x1.66f7d306f7c78p-31', '0x1.d9d9c4e5353e3p-34',
    '-0x1.3539b11247658p-36', '0x1.8f2c228ac9217p-39', '-0x1.fdcdb75163c0fp-42',
    '0x1.422e3fdfab237p-44', '-0x1.931dc1ca8e6bcp-47', '0x1.f36f4c7964728p-50',
    '-0x1.326c72824fa24p-52', '0x1.747f2aae694bep-55', '-0x1.c0b09144e68b3p-58',
)
"""… at 5.0, used on [4.0, ERF_ONE)."""

ERFC_TAILS = (ERFC_TAIL_0, ERFC_TAIL_1, ERFC_TAIL_2, ERFC_TAIL_3)


# ---- shared steps ----------------------------------------------------------------------------------


def require_float64(x: object, name: str) -> torch.Tensor:
    """`x` if it is a float64 tensor; OperandError otherwise."""
    if not isinstance(x, torch.Tensor):
        raise OperandError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dtype != torch.float64:
        raise OperandError(f"{name} must be float64, got {x.dtype}")
    return x


def _c(value: float, like: torch.Tensor) -> torch.Tensor:
    return torch.tensor(value, dtype=torch.float64, device=like.device)


def _bits(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous().view(torch.int64).reshape(x.shape)


def _from_bits(bits: torch.Tensor) -> torch.Tensor:
    return bits.contiguous().view(torch.float64).reshape(bits.shape)


def _nan(like: torch.Tensor) -> torch.Tensor:
    return _from_bits(torch.tensor(CANONICAL_NAN64_BITS, dtype=torch.int64, device=like.device))


def canonicalize_nan64(x: torch.Tensor) -> torch.Tensor:
    """x with every NaN replaced by the canonical float64 NaN."""
    return torch.where(x != x, _nan(x), x)


def _nan_where_input_nan(x: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
    return torch.where((x != x) | (result != result), _nan(x), result)


def compute_horner64(coefficients: tuple[float, ...], z: torch.Tensor) -> torch.Tensor:
    """Horner(c, z): p = c[d]; p = fl(fl(p * z) + c[i]) for i = d-1 … 0."""
    p = _c(coefficients[-1], z).expand_as(z)
    for value in reversed(coefficients[:-1]):
        p = torch.add(torch.mul(p, z), _c(value, z))
    return p


def _power_of_two(n: torch.Tensor) -> torch.Tensor:
    """2**n as a float64, for int64 n with -1022 <= n <= 1023 (built from its bits, exact)."""
    return _from_bits(torch.bitwise_left_shift(n + 1023, 52))


# ---- exp and log -----------------------------------------------------------------------------------


def compute_exp64_core(x: torch.Tensor) -> torch.Tensor:
    """exp without the final NaN rule (what tanh and erf build on); see `reference_exp64`."""
    xc = torch.where(x < _c(EXP_CLAMP_HIGH, x), x, _c(EXP_CLAMP_HIGH, x))  # NaN becomes 710 here
    xc = torch.where(xc > _c(EXP_CLAMP_LOW, x), xc, _c(EXP_CLAMP_LOW, x))
    magic = _c(ROUND_MAGIC, x)
    t = torch.sub(torch.add(torch.mul(xc, _c(LOG2E, x)), magic), magic)
    r = torch.sub(xc, torch.mul(t, _c(LN2_HIGH, x)))  # exact
    r = torch.sub(r, torch.mul(t, _c(LN2_LOW, x)))
    y = torch.add(_c(1.0, x), torch.add(r, torch.mul(torch.mul(r, r), compute_horner64(EXP_POLY, r))))
    n = t.to(torch.int64)  # -1077 <= n <= 1025
    n1 = torch.bitwise_right_shift(n, 1)
    return torch.mul(torch.mul(y, _power_of_two(n1)), _power_of_two(n - n1))  # one rounding, at the end


def reference_exp64(x: torch.Tensor) -> torch.Tensor:
    """e**x, elementwise; float64 → float64.

    xc = min(max(x, -746.0), 710.0)              (compare-and-select; x NaN → 710, fixed at the end)
    t  = fl(fl(fl(xc * LOG2E) + MAGIC) - MAGIC)  (an integer n, -1077 <= n <= 1025)
    r  = fl(fl(xc - fl(t * LN2_HIGH)) - fl(t * LN2_LOW))
    y  = fl(1 + fl(r + fl(fl(r * r) * Horner(EXP_POLY, r))))
    n1 = n >> 1 (arithmetic); n2 = n - n1; result = fl(fl(y * 2**n1) * 2**n2)
    with 2**k = float((k + 1023) << 52). NaN → NaN; exp(±0) = 1, exp(+inf) = +inf, exp(-inf) = +0.0.
    """
    require_float64(x, "x")
    return _nan_where_input_nan(x, compute_exp64_core(x))


def reference_log64(x: torch.Tensor) -> torch.Tensor:
    """Natural logarithm, elementwise; float64 → float64.

    sub = x < 2**-1022; v = fl(x * 2**52) if sub else x     (exact scaling of subnormals)
    e = ((bits(v) >> 52) & 0x7FF) - 1023 - (52 if sub else 0)
    m = float((bits(v) & (2**52 - 1)) | 0x3FF0000000000000)   (1 <= m < 2)
    if m > SQRT2: m = fl(m * 0.5); e = e + 1                  (exact)
    f = fl(m - 1) (exact); s = fl(f / fl(2 + f)); z = fl(s * s); R = fl(z * Horner(LOG_POLY, z))
    hfsq = fl(fl(f * f) * 0.5); E = float(e) (exact)
    result = fl(fl(E * LN2_HIGH) - fl(fl(hfsq - fl(fl(s * fl(hfsq + R)) + fl(E * LN2_LOW))) - f))
    Special values: ±0 → -inf; x < 0 → NaN; +inf → +inf; NaN → NaN; log(1) = +0.0.
    """
    require_float64(x, "x")
    small = x < _c(2.0**-1022, x)
    v = torch.where(small, torch.mul(x, _c(2.0**52, x)), x)
    ix = _bits(v)
    e = torch.bitwise_and(torch.bitwise_right_shift(ix, 52), 0x7FF) - 1023
    e = torch.where(small, e - 52, e)
    m = _from_bits(torch.bitwise_or(torch.bitwise_and(ix, (1 << 52) - 1), 0x3FF0000000000000))
    big = m > _c(SQRT2, x)
    m = torch.where(big, torch.mul(m, _c(0.5, x)), m)
    e = torch.where(big, e + 1, e)
    f = torch.sub(m, _c(1.0, x))
    s = torch.div(f, torch.add(_c(2.0, x), f))
    z = torch.mul(s, s)
    r = torch.mul(z, compute_horner64(LOG_POLY, z))
    hfsq = torch.mul(torch.mul(f, f), _c(0.5, x))
    ef = e.to(torch.float64)
    inner = torch.add(torch.mul(s, torch.add(hfsq, r)), torch.mul(ef, _c(LN2_LOW, x)))
    result = torch.sub(torch.mul(ef, _c(LN2_HIGH, x)), torch.sub(torch.sub(hfsq, inner), f))
    result = torch.where(x == _c(float("inf"), x), x, result)
    result = torch.where(x == 0, _c(float("-inf"), x), result)
    result = torch.where(x < 0, _nan(x), result)
    return _nan_where_input_nan(x, result)


# ---- tanh and erf ----------------------------------------------------------------------------------


def reference_tanh64(x: torch.Tensor) -> torch.Tensor:
    """Hyperbolic tangent, elementwise; float64 → float64.

    a = |x|; s = fl(x * x)
    small = fl(x + fl(x * fl(s * Horner(TANH_POLY, s))))                 (used when a < 0.625)
    g = fl(1 - fl(2 / fl(exp(fl(a + a)) + 1)))  with exp the core of `reference_exp64` (no NaN rule)
    result = small if a < 0.625 else (-g if x < 0 else g); result = x if x == 0
    Hence tanh(±0) = ±0, ±inf → ±1, NaN → NaN.
    """
    require_float64(x, "x")
    a = torch.abs(x)
    s = torch.mul(x, x)
    small = torch.add(x, torch.mul(x, torch.mul(s, compute_horner64(TANH_POLY, s))))
    big_exp = compute_exp64_core(torch.add(a, a))
    g = torch.sub(_c(1.0, x), torch.div(_c(2.0, x), torch.add(big_exp, _c(1.0, x))))
    large = torch.where(x < 0, torch.neg(g), g)
    result = torch.where(a < _c(TANH_SMALL, x), small, large)
    result = torch.where(x == 0, x, result)
    return _nan_where_input_nan(x, result)


def reference_erf64(x: torch.Tensor) -> torch.Tensor:
    """Error function, elementwise; float64 → float64.

    a = |x|; s = fl(x * x)
    small = fl(x + fl(x * Horner(ERF_POLY, s)))                                 (used when a < 0.875)
    ac = min(a, ERF_ONE); i = the piece of ac (ERFC_BREAKS); z = fl(ac - ERFC_CENTERS[i])
    g = fl(1 - fl(exp(-fl(ac * ac)) * Horner(ERFC_TAIL_i, z)))  with exp the core of `reference_exp64`
    g = 1 if a >= ERF_ONE
    result = small if a < 0.875 else (-g if x < 0 else g)
    Hence erf(±0) = ±0, ±inf → ±1, NaN → NaN.
    """
    require_float64(x, "x")
    a = torch.abs(x)
    s = torch.mul(x, x)
    small = torch.add(x, torch.mul(x, compute_horner64(ERF_POLY, s)))
    limit = _c(ERF_ONE, x)
    ac = torch.where(a < limit, a, limit)
    tail_poly = compute_horner64(ERFC_TAIL_3, torch.sub(ac, _c(ERFC_CENTERS[3], x)))
    for piece in (2, 1, 0):
        below = ac < _c(ERFC_BREAKS[piece], x)
        value = compute_horner64(ERFC_TAILS[piece], torch.sub(ac, _c(ERFC_CENTERS[piece], x)))
        tail_poly = torch.where(below, value, tail_poly)
    tail = torch.mul(compute_exp64_core(torch.neg(torch.mul(ac, ac))), tail_poly)
    g = torch.sub(_c(1.0, x), tail)
    g = torch.where(a >= limit, _c(1.0, x), g)
    large = torch.where(x < 0, torch.neg(g), g)
    result = torch.where(a < _c(ERF_SMALL, x), small, large)
    return _nan_where_input_nan(x, result)


# ---- sqrt and rsqrt --------------------------------------------------------------------------------

_MANTISSA = (1 << 52) - 1
_LOW56 = (1 << 56) - 1
_LOW28 = (1 << 28) - 1


def _decompose(v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(M, E) with v = M * 2**E and 2**52 <= M < 2**53, for positive normal float64 v."""
    bits = _bits(v)
    return torch.bitwise_or(torch.bitwise_and(bits, _MANTISSA), 1 << 52), torch.bitwise_right_shift(bits, 52) - 1075


def _square_split(k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """k*k = hi * 2**56 + lo exactly, 0 <= lo < 2**56, for int64 0 <= k < 2**55 (28-bit limbs)."""
    kh, kl = torch.bitwise_right_shift(k, 28), torch.bitwise_and(k, _LOW28)
    cross = 2 * kh * kl  # < 2**56
    lo = kl * kl + torch.bitwise_left_shift(torch.bitwise_and(cross, _LOW28), 28)  # < 2**57
    hi = kh * kh + torch.bitwise_right_shift(cross, 28) + torch.bitwise_right_shift(lo, 56)
    return hi, torch.bitwise_and(lo, _LOW56)


def _shifted_split(m: torch.Tensor, d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """m * 2**d = hi * 2**56 + lo exactly, 0 <= lo < 2**56, for 0 <= m < 2**53 and 0 <= d <= 62."""
    up = torch.clamp(d - 56, min=0)
    down = torch.clamp(56 - d, min=0)
    hi = torch.where(d >= 56, torch.bitwise_left_shift(m, up), torch.bitwise_right_shift(m, down))
    kept = torch.bitwise_and(m, torch.bitwise_left_shift(torch.ones_like(m), down) - 1)
    lo = torch.where(d >= 56, torch.zeros_like(m), torch.bitwise_left_shift(kept, torch.clamp(d, min=0)))
    return hi, lo


def _compare_to_midpoint(mx: torch.Tensor, ex: torch.Tensor, k: torch.Tensor, ey: torch.Tensor) -> torch.Tensor:
    """sign(x - (k * 2**(ey - 2))**2) for x = mx * 2**ex, exactly: -1, 0 or 1 (int64).

    Both sides are scaled by 2**(4 - 2*ey) and compared as 112-bit integers in two 56-bit limbs.
    Exponent gaps outside 0 … 62 (impossible for a candidate within a few ulps) compare as 0.
    """
    d = ex - 2 * ey + 4
    xh, xl = _shifted_split(mx, torch.clamp(d, 0, 62))
    kh, kl = _square_split(k)
    sign = torch.where(xh > kh, 1, torch.where(xh < kh, -1, torch.sign(xl - kl)))
    return torch.where((d >= 0) & (d <= 62), sign, torch.zeros_like(sign))


def _correct_square_root(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """One exact correction step: y moves one ulp toward sqrt(x) if x lies beyond the midpoint
    between y and that neighbour. x and y positive normal float64."""
    mx, ex = _decompose(x)
    my, ey = _decompose(y)
    upper = 4 * my + 2  # (y + ulp/2) = upper * 2**(ey - 2)
    power = my == (1 << 52)  # below a power of two the neighbour is half an ulp away
    lower = torch.where(power, 4 * my - 1, 4 * my - 2)
    up = _compare_to_midpoint(mx, ex, upper, ey) > 0
    down = _compare_to_midpoint(mx, ex, lower, ey) < 0
    bits = _bits(y)
    return _from_bits(torch.where(up, bits + 1, torch.where(down, bits - 1, bits)))


def reference_sqrt64(x: torch.Tensor) -> torch.Tensor:
    """Square root, correctly rounded (IEEE 754 squareRoot); float64 → float64.

    The value is defined as the float64 nearest to the exact square root (square roots of floats
    are never halfway between two floats, so there is no tie). The reference reaches it from the
    device's own sqrt, which need not be correctly rounded, by two exact correction steps: x is
    compared, as a 112-bit integer, with the squares of the midpoints between the candidate and its
    two neighbours, and the candidate moves one ulp where x lies beyond one (subnormal x are scaled
    by 2**108 first and the root by 2**-54 after, both exact). Special values: sqrt(±0) = ±0,
    sqrt(+inf) = +inf, x < 0 → NaN, NaN → NaN.
    """
    require_float64(x, "x")
    regular = (x > 0) & (x < _c(float("inf"), x))
    sub = x < _c(2.0**-1022, x)
    scaled = torch.where(sub, torch.mul(x, _c(2.0**108, x)), x)
    scaled = torch.where(regular, scaled, _c(1.0, x))
    y = torch.sqrt(scaled)
    for _ in range(2):
        y = _correct_square_root(scaled, y)
    y = torch.where(sub, torch.mul(y, _c(2.0**-54, x)), y)
    result = torch.where(regular, y, torch.sqrt(x))
    result = torch.where(x < 0, _nan(x), result)
    return _nan_where_input_nan(x, result)


def reference_rsqrt64(x: torch.Tensor) -> torch.Tensor:
    """fl(1 / reference_sqrt64(x)); float64 → float64. +0 → +inf, -0 → -inf, +inf → +0, x < 0 → NaN."""
    require_float64(x, "x")
    return _nan_where_input_nan(x, torch.div(_c(1.0, x), reference_sqrt64(x)))


# ---- sin and cos -----------------------------------------------------------------------------------


def compute_sincos64(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(sin x, cos x) of a float64 tensor, by the steps of `protocol.semantics.trigonometry` with the
    longer polynomials SIN_POLY and COS_POLY and no final rounding:

        d = fmod(x, TWO_PI) if |x| >= 2**20 else x         (exact)
        t = fl(d * TWO_OVER_PI); k = t if |t| >= 2**52 else fl(fl(t + MAGIC) - MAGIC)
        r = fl(fl(fl(d - fl(k * PIO2_1)) - fl(k * PIO2_2)) - fl(k * PIO2_3)); q = k mod 4
        s = fl(r * r); S = fl(r + fl(fl(r * s) * Horner(SIN_POLY, s))) (S = r for r = ±0)
        C = fl(fl(1 - fl(0.5 * s)) + fl(fl(s * s) * Horner(COS_POLY, s)))
        sin = S, C, -S, -C and cos = C, -S, -C, S for q = 0, 1, 2, 3.

    NaN and ±inf give the canonical NaN; from 2**20 on the value is defined but is not the sine of x.
    """
    require_float64(x, "x")
    d = torch.where(x.abs() >= _c(TRIG_LARGE, x), torch.fmod(x, _c(TWO_PI, x)), x)
    t = torch.mul(d, _c(TWO_OVER_PI, x))
    magic = _c(ROUND_MAGIC, x)
    k = torch.where(t.abs() >= _c(INTEGER_FROM, x), t, torch.sub(torch.add(t, magic), magic))
    k = torch.where(torch.isfinite(k), k, torch.zeros_like(k))
    r = torch.sub(torch.sub(torch.sub(d, torch.mul(k, _c(PIO2_1, x))), torch.mul(k, _c(PIO2_2, x))), torch.mul(k, _c(PIO2_3, x)))
    q = torch.sub(k, torch.mul(_c(4.0, x), torch.floor(torch.div(k, _c(4.0, x)))))
    s = torch.mul(r, r)
    sine = torch.where(r == 0, r, torch.add(r, torch.mul(torch.mul(r, s), compute_horner64(SIN_POLY, s))))
    cosine = torch.add(
        torch.sub(_c(1.0, x), torch.mul(_c(0.5, x), s)), torch.mul(torch.mul(s, s), compute_horner64(COS_POLY, s))
    )
    swap = (q == 1.0) | (q == 3.0)
    first = torch.where(swap, cosine, sine)
    second = torch.where(swap, sine, cosine)
    sin = torch.where(q >= 2.0, torch.neg(first), first)
    cos = torch.where((q == 1.0) | (q == 2.0), torch.neg(second), second)
    invalid = ~torch.isfinite(x)
    return torch.where(invalid, _nan(x), sin), torch.where(invalid, _nan(x), cos)


def reference_sin64(x: torch.Tensor) -> torch.Tensor:
    """sin elementwise, float64 → float64 (see `compute_sincos64`)."""
    return compute_sincos64(x)[0]


def reference_cos64(x: torch.Tensor) -> torch.Tensor:
    """cos elementwise, float64 → float64 (see `compute_sincos64`)."""
    return compute_sincos64(x)[1]
