"""Operator definitions: convolution and pooling (see protocol.ops.table for the conventions).

Convolution (1-d, 2-d, 3-d, grouped, dilated, transposed) and its backward; max, average and
adaptive pooling (2-d; the 1-d forms reach the dispatcher as 2-d) and their backwards; im2col /
col2im (nn.Unfold / nn.Fold); reflection and replication padding (Conv's padding modes).

Every definition here is exact data movement (zero padding, unfolding windows into rows, folding
them back) around the fixed-order primitives: `mm` / `bmm` for the contractions, `rowsum` and
`rowmax` for window sums and maxima, `segment_sum` where gradients are scattered. The shapes:

    N batch, C input channels, OC output channels, g groups, Cg = C/g, OCg = OC/g,
    S input spatial sizes (H, W or L), O output spatial sizes, K kernel sizes, KK = prod(K),
    P = prod(O) output positions of one example, M = N*P rows of the unfolded input.

A convolution's reduction index runs over the kernel offsets in row-major order and, within one
offset, over the group's input channels in order: k = (k_1, …, k_d, c). This order is part of the
definition and is the same whatever the input's memory layout (channels_last or not): inputs are
first copied to channels-last rows, which is exact. Every output element of the forward pass
depends only on its own example, so the bits of one example do not depend on the batch it is in.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import torch

from protocol.ops.prims import Primitives
from protocol.ops.table import Outputs, Tensor, UnsupportedOperator, _require_float, defines

WEIGHT_GRAD_CHUNK_ROWS = 2048
"""Rows (output positions, batch-major) per sequential chunk of a weight gradient's contraction.

Part of the definition (changing it changes bits): the M rows are cut into consecutive chunks of
this many rows (the last one shorter), each chunk is one sequential `bmm`, and the chunks' partial
sums are added by the pairwise `rowsum`. No sum then runs sequentially over more than 2048 terms,
and a chunk's operand panels stay in a core's L2 (measured: 2048 was as fast as 1024 on 56x56
layers and as 4096 on 14x14 ones; one sequential run over all M rows was 3-6 times slower)."""


# --- geometry -------------------------------------------------------------------------------------


def _expand(values: Any, count: int) -> tuple[int, ...]:
    """An int or a list of one or `count` ints as a `count`-tuple (aten's list arguments)."""
    if isinstance(values, int):
        return (values,) * count
    items = tuple(int(v) for v in values)
    return items * count if len(items) == 1 else items


def compute_conv_out_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """floor((S + 2p - d(K-1) - 1) / s) + 1: the positions of a convolution window."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def compute_pool_out_size(size: int, kernel: int, stride: int, padding: int, dilation: int, ceil_mode: bool) -> int:
    """torch's pooling size: ceil_mode rounds up, but a last window starting past the input and its
    left padding is dropped."""
    out = (size + 2 * padding - dilation * (kernel - 1) - 1 + (stride - 1 if ceil_mode else 0)) // stride + 1
    if ceil_mode and (out - 1) * stride >= size + padding:
        out -= 1
    return out


def _padded_sizes(
    sizes: tuple[int, ...], out: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
    padding: tuple[int, ...], dilation: tuple[int, ...],
) -> tuple[int, ...]:
    """Spatial sizes of a buffer holding the input with its padding and every window position."""
    return tuple(
        max(s + 2 * p, (o - 1) * st + d * (k - 1) + 1)
        for s, o, k, st, p, d in zip(sizes, out, kernel, stride, padding, dilation, strict=True)
    )


def _to_channels_last(x: Tensor) -> Tensor:
    """[N, C, *S] → contiguous [N, *S, C] (an exact copy; any input strides)."""
    return x.movedim(1, -1).contiguous()


def _from_channels_last(rows: Tensor, like: Tensor) -> Tensor:
    """[N, *S, C] → [N, C, *S], in `like`'s memory format when that is channels_last (a view), else
    contiguous. Only strides differ between the two: the values and bits are the same."""
    moved = rows.contiguous().movedim(-1, 1)
    keeps_layout = like.dim() in (4, 5) and not like.is_contiguous() and like.is_contiguous(
        memory_format=torch.channels_last if like.dim() == 4 else torch.channels_last_3d
    )
    return moved if keeps_layout else moved.contiguous()


def _unfold(
    x_cl: Tensor, out: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
    padding: tuple[int, ...], dilation: tuple[int, ...],
) -> Tensor:
    """x_cl [N, *S, C] → windows [N, *O, *K, C], a contiguous copy; padding positions are +0.0.

    windows[n, o, k, c] = x[n, o*stride - padding + k*dilation, c] (per spatial dim), or +0.0 there
    where that position is outside the input."""
    n, c = x_cl.shape[0], x_cl.shape[-1]
    sizes = tuple(x_cl.shape[1:-1])
    padded_sizes = _padded_sizes(sizes, out, kernel, stride, padding, dilation)
    if padded_sizes != sizes:
        padded = x_cl.new_zeros((n, *padded_sizes, c))
        padded[(slice(None), *(slice(p, p + s) for p, s in zip(padding, sizes, strict=True)))] = x_cl
    else:
        padded = x_cl.contiguous()
    spatial_strides = padded.stride()[1:-1]
    view = padded.as_strided(
        (n, *out, *kernel, c),
        (padded.stride(0), *(t * s for t, s in zip(spatial_strides, stride, strict=True)),
         *(t * d for t, d in zip(spatial_strides, dilation, strict=True)), 1),
        padded.storage_offset(),
    )
    return view.contiguous()


def _fold(
    windows: Tensor, sizes: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...], dilation: tuple[int, ...]
) -> Tensor:
    """The adjoint of `_unfold`: windows [N, *O, *K, C] → [N, *S, C].

    out[n, i, c] = +0.0 + the windows[n, o, k, c] with o*stride - padding + k*dilation == i, added
    one at a time (one rounding each) in row-major order of the kernel offset k. Windows falling
    on padding are dropped."""
    nd = len(sizes)
    n, c = windows.shape[0], windows.shape[-1]
    out = tuple(windows.shape[1 : 1 + nd])
    kernel = tuple(windows.shape[1 + nd : 1 + 2 * nd])
    padded_sizes = _padded_sizes(sizes, out, kernel, stride, padding, dilation)
    buffer = windows.new_zeros((n, *padded_sizes, c))
    for offset in itertools.product(*(range(k) for k in kernel)):
        target = buffer[
            (slice(None), *(slice(k * d, k * d + s * (o - 1) + 1, s) for k, d, s, o in zip(offset, dilation, stride, out, strict=True)))
        ]
        target.add_(windows[(slice(None),) * (1 + nd) + offset])
    return buffer[(slice(None), *(slice(p, p + s) for p, s in zip(padding, sizes, strict=True)))]


def _grouped_rows(rows: Tensor, groups: int) -> Tensor:
    """[M, g*X] → [g, M, X] (a view)."""
    m, width = rows.shape
    return rows.reshape(m, groups, width // groups).permute(1, 0, 2)


def _contract(prims: Primitives, a: Tensor, b: Tensor) -> Tensor:
    """[g, M, K] @ [g, K, X] → [g, M, X] in the canonical sequential order over K (mm when g == 1)."""
    if a.shape[0] == 1:
        return prims.mm(a[0], b[0]).unsqueeze(0)
    return prims.bmm(a, b)


# --- the three convolution computations -----------------------------------------------------------
#
# A convolution with weight [OC, Cg, *K] maps channels-last rows x [N, *S, C] to y [N, *O, OC]:
#   y[n, o, (j, q)] = sum over k = (offset, c) of x_windows[n, o, offset, (j, c)] * w[(j, q), c, offset]
# (j the group, q the output channel within it). Its input gradient is the same map's adjoint
# (`_conv_adjoint`) and its weight gradient the product of gradient rows and input windows.


def _weight_matrix(weight: Tensor, groups: int) -> Tensor:
    """[OC, Cg, *K] → [g, KK*Cg, OCg]: rows in the reduction order (offset row-major, then channel)."""
    oc, cg = weight.shape[0], weight.shape[1]
    nd = weight.dim() - 2
    grouped = weight.reshape(groups, oc // groups, cg, *weight.shape[2:])
    return grouped.permute(0, *range(3, 3 + nd), 2, 1).reshape(groups, -1, oc // groups).contiguous()


def _conv_rows(
    prims: Primitives, x_cl: Tensor, weight: Tensor, out: tuple[int, ...], stride: tuple[int, ...],
    padding: tuple[int, ...], dilation: tuple[int, ...], groups: int,
) -> Tensor:
    """Channels-last convolution without bias: x_cl [N, *S, C] → [N, *O, OC].

    Each output is acc = +0.0, then acc = fma(window[k], w[k], acc) for k = (offset, channel)
    in order (the `mm` order over KK*Cg terms)."""
    n, c = x_cl.shape[0], x_cl.shape[-1]
    kernel = tuple(weight.shape[2:])
    windows = _unfold(x_cl, out, kernel, stride, padding, dilation)  # [N, *O, *K, C]
    m, kk = n * math.prod(out), math.prod(kernel)
    if groups == 1:
        cols = windows.reshape(1, m, kk * c)
    else:
        cols = windows.reshape(m, kk, groups, c // groups).permute(2, 0, 1, 3).reshape(groups, m, -1)
    result = _contract(prims, cols, _weight_matrix(weight, groups))  # [g, M, OCg]
    return result.permute(1, 0, 2).reshape(n, *out, weight.shape[0])


def _conv_adjoint(
    prims: Primitives, grad_cl: Tensor, weight: Tensor, sizes: tuple[int, ...], stride: tuple[int, ...],
    padding: tuple[int, ...], dilation: tuple[int, ...], groups: int,
) -> Tensor:
    """The adjoint of `_conv_rows` (a convolution's input gradient, a transposed convolution):
    grad_cl [N, *O, OC] → [N, *S, C]. Two definitions, chosen by the geometry:

    - stride 1, padding <= dilation*(K-1), and S = O + dilation*(K-1) - 2*padding (so not a
      transposed convolution with output_padding): the convolution (`_conv_rows`) of the gradient,
      zero-padded by dilation*(K-1) - padding, with the kernel flipped and each group's channels
      swapped: one sequential sum over k = (flipped offset row-major, the group's output channel);
    - otherwise: window_grad[n, o, offset, (j, c)] = sequential fused sum over q in order of
      g[n, o, (j, q)] * w[(j, q), c, offset] (the `mm` order over OCg terms), then folded by
      `_fold` (kernel offsets in row-major order).
    The first is the same sum as the second without the separate roundings of the fold (and with
    +0.0 products on the padding), and avoids writing and re-reading the KK-times larger windows."""
    n = grad_cl.shape[0]
    out = tuple(grad_cl.shape[1:-1])
    oc, cg = weight.shape[0], weight.shape[1]
    kernel = tuple(weight.shape[2:])
    nd = len(kernel)
    full = tuple(d * (k - 1) - p for k, d, p in zip(kernel, dilation, padding, strict=True))
    if all(st == 1 for st in stride) and min(full) >= 0 and sizes == tuple(o + f - p for o, f, p in zip(out, full, padding, strict=True)):
        swapped = weight.reshape(groups, oc // groups, cg, *kernel).transpose(1, 2).reshape(groups * cg, oc // groups, *kernel)
        flipped = swapped.flip(list(range(2, 2 + nd)))
        return _conv_rows(prims, grad_cl, flipped, sizes, stride, full, dilation, groups)
    m, kk = n * math.prod(out), math.prod(kernel)
    grouped = weight.reshape(groups, oc // groups, cg, *kernel).permute(0, 1, *range(3, 3 + nd), 2)
    w_rows = grouped.reshape(groups, oc // groups, kk * cg)  # [g, OCg, KK*Cg]
    g_rows = _grouped_rows(grad_cl.reshape(m, oc), groups)  # [g, M, OCg]
    window_grad = _contract(prims, g_rows, w_rows)  # [g, M, KK*Cg]
    windows = window_grad.reshape(groups, m, kk, cg).permute(1, 2, 0, 3).reshape(n, *out, *kernel, groups * cg)
    return _fold(windows, sizes, stride, padding, dilation)


def _conv_weight_grad(
    prims: Primitives, x_cl: Tensor, grad_cl: Tensor, kernel: tuple[int, ...], stride: tuple[int, ...],
    padding: tuple[int, ...], dilation: tuple[int, ...], groups: int,
) -> Tensor:
    """The weight gradient of `_conv_rows`: x_cl [N, *S, C], grad_cl [N, *O, OC] → [OC, Cg, *K].

    Over the M = N*P rows in (n, o) order, cut into chunks of WEIGHT_GRAD_CHUNK_ROWS rows:
    part[chunk] = sequential fused sum over the chunk's rows r of g[r, q] * window[r, k] (`bmm` order),
    then grad = rowsum over the chunks' parts in chunk order (pairwise; a single chunk is its part)."""
    n, c = x_cl.shape[0], x_cl.shape[-1]
    out = tuple(grad_cl.shape[1:-1])
    oc = grad_cl.shape[-1]
    nd = len(kernel)
    m, kk = n * math.prod(out), math.prod(kernel)
    windows = _unfold(x_cl, out, kernel, stride, padding, dilation)  # [N, *O, *K, C]
    cols = windows.reshape(m, kk, groups, c // groups).permute(2, 0, 1, 3).reshape(groups, m, -1)  # [g, M, KK*Cg]
    g_rows = _grouped_rows(grad_cl.reshape(m, oc), groups)  # [g, M, OCg]
    chunk = WEIGHT_GRAD_CHUNK_ROWS
    full, rest = divmod(m, chunk)
    # Each part is computed transposed, [KK*Cg, OCg] = windows^T @ g: the same products and the same
    # order of additions (fl(a*b) == fl(b*a)), with the large windows read in place rather than
    # packed into a second buffer of their size.
    parts: list[Tensor] = []
    if full:
        a = cols[:, : full * chunk].reshape(groups * full, chunk, -1).transpose(1, 2)
        b = g_rows[:, : full * chunk].reshape(groups * full, chunk, -1)
        parts.append(prims.bmm(a, b).reshape(groups, full, -1))
    if rest:
        a = cols[:, full * chunk :].transpose(1, 2)
        parts.append(_contract(prims, a, g_rows[:, full * chunk :]).reshape(groups, 1, -1))
    stacked = torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]  # [g, chunks, KK*Cg*OCg]
    chunks = stacked.shape[1]
    if chunks == 1:
        total = stacked[:, 0]
    else:
        total = prims.rowsum(stacked.transpose(1, 2).contiguous().reshape(-1, chunks)).reshape(groups, -1)
    grad = total.reshape(groups, *kernel, c // groups, oc // groups)  # [g, *K, Cg, OCg]
    return grad.permute(0, 2 + nd, 1 + nd, *range(1, 1 + nd)).reshape(oc, c // groups, *kernel).contiguous()


def _channel_sums(prims: Primitives, grad_cl: Tensor) -> Tensor:
    """grad_cl [N, *O, OC] → [OC]: each channel's pairwise `rowsum` over (n, o) in row-major order."""
    oc = grad_cl.shape[-1]
    return prims.colsum(grad_cl.reshape(-1, oc))


# --- convolution ----------------------------------------------------------------------------------


def _conv_arguments(a: dict[str, Any], nd: int) -> tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, ...]]:
    return (
        _expand(a["stride"], nd), _expand(a["padding"], nd), _expand(a["dilation"], nd), _expand(a["output_padding"], nd)
    )


def _batched(x: Tensor, nd: int) -> tuple[Tensor, bool]:
    """x with a batch dimension (an unbatched [C, *S] input gets one of size 1)."""
    return (x.unsqueeze(0), True) if x.dim() == nd + 1 else (x, False)


@defines("convolution.default")
def _convolution(prims: Primitives, a: dict[str, Any]) -> Outputs:
    """input [N, C, *S], weight [OC, C/g, *K] (transposed: [C, OC/g, *K]), bias [OC] → [N, OC, *O].

    Not transposed: y = fl(conv + bias), conv as in `_conv_rows` (sequential over k = (offset row-major,
    channel)). Transposed: y = fl(adjoint + bias), adjoint as in `_conv_adjoint` (a flipped-kernel
    convolution at stride 1, else sequential over the group's input channels, then the kernel
    offsets folded in row-major order from +0.0).
    Any number of spatial dims (Conv1d, Conv2d, Conv3d); zero padding only (other padding modes
    reach the dispatcher as separate pad operators)."""
    name = "aten::convolution"
    x, weight, bias = a["input"], a["weight"], a["bias"]
    _require_float(name, x, weight, bias)
    nd = weight.dim() - 2
    if nd < 1:
        raise UnsupportedOperator(name, f"weight of {weight.dim()} dims")
    stride, padding, dilation, output_padding = _conv_arguments(a, nd)
    groups = int(a["groups"])
    x, unbatched = _batched(x, nd)
    x_cl = _to_channels_last(x)
    sizes = tuple(x.shape[2:])
    if a["transposed"]:
        out = tuple(
            (s - 1) * st - 2 * p + d * (k - 1) + op + 1
            for s, st, p, d, k, op in zip(sizes, stride, padding, dilation, weight.shape[2:], output_padding, strict=True)
        )
        rows = _conv_adjoint(prims, x_cl, weight, out, stride, padding, dilation, groups)
    else:
        out = tuple(
            compute_conv_out_size(s, k, st, p, d) for s, k, st, p, d in zip(sizes, weight.shape[2:], stride, padding, dilation, strict=True)
        )
        rows = _conv_rows(prims, x_cl, weight, out, stride, padding, dilation, groups)
    if bias is not None:
        rows = rows + bias
    result = _from_channels_last(rows, x)
    return result.squeeze(0) if unbatched else result


@defines("convolution_backward.default")
def _convolution_backward(prims: Primitives, a: dict[str, Any]) -> Outputs:
    """grad_output [N, OC, *O], input [N, C, *S], weight → (grad_input, grad_weight, grad_bias),
    each None where output_mask says so.

    Not transposed: grad_input by `_conv_adjoint`, grad_weight by `_conv_weight_grad`, grad_bias by
    `_channel_sums`. Transposed: the forward was the adjoint, so grad_input is `_conv_rows` of the
    gradient, and grad_weight is `_conv_weight_grad` with the roles of input and gradient swapped."""
    name = "aten::convolution_backward"
    grad, x, weight = a["grad_output"], a["input"], a["weight"]
    _require_float(name, grad, x, weight)
    mask = a["output_mask"]
    nd = weight.dim() - 2
    stride, padding, dilation, _ = _conv_arguments(a, nd)
    groups = int(a["groups"])
    x_b, unbatched = _batched(x, nd)
    grad_b, _ = _batched(grad, nd)
    x_cl, grad_cl = _to_channels_last(x_b), _to_channels_last(grad_b)
    kernel = tuple(weight.shape[2:])
    sizes = tuple(x_b.shape[2:])
    grad_input = grad_weight = grad_bias = None
    if a["transposed"]:
        if mask[0]:
            rows = _conv_rows(prims, grad_cl, weight, sizes, stride, padding, dilation, groups)
            grad_input = _from_channels_last(rows, x_b)
        if mask[1]:
            grad_weight = _conv_weight_grad(prims, grad_cl, x_cl, kernel, stride, padding, dilation, groups)
    else:
        if mask[0]:
            grad_input = _from_channels_last(_conv_adjoint(prims, grad_cl, weight, sizes, stride, padding, dilation, groups), x_b)
        if mask[1]:
            grad_weight = _conv_weight_grad(prims, x_cl, grad_cl, kernel, stride, padding, dilation, groups)
    if mask[2]:
        grad_bias = _channel_sums(prims, grad_cl)
    if unbatched and grad_input is not None:
        grad_input = grad_input.squeeze(0)
    return grad_input, grad_weight, grad_bias


# --- pooling: windows -----------------------------------------------------------------------------


def _pool_arguments(a: dict[str, Any]) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int]]:
    """(kernel, stride, padding) as pairs; an empty stride means the kernel (torch's default)."""
    kernel = _expand(a["kernel_size"], 2)
    stride = _expand(a["stride"], 2) if a["stride"] else kernel
    padding = _expand(a["padding"], 2)
    return (kernel[0], kernel[1]), (stride[0], stride[1]), (padding[0], padding[1])


def _planes(x: Tensor) -> tuple[Tensor, bool]:
    """[N, C, H, W] or unbatched [C, H, W] → [N, C, H, W] (and whether a batch dim was added)."""
    return (x.unsqueeze(0), True) if x.dim() == 3 else (x, False)


def _pool_windows(
    x: Tensor, out: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...], padding: tuple[int, ...],
    dilation: tuple[int, ...], fill: float,
) -> Tensor:
    """x [N, C, H, W] (any strides) → rows [N*C*OH*OW, KH*KW], each a window in row-major order;
    positions outside the input hold `fill`."""
    n, c = x.shape[:2]
    sizes = tuple(x.shape[2:])
    padded_sizes = _padded_sizes(sizes, out, kernel, stride, padding, dilation)
    if padded_sizes == sizes:  # every window inside the input
        padded = x.contiguous()
    else:
        padded = x.new_full((n, c, *padded_sizes), fill)
        padded[(slice(None), slice(None), *(slice(p, p + s) for p, s in zip(padding, sizes, strict=True)))] = x
    t = padded.stride()
    view = padded.as_strided(
        (n, c, *out, *kernel),
        (t[0], t[1], t[2] * stride[0], t[3] * stride[1], t[2] * dilation[0], t[3] * dilation[1]),
        padded.storage_offset(),
    )
    return view.reshape(-1, math.prod(kernel))


def _first_nonnegative(positions: Tensor, dilation: int) -> Tensor:
    """[out, kernel] window positions → [out]: start + ceil(-start / dilation) * dilation for a
    negative start, else start (the first position >= 0, or beyond the window: torch's clamping)."""
    start = positions[:, 0]
    return torch.where(start < 0, start + ((-start + dilation - 1) // dilation) * dilation, start)


def _window_positions(size: int, out: int, kernel: int, stride: int, padding: int, dilation: int) -> Tensor:
    """[out, kernel] int64: the input index o*stride - padding + k*dilation of each window position."""
    starts = torch.arange(out, dtype=torch.int64) * stride - padding
    return starts.unsqueeze(1) + torch.arange(kernel, dtype=torch.int64).unsqueeze(0) * dilation


# --- max pooling ----------------------------------------------------------------------------------


def _max_pool_arguments(a: dict[str, Any]) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    kernel, stride, padding = _pool_arguments(a)
    dilation = _expand(a["dilation"], 2)
    return kernel, stride, padding, (dilation[0], dilation[1])


def _max_pool_geometry(
    x: Tensor, a: dict[str, Any]
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    kernel, stride, padding, dilation = _max_pool_arguments(a)
    out = tuple(
        compute_pool_out_size(s, k, st, p, d, a["ceil_mode"])
        for s, k, st, p, d in zip(x.shape[-2:], kernel, stride, padding, dilation, strict=True)
    )
    return kernel, stride, padding, dilation, (out[0], out[1])


@defines("max_pool2d_with_indices.default")
def _max_pool2d(prims: Primitives, a: dict[str, Any]) -> Outputs:
    """self [N, C, H, W] (or [C, H, W]) → (values, indices) [N, C, OH, OW], indices int64 into the
    flattened H*W plane (h*W + w).

    Window positions are taken in row-major order (kh, kw) and padding is never chosen. The chosen
    position is the first one holding a NaN if the window has a NaN (the value is then that NaN, as
    torch propagates NaN), else the first one equal to the window's maximum (ties, +0.0 == -0.0
    included, go to the earliest position). values = self at the chosen position (exact). A window
    with no position inside the input (possible with dilation) gives -inf and, as torch does, the
    index of its first row and first column that are not negative."""
    x = a["self"]
    _require_float("aten::max_pool2d_with_indices", x)
    x4, unbatched = _planes(x)
    n, c, h, w = x4.shape
    kernel, stride, padding, dilation, out = _max_pool_geometry(x4, a)
    rows = _pool_windows(x4, out, kernel, stride, padding, dilation, float("-inf"))  # [R, KK]
    ih = _window_positions(h, out[0], kernel[0], stride[0], padding[0], dilation[0])  # [OH, KH]
    iw = _window_positions(w, out[1], kernel[1], stride[1], padding[1], dilation[1])  # [OW, KW]
    inside = (((ih >= 0) & (ih < h))[:, None, :, None] & ((iw >= 0) & (iw < w))[None, :, None, :]).reshape(-1)
    flat = (ih[:, None, :, None] * w + iw[None, :, None, :]).reshape(-1)  # [OH*OW*KK]
    kk, windows = kernel[0] * kernel[1], out[0] * out[1]
    position = prims.rowargmax(rows)  # [R]: the first NaN, else the first maximum (+0.0 == -0.0)
    values = rows.gather(1, position.unsqueeze(1)).reshape(n, c, *out)
    chosen = torch.arange(windows, dtype=torch.int64).repeat(n * c) * kk + position  # into inside, flat
    indices = flat[chosen]
    if not bool(inside.all()):
        # Padding holds -inf, so it is chosen only when every position inside is -inf: the first
        # position inside is then the first maximum. It is (first row >= 0, first column >= 0) of
        # the window, which is also the index torch gives a window with no position inside.
        first = (_first_nonnegative(ih, dilation[0])[:, None] * w + _first_nonnegative(iw, dilation[1])[None, :]).reshape(-1)
        indices = torch.where(inside[chosen], indices, first[chosen // kk])
    indices = indices.reshape(n, c, *out)
    return (values.squeeze(0), indices.squeeze(0)) if unbatched else (values, indices)


@defines("max_pool2d_with_indices_backward.default", "adaptive_max_pool2d_backward.default")
def _max_pool2d_backward(prims: Primitives, a: dict[str, Any]) -> Outputs:
    """grad_output, indices [N, C, OH, OW], self [N, C, H, W] → grad_input [N, C, H, W].

    grad_input[n, c, i] = +0.0 + the grad_output[n, c, oh, ow] with indices[n, c, oh, ow] == i, added
    one at a time in ascending (oh, ow) (`segment_sum`); indices outside [0, H*W) are dropped.
    The window arguments of max_pool2d_with_indices_backward are not needed: the indices say it all."""
    grad, x, indices = a["grad_output"], a["self"], a["indices"]
    _require_float("aten::max_pool2d_with_indices_backward", grad, x)
    x4, unbatched = _planes(x)
    n, c, h, w = x4.shape
    idx = indices.reshape(n * c, -1).to(torch.int64)
    plane = h * w
    inside = (idx >= 0) & (idx < plane)
    segments = torch.where(inside, idx + torch.arange(n * c, dtype=torch.int64).unsqueeze(1) * plane, torch.full_like(idx, -1))
    values = grad.reshape(-1, 1).contiguous()
    result = prims.segment_sum(values, segments.reshape(-1), n * c * plane).reshape(n, c, h, w)
    return result.squeeze(0) if unbatched else result


# --- average pooling ------------------------------------------------------------------------------


def _avg_pool_divisors(
    sizes: tuple[int, ...], out: tuple[int, ...], kernel: tuple[int, ...], stride: tuple[int, ...],
    padding: tuple[int, ...], count_include_pad: bool, divisor_override: int | None,
) -> Tensor:
    """[OH, OW] float32: divisor_override, else the window's size clipped to the padded input
    (count_include_pad) or to the input; at least 1 (a window wholly in padding sums to +0.0)."""
    counts = []
    for size, o, k, s, p in zip(sizes, out, kernel, stride, padding, strict=True):
        start = torch.arange(o, dtype=torch.int64) * s - p
        end = torch.clamp(start + k, max=size + p)
        with_pad = end - start
        inside = torch.clamp(end, max=size) - torch.clamp(start, min=0)
        counts.append(with_pad if count_include_pad else inside.clamp(min=0))
    if divisor_override:
        return torch.full(out, float(divisor_override), dtype=torch.float32)
    return (counts[0].unsqueeze(1) * counts[1].unsqueeze(0)).clamp(min=1).to(torch.float32)


def _avg_pool_geometry(
    x4: Tensor, a: dict[str, Any]
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int], Tensor]:
    kernel, stride, padding = _pool_arguments(a)
    out = tuple(
        compute_pool_out_size(s, k, st, p, 1, a["ceil_mode"]) for s, k, st, p in zip(x4.shape[2:], kernel, stride, padding, strict=True)
    )
    out2 = (out[0], out[1])
    divisors = _avg_pool_divisors(tuple(x4.shape[2:]), out2, kernel, stride, padding, a["count_include_pad"], a["divisor_override"])
    return kernel, stride, padding, out2, divisors


@defines("avg_pool2d.default")
def _avg_pool2d(prims: Primitives, a: dict[str, Any]) -> Outputs:
    """self [N, C, H, W] (or [C, H, W]) → [N, C, OH, OW]: fl(rowsum(window) / divisor).

    The window's KH*KW positions in row-major order, +0.0 where outside the input, summed by the
    pairwise `rowsum`; the divisor as in `_avg_pool_divisors`."""
    x = a["self"]
    _require_float("aten::avg_pool2d", x)
    x4, unbatched = _planes(x)
    n, c = x4.shape[:2]
    kernel, stride, padding, out, divisors = _avg_pool_geometry(x4, a)
    rows = _pool_windows(x4, out, kernel, stride, padding, (1, 1), 0.0)
    result = prims.rowsum(rows).reshape(n, c, *out) / divisors
    return result.squeeze(0) if unbatched else result


@defines("avg_pool2d_backward.default")
def _avg_pool2d_backward(_: Primitives, a: dict[str, Any]) -> Outputs:
    """grad_output [N, C, OH, OW], self [N, C, H, W] → grad_input [N, C, H, W].

    share = fl(grad_output / divisor); grad_input[i] = +0.0 + the shares of the windows covering i,
    added one at a time in row-major order of the window position (kh, kw) that covers i."""
    grad, x = a["grad_output"], a["self"]
    _require_float("aten::avg_pool2d_backward", grad, x)
    x4, unbatched = _planes(x)
    grad4 = _planes(grad)[0]
    kernel, stride, padding, out, divisors = _avg_pool_geometry(x4, a)
    shares = grad4 / divisors  # [N, C, OH, OW]
    windows = shares.unsqueeze(-1).unsqueeze(-1).expand(*shares.shape, *kernel).movedim(1, -1)  # [N, OH, OW, KH, KW, C]
    result = _fold(windows, tuple(x4.shape[2:]), stride, padding, (1, 1)).movedim(-1, 1).contiguous()
    return result.squeeze(0) if unbatched else result


# --- adaptive average pooling ---------------------------------------------------------------------


def _adaptive_windows(size: int, out: int) -> tuple[Tensor, Tensor, int]:
    """Window o covers [floor(o*size/out), ceil((o+1)*size/out)): (starts [out], lengths [out], longest)."""
    o = torch.arange(out, dtype=torch.int64)
    starts = (o * size) // out
    ends = ((o + 1) * size + out - 1) // out
    lengths = ends - starts
    return starts, lengths, int(lengths.max()) if out else 0


def _adaptive_table(sizes: tuple[int, int], out: tuple[int, int]) -> tuple[Tensor, Tensor, tuple[int, int]]:
    """(flat [OH*OW*KH*KW] int64 input index h*W + w of each window position (-1 past the window's
    end), counts [OH, OW] float32, (KH, KW) the longest window sides)."""
    (hs, hl, kh), (ws, wl, kw) = _adaptive_windows(sizes[0], out[0]), _adaptive_windows(sizes[1], out[1])
    rows = hs.unsqueeze(1) + torch.arange(kh, dtype=torch.int64)  # [OH, KH]
    cols = ws.unsqueeze(1) + torch.arange(kw, dtype=torch.int64)  # [OW, KW]
    inside = (torch.arange(kh) < hl.unsqueeze(1))[:, None, :, None] & (torch.arange(kw) < wl.unsqueeze(1))[None, :, None, :]
    flat = torch.where(inside, rows[:, None, :, None] * sizes[1] + cols[None, :, None, :], torch.full_like(inside, -1, dtype=torch.int64))
    counts = (hl.unsqueeze(1) * wl.unsqueeze(0)).to(torch.float32)
    return flat.reshape(-1), counts, (kh, kw)


def _is_uniform(sizes: tuple[int, ...], out: tuple[int, ...]) -> bool:
    return all(o > 0 and s % o == 0 for s, o in zip(sizes, out, strict=True))


@defines("_adaptive_avg_pool2d.default")
def _adaptive_avg_pool2d(prims: Primitives, a: dict[str, Any]) -> Outputs:
    """self [N, C, H, W] (or [C, H, W]) → [N, C, OH, OW]: fl(rowsum(window) / count).

    Window (oh, ow) covers rows [floor(oh*H/OH), ceil((oh+1)*H/OH)) and the same for columns. Its
    values in row-major order of a KH x KW grid (KH, KW the longest window sides; +0.0 past the
    window's end) are summed by the pairwise `rowsum`; count is the window's true size."""
    x = a["self"]
    _require_float("aten::_adaptive_avg_pool2d", x)
    x4, unbatched = _planes(x)
    n, c, h, w = x4.shape
    out = _expand(a["output_size"], 2)
    oh, ow = out[0], out[1]
    flat, counts, (kh, kw) = _adaptive_table((h, w), (oh, ow))
    if _is_uniform((h, w), (oh, ow)):  # the same rows as the table gives, by a view
        rows = x4.reshape(n, c, oh, kh, ow, kw).permute(0, 1, 2, 4, 3, 5).reshape(-1, kh * kw)
    else:
        planes = torch.cat([x4.reshape(n * c, h * w), x4.new_zeros(n * c, 1)], dim=1)  # index -1: the +0.0
        rows = planes[:, flat].reshape(-1, kh * kw)
    result = prims.rowsum(rows.contiguous()).reshape(n, c, oh, ow) / counts
    return result.squeeze(0) if unbatched else result


@defines("_adaptive_avg_pool2d_backward.default")
def _adaptive_avg_pool2d_backward(prims: Primitives, a: dict[str, Any]) -> Outputs:
    """grad_output [N, C, OH, OW], self [N, C, H, W] → grad_input [N, C, H, W].

    share = fl(grad_output / count); grad_input[i] = +0.0 + the shares of the windows containing i,
    added one at a time in ascending (oh, ow) (`segment_sum`)."""
    grad, x = a["grad_output"], a["self"]
    _require_float("aten::_adaptive_avg_pool2d_backward", grad, x)
    x4, unbatched = _planes(x)
    grad4 = _planes(grad)[0]
    n, c, h, w = x4.shape
    oh, ow = grad4.shape[2:]
    flat, counts, (kh, kw) = _adaptive_table((h, w), (oh, ow))
    shares = grad4 / counts  # [N, C, OH, OW]
    if _is_uniform((h, w), (oh, ow)):  # each input in exactly one window: +0.0 + share
        spread = shares.repeat_interleave(kh, dim=2).repeat_interleave(kw, dim=3)
        result = torch.zeros((), dtype=spread.dtype) + spread
    else:
        values = shares.reshape(n * c, oh * ow, 1).expand(-1, -1, kh * kw).reshape(n * c, -1).t().contiguous()
        result = prims.segment_sum(values, flat, h * w).t().reshape(n, c, h, w)
    result = result.contiguous()
    return result.squeeze(0) if unbatched else result


@defines("adaptive_max_pool2d.default")
def _adaptive_max_pool2d(prims: Primitives, a: dict[str, Any]) -> Outputs:
    """self [N, C, H, W] (or [C, H, W]) → (values, indices) [N, C, OH, OW], indices into h*W + w.

    Windows as in `_adaptive_avg_pool2d`; within one, positions in row-major order of the KH x KW
    grid (positions past the window's end are never chosen): the first NaN if the window has one,
    else the first position equal to the window's maximum, as `_max_pool2d`."""
    x = a["self"]
    _require_float("aten::adaptive_max_pool2d", x)
    x4, unbatched = _planes(x)
    n, c, h, w = x4.shape
    out = _expand(a["output_size"], 2)
    oh, ow = out[0], out[1]
    flat, _, (kh, kw) = _adaptive_table((h, w), (oh, ow))
    planes = torch.cat([x4.reshape(n * c, h * w), x4.new_full((n * c, 1), float("-inf"))], dim=1)  # index -1: -inf
    rows = planes[:, flat].reshape(-1, kh * kw)
    position = prims.rowargmax(rows)  # [R]: the first NaN, else the first maximum (+0.0 == -0.0)
    values = rows.gather(1, position.unsqueeze(1)).reshape(n, c, oh, ow)
    kk = kh * kw
    chosen = torch.arange(oh * ow, dtype=torch.int64).repeat(n * c) * kk + position
    indices = flat[chosen]
    # past a window's end only when its every position is -inf: its first position is the first maximum
    indices = torch.where(indices >= 0, indices, flat[chosen - position]).reshape(n, c, oh, ow)
    return (values.squeeze(0), indices.squeeze(0)) if unbatched else (values, indices)


# --- unfold and fold (nn.Unfold, nn.Fold) ---------------------------------------------------------


def _im2col_geometry(a: dict[str, Any]) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]]:
    kernel, dilation = _expand(a["kernel_size"], 2), _expand(a["dilation"], 2)
    padding, stride = _expand(a["padding"], 2), _expand(a["stride"], 2)
    return (kernel[0], kernel[1]), (dilation[0], dilation[1]), (padding[0], padding[1]), (stride[0], stride[1])


@defines("im2col.default")
def _im2col(_: Primitives, a: dict[str, Any]) -> Outputs:
    """self [N, C, H, W] (or [C, H, W]) → [N, C*KH*KW, OH*OW]: exact data movement (+0.0 on padding),
    rows in (c, kh, kw) order, columns in (oh, ow) order."""
    x = a["self"]
    _require_float("aten::im2col", x)
    x4, unbatched = _planes(x)
    n, c = x4.shape[:2]
    kernel, dilation, padding, stride = _im2col_geometry(a)
    out = tuple(compute_conv_out_size(s, k, st, p, d) for s, k, st, p, d in zip(x4.shape[2:], kernel, stride, padding, dilation, strict=True))
    rows = _pool_windows(x4, out, kernel, stride, padding, dilation, 0.0)  # [N*C*L, KK]
    result = rows.reshape(n, c, -1, kernel[0] * kernel[1]).transpose(2, 3).reshape(n, -1, out[0] * out[1]).contiguous()
    return result.squeeze(0) if unbatched else result


@defines("col2im.default")
def _col2im(_: Primitives, a: dict[str, Any]) -> Outputs:
    """self [N, C*KH*KW, L] (or [C*KH*KW, L]) → [N, C, H, W] with (H, W) = output_size: each
    position is +0.0 plus the columns' values that land on it, added one at a time in row-major
    order of the kernel offset (kh, kw) (`_fold`)."""
    cols = a["self"]
    _require_float("aten::col2im", cols)
    unbatched = cols.dim() == 2
    cols3 = cols.unsqueeze(0) if unbatched else cols
    kernel, dilation, padding, stride = _im2col_geometry(a)
    sizes = _expand(a["output_size"], 2)
    out = tuple(compute_conv_out_size(s, k, st, p, d) for s, k, st, p, d in zip(sizes, kernel, stride, padding, dilation, strict=True))
    n, c = cols3.shape[0], cols3.shape[1] // (kernel[0] * kernel[1])
    windows = cols3.reshape(n, c, *kernel, *out).permute(0, 4, 5, 2, 3, 1)  # [N, OH, OW, KH, KW, C]
    result = _fold(windows, (sizes[0], sizes[1]), stride, padding, dilation).movedim(-1, 1).contiguous()
    return result.squeeze(0) if unbatched else result


# --- reflection and replication padding (Conv's padding_mode "reflect" / "replicate") -------------


def _pad_sources(sizes: tuple[int, ...], padding: list[int], mode: str) -> tuple[list[Tensor], tuple[int, ...]]:
    """For each of the last len(sizes) dims, the input index [out] each output position copies, and
    the output sizes. `padding` is torch's (last dim left, last dim right, next dim left, …)."""
    sources, out = [], []
    for d, size in enumerate(sizes):
        back = len(sizes) - 1 - d
        left, right = padding[2 * back], padding[2 * back + 1]
        if mode == "reflect" and max(left, right) >= size:
            raise ValueError(f"reflection padding ({left}, {right}) must be below the input size {size}")
        i = torch.arange(size + left + right, dtype=torch.int64) - left
        if mode == "reflect":  # … 2 1 | 0 1 2 … S-1 | S-2 S-3 …
            i = torch.where(i < 0, -i, i)
            i = torch.where(i >= size, 2 * (size - 1) - i, i)
        else:  # replicate: … 0 0 | 0 1 … S-1 | S-1 S-1 …
            i = i.clamp(0, size - 1)
        sources.append(i)
        out.append(size + left + right)
    return sources, tuple(out)


def _pad_forward(mode: str, dims: int) -> Any:
    def compute(_: Primitives, a: dict[str, Any]) -> Outputs:
        """self [*, *S] → [*, *S_padded]: each position copies its source (exact data movement)."""
        x = a["self"]
        _require_float(f"aten::{mode}_pad{dims}d", x)
        sources = _pad_sources(tuple(x.shape[-dims:]), list(a["padding"]), mode)[0]
        for d, index in enumerate(sources):
            x = x.index_select(x.dim() - dims + d, index)
        return x.contiguous()

    return compute


def _pad_backward(mode: str, dims: int) -> Any:
    def compute(prims: Primitives, a: dict[str, Any]) -> Outputs:
        """grad_output [*, *S_padded], self [*, *S] → grad_input [*, *S]: each input position is
        +0.0 plus the gradients of the output positions copying it, added one at a time in ascending
        row-major order of the output position (`segment_sum`)."""
        grad, x = a["grad_output"], a["self"]
        _require_float(f"aten::{mode}_pad{dims}d_backward", grad, x)
        sizes = tuple(x.shape[-dims:])
        sources, out = _pad_sources(sizes, list(a["padding"]), mode)
        flat = torch.zeros((), dtype=torch.int64)
        for index, size in zip(sources, sizes, strict=True):  # row-major flat source of every output position
            flat = (flat.unsqueeze(-1) * size + index).reshape(-1) if flat.dim() else index
        lead = grad.shape[: grad.dim() - dims]
        values = grad.reshape(-1, math.prod(out)).t().contiguous()  # [P_out, B]
        summed = prims.segment_sum(values, flat, math.prod(sizes))  # [P_in, B]
        return summed.t().reshape(*lead, *sizes).contiguous()

    return compute


for _mode, _torch_name in (("reflect", "reflection"), ("replicate", "replication")):
    for _dims in (1, 2, 3):
        defines(f"{_torch_name}_pad{_dims}d.default")(_pad_forward(_mode, _dims))
        defines(f"{_torch_name}_pad{_dims}d_backward.default")(_pad_backward(_mode, _dims))
