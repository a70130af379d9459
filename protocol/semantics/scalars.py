"""Correctly rounded scalar functions: the protocol's definition of the Python-float math that
optimizers and schedulers do between operators.

Training code computes some operator arguments in Python floats: Adam's bias corrections
(`1 - beta1 ** step`), NAdam's momentum schedule (`0.96 ** (step * decay)`), a cosine schedule's
`math.cos(math.pi * t / T)`. Python's `+ - * /` and `math.sqrt` are IEEE 754 operations, correctly
rounded on every platform; `**`, `math.cos`, `math.exp` and the like call the platform's C library,
whose results differ between libraries in the last bit. pinpoint defines those as the correctly
rounded binary64 result (round to nearest, ties to even) of the exact mathematical function:

    compute_pow(x, y)      x ** y, with Python's special cases (0 ** negative raises, a negative
                           base with a non-integer exponent raises, inf and nan as C99 pow)
    compute_exp/log/log2/log10/log1p/expm1/sin/cos/tan/atan/tanh(x)   the function, as `math`'s

Method: an integer exponent |y| <= 64 is evaluated exactly in rational arithmetic; everything else
with 320-bit binary floating point (mpmath, pure Python: the same bits on every platform), whose
error is far below what could move the rounding of a binary64 result except at exact halfway
points, which these functions cannot reach for the arguments where they are not exact. The result
is rounded to binary64 by exact rational conversion (`float(Fraction)`, correctly rounded).
Anyone can implement this with any correctly rounded library (CORE-MATH, CRlibm, MPFR).
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from fractions import Fraction
from functools import lru_cache

import mpmath

_CONTEXT = mpmath.MPContext()
_CONTEXT.prec = 320
MAX_EXACT_EXPONENT = 64
BELOW_HALF_SUBNORMAL = -1075  # |value| < 2**-1075, half of binary64's least subnormal: rounds to zero
BEYOND_OVERFLOW = 1025  # |value| >= 2**1025: beyond binary64's largest finite value, rounds to infinity


def _round(value: object) -> float:
    """The binary64 nearest to an mpmath number (ties to even), by exact rational conversion."""
    number = _CONTEXT.mpf(value)
    if _CONTEXT.isnan(number):
        return math.nan
    if _CONTEXT.isinf(number):
        return math.inf if number > 0 else -math.inf
    sign, mantissa, exponent, _ = number._mpf_
    magnitude = exponent + int(mantissa).bit_length()  # 2**(magnitude - 1) <= |value| < 2**magnitude
    if magnitude <= BELOW_HALF_SUBNORMAL:  # below half the least subnormal: rounds to zero (what the
        return -0.0 if sign else 0.0  # exact conversion gives, without a 2**|exponent| rational)
    if magnitude > BEYOND_OVERFLOW:
        return -math.inf if sign else math.inf
    exact = Fraction(mantissa) * (Fraction(2) ** exponent)
    try:
        result = float(-exact if sign else exact)
    except OverflowError:
        return -math.inf if sign else math.inf
    return result


def compute_pow(x: float, y: float) -> float:
    """x ** y correctly rounded; Python float semantics for the special cases. Memoised by the two
    operands' bit patterns (an optimizer raises the same beta to the same step once per parameter)."""
    x, y = float(x), float(y)
    return _compute_pow_bits(struct.pack("<dd", x, y))


@lru_cache(maxsize=4096)
def _compute_pow_bits(operands: bytes) -> float:
    x, y = struct.unpack("<dd", operands)
    if x != x or y != y or math.isinf(x) or math.isinf(y) or x == 0.0 or y == 0.0 or x == 1.0:
        return math.pow(x, y)  # exact special cases (C99 Annex F), the same in every conforming library
    if x < 0.0 and not y.is_integer():
        raise ValueError("a negative number cannot be raised to a fractional power")
    if y.is_integer() and abs(y) <= MAX_EXACT_EXPONENT:
        exact = Fraction(x) ** int(y)
        try:
            return float(exact)
        except OverflowError:
            return -math.inf if exact < 0 else math.inf
    magnitude = _CONTEXT.power(_CONTEXT.mpf(abs(x)), _CONTEXT.mpf(y))
    result = _round(magnitude)
    return -result if x < 0.0 and int(y) % 2 == 1 else result


def _unary(name: str, function: Callable[[float], object], domain: Callable[[float], bool] = lambda v: True) -> Callable[[float], float]:
    reference = getattr(math, name)

    def compute(x: float) -> float:
        x = float(x)
        if x != x or math.isinf(x) or x == 0.0 or not domain(x):
            return float(reference(x))  # special values: exact in every conforming library (or a ValueError)
        return _round(function(x))

    compute.__name__ = f"compute_{name}"
    compute.__doc__ = f"math.{name}(x), correctly rounded."
    return compute


compute_exp = _unary("exp", lambda v: _CONTEXT.exp(_CONTEXT.mpf(v)))
compute_expm1 = _unary("expm1", lambda v: _CONTEXT.expm1(_CONTEXT.mpf(v)))
compute_log = _unary("log", lambda v: _CONTEXT.log(_CONTEXT.mpf(v)), lambda v: v > 0)
compute_log2 = _unary("log2", lambda v: _CONTEXT.log(_CONTEXT.mpf(v), 2), lambda v: v > 0)
compute_log10 = _unary("log10", lambda v: _CONTEXT.log10(_CONTEXT.mpf(v)), lambda v: v > 0)
compute_log1p = _unary("log1p", lambda v: _CONTEXT.log1p(_CONTEXT.mpf(v)), lambda v: v > -1)
compute_sin = _unary("sin", lambda v: _CONTEXT.sin(_CONTEXT.mpf(v)))
compute_cos = _unary("cos", lambda v: _CONTEXT.cos(_CONTEXT.mpf(v)))
compute_tan = _unary("tan", lambda v: _CONTEXT.tan(_CONTEXT.mpf(v)))
compute_atan = _unary("atan", lambda v: _CONTEXT.atan(_CONTEXT.mpf(v)))
compute_tanh = _unary("tanh", lambda v: _CONTEXT.tanh(_CONTEXT.mpf(v)))

MATH_FUNCTIONS: dict[str, Callable[[float], float]] = {
    "exp": compute_exp, "expm1": compute_expm1, "log": compute_log, "log2": compute_log2, "log10": compute_log10,
    "log1p": compute_log1p, "sin": compute_sin, "cos": compute_cos, "tan": compute_tan, "atan": compute_atan,
    "tanh": compute_tanh,
}
"""The `math` functions the protocol defines, by name (math.log's optional base is not defined)."""
