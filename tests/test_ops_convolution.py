"""Convolution and pooling: fast == reference bit for bit over generated geometries and layouts, one
example's bits independent of its batch, memory layout and thread count, results close to torch's
kernels and autograd, max pooling's documented choice of index, and a small CNN that trains under
the reproducible mode with the same bits at one and two threads."""

from __future__ import annotations

import copy
import math
from typing import Any
from unittest import mock

import pytest
import torch
import torch.nn.functional as F
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from protocol import semantics
from protocol.encoding import compute_digest, decode_tensor
from protocol.ops import UnsupportedOperator, convolution, execute, is_supported
from protocol.ops.canonical import canonicalize_call
from protocol.ops.prims import REFERENCE
from protocol.recording import Recorder, ReproducibleMode, RngContext
from protocol.trace import DERIVED, compute_derivation, compute_derived_value, is_derived
from prover.fast import FAST

aten = torch.ops.aten

SPECIALS = [0.0, -0.0, float("inf"), float("-inf"), float("nan"), 1e-45, 3.0e38]


def _run(func: Any, *args: Any, prims: Any = REFERENCE, **kwargs: Any) -> tuple[torch.Tensor | None, ...]:
    call = canonicalize_call(func, args, kwargs)
    return execute(call.op, call.args, [t.clone() for t in call.inputs], prims)


def _same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.dtype == b.dtype and a.shape == b.shape and compute_digest(a) == compute_digest(b)


def _both(func: Any, *args: Any, **kwargs: Any) -> tuple[torch.Tensor | None, ...]:
    """The operator on the reference and the fast primitives: asserts equal bits, returns them."""
    reference = _run(func, *args, prims=REFERENCE, **kwargs)
    fast = _run(func, *args, prims=FAST, **kwargs)
    assert len(reference) == len(fast)
    for i, (r, f) in enumerate(zip(reference, fast, strict=True)):
        assert _same(r, f), (func, i)
    return fast


def _tensor(data: st.DataObject, shape: tuple[int, ...], specials: bool) -> torch.Tensor:
    """Random normal values from a drawn seed, with a few drawn specials when asked."""
    seed = data.draw(st.integers(0, 2**31 - 1))
    x = torch.randn(shape, generator=torch.Generator().manual_seed(seed))
    if specials and x.numel():
        for _ in range(data.draw(st.integers(0, 3))):
            x.view(-1)[data.draw(st.integers(0, x.numel() - 1))] = data.draw(st.sampled_from(SPECIALS))
    return x


def _relayout(x: torch.Tensor, layout: str) -> torch.Tensor:
    """The same values with other strides: channels last, reversed dims, or a slice of a larger tensor."""
    if layout == "channels_last":
        return x.movedim(1, -1).contiguous().movedim(-1, 1)
    if layout == "reversed":
        dims = list(range(x.dim()))[::-1]
        return x.permute(dims).contiguous().permute(dims)
    if layout == "sliced":
        wide = torch.zeros((*x.shape[:-1], x.shape[-1] + 3))
        wide[..., 1 : 1 + x.shape[-1]] = x
        return wide[..., 1 : 1 + x.shape[-1]]
    return x


LAYOUTS = ["contiguous", "channels_last", "reversed", "sliced"]


@st.composite
def conv_geometries(draw: st.DrawFn, transposed: bool = False) -> dict[str, Any]:
    """A 1-d or 2-d convolution's sizes and arguments with at least one output position."""
    nd = draw(st.integers(1, 2))
    groups = draw(st.integers(1, 3))
    kernel = [draw(st.integers(1, 3)) for _ in range(nd)]
    stride = [draw(st.integers(1, 3)) for _ in range(nd)]
    dilation = [draw(st.integers(1, 2)) for _ in range(nd)]
    padding = [draw(st.integers(0, 2)) for _ in range(nd)]
    sizes = []
    for k, d, p in zip(kernel, dilation, padding, strict=True):
        needed = max(1, d * (k - 1) + 1 - 2 * p)
        sizes.append(draw(st.integers(needed, needed + 5)))
    output_padding = [0] * nd
    if transposed:  # torch requires padding within the dilated kernel, output_padding below stride or dilation
        padding = [min(p, d * (k - 1)) for p, d, k in zip(padding, dilation, kernel, strict=True)]
        output_padding = [draw(st.integers(0, max(s, d) - 1)) for s, d in zip(stride, dilation, strict=True)]
        padding = [  # and an output of at least one position
            min(p, ((n - 1) * s + d * (k - 1) + op) // 2)
            for p, n, s, d, k, op in zip(padding, sizes, stride, dilation, kernel, output_padding, strict=True)
        ]
    return {
        "n": draw(st.integers(1, 3)), "cg": draw(st.integers(1, 3)), "ocg": draw(st.integers(1, 3)), "groups": groups,
        "sizes": sizes, "kernel": kernel, "stride": stride, "padding": padding, "dilation": dilation,
        "output_padding": output_padding, "bias": draw(st.booleans()), "transposed": transposed,
    }  # fmt: skip


def _conv_inputs(g: dict[str, Any], data: st.DataObject, specials: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    c, oc = g["cg"] * g["groups"], g["ocg"] * g["groups"]
    x = _tensor(data, (g["n"], c, *g["sizes"]), specials)
    w_shape = (c, g["ocg"], *g["kernel"]) if g["transposed"] else (oc, g["cg"], *g["kernel"])
    weight = _tensor(data, w_shape, specials)
    bias = _tensor(data, (oc,), specials) if g["bias"] else None
    return x, weight, bias


def _conv_args(g: dict[str, Any]) -> tuple[Any, ...]:
    return g["stride"], g["padding"], g["dilation"], g["transposed"], g["output_padding"], g["groups"]


def _forward(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, g: dict[str, Any], prims: Any = FAST) -> torch.Tensor:
    (y,) = _run(aten.convolution.default, x, weight, bias, *_conv_args(g), prims=prims)
    assert y is not None
    return y


def _backward(
    grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, g: dict[str, Any], mask: list[bool], prims: Any = FAST
) -> tuple[torch.Tensor | None, ...]:
    bias_sizes = [weight.shape[1] * g["groups"] if g["transposed"] else weight.shape[0]]
    return _run(aten.convolution_backward.default, grad, x, weight, bias_sizes, *_conv_args(g), mask, prims=prims)


# --- convolution: fast == reference ---------------------------------------------------------------


@given(st.booleans().flatmap(conv_geometries), st.sampled_from(LAYOUTS), st.data())
@settings(max_examples=40)
def test_convolution_fast_equals_reference(g: dict[str, Any], layout: str, data: st.DataObject) -> None:
    x, weight, bias = _conv_inputs(g, data, specials=True)
    x = _relayout(x, layout)
    (y,) = _both(aten.convolution.default, x, weight, bias, *_conv_args(g))
    assert y is not None
    grad = _relayout(_tensor(data, tuple(y.shape), specials=True), layout)
    mask = data.draw(st.lists(st.booleans(), min_size=3, max_size=3))
    outputs = _both(aten.convolution_backward.default, grad, x, weight, [y.shape[1]], *_conv_args(g), mask)
    assert [o is not None for o in outputs] == mask


@given(conv_geometries(), st.data())
@settings(max_examples=10)
def test_weight_gradient_chunks_fast_equal_reference(g: dict[str, Any], data: st.DataObject) -> None:
    """With chunks of 5 rows, most weight gradients are several chunks added by `rowsum`."""
    x, weight, _ = _conv_inputs(g, data, specials=False)
    y = _forward(x, weight, None, g)
    grad = _tensor(data, tuple(y.shape), specials=False)
    with mock.patch.object(convolution, "WEIGHT_GRAD_CHUNK_ROWS", 5):
        (_, chunked, _) = _both(aten.convolution_backward.default, grad, x, weight, [0], *_conv_args(g), [False, True, False])
    (_, whole, _) = _backward(grad, x, weight, g, [False, True, False])
    assert chunked is not None and whole is not None
    torch.testing.assert_close(chunked, whole, rtol=1e-5, atol=1e-5)


# --- convolution: invariances ---------------------------------------------------------------------


@given(st.booleans().flatmap(conv_geometries), st.data())
@settings(max_examples=25)
def test_convolution_bits_do_not_depend_on_layout(g: dict[str, Any], data: st.DataObject) -> None:
    x, weight, bias = _conv_inputs(g, data, specials=True)
    y = _forward(x, weight, bias, g)
    grad = _tensor(data, tuple(y.shape), specials=True)
    backward = _backward(grad, x, weight, g, [True, True, True])
    for layout in LAYOUTS[1:]:
        assert _same(_forward(_relayout(x, layout), _relayout(weight, layout), bias, g), y), layout
        moved = _backward(_relayout(grad, layout), _relayout(x, layout), _relayout(weight, layout), g, [True, True, True])
        assert all(_same(a, b) for a, b in zip(moved, backward, strict=True)), layout


@given(st.booleans().flatmap(conv_geometries), st.data())
@settings(max_examples=25)
def test_one_example_alone_has_the_bits_it_has_in_its_batch(g: dict[str, Any], data: st.DataObject) -> None:
    x, weight, bias = _conv_inputs(g, data, specials=True)
    y = _forward(x, weight, bias, g)
    grad = _tensor(data, tuple(y.shape), specials=True)
    (grad_input, _, _) = _backward(grad, x, weight, g, [True, False, False])
    assert grad_input is not None
    i = data.draw(st.integers(0, g["n"] - 1))
    alone = {**g, "n": 1}
    assert _same(_forward(x[i : i + 1], weight, bias, alone), y[i : i + 1])
    (alone_input, _, _) = _backward(grad[i : i + 1], x[i : i + 1], weight, alone, [True, False, False])
    assert _same(alone_input, grad_input[i : i + 1])


def test_convolution_bits_do_not_depend_on_thread_count() -> None:
    """Large enough for the parallel matrix products and two weight-gradient chunks (M = 2304)."""
    gen = torch.Generator().manual_seed(1)
    x, weight, bias = torch.randn(16, 16, 12, 12, generator=gen), torch.randn(24, 8, 3, 3, generator=gen), torch.randn(24, generator=gen)
    grad = torch.randn(16, 24, 12, 12, generator=gen)
    args = ([1, 1], [1, 1], [1, 1], False, [0, 0], 2)
    previous = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            forward = _run(aten.convolution.default, x, weight, bias, *args, prims=FAST)
            backward = _run(aten.convolution_backward.default, grad, x, weight, [24], *args, [True, True, True], prims=FAST)
            results.append(forward + backward)
    finally:
        torch.set_num_threads(previous)
    assert all(_same(a, b) for a, b in zip(*results, strict=True))


# --- convolution: close to torch ------------------------------------------------------------------


def _torch_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, g: dict[str, Any]) -> torch.Tensor:
    nd = len(g["sizes"])
    common = {"stride": g["stride"], "padding": g["padding"], "dilation": g["dilation"], "groups": g["groups"]}
    if g["transposed"]:
        function = F.conv_transpose1d if nd == 1 else F.conv_transpose2d
        return function(x, weight, bias, output_padding=g["output_padding"], **common)  # type: ignore[operator]
    return (F.conv1d if nd == 1 else F.conv2d)(x, weight, bias, **common)  # type: ignore[operator]


@given(st.booleans().flatmap(conv_geometries), st.data())
@settings(max_examples=30)
def test_convolution_and_its_gradients_are_close_to_torch_autograd(g: dict[str, Any], data: st.DataObject) -> None:
    x, weight, bias = _conv_inputs(g, data, specials=False)
    leaves = [t.clone().requires_grad_() for t in (x, weight) + ((bias,) if bias is not None else ())]
    expected = _torch_conv(leaves[0], leaves[1], leaves[2] if bias is not None else None, g)
    y = _forward(x, weight, bias, g)
    torch.testing.assert_close(y, expected.detach(), rtol=1e-4, atol=1e-4)
    grad = _tensor(data, tuple(y.shape), specials=False)
    expected.backward(grad)
    ours = _backward(grad, x, weight, g, [True, True, bias is not None])
    for mine, leaf in zip(ours, leaves, strict=False):
        assert mine is not None and leaf.grad is not None
        torch.testing.assert_close(mine, leaf.grad, rtol=1e-4, atol=1e-4)


def test_unbatched_input_and_conv3d() -> None:
    gen = torch.Generator().manual_seed(2)
    x, weight = torch.randn(3, 7, 6, generator=gen), torch.randn(4, 3, 3, 2, generator=gen)
    (y,) = _both(aten.convolution.default, x, weight, None, [1, 1], [1, 0], [1, 1], False, [0, 0], 1)
    torch.testing.assert_close(y, F.conv2d(x, weight, padding=(1, 0)), rtol=1e-5, atol=1e-5)
    x3, w3 = torch.randn(2, 2, 4, 5, 3, generator=gen), torch.randn(3, 2, 2, 3, 2, generator=gen)
    args3 = ([1, 2, 1], [1, 1, 0], [1, 1, 1], False, [0, 0, 0], 1)
    (y3,) = _both(aten.convolution.default, x3, w3, None, *args3)
    leaves = [x3.clone().requires_grad_(), w3.clone().requires_grad_()]
    expected = F.conv3d(leaves[0], leaves[1], stride=(1, 2, 1), padding=(1, 1, 0))
    torch.testing.assert_close(y3, expected.detach(), rtol=1e-5, atol=1e-5)
    assert y3 is not None
    grad = torch.randn(y3.shape, generator=gen)
    expected.backward(grad)
    ours = _both(aten.convolution_backward.default, grad, x3, w3, [3], *args3, [True, True, False])
    for mine, leaf in zip(ours, leaves, strict=False):
        assert mine is not None and leaf.grad is not None
        torch.testing.assert_close(mine, leaf.grad, rtol=1e-5, atol=1e-5)


def test_float64_is_defined_mixed_dtypes_are_not_and_16_bit_floats_widen() -> None:
    x, weight = torch.randn(1, 2, 5, 5, dtype=torch.float64), torch.randn(2, 2, 3, 3, dtype=torch.float64)
    (y,) = _run(aten.convolution.default, x, weight, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)
    assert y is not None and y.dtype == torch.float64
    torch.testing.assert_close(y, torch.nn.functional.conv2d(x, weight), rtol=1e-13, atol=1e-13)
    pooled, _ = _run(aten.max_pool2d_with_indices.default, x, [2, 2])
    assert pooled is not None and torch.equal(pooled, torch.nn.functional.max_pool2d(x, 2))
    with pytest.raises(UnsupportedOperator, match="mixed dtypes"):
        _run(aten.convolution.default, x, weight.float(), None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1)
    (half,) = _run(aten.avg_pool2d.default, x.float().half(), [2, 2])  # 16-bit: widened, rounded once
    (wide,) = _run(aten.avg_pool2d.default, x.float().half().float(), [2, 2])
    assert half is not None and wide is not None and half.dtype == torch.float16 and torch.equal(half, wide.half())


# --- pooling --------------------------------------------------------------------------------------


@st.composite
def pool_geometries(draw: st.DrawFn, dilated: bool) -> dict[str, Any]:
    kernel = [draw(st.integers(1, 3)) for _ in range(2)]
    stride = [draw(st.integers(1, 3)) for _ in range(2)]
    dilation = [draw(st.integers(1, 2)) if dilated else 1 for _ in range(2)]
    padding = [draw(st.integers(0, k // 2)) for k in kernel]  # torch: padding at most half the kernel
    sizes = [draw(st.integers(max(1, d * (k - 1) + 1 - 2 * p), 9)) for k, d, p in zip(kernel, dilation, padding, strict=True)]
    return {"n": draw(st.integers(1, 3)), "c": draw(st.integers(1, 3)), "sizes": sizes, "kernel": kernel,
            "stride": stride, "padding": padding, "dilation": dilation, "ceil_mode": draw(st.booleans())}  # fmt: skip


def _max_pool(x: torch.Tensor, g: dict[str, Any], prims: Any = FAST) -> tuple[torch.Tensor | None, ...]:
    return _run(aten.max_pool2d_with_indices.default, x, g["kernel"], g["stride"], g["padding"], g["dilation"], g["ceil_mode"], prims=prims)


def _clamp(start: int, dilation: int) -> int:
    while start < 0:
        start += dilation
    return start


def _max_pool_oracle(x: torch.Tensor, g: dict[str, Any], out: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """The documented rule, by loops: inside the input, the first NaN, else the first maximum; a
    window with no position inside gives -inf at torch's clamped start. → (values, indices)"""
    n, c, h, w = x.shape
    values, indices = torch.zeros((n * c, *out)), torch.zeros((n * c, *out), dtype=torch.int64)
    for plane in range(n * c):
        rows = x.reshape(n * c, h, w)[plane]
        for oh in range(out[0]):
            for ow in range(out[1]):
                window = []
                for kh in range(g["kernel"][0]):
                    for kw in range(g["kernel"][1]):
                        i = oh * g["stride"][0] - g["padding"][0] + kh * g["dilation"][0]
                        j = ow * g["stride"][1] - g["padding"][1] + kw * g["dilation"][1]
                        if 0 <= i < h and 0 <= j < w:
                            window.append((float(rows[i, j]), i * w + j))
                if not window:
                    i, j = (_clamp(o * s - p, d) for o, s, p, d in zip((oh, ow), g["stride"], g["padding"], g["dilation"], strict=True))
                    values[plane, oh, ow], indices[plane, oh, ow] = float("-inf"), i * w + j
                    continue
                nans = [index for value, index in window if math.isnan(value)]
                best = max(value for value, _ in window)
                index = nans[0] if nans else next(i for v, i in window if v == best)
                values[plane, oh, ow], indices[plane, oh, ow] = rows.reshape(-1)[index], index
    return values.reshape(n, c, *out), indices.reshape(n, c, *out)


@given(pool_geometries(dilated=True), st.sampled_from(LAYOUTS), st.data())
@settings(max_examples=40)
def test_max_pool_picks_the_documented_index_and_fast_equals_reference(g: dict[str, Any], layout: str, data: st.DataObject) -> None:
    x = _tensor(data, (g["n"], g["c"], *g["sizes"]), specials=True)
    if data.draw(st.booleans()):  # many ties: few distinct values, zeros of both signs, -inf
        x = torch.tensor(SPECIALS[:4])[torch.randint(0, 4, x.shape, generator=torch.Generator().manual_seed(x.numel()))]
    values, indices = _both(aten.max_pool2d_with_indices.default, _relayout(x, layout), g["kernel"], g["stride"],
                            g["padding"], g["dilation"], g["ceil_mode"])  # fmt: skip
    assert values is not None and indices is not None
    expected_values, expected_indices = _max_pool_oracle(x, g, (values.shape[2], values.shape[3]))
    assert torch.equal(indices, expected_indices) and _same(values, expected_values)
    grad = _tensor(data, tuple(values.shape), specials=True)
    (grad_input,) = _both(aten.max_pool2d_with_indices_backward.default, _relayout(grad, layout), x, g["kernel"], g["stride"],
                          g["padding"], g["dilation"], g["ceil_mode"], indices)  # fmt: skip
    alone = _max_pool(x[:1], g)
    assert _same(alone[0], values[:1]) and _same(alone[1], indices[:1])
    assert grad_input is not None
    (alone_input,) = _run(aten.max_pool2d_with_indices_backward.default, grad[:1], x[:1], g["kernel"], g["stride"],
                          g["padding"], g["dilation"], g["ceil_mode"], indices[:1], prims=FAST)  # fmt: skip
    assert _same(alone_input, grad_input[:1])


def _every_window_reaches_the_input(g: dict[str, Any]) -> bool:
    for size, k, s, p, d in zip(g["sizes"], g["kernel"], g["stride"], g["padding"], g["dilation"], strict=True):
        out = convolution.compute_pool_out_size(size, k, s, p, d, g["ceil_mode"])
        if not all(any(0 <= o * s - p + j * d < size for j in range(k)) for o in range(out)):
            return False
    return True


@given(pool_geometries(dilated=True), st.data())
@settings(max_examples=25)
def test_max_pool_matches_torch_without_ties(g: dict[str, Any], data: st.DataObject) -> None:
    # torch's backward writes a window with no position inside the input (possible with dilation)
    # at an index that may lie outside its plane, even outside the tensor: leave those out
    assume(_every_window_reaches_the_input(g))
    x = _tensor(data, (g["n"], g["c"], *g["sizes"]), specials=False).requires_grad_()
    expected, expected_indices = F.max_pool2d(x, g["kernel"], g["stride"], g["padding"], g["dilation"], g["ceil_mode"], return_indices=True)
    values, indices = _max_pool(x.detach(), g)
    assert values is not None and indices is not None
    assert torch.equal(indices, expected_indices) and torch.equal(values, expected)
    grad = _tensor(data, tuple(values.shape), specials=False)
    expected.backward(grad)
    (grad_input,) = _run(aten.max_pool2d_with_indices_backward.default, grad, x.detach(), g["kernel"], g["stride"],
                         g["padding"], g["dilation"], g["ceil_mode"], indices, prims=FAST)  # fmt: skip
    assert x.grad is not None
    torch.testing.assert_close(grad_input, x.grad, rtol=1e-6, atol=1e-6)


def _avg_args(g: dict[str, Any], include: bool, divisor: int | None) -> tuple[Any, ...]:
    return g["kernel"], g["stride"], g["padding"], g["ceil_mode"], include, divisor


@given(pool_geometries(dilated=False), st.booleans(), st.sampled_from([None, 1, 5]), st.sampled_from(LAYOUTS), st.data())
@settings(max_examples=40)
def test_avg_pool_fast_equals_reference_and_is_close_to_torch(
    g: dict[str, Any], include: bool, divisor: int | None, layout: str, data: st.DataObject
) -> None:
    x = _tensor(data, (g["n"], g["c"], *g["sizes"]), specials=data.draw(st.booleans()))
    finite = bool(torch.isfinite(x).all())
    (y,) = _both(aten.avg_pool2d.default, _relayout(x, layout), *_avg_args(g, include, divisor))
    assert y is not None
    assert _same(y, _run(aten.avg_pool2d.default, x, *_avg_args(g, include, divisor), prims=FAST)[0])
    assert _same(y[:1], _run(aten.avg_pool2d.default, x[:1], *_avg_args(g, include, divisor), prims=FAST)[0])
    grad = _tensor(data, tuple(y.shape), specials=not finite)
    (grad_input,) = _both(aten.avg_pool2d_backward.default, _relayout(grad, layout), x, *_avg_args(g, include, divisor))
    assert grad_input is not None
    (alone,) = _run(aten.avg_pool2d_backward.default, grad[:1], x[:1], *_avg_args(g, include, divisor), prims=FAST)
    assert _same(alone, grad_input[:1])
    if finite:
        leaf = x.clone().requires_grad_()
        expected = F.avg_pool2d(leaf, g["kernel"], g["stride"], g["padding"], g["ceil_mode"], include, divisor)
        torch.testing.assert_close(y, expected.detach(), rtol=1e-5, atol=1e-5)
        expected.backward(grad)
        assert leaf.grad is not None
        torch.testing.assert_close(grad_input, leaf.grad, rtol=1e-5, atol=1e-5)


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9), st.integers(1, 5), st.integers(1, 5),
       st.sampled_from(LAYOUTS), st.data())  # fmt: skip
@settings(max_examples=40)
def test_adaptive_avg_pool_fast_equals_reference_and_is_close_to_torch(
    n: int, c: int, h: int, w: int, oh: int, ow: int, layout: str, data: st.DataObject
) -> None:
    x = _tensor(data, (n, c, h, w), specials=False)
    (y,) = _both(aten._adaptive_avg_pool2d.default, _relayout(x, layout), [oh, ow])
    assert y is not None
    assert _same(y[:1], _run(aten._adaptive_avg_pool2d.default, x[:1], [oh, ow], prims=FAST)[0])
    leaf = x.clone().requires_grad_()
    expected = F.adaptive_avg_pool2d(leaf, (oh, ow))
    torch.testing.assert_close(y, expected.detach(), rtol=1e-5, atol=1e-5)
    grad = _tensor(data, (n, c, oh, ow), specials=False)
    (grad_input,) = _both(aten._adaptive_avg_pool2d_backward.default, _relayout(grad, layout), x)
    expected.backward(grad)
    assert leaf.grad is not None
    torch.testing.assert_close(grad_input, leaf.grad, rtol=1e-5, atol=1e-5)


@given(st.integers(1, 3), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9), st.integers(1, 5), st.integers(1, 5),
       st.sampled_from(LAYOUTS), st.data())  # fmt: skip
@settings(max_examples=30)
def test_adaptive_max_pool_fast_equals_reference_and_matches_torch(
    n: int, c: int, h: int, w: int, oh: int, ow: int, layout: str, data: st.DataObject
) -> None:
    x = _tensor(data, (n, c, h, w), specials=False)
    values, indices = _both(aten.adaptive_max_pool2d.default, _relayout(x, layout), [oh, ow])
    assert values is not None and indices is not None
    alone = _run(aten.adaptive_max_pool2d.default, x[:1], [oh, ow], prims=FAST)
    assert _same(alone[0], values[:1]) and _same(alone[1], indices[:1])
    leaf = x.clone().requires_grad_()
    expected, expected_indices = F.adaptive_max_pool2d(leaf, (oh, ow), return_indices=True)
    assert torch.equal(values, expected.detach()) and torch.equal(indices, expected_indices)
    grad = _tensor(data, (n, c, oh, ow), specials=False)
    (grad_input,) = _both(aten.adaptive_max_pool2d_backward.default, _relayout(grad, layout), x, indices)
    expected.backward(grad)
    assert leaf.grad is not None
    torch.testing.assert_close(grad_input, leaf.grad, rtol=1e-6, atol=1e-6)


@given(pool_geometries(dilated=True), st.sampled_from(LAYOUTS), st.data())
@settings(max_examples=25)
def test_unfold_and_fold_fast_equal_reference_and_match_torch(g: dict[str, Any], layout: str, data: st.DataObject) -> None:
    x = _tensor(data, (g["n"], g["c"], *g["sizes"]), specials=False)
    geometry = {"kernel_size": g["kernel"], "dilation": g["dilation"], "padding": g["padding"], "stride": g["stride"]}
    (cols,) = _both(aten.im2col.default, _relayout(x, layout), **geometry)
    assert cols is not None
    assert torch.equal(cols, F.unfold(x, **geometry))  # data movement: exact
    (folded,) = _both(aten.col2im.default, cols, g["sizes"], **geometry)
    torch.testing.assert_close(folded, F.fold(cols, g["sizes"], **geometry), rtol=1e-6, atol=1e-6)


@given(st.sampled_from(["reflect", "replicate"]), st.integers(1, 3), st.sampled_from(LAYOUTS), st.data())
@settings(max_examples=30)
def test_reflection_and_replication_padding_fast_equal_reference_and_match_torch(
    mode: str, dims: int, layout: str, data: st.DataObject
) -> None:
    sizes = [data.draw(st.integers(2 if mode == "reflect" else 1, 6)) for _ in range(dims)]
    padding = [data.draw(st.integers(0, s - 1 if mode == "reflect" else 4)) for s in reversed(sizes) for _ in range(2)]
    x = _tensor(data, (2, 3, *sizes), specials=False)
    name = {"reflect": "reflection", "replicate": "replication"}[mode]
    forward, backward = getattr(aten, f"{name}_pad{dims}d").default, getattr(aten, f"{name}_pad{dims}d_backward").default
    (y,) = _both(forward, _relayout(x, layout), padding)
    leaf = x.clone().requires_grad_()
    expected = F.pad(leaf, padding, mode=mode)
    assert y is not None and torch.equal(y, expected.detach())  # data movement: exact
    grad = _tensor(data, tuple(y.shape), specials=False)
    (grad_input,) = _both(backward, _relayout(grad, layout), x, padding)
    expected.backward(grad)
    assert leaf.grad is not None
    torch.testing.assert_close(grad_input, leaf.grad, rtol=1e-6, atol=1e-6)


@given(st.integers(1, 40), st.integers(1, 12), st.data())
@settings(max_examples=30)
def test_the_window_maxima_primitive_equals_the_reference_rowargmax(rows: int, cols: int, data: st.DataObject) -> None:
    x = _tensor(data, (rows, cols), specials=True)
    if data.draw(st.booleans()):
        x = torch.tensor(SPECIALS)[torch.randint(0, len(SPECIALS), x.shape, generator=torch.Generator().manual_seed(rows * cols))]
    for prims in (REFERENCE, FAST):
        assert torch.equal(prims.rowargmax(x), semantics.reference_rowargmax(x))


# --- a small CNN under the reproducible mode ------------------------------------------------------


class SmallCNN(nn.Module):
    """Conv2d → ReLU → grouped Conv2d (reflection padding) with a residual add → MaxPool2d →
    strided Conv2d → ReLU → AvgPool2d (ceil mode) → AdaptiveAvgPool2d → Linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.block = nn.Conv2d(8, 8, 3, padding=1, groups=2, bias=False, padding_mode="reflect")
        self.pool = nn.MaxPool2d(3, stride=2, padding=1)
        self.down = nn.Conv2d(8, 12, 3, stride=2, padding=1, dilation=1)
        self.avg = nn.AvgPool2d(2, ceil_mode=True, count_include_pad=False)
        self.adaptive = nn.AdaptiveAvgPool2d((2, 2))
        self.head = nn.Linear(48, 5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.stem(x))
        h = h + F.relu(self.block(h))
        h = self.avg(F.relu(self.down(self.pool(h))))
        return self.head(self.adaptive(h).flatten(1))


def _cnn_step(threads: int, channels_last: bool, reproducible: bool = True) -> tuple[list[bytes], list[torch.Tensor]]:
    """Digests (and values) of the loss and every parameter gradient after one forward and backward."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        model = SmallCNN()
        gen = torch.Generator().manual_seed(1)
        x, y = torch.randn(6, 3, 13, 13, generator=gen), torch.randint(0, 5, (6,), generator=gen)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
            x = x.contiguous(memory_format=torch.channels_last)
        if reproducible:
            with ReproducibleMode(RngContext(0, 0), lambda device: FAST):
                loss = F.cross_entropy(model(x), y)
                loss.backward()
        else:
            loss = F.cross_entropy(model(x), y)
            loss.backward()
        values = [loss.detach()] + [p.grad for p in model.parameters() if p.grad is not None]
        return [compute_digest(v.contiguous()) for v in values], values
    finally:
        torch.set_num_threads(previous)


def test_small_cnn_trains_reproducibly_at_one_and_two_threads_and_in_both_layouts() -> None:
    one, values = _cnn_step(threads=1, channels_last=False)
    assert len(one) == 1 + len(list(SmallCNN().parameters()))
    assert one == _cnn_step(threads=2, channels_last=False)[0]
    assert one == _cnn_step(threads=2, channels_last=True)[0]
    _, native = _cnn_step(threads=2, channels_last=False, reproducible=False)
    for ours, theirs in zip(values, native, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-4, atol=1e-5)


def test_every_operator_of_the_cnn_is_defined() -> None:
    for name in ("convolution", "convolution_backward", "max_pool2d_with_indices", "max_pool2d_with_indices_backward",
                 "avg_pool2d", "avg_pool2d_backward", "_adaptive_avg_pool2d", "_adaptive_avg_pool2d_backward",
                 "adaptive_max_pool2d", "adaptive_max_pool2d_backward", "im2col", "col2im"):  # fmt: skip
        assert is_supported(f"aten::{name}.default"), name


def test_every_node_of_a_cnn_step_re_executes_from_the_reference_and_matches_the_skeleton() -> None:
    """What the referee does, for every node of a traced forward and backward: rebuild the inputs from
    their recorded producers and re-execute on the reference primitives. The skeleton (meta
    tensors) must record the same structure, masked-out gradients included."""
    torch.manual_seed(0)
    model = SmallCNN()
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(3, 3, 9, 9, generator=gen), torch.randint(0, 5, (3,), generator=gen)
    structures = []
    for skeleton in (False, True):
        m = copy.deepcopy(model).to("meta") if skeleton else model
        xs, ys = (x.to("meta"), y.to("meta")) if skeleton else (x, y)
        state = {**{f"param/{n}": p for n, p in m.named_parameters()}, "data/x": xs, "data/y": ys}
        names = sorted(state, key=str.encode)
        recorder = Recorder(skeleton=skeleton, keep_tensors=not skeleton)
        recorder.bind_state(names, state)
        with ReproducibleMode(RngContext(0, 0), lambda device: FAST, recorder=recorder):
            F.cross_entropy(m(xs), ys).backward()
        structures.append([node.structure for node in recorder.nodes])
        if not skeleton:
            nodes, tensors, digests = recorder.nodes, recorder.tensors, {n: compute_digest(state[n]) for n in names}
    assert structures[0] == structures[1]
    ops = {s.op for s in structures[0]}
    assert {"aten::convolution_backward.default", "aten::max_pool2d_with_indices_backward.default",
            "aten::reflection_pad2d_backward.default", "aten::_adaptive_avg_pool2d_backward.default"} <= ops  # fmt: skip
    for node in nodes:
        if is_derived(node.structure):
            assert all(d in (None, DERIVED) for d in node.digests)
            continue
        inputs = []
        for ref in node.structure.inputs:
            base, chain = compute_derivation(structures[0], ref)
            if base[0] == "c":
                value = decode_tensor(bytes.fromhex(base[1]))
            else:
                digest = digests[names[base[1]]] if base[0] == "s" else nodes[base[1]].digests[base[2]]
                assert digest is not None
                value = tensors[bytes(digest)].contiguous().clone()
            inputs.append(compute_derived_value(structures[0], chain, value))
        outputs = execute(node.structure.op, node.structure.args, inputs)
        assert tuple(None if o is None else compute_digest(o) for o in outputs) == node.digests, node.structure.op


# --- pinned vectors -------------------------------------------------------------------------------


def _exact_values(shape: tuple[int, ...], salt: int) -> torch.Tensor:
    """Values that any implementation builds exactly: small integers over 16, from a fixed pattern."""
    count = math.prod(shape)
    return (((torch.arange(count, dtype=torch.int64) * (37 + 2 * salt) + salt) % 101 - 50).to(torch.float32) / 16).reshape(shape)


def _vector_digests() -> dict[str, str]:
    """The reference outputs' digests on fixed inputs, one stride-2 grouped convolution and its
    gradients (both adjoint definitions are exercised: stride 2 folds, stride 1 flips), the pools."""
    x, weight, bias = _exact_values((2, 4, 7, 6), 1), _exact_values((6, 2, 3, 3), 2), _exact_values((6,), 3)
    outputs: dict[str, torch.Tensor | None] = {}
    for stride in (1, 2):
        args = ([stride, stride], [1, 1], [1, 1], False, [0, 0], 2)
        (y,) = _run(aten.convolution.default, x, weight, bias, *args)
        assert y is not None
        grad = _exact_values(tuple(y.shape), 4)
        grads = _run(aten.convolution_backward.default, grad, x, weight, [6], *args, [True, True, True])
        outputs.update({f"conv s{stride}": y, f"grad_input s{stride}": grads[0], f"grad_weight s{stride}": grads[1],
                        f"grad_bias s{stride}": grads[2]})  # fmt: skip
    tall, small = _exact_values((2, 1, 40, 30), 7), _exact_values((2, 1, 3, 3), 8)  # M = 2400: two chunks
    outputs["grad_weight chunked"] = _run(aten.convolution_backward.default, _exact_values((2, 2, 40, 30), 9), tall, small,
                                          [0], [1, 1], [1, 1], [1, 1], False, [0, 0], 1, [False, True, False])[1]  # fmt: skip
    values, indices = _run(aten.max_pool2d_with_indices.default, x, [3, 3], [2, 2], [1, 1], [1, 1], True)
    assert values is not None
    outputs["max_pool"], outputs["max_pool indices"] = values, indices
    (outputs["max_pool backward"],) = _run(aten.max_pool2d_with_indices_backward.default, _exact_values(tuple(values.shape), 5), x,
                                           [3, 3], [2, 2], [1, 1], [1, 1], True, indices)  # fmt: skip
    (outputs["avg_pool"],) = _run(aten.avg_pool2d.default, x, [3, 2], [2, 2], [1, 1], True, False)
    (outputs["adaptive_avg_pool"],) = _run(aten._adaptive_avg_pool2d.default, x, [3, 4])
    (outputs["adaptive_avg_pool backward"],) = _run(aten._adaptive_avg_pool2d_backward.default, _exact_values((2, 4, 3, 4), 6), x)
    return {name: compute_digest(value).hex()[:16] for name, value in outputs.items() if value is not None}


PINNED = {  # first 8 bytes of each digest, hex; a change here is a change of the definitions
    "conv s1": "2d897c2473c1eb08",
    "grad_input s1": "8ccbf96b60741352",
    "grad_weight s1": "b67b8862762d2df4",
    "grad_bias s1": "dcc6d5b77cd4caee",
    "conv s2": "f054641bbbf0a904",
    "grad_input s2": "c4e72586bb3570f0",
    "grad_weight s2": "b0ae71cea6264ca1",
    "grad_bias s2": "0c4fb74c1207a9eb",
    "grad_weight chunked": "e66e1ffb125df6c1",
    "max_pool": "419244b83fe3a640",
    "max_pool indices": "0b4db7e73cc8d6d2",
    "max_pool backward": "470f8e725ecf1adc",
    "avg_pool": "3e3abaa81b2361cb",
    "adaptive_avg_pool": "da064b7425811003",
    "adaptive_avg_pool backward": "884b235ca40c8d03",
}


def test_reference_outputs_match_the_pinned_vectors() -> None:
    """Any change of an order of roundings (or of WEIGHT_GRAD_CHUNK_ROWS's effect) shows up here."""
    assert _vector_digests() == PINNED
