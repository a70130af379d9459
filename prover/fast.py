"""The prover's primitive backend: the fast CPU kernels of `prover.kernels` behind the
`protocol.ops.prims.Primitives` interface, plus the sequential segment sum of embedding gradients.

Non-CPU tensors never reach this backend (see `prover.run.get_primitives_for`): other devices use the
device-generic references, which define the same bits. The kernels are float32 kernels; float64
tensors go to the references too (`_float32_or_reference`).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, TypeVar, cast

import numba
import numpy as np
import torch

from protocol.ops.prims import GELU_CUBIC, INV_SQRT_2PI, REFERENCE, SQRT1_2, SQRT_2_OVER_PI
from protocol.ops.random import MUL1, MUL2, compute_stream_key
from protocol.semantics.floats import canonicalize_nan
from prover import kernels
from prover.kernels import trigonometry
from prover.kernels._elementwise import (
    _NAN_BITS,
    _ZERO,
    CONSTANTS,
    PARALLEL_MIN_ELEMENTS,
    _erf,
    _exp,
    _float,
    _nan_if,
    _tanh,
    erf_constants,
    exp_constants,
    tanh_constants,
)
from prover.kernels._reductions import _MAGNITUDE, _max_key


@numba.njit(cache=True)
def _segment_sum(values: np.ndarray, segments: np.ndarray, out: np.ndarray) -> None:
    # out[s] += values[p] for p in ascending order: each element's additions happen in that order
    count = out.shape[0]
    for p in range(values.shape[0]):
        s = segments[p]
        if 0 <= s < count:
            for d in range(values.shape[1]):
                out[s, d] = out[s, d] + values[p, d]


@numba.njit(cache=True, parallel=True)
def _bernoulli(out: np.ndarray, key: np.uint64, offset: np.int64, threshold: np.float32) -> None:
    # protocol.ops.random: u = (mix32((offset + i) mod 2**32 ^ key) >> 8) * 2**-24; out = u < p
    mask = np.uint64(0xFFFFFFFF)
    scale = np.float32(2.0**-24)
    for i in numba.prange(out.shape[0]):
        x = ((np.uint64(offset + i) & mask) ^ key) & mask
        x ^= x >> np.uint64(16)
        x = (x * np.uint64(MUL1)) & mask
        x ^= x >> np.uint64(15)
        x = (x * np.uint64(MUL2)) & mask
        x ^= x >> np.uint64(16)
        u = np.float32(x >> np.uint64(8)) * scale  # exact: a 24-bit integer times a power of two
        out[i] = np.float32(1.0) if u < threshold else np.float32(0.0)


# --- fused GELU: the exact operation sequence of protocol.ops.prims.compute_gelu(_backward) --------

_HALF, _ONE, _NEG_HALF = np.float32(0.5), np.float32(1.0), np.float32(-0.5)
_SQRT1_2, _INV_SQRT_2PI = np.float32(SQRT1_2), np.float32(INV_SQRT_2PI)
_BLOCK = 16384  # elements per parallel task


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _gelu(x: np.ndarray, out: np.ndarray, k: np.ndarray) -> None:
    e = exp_constants(k)
    f = erf_constants(k)
    n = x.shape[0]
    for b in numba.prange((n + _BLOCK - 1) // _BLOCK):
        for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            v = x[i]
            out[i] = (v * _HALF) * (_ONE + _float(_erf(v * _SQRT1_2, e, f)))


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _gelu_backward(grad: np.ndarray, x: np.ndarray, out: np.ndarray, k: np.ndarray) -> None:
    e = exp_constants(k)
    f = erf_constants(k)
    n = x.shape[0]
    for b in numba.prange((n + _BLOCK - 1) // _BLOCK):
        for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            v = x[i]
            cdf = _HALF * (_ONE + _float(_erf(v * _SQRT1_2, e, f)))
            pdf = _float(_exp((v * v) * _NEG_HALF, e)) * _INV_SQRT_2PI
            out[i] = grad[i] * (cdf + v * pdf)


# --- fused GELU, tanh form: the exact operation sequence of protocol.ops.prims.compute_gelu_tanh(_backward)

_SQRT_2_OVER_PI, _CUBIC, _CUBIC3 = np.float32(SQRT_2_OVER_PI), np.float32(GELU_CUBIC), np.float32(3 * GELU_CUBIC)


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _gelu_tanh(x: np.ndarray, out: np.ndarray, k: np.ndarray) -> None:
    e = exp_constants(k)
    t = tanh_constants(k)
    n = x.shape[0]
    for b in numba.prange((n + _BLOCK - 1) // _BLOCK):
        for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            v = x[i]
            inner = _SQRT_2_OVER_PI * (v + _CUBIC * ((v * v) * v))
            out[i] = (v * _HALF) * (_ONE + _float(_tanh(inner, e, t)))


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _gelu_tanh_backward(grad: np.ndarray, x: np.ndarray, out: np.ndarray, k: np.ndarray) -> None:
    e = exp_constants(k)
    t = tanh_constants(k)
    n = x.shape[0]
    for b in numba.prange((n + _BLOCK - 1) // _BLOCK):
        for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            v = x[i]
            v2 = v * v
            h = _float(_tanh(_SQRT_2_OVER_PI * (v + _CUBIC * (v2 * v)), e, t))
            left = _HALF * (_ONE + h)
            right = ((v * _HALF) * (_ONE - h * h)) * (_SQRT_2_OVER_PI * (_ONE + _CUBIC3 * v2))
            out[i] = grad[i] * (left + right)


# --- fused sigmoid and SiLU: the exact operation sequences of protocol.ops.prims.compute_sigmoid(_pair),
# compute_silu(_backward); results stored as bit patterns, the canonical NaN for a NaN (a float select
# would let the processor's own NaN through)


@numba.njit(inline="always")
def _sigmoid_pair(v, e):
    # e^ = exp(-|v|), d = fl(1 + e^), p = fl(1 / d), q = fl(e^ / d): (sigmoid, 1 - sigmoid) = (p, q) where
    # v >= 0, else (q, p)
    exp = _float(_exp(-abs(v), e))
    d = _ONE + exp
    p = _ONE / d
    q = exp / d
    return (p, q) if v >= _ZERO else (q, p)


@numba.njit(cache=True, error_model="numpy")
def _sigmoid_range(x: np.ndarray, out: np.ndarray, k: np.ndarray) -> None:
    e = exp_constants(k)
    for i in range(x.shape[0]):
        r = _sigmoid_pair(x[i], e)[0]
        out[i] = _nan_if(r != r, r)


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _sigmoid_parallel(x: np.ndarray, out: np.ndarray, k: np.ndarray) -> None:
    n = x.shape[0]
    for b in numba.prange((n + _BLOCK - 1) // _BLOCK):
        _sigmoid_range(x[b * _BLOCK : min(n, (b + 1) * _BLOCK)], out[b * _BLOCK : min(n, (b + 1) * _BLOCK)], k)


@numba.njit(cache=True, error_model="numpy")
def _silu_range(x: np.ndarray, out: np.ndarray, k: np.ndarray) -> None:
    # fl(v * sigmoid(v))
    e = exp_constants(k)
    for i in range(x.shape[0]):
        v = x[i]
        r = v * _sigmoid_pair(v, e)[0]
        out[i] = _nan_if(r != r, r)


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _silu_parallel(x: np.ndarray, out: np.ndarray, k: np.ndarray) -> None:
    n = x.shape[0]
    for b in numba.prange((n + _BLOCK - 1) // _BLOCK):
        _silu_range(x[b * _BLOCK : min(n, (b + 1) * _BLOCK)], out[b * _BLOCK : min(n, (b + 1) * _BLOCK)], k)


@numba.njit(cache=True, error_model="numpy")
def _silu_backward_range(grad: np.ndarray, x: np.ndarray, out: np.ndarray, k: np.ndarray) -> None:
    # (s, c) = the sigmoid pair of v; fl(g * fl(s * fl(1 + fl(v * c))))
    e = exp_constants(k)
    for i in range(x.shape[0]):
        v = x[i]
        s, c = _sigmoid_pair(v, e)
        r = grad[i] * (s * (_ONE + v * c))
        out[i] = _nan_if(r != r, r)


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _silu_backward_parallel(grad: np.ndarray, x: np.ndarray, out: np.ndarray, k: np.ndarray) -> None:
    n = x.shape[0]
    for b in numba.prange((n + _BLOCK - 1) // _BLOCK):
        low, high = b * _BLOCK, min(n, (b + 1) * _BLOCK)
        _silu_backward_range(grad[low:high], x[low:high], out[low:high], k)


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _maximum(x: np.ndarray, y: np.ndarray, x_bits: np.ndarray, y_bits: np.ndarray, out: np.ndarray) -> None:
    # max2 on bit patterns: the canonical NaN if either is a NaN; the larger; equal values (+0.0 and -0.0
    # among them) the AND of their bits, so +0.0 wins
    n = x.shape[0]
    for b in numba.prange((n + _BLOCK - 1) // _BLOCK):
        for i in range(b * _BLOCK, min(n, (b + 1) * _BLOCK)):
            u, v = x[i], y[i]
            if u != u or v != v:
                out[i] = _NAN_BITS
            elif u > v:
                out[i] = x_bits[i]
            elif v > u:
                out[i] = y_bits[i]
            else:
                out[i] = x_bits[i] & y_bits[i]


@numba.njit(cache=True, error_model="numpy")
def _sigmoid_backward_range(grad: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:
    # fl(fl(g * fl(1 - y)) * y) as a bit pattern, the canonical NaN for a NaN
    for i in range(y.shape[0]):
        v = y[i]
        r = (grad[i] * (_ONE - v)) * v
        out[i] = _nan_if(r != r, r)


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _sigmoid_backward_parallel(grad: np.ndarray, y: np.ndarray, out: np.ndarray) -> None:
    n = y.shape[0]
    for b in numba.prange((n + _BLOCK - 1) // _BLOCK):
        low, high = b * _BLOCK, min(n, (b + 1) * _BLOCK)
        _sigmoid_backward_range(grad[low:high], y[low:high], out[low:high])


# --- column sums: each column's halving tree over the rows, as protocol.semantics.reference_rowsum -----

_COLUMNS = 16  # columns per parallel task: one cache line of each row


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _colsum(x: np.ndarray, out: np.ndarray) -> None:
    # rows >= 2: y = the rows padded with +0.0 rows to P (the least power of two >= rows); for h = P/2,
    # P/4, …, 1: y[i] = fl(y[i] + y[i+h]) for i < h; out = y[0]. The first level reads x directly.
    rows, n = x.shape
    size = 1
    while size < rows:
        size *= 2
    half = size // 2
    for block in numba.prange((n + _COLUMNS - 1) // _COLUMNS):
        j0 = block * _COLUMNS
        width = min(n, j0 + _COLUMNS) - j0
        y = np.empty((half, width), np.float32)
        for i in range(half):
            if i + half < rows:
                for j in range(width):
                    y[i, j] = x[i, j0 + j] + x[i + half, j0 + j]
            else:
                for j in range(width):
                    y[i, j] = x[i, j0 + j] + _ZERO  # the padding's +0.0 (turns -0.0 into +0.0)
        h = half // 2
        while h >= 1:
            for i in range(h):
                for j in range(width):
                    y[i, j] = y[i, j] + y[i + h, j]
            h //= 2
        for j in range(width):
            out[j0 + j] = y[0, j]


# --- layer norm's backward over rows: protocol.ops.prims.compute_layer_norm_backward, fused per row --------


@numba.njit(cache=True, inline="always")
def _padded_size(n: int) -> int:
    """The smallest power of two at least n: the length a halving tree pads n values to."""
    size = 1
    while size < n:
        size *= 2
    return size


@numba.njit(cache=True, inline="always")
def _halving_sum(buffer: np.ndarray, n: int) -> np.float32:
    # protocol.semantics.reference_rowsum of buffer[:n], with buffer[n:P] free for the +0.0 padding
    if n == 1:
        return buffer[0]
    size = _padded_size(n)
    for i in range(n, size):
        buffer[i] = _ZERO
    h = size // 2
    while h >= 1:
        for i in range(h):
            buffer[i] = buffer[i] + buffer[i + h]
        h //= 2
    return buffer[0]


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _softmax_backward(grads: np.ndarray, outputs: np.ndarray, out: np.ndarray) -> None:
    count, n = outputs.shape
    size = _padded_size(n)
    for r in numba.prange(count):
        buffer = np.empty(size, np.float32)
        for j in range(n):
            buffer[j] = grads[r, j] * outputs[r, j]
        dot = _halving_sum(buffer, n)
        for j in range(n):
            out[r, j] = outputs[r, j] * (grads[r, j] - dot)


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _layer_norm_backward(grads: np.ndarray, rows: np.ndarray, mean: np.ndarray, rstd: np.ndarray,
                         weight: np.ndarray, weighted: bool, out: np.ndarray, grads_xhat: np.ndarray) -> None:
    count, n = rows.shape
    size = _padded_size(n)
    total = np.float32(n)
    for r in numba.prange(count):
        g = np.empty(n, np.float32)
        xhat = np.empty(n, np.float32)
        buffer = np.empty(size, np.float32)
        m, s = mean[r], rstd[r]
        for j in range(n):
            xhat[j] = (rows[r, j] - m) * s
            g[j] = grads[r, j] * weight[j] if weighted else grads[r, j]
            buffer[j] = g[j]
        g_mean = _halving_sum(buffer, n) / total
        for j in range(n):
            buffer[j] = g[j] * xhat[j]
        gx_mean = _halving_sum(buffer, n) / total
        for j in range(n):
            out[r, j] = ((g[j] - g_mean) - xhat[j] * gx_mean) * s
            grads_xhat[r, j] = grads[r, j] * xhat[j]


# --- softmax over rows: protocol.ops.prims.compute_softmax_rows, fused per row ----------------------


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _softmax_rows(x: np.ndarray, probs: np.ndarray, maxima: np.ndarray, sums: np.ndarray, k: np.ndarray) -> None:
    # probs, maxima, sums are int32 views: NaNs are stored as the canonical pattern, never as floats
    e = exp_constants(k)
    count, n = x.shape
    size = _padded_size(n)
    for r in numba.prange(count):
        row = x[r]
        best, nan = _max_key(row)
        m_bits = _NAN_BITS if nan else np.int32(best ^ ((best >> 31) & _MAGNITUDE))
        m = _float(m_bits)
        exps = np.empty(n, np.float32)
        buffer = np.empty(size, np.float32)
        for j in range(n):
            exps[j] = _float(_exp(row[j] - m, e))
            buffer[j] = exps[j]
        total = _halving_sum(buffer, n)
        for j in range(n):
            p = exps[j] / total
            probs[r, j] = _nan_if(p != p, p)
        maxima[r] = m_bits
        sums[r] = _nan_if(total != total, total)


# --- batch norm's per-channel sums: protocol.ops.prims.compute_channel_moments / _gradient_sums ------


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _channel_moments(x: np.ndarray, mean: np.ndarray, squares: np.ndarray) -> None:
    batch, channels, length = x.shape
    n = batch * length
    size = _padded_size(n)
    total = np.float32(n)
    for c in numba.prange(channels):
        row = np.empty(n, np.float32)
        buffer = np.empty(size, np.float32)
        for b in range(batch):
            for i in range(length):
                row[b * length + i] = x[b, c, i]
                buffer[b * length + i] = x[b, c, i]
        m = _halving_sum(buffer, n) / total
        for j in range(n):
            d = row[j] - m
            buffer[j] = d * d
        mean[c] = m
        squares[c] = _halving_sum(buffer, n)


@numba.njit(cache=True, parallel=True, error_model="numpy")
def _channel_gradient_sums(grads: np.ndarray, x: np.ndarray, mean: np.ndarray, invstd: np.ndarray,
                           sum_g: np.ndarray, sum_gx: np.ndarray) -> None:
    batch, channels, length = x.shape
    n = batch * length
    size = _padded_size(n)
    for c in numba.prange(channels):
        buffer = np.empty(size, np.float32)
        m, s = mean[c], invstd[c]
        for b in range(batch):
            for i in range(length):
                buffer[b * length + i] = grads[b, c, i]
        sum_g[c] = _halving_sum(buffer, n)
        for b in range(batch):
            for i in range(length):
                buffer[b * length + i] = grads[b, c, i] * ((x[b, c, i] - m) * s)
        sum_gx[c] = _halving_sum(buffer, n)


def _flat32(tensor: torch.Tensor) -> np.ndarray:
    return np.ascontiguousarray(tensor.detach().contiguous().numpy().reshape(-1), dtype=np.float32)


def _map_unary(kernel: Callable[..., None], x: torch.Tensor) -> torch.Tensor:
    """kernel(x, out, CONSTANTS) over the elements of a float32 `x`, as a new tensor of its shape."""
    out = np.empty(x.numel(), dtype=np.float32)
    kernel(_flat32(x), out, CONSTANTS)
    return torch.from_numpy(out).reshape(x.shape)


def _map_gradient(kernel: Callable[..., None], grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """kernel(grad, x, out, CONSTANTS) over the elements of float32 `grad` and `x`, broadcast together."""
    grad = grad.expand(torch.broadcast_shapes(grad.shape, x.shape))
    x = x.expand(grad.shape)
    out = np.empty(x.numel(), dtype=np.float32)
    kernel(_flat32(grad), _flat32(x), out, CONSTANTS)
    return torch.from_numpy(out).reshape(x.shape)


Method = TypeVar("Method", bound=Callable[..., Any])


def _float32_or_reference(method: Method) -> Method:
    """The kernel when every floating-point operand is float32, the reference primitive of the same name
    for any other dtype (the kernels are float32 kernels; both define the same bits)."""

    @functools.wraps(method)
    def primitive(self: Any, first: torch.Tensor, *rest: Any) -> Any:
        if first.dtype != torch.float32 or any(
            isinstance(r, torch.Tensor) and r.is_floating_point() and r.dtype != torch.float32 for r in rest
        ):
            return getattr(REFERENCE, method.__name__)(first, *rest)
        return method(self, first, *rest)

    return cast(Method, primitive)


class FastPrimitives:
    """Primitives for CPU float32 tensors; bit-equal to `protocol.ops.prims.REFERENCE`."""

    @_float32_or_reference
    def mm(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return kernels.mm(a, b)

    @_float32_or_reference
    def bmm(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return kernels.bmm(a, b)

    @_float32_or_reference
    def rowsum(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.rowsum(x)

    @_float32_or_reference
    def colsum(self, x: torch.Tensor) -> torch.Tensor:
        rows, n = x.shape
        if rows < 2 or n == 0:
            return REFERENCE.colsum(x)  # +0.0 for no rows, the row itself for one
        out = np.empty(n, dtype=np.float32)
        _colsum(np.ascontiguousarray(x.detach().numpy()), out)
        return canonicalize_nan(torch.from_numpy(out))

    @_float32_or_reference
    def softmax_rows(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        count, n = rows.shape
        if n == 0 or count == 0:
            return REFERENCE.softmax_rows(rows)
        probs, maxima, sums = np.empty((count, n), np.int32), np.empty(count, np.int32), np.empty(count, np.int32)
        _softmax_rows(np.ascontiguousarray(rows.detach().numpy()), probs, maxima, sums, CONSTANTS)
        return (torch.from_numpy(probs.view(np.float32)), torch.from_numpy(maxima.view(np.float32)),
                torch.from_numpy(sums.view(np.float32)))

    @_float32_or_reference
    def softmax_backward(self, grads: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
        count, n = outputs.shape
        if n == 0 or count == 0 or grads.shape != outputs.shape:
            return REFERENCE.softmax_backward(grads, outputs)
        out = np.empty((count, n), dtype=np.float32)
        _softmax_backward(np.ascontiguousarray(grads.detach().numpy()), np.ascontiguousarray(outputs.detach().numpy()), out)
        return torch.from_numpy(out)

    @_float32_or_reference
    def layer_norm_backward(
        self, grads: torch.Tensor, rows: torch.Tensor, mean: torch.Tensor, rstd: torch.Tensor, weight: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        count, n = rows.shape
        if n == 0 or count == 0:
            return REFERENCE.layer_norm_backward(grads, rows, mean, rstd, weight)
        out = np.empty((count, n), dtype=np.float32)
        grads_xhat = np.empty((count, n), dtype=np.float32)
        _layer_norm_backward(
            np.ascontiguousarray(grads.detach().numpy()), np.ascontiguousarray(rows.detach().numpy()),
            _flat32(mean), _flat32(rstd), _flat32(weight) if weight is not None else np.zeros(n, np.float32),
            weight is not None, out, grads_xhat)
        return torch.from_numpy(out), torch.from_numpy(grads_xhat)

    @_float32_or_reference
    def channel_moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        batch, channels, length = x.shape
        if batch * length == 0 or channels == 0:
            return REFERENCE.channel_moments(x)
        mean, squares = np.empty(channels, np.float32), np.empty(channels, np.float32)
        _channel_moments(np.ascontiguousarray(x.detach().numpy()), mean, squares)
        return canonicalize_nan(torch.from_numpy(mean)), canonicalize_nan(torch.from_numpy(squares))

    @_float32_or_reference
    def channel_gradient_sums(
        self, grads: torch.Tensor, x: torch.Tensor, mean: torch.Tensor, invstd: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        batch, channels, length = x.shape
        if batch * length == 0 or channels == 0 or grads.shape != x.shape:
            return REFERENCE.channel_gradient_sums(grads, x, mean, invstd)
        sum_g, sum_gx = np.empty(channels, np.float32), np.empty(channels, np.float32)
        _channel_gradient_sums(np.ascontiguousarray(grads.detach().numpy()), np.ascontiguousarray(x.detach().numpy()),
                               _flat32(mean), _flat32(invstd), sum_g, sum_gx)
        return canonicalize_nan(torch.from_numpy(sum_g)), canonicalize_nan(torch.from_numpy(sum_gx))

    @_float32_or_reference
    def rowmax(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.rowmax(x)

    @_float32_or_reference
    def rowargmax(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.rowargmax(x)

    @_float32_or_reference
    def exp(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.exp(x)

    @_float32_or_reference
    def log(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.log(x)

    @_float32_or_reference
    def tanh(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.tanh(x)

    @_float32_or_reference
    def erf(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.erf(x)

    @_float32_or_reference
    def sqrt(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.sqrt(x)

    @_float32_or_reference
    def sin(self, x: torch.Tensor) -> torch.Tensor:
        return trigonometry.sin(x)

    @_float32_or_reference
    def cos(self, x: torch.Tensor) -> torch.Tensor:
        return trigonometry.cos(x)

    @_float32_or_reference
    def rsqrt(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.rsqrt(x)

    def bernoulli(
        self, p: float, seed: int, step: int, offset: int, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        numel = math.prod(shape)
        out = np.empty(numel, dtype=np.float32)
        threshold = np.float32(torch.tensor(p, dtype=torch.float32).item())
        _bernoulli(out, np.uint64(compute_stream_key(seed, step)), np.int64(offset), threshold)
        return torch.from_numpy(out).reshape(shape).to(dtype)

    @_float32_or_reference
    def gelu(self, x: torch.Tensor) -> torch.Tensor:
        return _map_unary(_gelu, x)

    @_float32_or_reference
    def gelu_backward(self, grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return _map_gradient(_gelu_backward, grad, x)

    @_float32_or_reference
    def gelu_tanh(self, x: torch.Tensor) -> torch.Tensor:
        return _map_unary(_gelu_tanh, x)

    @_float32_or_reference
    def gelu_tanh_backward(self, grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return _map_gradient(_gelu_tanh_backward, grad, x)

    @_float32_or_reference
    def sigmoid(self, x: torch.Tensor) -> torch.Tensor:
        out = np.empty(x.numel(), dtype=np.int32)
        (_sigmoid_parallel if x.numel() >= PARALLEL_MIN_ELEMENTS else _sigmoid_range)(_flat32(x), out, CONSTANTS)
        return torch.from_numpy(out).view(torch.float32).reshape(x.shape)

    @_float32_or_reference
    def sigmoid_backward(self, grad: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if grad.dtype != y.dtype:
            return REFERENCE.sigmoid_backward(grad, y)
        if grad.shape != y.shape:
            grad = grad.expand(torch.broadcast_shapes(grad.shape, y.shape))
            y = y.expand(grad.shape)
        out = np.empty(y.numel(), dtype=np.int32)
        kernel = _sigmoid_backward_parallel if y.numel() >= PARALLEL_MIN_ELEMENTS else _sigmoid_backward_range
        kernel(_flat32(grad), _flat32(y), out)
        return torch.from_numpy(out).view(torch.float32).reshape(y.shape)

    @_float32_or_reference
    def maximum(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if x.dtype != y.dtype:
            return REFERENCE.maximum(x, y)
        first, second = _flat32(x), _flat32(y)
        out = np.empty(first.shape[0], dtype=np.int32)
        _maximum(first, second, first.view(np.int32), second.view(np.int32), out)
        return torch.from_numpy(out).view(torch.float32).reshape(x.shape)

    @_float32_or_reference
    def silu(self, x: torch.Tensor) -> torch.Tensor:
        out = np.empty(x.numel(), dtype=np.int32)
        (_silu_parallel if x.numel() >= PARALLEL_MIN_ELEMENTS else _silu_range)(_flat32(x), out, CONSTANTS)
        return torch.from_numpy(out).view(torch.float32).reshape(x.shape)

    @_float32_or_reference
    def silu_backward(self, grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        if grad.shape != x.shape:
            grad = grad.expand(torch.broadcast_shapes(grad.shape, x.shape))
            x = x.expand(grad.shape)
        out = np.empty(x.numel(), dtype=np.int32)
        kernel = _silu_backward_parallel if x.numel() >= PARALLEL_MIN_ELEMENTS else _silu_backward_range
        kernel(_flat32(grad), _flat32(x), out, CONSTANTS)
        return torch.from_numpy(out).view(torch.float32).reshape(x.shape)

    @_float32_or_reference
    def segment_sum(self, values: torch.Tensor, segments: torch.Tensor, count: int) -> torch.Tensor:
        out = np.zeros((count, values.shape[1]), dtype=np.float32)
        _segment_sum(
            np.ascontiguousarray(values.detach().numpy(), dtype=np.float32),
            np.ascontiguousarray(segments.detach().numpy(), dtype=np.int64),
            out,
        )
        return torch.from_numpy(out)


FAST = FastPrimitives()
