"""The primitive kernels every composite operator is written in.

Each composite operator of pinpoint's semantics (softmax, layer norm, losses, …) is defined once,
in `protocol.ops.table`, as a fixed sequence of correctly rounded elementwise torch operations and
these primitives. A backend supplies the primitives: `REFERENCE` binds the plain definitions of
`protocol.semantics` (they run on any device and define the bits); the prover binds fast CPU kernels
that are tested bit for bit against them. The composite's result therefore depends on the backend
only through the primitives, whose equality is tested directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import torch

from protocol import semantics
from protocol.ops import random
from protocol.semantics.floats import canonicalize_nan, compute_scalar_tensor
from protocol.semantics.reductions import compute_max2


class Primitives(Protocol):
    """Shapes: mm [M,K]@[K,N]→[M,N]; bmm [B,M,K]@[B,K,N]→[B,M,N]; row reductions [R,n]→[R]."""

    def mm(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor: ...
    def bmm(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor: ...
    def rowsum(self, x: torch.Tensor) -> torch.Tensor: ...
    def colsum(self, x: torch.Tensor) -> torch.Tensor: ...
    def softmax_rows(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]: ...
    def softmax_backward(self, grads: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor: ...
    def layer_norm_backward(
        self, grads: torch.Tensor, rows: torch.Tensor, mean: torch.Tensor, rstd: torch.Tensor, weight: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]: ...
    def channel_moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...
    def channel_gradient_sums(
        self, grads: torch.Tensor, x: torch.Tensor, mean: torch.Tensor, invstd: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]: ...
    def rowmax(self, x: torch.Tensor) -> torch.Tensor: ...
    def rowargmax(self, x: torch.Tensor) -> torch.Tensor: ...
    def exp(self, x: torch.Tensor) -> torch.Tensor: ...
    def log(self, x: torch.Tensor) -> torch.Tensor: ...
    def tanh(self, x: torch.Tensor) -> torch.Tensor: ...
    def erf(self, x: torch.Tensor) -> torch.Tensor: ...
    def sqrt(self, x: torch.Tensor) -> torch.Tensor: ...
    def rsqrt(self, x: torch.Tensor) -> torch.Tensor: ...
    def sin(self, x: torch.Tensor) -> torch.Tensor: ...
    def cos(self, x: torch.Tensor) -> torch.Tensor: ...
    def segment_sum(self, values: torch.Tensor, segments: torch.Tensor, count: int) -> torch.Tensor: ...
    def bernoulli(
        self, p: float, seed: int, step: int, offset: int, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor: ...
    def gelu(self, x: torch.Tensor) -> torch.Tensor: ...
    def gelu_backward(self, grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor: ...
    def gelu_tanh(self, x: torch.Tensor) -> torch.Tensor: ...
    def gelu_tanh_backward(self, grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor: ...
    def sigmoid(self, x: torch.Tensor) -> torch.Tensor: ...
    def sigmoid_backward(self, grad: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...
    def silu(self, x: torch.Tensor) -> torch.Tensor: ...
    def maximum(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor: ...
    def silu_backward(self, grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor: ...


SQRT1_2 = 0.7071067811865476  # 1/sqrt(2), rounded to float32 where used
INV_SQRT_2PI = 0.3989422804014327  # 1/sqrt(2*pi), rounded to float32 where used
SQRT_2_OVER_PI = 0.7978845608028654  # sqrt(2/pi), for the tanh approximation, rounded to float32 where used
GELU_CUBIC = 0.044715  # the tanh approximation's cubic coefficient, rounded to float32 where used


def _constant(value: float, like: torch.Tensor) -> torch.Tensor:
    return compute_scalar_tensor(value, like.dtype, like.device)


def compute_sigmoid_pair(x: torch.Tensor, exp: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """(sigmoid(x), 1 - sigmoid(x)), each within ~2 ulp, elementwise in x's float dtype:
    e = exp(-|x|), d = fl(1 + e), p = fl(1 / d), q = fl(e / d); sigmoid = p if x >= 0 else q, its
    complement the other one (both sides accurate: no cancellation in 1 - p)."""
    e = exp(-torch.abs(x))
    one = _constant(1.0, x)
    d = one + e
    p = one / d
    q = e / d
    non_negative = x >= 0
    return torch.where(non_negative, p, q), torch.where(non_negative, q, p)


def compute_sigmoid(x: torch.Tensor, exp: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """sigmoid(x): the first of `compute_sigmoid_pair`, every NaN the canonical NaN."""
    return canonicalize_nan(compute_sigmoid_pair(x, exp)[0])


def compute_sigmoid_backward(grad: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """d sigmoid from its output y: fl(fl(grad * fl(1 - y)) * y), every NaN the canonical NaN;
    grad and y broadcast together."""
    return canonicalize_nan((grad * (_constant(1.0, y) - y)) * y)


def compute_silu(x: torch.Tensor, exp: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """SiLU: fl(x * sigmoid(x)) with the sigmoid of `compute_sigmoid_pair`, every NaN the canonical NaN."""
    return canonicalize_nan(x * compute_sigmoid_pair(x, exp)[0])


def compute_silu_backward(grad: torch.Tensor, x: torch.Tensor, exp: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """d SiLU: with (s, c) the sigmoid pair of x, fl(grad * fl(s * fl(1 + fl(x * c)))) (d/dx x·s = s·(1 + x·(1 - s))),
    every NaN the canonical NaN; grad and x broadcast together."""
    s, c = compute_sigmoid_pair(x, exp)
    return canonicalize_nan(grad * (s * (_constant(1.0, x) + x * c)))


def compute_gelu(x: torch.Tensor, erf: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """GELU (erf form): fl(fl(x * 0.5) * fl(1 + erf(fl(x * float32(1/sqrt 2))))), float32 elementwise."""
    return (x * _constant(0.5, x)) * (_constant(1.0, x) + erf(x * _constant(SQRT1_2, x)))


def compute_gelu_backward(
    grad: torch.Tensor, x: torch.Tensor, erf: Callable[[torch.Tensor], torch.Tensor], exp: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """d GELU: cdf = fl(0.5 * fl(1 + erf(fl(x * float32(1/sqrt 2))))),
    pdf = fl(exp(fl(fl(x * x) * -0.5)) * float32(1/sqrt(2 pi))), result = fl(grad * fl(cdf + fl(x * pdf)))."""
    cdf = _constant(0.5, x) * (_constant(1.0, x) + erf(x * _constant(SQRT1_2, x)))
    pdf = exp((x * x) * _constant(-0.5, x)) * _constant(INV_SQRT_2PI, x)
    return grad * (cdf + x * pdf)


def compute_gelu_tanh(x: torch.Tensor, tanh: Callable[[torch.Tensor], torch.Tensor]) -> torch.Tensor:
    """GELU (tanh form), elementwise in x's dtype, with u = fl(sqrt(2/pi) * fl(x + fl(0.044715 * fl(fl(x*x)*x)))):
    fl(fl(x * 0.5) * fl(1 + tanh(u)))."""
    half, one = _constant(0.5, x), _constant(1.0, x)
    inner = _constant(SQRT_2_OVER_PI, x) * (x + _constant(GELU_CUBIC, x) * (x * x * x))
    return (x * half) * (one + tanh(inner))


def compute_softmax_backward(
    grads: torch.Tensor, outputs: torch.Tensor, rowsum: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """Softmax's backward over rows [R, n] of its gradient g and output y: fl(y * fl(g - rowsum(fl(g * y))))."""
    return outputs * (grads - rowsum(grads * outputs).unsqueeze(1))


def compute_softmax_rows(
    rows: torch.Tensor, rowmax: Callable[[torch.Tensor], torch.Tensor], exp: Callable[[torch.Tensor], torch.Tensor],
    rowsum: Callable[[torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Softmax over each row of [R, n] (n >= 1), in rows' dtype: m = rowmax(x); e = exp(fl(x - m));
    Σ = rowsum(e); p = fl(e / Σ). Returns (p, m, Σ); a row of -inf only gives NaNs (x - m is NaN)."""
    maxima = rowmax(rows)
    exps = exp(rows - maxima.unsqueeze(1))
    sums = rowsum(exps)
    return exps / sums.unsqueeze(1), maxima, sums


def _channel_rows(x: torch.Tensor) -> torch.Tensor:
    """[N, C, L] → [C, N·L]: each channel's elements in (n, l) order."""
    return x.transpose(0, 1).reshape(x.shape[1], -1)


def compute_channel_moments(x: torch.Tensor, rowsum: Callable[[torch.Tensor], torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch norm's statistics of x [N, C, L] per channel c over its n = N·L elements in (n, l) order:
    mean = fl(rowsum(x_c) / n), squares = rowsum(fl(xc * xc)) with xc = fl(x_c - mean); each [C]."""
    rows = _channel_rows(x)
    mean = rowsum(rows) / _constant(float(rows.shape[1]), rows)
    centred = rows - mean.unsqueeze(1)
    return mean, rowsum(centred * centred)


def compute_channel_gradient_sums(
    grads: torch.Tensor, x: torch.Tensor, mean: torch.Tensor, invstd: torch.Tensor, rowsum: Callable[[torch.Tensor], torch.Tensor]
) -> tuple[torch.Tensor, torch.Tensor]:
    """Batch norm's backward sums of grads and x [N, C, L] (mean, invstd [C]) per channel c in (n, l)
    order: (rowsum(g_c), rowsum(fl(g_c * xhat_c))) with xhat = fl(fl(x - mean) * invstd); each [C]."""
    grad_rows = _channel_rows(grads)
    xhat = (_channel_rows(x) - mean.reshape(-1, 1)) * invstd.reshape(-1, 1)
    return rowsum(grad_rows), rowsum(grad_rows * xhat)


def compute_layer_norm_backward(
    grads: torch.Tensor, rows: torch.Tensor, mean: torch.Tensor, rstd: torch.Tensor, weight: torch.Tensor | None,
    rowsum: Callable[[torch.Tensor], torch.Tensor],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Layer norm's backward over rows [R, n] (mean, rstd [R, 1]; weight [n] or None), in rows' dtype:
    xhat = fl(fl(x - mean) * rstd); g = fl(grad * weight) (grad without weight);
    grad_input = fl(fl(fl(g - fl(rowsum(g) / n)) - fl(xhat * fl(rowsum(fl(g * xhat)) / n))) * rstd);
    returns (grad_input, fl(grad * xhat)), the second the rows whose column sums are the weight's gradient."""
    n = rows.shape[1]
    xhat = (rows - mean) * rstd
    count = _constant(float(n), rows)
    g = grads * weight.reshape(1, n) if weight is not None else grads
    g_mean = (rowsum(g) / count).unsqueeze(1)
    gx_mean = (rowsum(g * xhat) / count).unsqueeze(1)
    return ((g - g_mean) - xhat * gx_mean) * rstd, grads * xhat


def compute_gelu_tanh_backward(
    grad: torch.Tensor, x: torch.Tensor, tanh: Callable[[torch.Tensor], torch.Tensor]
) -> torch.Tensor:
    """d GELU (tanh form), elementwise in x's dtype: with c = sqrt(2/pi), k3 = 3 * 0.044715, x2 = fl(x * x),
    t = tanh(fl(c * fl(x + fl(0.044715 * fl(x2 * x))))), left = fl(0.5 * fl(1 + t)),
    right = fl(fl(fl(x * 0.5) * fl(1 - fl(t * t))) * fl(c * fl(1 + fl(k3 * x2)))):
    fl(grad * fl(left + right)) (each constant rounded to x's dtype)."""
    half, one = _constant(0.5, x), _constant(1.0, x)
    c, k3 = _constant(SQRT_2_OVER_PI, x), _constant(3 * GELU_CUBIC, x)
    x2 = x * x
    t = tanh(c * (x + _constant(GELU_CUBIC, x) * (x2 * x)))
    left = half * (one + t)
    right = ((x * half) * (one - t * t)) * (c * (one + k3 * x2))
    return grad * (left + right)


def reference_segment_sum(values: torch.Tensor, segments: torch.Tensor, count: int) -> torch.Tensor:
    """out[s] = sum of values[p] over p = 0, 1, … in order with segments[p] == s, from +0.0.

    values [P, D] float32, segments [P] int64 in [0, count) (others are skipped) → [count, D].
    Each out[s] accumulates sequentially in ascending p, one rounding per addition.
    """
    out = torch.zeros((count, values.shape[1]), dtype=values.dtype, device=values.device)
    for p, segment in enumerate(segments.tolist()):
        if 0 <= segment < count:
            out[segment] = out[segment] + values[p]
    return out


class ReferencePrimitives:
    """The defining implementations: plain, slow, device-generic (`protocol.semantics`)."""

    def mm(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return semantics.reference_mm(a, b)

    def bmm(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return semantics.reference_bmm(a, b)

    def rowsum(self, x: torch.Tensor) -> torch.Tensor:
        return semantics.reference_rowsum(x)

    def colsum(self, x: torch.Tensor) -> torch.Tensor:
        """Each column's `rowsum` (the halving tree over the rows, in order): rowsum of the transpose."""
        return semantics.reference_rowsum(x.t().contiguous())

    def softmax_rows(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return compute_softmax_rows(rows, semantics.reference_rowmax, semantics.reference_exp, semantics.reference_rowsum)

    def softmax_backward(self, grads: torch.Tensor, outputs: torch.Tensor) -> torch.Tensor:
        return compute_softmax_backward(grads, outputs, semantics.reference_rowsum)

    def layer_norm_backward(
        self, grads: torch.Tensor, rows: torch.Tensor, mean: torch.Tensor, rstd: torch.Tensor, weight: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return compute_layer_norm_backward(grads, rows, mean, rstd, weight, semantics.reference_rowsum)

    def channel_moments(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return compute_channel_moments(x, semantics.reference_rowsum)

    def channel_gradient_sums(
        self, grads: torch.Tensor, x: torch.Tensor, mean: torch.Tensor, invstd: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return compute_channel_gradient_sums(grads, x, mean, invstd, semantics.reference_rowsum)

    def rowmax(self, x: torch.Tensor) -> torch.Tensor:
        return semantics.reference_rowmax(x)

    def rowargmax(self, x: torch.Tensor) -> torch.Tensor:
        return semantics.reference_rowargmax(x)

    def exp(self, x: torch.Tensor) -> torch.Tensor:
        return semantics.reference_exp(x)

    def log(self, x: torch.Tensor) -> torch.Tensor:
        return semantics.reference_log(x)

    def tanh(self, x: torch.Tensor) -> torch.Tensor:
        return semantics.reference_tanh(x)

    def erf(self, x: torch.Tensor) -> torch.Tensor:
        return semantics.reference_erf(x)

    def sqrt(self, x: torch.Tensor) -> torch.Tensor:
        return semantics.reference_sqrt(x)

    def rsqrt(self, x: torch.Tensor) -> torch.Tensor:
        return semantics.reference_rsqrt(x)

    def sin(self, x: torch.Tensor) -> torch.Tensor:
        return semantics.reference_sin(x)

    def cos(self, x: torch.Tensor) -> torch.Tensor:
        return semantics.reference_cos(x)

    def segment_sum(self, values: torch.Tensor, segments: torch.Tensor, count: int) -> torch.Tensor:
        return reference_segment_sum(values, segments, count)

    def bernoulli(
        self, p: float, seed: int, step: int, offset: int, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device
    ) -> torch.Tensor:
        return random.compute_bernoulli(p, seed, step, offset, shape, dtype, device)

    def gelu(self, x: torch.Tensor) -> torch.Tensor:
        return compute_gelu(x, semantics.reference_erf)

    def gelu_backward(self, grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return compute_gelu_backward(grad, x, semantics.reference_erf, semantics.reference_exp)

    def gelu_tanh(self, x: torch.Tensor) -> torch.Tensor:
        return compute_gelu_tanh(x, semantics.reference_tanh)

    def gelu_tanh_backward(self, grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return compute_gelu_tanh_backward(grad, x, semantics.reference_tanh)
    def sigmoid(self, x: torch.Tensor) -> torch.Tensor:
        return compute_sigmoid(x, semantics.reference_exp)

    def sigmoid_backward(self, grad: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return compute_sigmoid_backward(grad, y)

    def maximum(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """max2 of protocol.semantics.reductions elementwise over same-shaped x and y, NaNs canonical."""
        return canonicalize_nan(compute_max2(x, y))

    def silu(self, x: torch.Tensor) -> torch.Tensor:
        return compute_silu(x, semantics.reference_exp)

    def silu_backward(self, grad: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return compute_silu_backward(grad, x, semantics.reference_exp)


REFERENCE: Primitives = ReferencePrimitives()
