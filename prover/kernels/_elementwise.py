"""Fast CPU elementwise functions, bit-equal to `protocol.semantics.elementwise`.

Each function is the reference's exact sequence of float32 operations, written as a branch-free
scalar function (compare-and-select instead of branches) that LLVM vectorises; numba without
fast-math keeps every operation separately rounded and in order. The polynomial and range
constants come from `protocol.semantics.elementwise` at import and are passed in as an array (not
baked into the machine code), so numba's on-disk cache can never hold stale constants.

One kernel serves every function: `map_serial(op, x, out, n, k)` / `map_parallel(...)` with `op`
one of the OP_* codes, `x` and `out` byte addresses of n contiguous float32, `k` the constants
(`CONSTANTS`).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import carray, njit, prange, types
from numba.extending import intrinsic

from protocol.semantics import elementwise as spec
from protocol.semantics.floats import CANONICAL_NAN_BITS, f32
from prover.kernels import _host

OP_EXP, OP_LOG, OP_TANH, OP_ERF, OP_SQRT, OP_RSQRT = range(6)
BLOCK = 16384
"""Elements per parallel task."""
PARALLEL_MIN_ELEMENTS = 1 << 16
"""Arrays shorter than this run on the calling thread."""

_EXP_BITS = (spec.EXP_CLAMP_HIGH, spec.EXP_CLAMP_LOW, spec.LOG2E, spec.ROUND_MAGIC, spec.LN2_HIGH,
             spec.LN2_LOW, *spec.EXP_POLY)
_LOG_BITS = (spec.LOG_SMALLEST_NORMAL, spec.LOG_SUBNORMAL_SCALE, spec.LOG_SQRT2, *spec.LOG_POLY)
_TANH_BITS = (spec.TANH_SMALL, *spec.TANH_POLY)
_ERF_BITS = (spec.ERF_SMALL, spec.ERF_ONE, spec.ERF_CENTER, *spec.ERF_POLY, *spec.ERF_TAIL_POLY)
_LAYOUT = (_EXP_BITS, _LOG_BITS, _TANH_BITS, _ERF_BITS)
CONSTANTS = np.array([f32(b) for group in _LAYOUT for b in group], dtype=np.float32)
"""All constants, laid out as exp (11), log (11), tanh (8), erf (20)."""
assert CONSTANTS.shape[0] == 50, "the kernels below index this layout"

_NAN_BITS = np.int32(CANONICAL_NAN_BITS)
_ZERO = np.float32(0.0)
_ONE = np.float32(1.0)
_TWO = np.float32(2.0)
_HALF = np.float32(0.5)
_INF = np.float32(np.inf)


@intrinsic
def _f32_pointer(typingctx, address):
    """The float32 pointer at a byte address (for `numba.carray`)."""
    sig = types.CPointer(types.float32)(types.int64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], ir.FloatType().as_pointer())

    return sig, codegen


@njit(inline="always")
def _bits(v):
    return np.float32(v).view(np.int32)


@njit(inline="always")
def _float(b):
    return np.int32(b).view(np.float32)


@intrinsic
def _i32_pointer(typingctx, address):
    """The int32 pointer at a byte address (outputs are written as bit patterns)."""
    sig = types.CPointer(types.int32)(types.int64)

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], ir.IntType(32).as_pointer())

    return sig, codegen


@njit(inline="always")
def _nan_if(condition, y):
    """The bit pattern of: the canonical NaN if condition else y.

    Kernels select and store bit patterns, never floats: LLVM treats all NaNs as interchangeable
    and folds a float "NaN if x < 0 else sqrt(x)" into plain sqrt(x), which lets the processor's own
    NaN (0xFFC00000 on x86) through.
    """
    return _NAN_BITS if condition else _bits(y)


@njit(inline="always")
def _exp_core(x, e):
    """The reference's exp core; e = the 11 exp constants."""
    high, low, log2e, magic, ln2_high, ln2_low, c0, c1, c2, c3, c4 = e
    # At or below the low clamp the reference's result is exactly +0.0 (0.97 * 2**-150 rounds to
    # zero). Those lanes (a causal mask's -inf, mostly) compute from 0.0 instead and select +0.0: the
    # same bits without subnormal arithmetic, which costs the processor microcode assists.
    dead = x <= low
    xc = x if x < high else high
    xc = xc if xc > low else low
    xc = _ZERO if dead else xc
    t = (xc * log2e + magic) - magic
    r = xc - t * ln2_high
    r = r - t * ln2_low
    q = c4 * r + c3
    q = q * r + c2
    q = q * r + c1
    q = q * r + c0
    y = _ONE + (r + (r * r) * q)
    n = np.int32(t)
    n1 = n >> 1
    n2 = n - n1
    s1 = _float((n1 + 127) << 23)
    s2 = _float((n2 + 127) << 23)
    result = (y * s1) * s2
    return _ZERO if dead else result


@njit(inline="always")
def _exp(x, e):
    return _nan_if(x != x, _exp_core(x, e))


@njit(inline="always")
def _log(x, g):
    smallest, scale, sqrt2, l2h, l2l, c0, c1, c2, c3, c4, c5, c6, c7 = g
    small = x < smallest
    v = x * scale if small else x
    ix = _bits(v)
    e = ((ix >> 23) & 0xFF) - 127
    e = e - 23 if small else e
    m = _float((ix & 0x7FFFFF) | 0x3F800000)
    big = m > sqrt2
    m = m * _HALF if big else m
    e = e + 1 if big else e
    f = m - _ONE
    f2 = f * f
    q = c7 * f + c6
    q = q * f + c5
    q = q * f + c4
    q = q * f + c3
    q = q * f + c2
    q = q * f + c1
    q = q * f + c0
    lo = (f2 * f) * q - f2 * _HALF
    ef = np.float32(e)
    result = ef * l2h + (f + (lo + ef * l2l))
    result = x if x == _INF else result
    result = -_INF if x == 0 else result
    return _nan_if(x < 0 or x != x, result)


@njit(inline="always")
def _tanh(x, e, g):
    threshold, c0, c1, c2, c3, c4, c5, c6 = g
    a = np.abs(x)
    s = x * x
    p = c6 * s + c5
    p = p * s + c4
    p = p * s + c3
    p = p * s + c2
    p = p * s + c1
    p = p * s + c0
    small = x + x * (s * p)
    big = _exp_core(a + a, e)
    h = _ONE - _TWO / (big + _ONE)
    large = -h if x < 0 else h
    result = small if a < threshold else large
    result = x if x == 0 else result
    return _nan_if(x != x, result)


@njit(inline="always")
def _erf(x, e, g):
    (threshold, one_from, center, p0, p1, p2, p3, p4, p5, p6,
     r0, r1, r2, r3, r4, r5, r6, r7, r8, r9) = g
    a = np.abs(x)
    s = x * x
    p = p6 * s + p5
    p = p * s + p4
    p = p * s + p3
    p = p * s + p2
    p = p * s + p1
    p = p * s + p0
    small = x + x * p
    ac = a if a < one_from else one_from
    z = ac - center
    r = r9 * z + r8
    r = r * z + r7
    r = r * z + r6
    r = r * z + r5
    r = r * z + r4
    r = r * z + r3
    r = r * z + r2
    r = r * z + r1
    r = r * z + r0
    h = _ONE - _exp_core(-(ac * ac), e) * r
    h = _ONE if a >= one_from else h
    large = -h if x < 0 else h
    result = small if a < threshold else large
    return _nan_if(x != x, result)


@njit(inline="always")
def _sqrt(x):
    # The hardware float32 square root is IEEE 754 correctly rounded: the reference's result.
    # Negative inputs are replaced by 1.0 before the root, so LLVM cannot infer that the root is
    # NaN exactly when the NaN rule applies and drop the rule (it would, see _nan_if).
    invalid = x < 0 or x != x
    return _nan_if(invalid, np.sqrt(_ONE if x < 0 else x))


@njit(inline="always")
def _rsqrt(x):
    invalid = x < 0 or x != x
    return _nan_if(invalid, _ONE / np.sqrt(_ONE if x < 0 else x))


@njit(inline="always")
def exp_constants(k):
    """The exp core's 11 constants out of `CONSTANTS` (as a tuple: registers, not loads)."""
    return (k[0], k[1], k[2], k[3], k[4], k[5], k[6], k[7], k[8], k[9], k[10])


@njit(inline="always")
def tanh_constants(k):
    """tanh's 8 constants out of `CONSTANTS`."""
    return (k[22], k[23], k[24], k[25], k[26], k[27], k[28], k[29])


@njit(inline="always")
def erf_constants(k):
    """erf's 20 constants out of `CONSTANTS`."""
    return (k[30], k[31], k[32], k[33], k[34], k[35], k[36], k[37], k[38], k[39],
            k[40], k[41], k[42], k[43], k[44], k[45], k[46], k[47], k[48], k[49])


@njit(cache=_host.CACHE, error_model="numpy")
def _map_range(op, src, dst, k):
    """dst[i] = bits(f_op(src[i])) for every i; one loop per op so each vectorises.

    Loops run from 0 over whole (sliced) arrays: with a runtime start, LLVM cannot prove the index
    non-negative and keeps numba's negative-index wraparound in the loop, which stops vectorising.
    """
    n = src.shape[0]
    e = exp_constants(k)
    if op == OP_EXP:
        for i in range(n):
            dst[i] = _exp(src[i], e)
    elif op == OP_LOG:
        g = (k[11], k[12], k[13], k[4], k[5], k[14], k[15], k[16], k[17], k[18], k[19], k[20], k[21])
        for i in range(n):
            dst[i] = _log(src[i], g)
    elif op == OP_TANH:
        t = tanh_constants(k)
        for i in range(n):
            dst[i] = _tanh(src[i], e, t)
    elif op == OP_ERF:
        f = erf_constants(k)
        for i in range(n):
            dst[i] = _erf(src[i], e, f)
    elif op == OP_SQRT:
        for i in range(n):
            dst[i] = _sqrt(src[i])
    else:
        for i in range(n):
            dst[i] = _rsqrt(src[i])


@njit(cache=_host.CACHE, error_model="numpy")
def map_serial(op, x, out, n, k):
    """out[i] = f_op(x[i]) for i < n on the calling thread; x, out byte addresses."""
    src = carray(_f32_pointer(x), n)
    dst = carray(_i32_pointer(out), n)
    _map_range(op, src, dst, k)


@njit(cache=_host.CACHE, parallel=True, error_model="numpy")
def map_parallel(op, x, out, n, k):
    """As map_serial, in blocks of BLOCK elements on numba's threads."""
    src = carray(_f32_pointer(x), n)
    dst = carray(_i32_pointer(out), n)
    blocks = (n + BLOCK - 1) // BLOCK
    for b in prange(blocks):
        start = b * BLOCK
        stop = min(n, start + BLOCK)
        _map_range(op, src[start:stop], dst[start:stop], k)
