"""Activations, losses and statistics (protocol.ops.activations): fast == reference bit for bit,
special values, invariance to layout and batch position, closeness to torch (forward and backward),
the native data-movement claims against numpy, and a small model trained under ReproducibleMode."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.ops import UnsupportedOperator, activations
from protocol.ops.prims import REFERENCE
from protocol.recording import ReproducibleMode, RngContext
from prover.fast import FAST
from prover.run import get_primitives_for
from tests.referee_replay import assert_nodes_re_execute
from tests.test_ops import matrices, run_op, same_bits

aten = torch.ops.aten
NAN_BITS = 0x7FC00000

# --- the operators under test, as calls on one [R, C] input x and a same-shaped g, t ---------------


def _calls(x: torch.Tensor, g: torch.Tensor, t: torch.Tensor) -> list[tuple[Any, tuple[Any, ...], dict[str, Any]]]:
    """(operator, args, kwargs) for every definition of the module, on inputs of one shape."""
    y = torch.sigmoid(x)
    probability = torch.sigmoid(t)
    weight, pos_weight = t[0].abs(), g[-1].abs()
    return [
        (aten.sigmoid.default, (x,), {}),
        (aten.sigmoid_backward.default, (g, y), {}),
        (aten.silu.default, (x,), {}),
        (aten.silu_backward.default, (g, x), {}),
        (aten.softplus.default, (x,), {}),
        (aten.softplus.default, (x, 2.0, 5.0), {}),
        (aten.softplus_backward.default, (g, x, 1.0, 20.0), {}),
        (aten.softplus_backward.default, (g, x, 0.5, 3.0), {}),
        (aten.elu.default, (x,), {}),
        (aten.elu.default, (x, 1.6732632423543772, 1.0507009873554805, 1.0), {}),
        (aten.elu.default, (x, 0.5, 1.0, 2.0), {}),
        (aten.elu_backward.default, (g, 1.0, 1.0, 1.0, False, x), {}),
        (aten.elu_backward.default, (g, 0.5, 1.5, 2.0, False, x), {}),
        (aten.elu_backward.default, (g, 1.0, 1.0, 1.0, True, F.elu(x)), {}),
        (aten.celu.default, (x, 0.5), {}),
        (aten.hardsigmoid.default, (x,), {}),
        (aten.hardsigmoid_backward.default, (g, x), {}),
        (aten.hardswish.default, (x,), {}),
        (aten.hardswish_backward.default, (g, x), {}),
        (aten.mish.default, (x,), {}),
        (aten.mish_backward.default, (g, x), {}),
        (aten.log_sigmoid_forward.default, (x,), {}),
        (aten.log_sigmoid_backward.default, (g, x, torch.exp(-x.abs())), {}),
        (aten.glu.default, (torch.cat([x, t], 1), 1), {}),
        (aten.glu_backward.default, (g, torch.cat([x, t], 1), 1), {}),
        (aten._prelu_kernel.default, (x, t[0]), {}),
        (aten._prelu_kernel_backward.default, (g, x, t[0]), {}),
        (aten.leaky_relu.default, (x,), {}),
        (aten.leaky_relu.default, (x, 0.2), {}),
        (aten.leaky_relu_backward.default, (g, x, 0.01, False), {}),
        (aten.hardtanh.default, (x,), {}),
        (aten.hardtanh.default, (x, 0.0, 6.0), {}),
        (aten.hardtanh_backward.default, (g, x, -1.0, 1.0), {}),
        (aten.sgn.default, (x,), {}),
        (aten.clamp.default, (x, -1.5, 2.0), {}),
        (aten.clamp.default, (x, None, 0.25), {}),
        (aten.clamp.Tensor, (x, t, None), {}),
        (aten.clamp_min.default, (x, 0.0), {}),
        (aten.clamp_max.default, (x, 1e-3), {}),
        (aten.clamp_min.Tensor, (x, t), {}),
        (aten.maximum.default, (x, t), {}),
        (aten.minimum.default, (x, t), {}),
        (aten.maximum.default, (x, t[0]), {}),
        (aten.reciprocal.default, (x,), {}),
        (aten.log1p.default, (x,), {}),
        (aten.expm1.default, (x,), {}),
        *[(aten.mse_loss.default, (x, t, r), {}) for r in (0, 1, 2)],
        *[(aten.mse_loss_backward.default, (g if r == 0 else g[0, 0], x, t, r), {}) for r in (0, 1, 2)],
        *[(aten.smooth_l1_loss.default, (x, t, r, b), {}) for r in (0, 1, 2) for b in (1.0, 0.5, 0.0)],
        *[(aten.smooth_l1_loss_backward.default, (g if r == 0 else g[0, 0], x, t, r, b), {}) for r in (0, 1) for b in (1.0, 0.5)],
        *[(aten.huber_loss.default, (x, t, r, 2.0), {}) for r in (0, 1)],
        *[(aten.huber_loss_backward.default, (g if r == 0 else g[0, 0], x, t, r, 0.5), {}) for r in (0, 1)],
        *[(aten.binary_cross_entropy_with_logits.default, (x, probability, None, None, r), {}) for r in (0, 1, 2)],
        (aten.binary_cross_entropy_with_logits.default, (x, probability, weight, pos_weight, 1), {}),
        (aten.binary_cross_entropy_with_logits.default, (x, probability, None, pos_weight, 0), {}),
        *[(aten.binary_cross_entropy.default, (y, probability, None, r), {}) for r in (0, 1, 2)],
        (aten.binary_cross_entropy.default, (y, probability, weight, 1), {}),
        (aten.binary_cross_entropy_backward.default, (g, y, probability, weight, 0), {}),
        (aten.binary_cross_entropy_backward.default, (g[0, 0], y, probability, None, 1), {}),
        (aten.xlogy.Tensor, (probability, y), {}),
        (aten.xlogy.Tensor, (x, t), {}),
        (aten.xlogy.Scalar_Other, (x, 0.5), {}),
        (aten.xlogy.Scalar_Self, (2.0, x), {}),
        (aten.logsumexp.default, (x, [1]), {}),
        (aten.logsumexp.default, (x, [0, 1], True), {}),
        (aten.var.correction, (x,), {}),
        (aten.var.correction, (x, [1]), {"correction": 0, "keepdim": True}),
        (aten.var.correction, (x, [0]), {"correction": 1}),
        (aten.std.correction, (x, [1]), {}),
        (aten.var_mean.correction, (x, [1]), {"correction": 1}),
        (aten.std_mean.correction, (x, None), {"correction": 0}),
        *[(aten.linalg_vector_norm.default, (x, o), {}) for o in (2, 1, math.inf, -math.inf, 0)],
        (aten.linalg_vector_norm.default, (x, 2.0, [1], True), {}),
        (aten.linalg_vector_norm.default, (x, math.inf, [0]), {}),
        (aten.prod.default, (x,), {}),
        (aten.prod.dim_int, (x, 1), {}),
        (aten.prod.dim_int, (x, 0, True), {}),
    ]


IN_PLACE = [
    (aten.sigmoid_.default, aten.sigmoid.default, ()),
    (aten.silu_.default, aten.silu.default, ()),
    (aten.elu_.default, aten.elu.default, (0.5,)),
    (aten.leaky_relu_.default, aten.leaky_relu.default, (0.1,)),
    (aten.hardtanh_.default, aten.hardtanh.default, (-2.0, 2.0)),
    (aten.sgn_.default, aten.sgn.default, ()),
    (aten.clamp_.default, aten.clamp.default, (-1.0, 1.0)),
    (aten.clamp_min_.default, aten.clamp_min.default, (0.5,)),
    (aten.clamp_max_.default, aten.clamp_max.default, (0.5,)),
    (aten.reciprocal_.default, aten.reciprocal.default, ()),
    (aten.celu_.default, aten.celu.default, (2.0,)),
    (aten.hardsigmoid_.default, aten.hardsigmoid.default, ()),
    (aten.hardswish_.default, aten.hardswish.default, ()),
    (aten.mish_.default, aten.mish.default, ()),
    (aten.log1p_.default, aten.log1p.default, ()),
    (aten.expm1_.default, aten.expm1.default, ()),
    (aten.tanh_.default, aten.tanh.default, ()),
    (aten.sqrt_.default, aten.sqrt.default, ()),
    (aten.rsqrt_.default, aten.rsqrt.default, ()),
]


def _inputs(x: torch.Tensor, data: st.DataObject) -> tuple[torch.Tensor, torch.Tensor]:
    rows, cols = x.shape
    return data.draw(matrices(rows=rows, cols=cols, specials=False)), data.draw(matrices(rows=rows, cols=cols))


# --- fast == reference ------------------------------------------------------------------------------


@given(matrices(), st.data())
@settings(max_examples=20)
def test_fast_equals_reference_bit_for_bit(x: torch.Tensor, data: st.DataObject) -> None:
    g, t = _inputs(x, data)
    for func, args, kwargs in _calls(x, g, t):
        reference = run_op(func, *args, prims=REFERENCE, **kwargs)
        fast = run_op(func, *args, prims=FAST, **kwargs)
        assert len(reference) == len(fast), func
        for r, f in zip(reference, fast, strict=True):
            assert same_bits(r, f), func


@given(matrices(), st.data())
@settings(max_examples=10)
def test_in_place_forms_write_the_functional_value(x: torch.Tensor, data: st.DataObject) -> None:
    for in_place, functional, args in IN_PLACE:
        (expected,) = run_op(functional, x, *args, prims=FAST)
        (written,) = run_op(in_place, x, *args, prims=FAST)
        assert same_bits(written, expected), in_place


# --- every NaN canonical; special values -----------------------------------------------------------

SPECIAL = torch.tensor(
    [0.0, -0.0, 1.0, -1.0, math.inf, -math.inf, math.nan, 1e-45, -1e-45, 1.17e-38, 3.0e38, -3.0e38, 1e-7, -1e-7, 88.8, -88.8, 30.0, -120.0]
)
NEGATIVE_NAN = torch.tensor([-1], dtype=torch.int32).view(torch.float32)  # 0xFFFFFFFF, a NaN with sign and payload


@pytest.mark.parametrize("prims", [REFERENCE, FAST], ids=["reference", "fast"])
def test_every_nan_result_is_canonical(prims: Any) -> None:
    x = torch.cat([SPECIAL, NEGATIVE_NAN]).reshape(1, -1)
    g = torch.cat([torch.full((SPECIAL.numel(),), math.inf), NEGATIVE_NAN]).reshape(1, -1)
    t = torch.flip(x, [1]).contiguous()
    for func, args, kwargs in _calls(x, g, t):
        for out in run_op(func, *args, prims=prims, **kwargs):
            assert out is not None
            nan_bits = out.view(torch.int32)[out != out]
            assert bool((nan_bits == NAN_BITS).all()), func


def _value(func: Any, *args: Any) -> Any:
    (out,) = run_op(func, *args, prims=FAST)
    assert out is not None
    return out.tolist()


def _bits_list(values: list[float]) -> list[int]:
    return torch.tensor(values, dtype=torch.float32).view(torch.int32).tolist()


def test_special_values() -> None:
    inf, nan = math.inf, math.nan
    x = torch.tensor([0.0, -0.0, inf, -inf, nan, -120.0, 120.0, 1e-45])
    assert _bits_list(_value(aten.sigmoid.default, x)) == _bits_list([0.5, 0.5, 1.0, 0.0, nan, float(torch.sigmoid(torch.tensor(-120.0))), 1.0, 0.5])
    assert _bits_list(_value(aten.softplus.default, x)[:5]) == _bits_list([math.log(2), math.log(2), inf, 0.0, nan])
    assert _value(aten.softplus.default, torch.tensor([-120.0, 25.0]))[0] == 0.0
    assert _value(aten.softplus.default, torch.tensor([25.0]))[0] == 25.0  # above the threshold: x itself
    assert _bits_list(_value(aten.log1p.default, torch.tensor([0.0, -0.0, -1.0, -2.0, inf, 1e-45, 3e38]))) == _bits_list(
        [0.0, -0.0, -inf, nan, inf, 1e-45, math.log1p(3e38)]
    )
    assert _bits_list(_value(aten.expm1.default, torch.tensor([0.0, -0.0, -inf, inf, 89.0, -200.0, 1e-45]))) == _bits_list(
        [0.0, -0.0, -1.0, inf, inf, -1.0, 1e-45]
    )
    assert _bits_list(_value(aten.elu.default, torch.tensor([0.0, -0.0, -inf, inf, 1e-45, -1e-45]))) == _bits_list(
        [0.0, -0.0, -1.0, inf, 1e-45, -1e-45]
    )
    assert _bits_list(_value(aten.reciprocal.default, torch.tensor([0.0, -0.0, inf, -inf]))) == _bits_list([inf, -inf, 0.0, -0.0])
    assert _bits_list(_value(aten.sgn.default, torch.tensor([0.0, -0.0, nan, -inf, 1e-45]))) == _bits_list([0.0, 0.0, 0.0, -1.0, 1.0])
    # maximum and minimum commute, with -0.0 < +0.0; NaN wins
    zeros = torch.tensor([0.0, -0.0, nan, 1.0])
    other = torch.tensor([-0.0, 0.0, 1.0, nan])
    assert _bits_list(_value(aten.maximum.default, zeros, other)) == _bits_list([0.0, 0.0, nan, nan])
    assert _bits_list(_value(aten.minimum.default, zeros, other)) == _bits_list([-0.0, -0.0, nan, nan])
    # clamp: NaN stays NaN, a NaN bound gives NaN, min > max gives max (as torch)
    assert _bits_list(_value(aten.clamp.default, torch.tensor([nan, -5.0, 5.0, 0.5]), -1.0, 1.0)) == _bits_list([nan, -1.0, 1.0, 0.5])
    assert all(math.isnan(v) for v in _value(aten.clamp.default, torch.tensor([0.0, 1.0]), nan, None))
    assert _value(aten.clamp.default, torch.tensor([0.0, 3.0]), 2.0, 1.0) == [1.0, 1.0]
    # the variance of one element with correction 1 is 0/0; linalg norms of subnormals stay exact
    assert math.isnan(_value(aten.var.correction, torch.tensor([3.0])))
    assert _bits_list([_value(aten.linalg_vector_norm.default, torch.tensor([-1e-45, 1e-45]), math.inf)]) == _bits_list([1e-45])


def test_integer_selection_runs_natively_16_bit_floats_widen_float64_is_defined_complex_is_not() -> None:
    idx = torch.tensor([-3, 0, 7, 12])
    assert _value(aten.clamp.default, idx, 0, 9) == [0, 0, 7, 9]
    assert _value(aten.maximum.default, idx, torch.tensor(5)) == [5, 5, 7, 12]
    assert _value(aten.prod.default, torch.tensor([-3, 2, 7])) == -42
    (small,) = run_op(aten.prod.dim_int, torch.tensor([[3, 5]], dtype=torch.int32), 1, dtype=torch.int32)
    assert small is not None and small.dtype == torch.int32 and small.tolist() == [15]
    x64 = torch.linspace(-30, 30, 61, dtype=torch.float64)
    (y64,) = run_op(aten.sigmoid.default, x64)  # float64: the same steps, each rounding to float64
    assert y64 is not None and y64.dtype == torch.float64
    torch.testing.assert_close(y64, torch.sigmoid(x64), rtol=1e-15, atol=1e-300)
    with pytest.raises(UnsupportedOperator, match="dtype"):
        run_op(aten.sigmoid.default, torch.zeros(3, dtype=torch.complex64))
    # 16-bit floats are the float32 definition on widened operands, each output rounded once
    x = torch.linspace(-3, 3, 7)
    for func, dtype in [(aten.mse_loss.default, torch.float16), (aten.var.correction, torch.bfloat16)]:
        args = (x.to(dtype), x.flip(0).to(dtype)) if func is aten.mse_loss.default else (x.to(dtype),)
        (narrow,) = run_op(func, *args)
        (wide,) = run_op(func, *(a.float() for a in args))
        assert narrow is not None and wide is not None and narrow.dtype == dtype and same_bits(narrow, wide.to(dtype))
    with pytest.raises(UnsupportedOperator, match="ord"):
        run_op(aten.linalg_vector_norm.default, torch.ones(3), 3)


# --- layout and batch position ------------------------------------------------------------------


@given(matrices(), st.data())
@settings(max_examples=10)
def test_results_do_not_depend_on_memory_layout(x: torch.Tensor, data: st.DataObject) -> None:
    g, t = _inputs(x, data)

    def transposed(v: Any) -> Any:
        return v.t().contiguous().t() if isinstance(v, torch.Tensor) and v.dim() == 2 else v

    for func, args, kwargs in _calls(x, g, t):
        plain = run_op(func, *args, prims=FAST, **kwargs)
        strided = run_op(func, *(transposed(a) for a in args), prims=FAST, **kwargs)
        for p, s in zip(plain, strided, strict=True):
            assert p is not None and s is not None
            assert same_bits(p.contiguous(), s.contiguous()), func


@given(matrices(rows=5, specials=True), st.integers(0, 4))
@settings(max_examples=15)
def test_row_results_do_not_depend_on_the_other_rows(x: torch.Tensor, row: int) -> None:
    """A row's result (elementwise ops, and statistics over dim 1) is the same alone and in a batch."""
    alone = x[row : row + 1].clone()
    for func, args in [
        (aten.silu.default, ()),
        (aten.softplus.default, ()),
        (aten.elu.default, ()),
        (aten.log1p.default, ()),
        (aten.var.correction, ([1],)),
        (aten.std.correction, ([1],)),
        (aten.linalg_vector_norm.default, (2, [1])),
        (aten.prod.dim_int, (1,)),
    ]:
        (full,) = run_op(func, x, *args, prims=FAST)
        (single,) = run_op(func, alone, *args, prims=FAST)
        assert full is not None
        assert same_bits(full[row : row + 1].contiguous(), single), func


def test_results_do_not_depend_on_thread_count() -> None:
    gen = torch.Generator().manual_seed(4)
    x, t = torch.randn(64, 5000, generator=gen) * 5, torch.rand(64, 5000, generator=gen)
    calls = [
        (aten.silu.default, (x,)),
        (aten.softplus.default, (x,)),
        (aten.elu.default, (x,)),
        (aten.var.correction, (x, [1])),
        (aten.var.correction, (x, [0])),
        (aten.linalg_vector_norm.default, (x, 2)),
        (aten.logsumexp.default, (x, [1])),
        (aten.binary_cross_entropy_with_logits.default, (x, t, None, None, 1)),
        (aten.mse_loss.default, (x, t, 2)),
        (aten.prod.dim_int, (t + 0.5, 0)),
    ]
    previous = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append([run_op(func, *args, prims=FAST)[0] for func, args in calls])
    finally:
        torch.set_num_threads(previous)
    assert all(same_bits(p, q) for p, q in zip(results[0], results[1], strict=True))


# --- closeness to torch -------------------------------------------------------------------------

ELEMENTWISE: list[tuple[str, Any, Callable[[torch.Tensor], torch.Tensor]]] = [
    ("sigmoid", aten.sigmoid.default, torch.sigmoid),
    ("silu", aten.silu.default, F.silu),
    ("softplus", aten.softplus.default, F.softplus),
    ("elu", aten.elu.default, F.elu),
    ("leaky_relu", aten.leaky_relu.default, F.leaky_relu),
    ("hardtanh", aten.hardtanh.default, F.hardtanh),
    ("log1p", aten.log1p.default, torch.log1p),
    ("expm1", aten.expm1.default, torch.expm1),
    ("reciprocal", aten.reciprocal.default, torch.reciprocal),
    ("celu", aten.celu.default, F.celu),
    ("hardsigmoid", aten.hardsigmoid.default, F.hardsigmoid),
    ("hardswish", aten.hardswish.default, F.hardswish),
    ("mish", aten.mish.default, F.mish),
    ("logsigmoid", aten.log_sigmoid_forward.default, F.logsigmoid),
]


def _ulp_error(got: torch.Tensor, want: torch.Tensor) -> float:
    """Max error in units in the last place of the float32 result, against float64 values."""
    spacing = torch.from_numpy(np.spacing(np.abs(want.float().numpy())).astype(np.float64))
    finite = torch.isfinite(want) & (want.float() != 0) & (want.abs() > 1e-30)
    if not bool(finite.any()):
        return 0.0
    return float(((got.double() - want).abs() / spacing)[finite].max())


def test_elementwise_functions_are_within_a_few_ulp_of_float64() -> None:
    gen = torch.Generator().manual_seed(3)
    x = torch.cat([torch.randn(20000, generator=gen) * 8, torch.linspace(-40, 40, 8001), torch.logspace(-30, 1.5, 2000), -torch.logspace(-30, 0, 2000)])
    for name, func, reference in ELEMENTWISE:
        sample = x[x > -1] if name == "log1p" else x
        got = run_op(func, sample, prims=FAST)[0]
        assert got is not None
        assert _ulp_error(got, reference(sample.double())) <= (4.0 if name == "mish" else 3.0), name  # mish: 3.5 measured
        # and the same values as torch's float32 kernel to a relative 1e-6 (absolute 1e-30)
        torch.testing.assert_close(got, reference(sample), rtol=1e-6, atol=1e-30, equal_nan=True, msg=name)


@given(matrices(specials=False), st.data())
@settings(max_examples=15)
def test_losses_and_statistics_are_close_to_torch(x: torch.Tensor, data: st.DataObject) -> None:
    g, t = _inputs(x, data)
    t = torch.where(torch.isfinite(t), t, torch.zeros(())).clamp(-1e4, 1e4)
    probability = torch.sigmoid(t / 100)
    weight, pos_weight = t[0].abs() / 1e4, g[-1].abs() / 1e4 + 0.5
    factors = x / 1e4 + 1  # in (0, 2]: a product of 40 cannot overflow float32
    checks = [
        ((aten.mse_loss.default, x, t, 1), lambda: F.mse_loss(x.double(), t.double())),
        ((aten.smooth_l1_loss.default, x, t, 2, 0.5), lambda: F.smooth_l1_loss(x.double(), t.double(), reduction="sum", beta=0.5)),
        ((aten.huber_loss.default, x, t, 0, 2.0), lambda: F.huber_loss(x.double(), t.double(), reduction="none", delta=2.0)),
        (
            (aten.binary_cross_entropy_with_logits.default, x, probability, weight, pos_weight, 1),
            lambda: F.binary_cross_entropy_with_logits(x.double(), probability.double(), weight.double(), pos_weight=pos_weight.double()),
        ),
        ((aten.var.correction, x, [1]), lambda: x.double().var(1) if x.shape[1] > 1 else torch.full((x.shape[0],), math.nan, dtype=torch.float64)),
        ((aten.std.correction, x, [0]), lambda: x.double().std(0) if x.shape[0] > 1 else torch.full((x.shape[1],), math.nan, dtype=torch.float64)),
        ((aten.linalg_vector_norm.default, x, 2), lambda: torch.linalg.vector_norm(x.double())),
        ((aten.linalg_vector_norm.default, x, 1, [1]), lambda: torch.linalg.vector_norm(x.double(), 1, [1])),
        ((aten.prod.dim_int, factors, 1), lambda: factors.double().prod(1)),
        ((aten.logsumexp.default, x, [1]), lambda: x.double().logsumexp(1)),
        ((aten.xlogy.Tensor, probability, x.abs()), lambda: torch.xlogy(probability.double(), x.double().abs())),
        (
            (aten.binary_cross_entropy.default, torch.sigmoid(x), probability, weight, 2),
            lambda: F.binary_cross_entropy(torch.sigmoid(x).double(), probability.double(), weight.double(), reduction="sum"),
        ),
    ]
    for (func, *args), expected in checks:
        (got,) = run_op(func, *args, prims=FAST)
        assert got is not None
        want = expected()
        scale = float(want.abs().max()) if want.numel() and bool(torch.isfinite(want).all()) else 1.0
        torch.testing.assert_close(got.double(), want, rtol=1e-5, atol=1e-5 * scale + 1e-30, equal_nan=True, msg=str(func))


ACTIVATIONS: list[tuple[str, Callable[[torch.Tensor], torch.Tensor], Any, Callable[[torch.Tensor, torch.Tensor], tuple[Any, ...]] | None]] = [
    # name, torch function, the backward operator autograd calls, its arguments given (grad, x)
    ("sigmoid", torch.sigmoid, aten.sigmoid_backward.default, lambda g, x: (g, torch.sigmoid(x))),
    ("silu", F.silu, aten.silu_backward.default, lambda g, x: (g, x)),
    ("softplus", lambda x: F.softplus(x, 2.0, 10.0), aten.softplus_backward.default, lambda g, x: (g, x, 2.0, 10.0)),
    ("elu", lambda x: F.elu(x, 0.7), aten.elu_backward.default, lambda g, x: (g, 0.7, 1.0, 1.0, False, x)),
    ("selu", F.selu, aten.elu_backward.default, lambda g, x: (g, 1.6732632423543772, 1.0507009873554805, 1.0, False, x)),
    ("leaky_relu", lambda x: F.leaky_relu(x, 0.2), aten.leaky_relu_backward.default, lambda g, x: (g, x, 0.2, False)),
    ("hardtanh", F.hardtanh, aten.hardtanh_backward.default, lambda g, x: (g, x, -1.0, 1.0)),
    ("celu", lambda x: F.celu(x, 0.5), aten.elu_backward.default, lambda g, x: (g, 0.5, 1.0, 2.0, False, x)),
    ("hardsigmoid", F.hardsigmoid, aten.hardsigmoid_backward.default, lambda g, x: (g, x)),
    ("hardswish", F.hardswish, aten.hardswish_backward.default, lambda g, x: (g, x)),
    ("mish", F.mish, aten.mish_backward.default, lambda g, x: (g, x)),
    ("logsigmoid", F.logsigmoid, aten.log_sigmoid_backward.default, lambda g, x: (g, x, torch.exp(-x.abs()))),
    ("glu", lambda x: F.glu(x.reshape(2, -1), 0).reshape(-1), None, None),
    ("prelu", lambda x: F.prelu(x.reshape(-1, 2), torch.tensor([0.3, -0.2], dtype=x.dtype)).reshape(-1), None, None),
]


@pytest.mark.parametrize("name, forward, backward, arguments", ACTIVATIONS, ids=[a[0] for a in ACTIVATIONS])
def test_backward_operators_match_autograd(name: str, forward: Any, backward: Any, arguments: Any) -> None:
    gen = torch.Generator().manual_seed(5)
    x = torch.cat([torch.randn(4000, generator=gen) * 6, torch.linspace(-30, 30, 601)])
    x = x[((x.abs() - 1).abs() > 1e-3) & ((x.abs() - 3).abs() > 1e-3)][:4000]  # away from the kinks
    x64 = x.double().requires_grad_()
    y64 = forward(x64)
    g = torch.randn(y64.shape, generator=gen)
    (want,) = torch.autograd.grad(y64, x64, g.double())
    got: torch.Tensor | None
    if backward is None or arguments is None:  # what autograd runs under the mode (glu, prelu)
        x32 = x.clone().requires_grad_()
        with ReproducibleMode(RngContext(0, 0), get_primitives_for()):
            (got,) = torch.autograd.grad(forward(x32), x32, g)
    else:
        got = run_op(backward, *arguments(g, x), prims=FAST)[0]
    assert got is not None
    torch.testing.assert_close(got.double(), want, rtol=2e-6, atol=1e-6, msg=name)


@pytest.mark.parametrize("reduction", [0, 1, 2])
def test_loss_backward_operators_match_autograd(reduction: int) -> None:
    gen = torch.Generator().manual_seed(6)
    x, t = torch.randn(6, 5, generator=gen) * 3, torch.randn(6, 5, generator=gen) * 3
    g = torch.randn(6, 5, generator=gen) if reduction == 0 else torch.randn((), generator=gen)
    mode = {0: "none", 1: "mean", 2: "sum"}[reduction]
    losses: list[tuple[Callable[[torch.Tensor, torch.Tensor], torch.Tensor], Any, tuple[float, ...]]] = [
        (lambda a, b: F.mse_loss(a, b, reduction=mode), aten.mse_loss_backward.default, ()),
        (lambda a, b: F.smooth_l1_loss(a, b, reduction=mode, beta=1.5), aten.smooth_l1_loss_backward.default, (1.5,)),
        (lambda a, b: F.huber_loss(a, b, reduction=mode, delta=0.5), aten.huber_loss_backward.default, (0.5,)),
    ]
    for forward, backward, extra in losses:
        x64 = x.double().requires_grad_()
        (want,) = torch.autograd.grad(forward(x64, t.double()), x64, g.double())
        (got,) = run_op(backward, g, x, t, reduction, *extra, prims=FAST)
        assert got is not None
        torch.testing.assert_close(got.double(), want, rtol=2e-6, atol=1e-7, msg=str(backward))


# --- native data movement: exact, pinned against numpy ------------------------------------------------


@st.composite
def _bit_patterns(draw: st.DrawFn) -> torch.Tensor:
    """A [R, C] float32 tensor of arbitrary bit patterns (NaN payloads, -0.0, subnormals included)."""
    rows, cols = draw(st.integers(1, 5)), draw(st.integers(1, 7))
    bits = draw(st.lists(st.integers(-(2**31), 2**31 - 1), min_size=rows * cols, max_size=rows * cols))
    return torch.tensor(bits, dtype=torch.int32).view(torch.float32).reshape(rows, cols)


def _same_raw_bits(got: torch.Tensor | None, want: np.ndarray) -> bool:
    return got is not None and got.shape == want.shape and bool(np.array_equal(got.contiguous().numpy().view(np.int32), want.view(np.int32)))


@given(_bit_patterns(), st.data())
@settings(max_examples=25)
def test_native_movement_operators_move_bits_exactly(x: torch.Tensor, data: st.DataObject) -> None:
    a = x.numpy()
    rows, cols = a.shape
    assert _same_raw_bits(run_op(aten.flip.default, x, [1])[0], a[:, ::-1].copy())
    assert _same_raw_bits(run_op(aten.flip.default, x, [0, 1])[0], a[::-1, ::-1].copy())
    shift = data.draw(st.integers(-9, 9))
    assert _same_raw_bits(run_op(aten.roll.default, x, [shift], [1])[0], np.roll(a, shift, axis=1))
    assert _same_raw_bits(run_op(aten.roll.default, x, [shift])[0], np.roll(a.reshape(-1), shift).reshape(a.shape))
    reps = data.draw(st.tuples(st.integers(1, 3), st.integers(1, 3)))
    assert _same_raw_bits(run_op(aten.repeat.default, x, list(reps))[0], np.tile(a, reps))
    pads = data.draw(st.lists(st.integers(0, 3), min_size=4, max_size=4))
    value = data.draw(st.sampled_from([0.0, -0.0, 1.5, -math.inf, 0.1]))
    want = np.pad(a, ((pads[2], pads[3]), (pads[0], pads[1])), constant_values=np.float32(value))
    assert _same_raw_bits(run_op(aten.constant_pad_nd.default, x, pads, value)[0], want)
    cropped = run_op(aten.constant_pad_nd.default, x, [0, -1 if cols > 1 else 0], 0.0)[0]
    assert _same_raw_bits(cropped, a[:, : cols - 1 if cols > 1 else cols].copy())
    start = data.draw(st.integers(0, cols - 1))
    assert _same_raw_bits(run_op(aten.narrow.default, x, 1, start, cols - start)[0], a[:, start:].copy())
    size = data.draw(st.integers(1, cols))
    pieces = run_op(aten.unsafe_split.Tensor, x, size, 1)
    assert all(_same_raw_bits(p, a[:, i * size : (i + 1) * size].copy()) for i, p in enumerate(pieces))
    assert len(pieces) == -(-cols // size)
    sizes = [cols - size, size] if cols > size else [cols]
    pieces = run_op(aten.unsafe_split_with_sizes.default, x, sizes, 1)
    assert all(_same_raw_bits(p, a[:, sum(sizes[:i]) : sum(sizes[: i + 1])].copy()) for i, p in enumerate(pieces))
    mask = torch.tensor(data.draw(st.lists(st.booleans(), min_size=rows * cols, max_size=rows * cols))).reshape(rows, cols)
    source = torch.flip(x, [0, 1]).contiguous()
    expected = a.copy()
    expected[mask.numpy()] = source.numpy().reshape(-1)[: int(mask.sum())]
    assert _same_raw_bits(run_op(aten.masked_scatter.default, x, mask, source)[0], expected)
    assert _same_raw_bits(run_op(aten.transpose_.default, x, 0, 1)[0], a.T.copy())
    other = torch.flip(x, [1]).contiguous()
    # a float is true when nonzero, NaN included
    truthy, other_truthy, kept = (a != 0) | np.isnan(a), (other.numpy() != 0) | np.isnan(other.numpy()), mask.numpy()
    for func, numpy_func in [
        (aten.logical_and.default, np.logical_and),
        (aten.logical_or.default, np.logical_or),
        (aten.logical_xor.default, np.logical_xor),
    ]:
        (got,) = run_op(func, x, other)
        assert got is not None and np.array_equal(got.numpy(), numpy_func(truthy, other_truthy)), func
    (written,) = run_op(aten.logical_and_.default, mask.clone(), x)
    assert written is not None and np.array_equal(written.numpy(), kept & truthy)
    (written,) = run_op(aten.logical_or_.default, mask.clone(), x)
    assert written is not None and np.array_equal(written.numpy(), kept | truthy)


def test_maximum_out_routes_to_maximum() -> None:
    """Adam's amsgrad for-loop form calls maximum.out: its value is maximum's, written into `out`."""
    x, y = torch.tensor([1.0, -0.0, math.nan]), torch.tensor([2.0, 0.0, 0.0])
    out = torch.empty(3)
    (written,) = run_op(aten.maximum.out, x, y, out=out)
    assert same_bits(written, run_op(aten.maximum.default, x, y)[0])


# --- a small model, forward and backward, under ReproducibleMode ---------------------------------------


class _Zoo(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(4, 8), torch.nn.Sigmoid(), torch.nn.Linear(8, 8), torch.nn.Softplus(),
            torch.nn.Linear(8, 8), torch.nn.LeakyReLU(), torch.nn.Linear(8, 8), torch.nn.ELU(),
            torch.nn.Linear(8, 8), torch.nn.SiLU(), torch.nn.Linear(8, 3),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def _zoo_loss(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, classes: torch.Tensor, smoothing: float) -> torch.Tensor:
    out = model(x)
    return (
        F.mse_loss(out, y)
        + F.l1_loss(out, y)
        + F.smooth_l1_loss(out, y)
        + F.binary_cross_entropy_with_logits(out, (y > 0).float(), pos_weight=torch.full((3,), 2.0))
        + F.cross_entropy(out, classes, label_smoothing=smoothing, ignore_index=-100)
        + out.var()
    )


def _train_zoo(threads: int, smoothing: float = 0.0, steps: int = 2) -> tuple[list[torch.Tensor], list[float]]:
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        model = _Zoo()
        gen = torch.Generator().manual_seed(1)
        x, y = torch.randn(5, 4, generator=gen), torch.randn(5, 3, generator=gen)
        classes = torch.tensor([0, 1, 2, -100, 1])
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, foreach=False)
        losses = []
        for step in range(steps):
            with ReproducibleMode(RngContext(0, step), get_primitives_for()):
                optimizer.zero_grad(set_to_none=True)
                loss = _zoo_loss(model, x, y, classes, smoothing)
                loss.backward()
                optimizer.step()
            losses.append(float(loss.detach()))
        return [p.detach().clone() for p in model.parameters()], losses
    finally:
        torch.set_num_threads(previous)


def test_a_model_with_these_activations_and_losses_trains_reproducibly() -> None:
    one, losses_one = _train_zoo(1)
    two, losses_two = _train_zoo(2)
    assert all(same_bits(p, q) for p, q in zip(one, two, strict=True))
    assert losses_one == losses_two
    # and it is the same training as torch's own, to float32 accuracy
    torch.manual_seed(0)
    model = _Zoo()
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(5, 4, generator=gen), torch.randn(5, 3, generator=gen)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, foreach=False)
    for _step in range(2):
        optimizer.zero_grad(set_to_none=True)
        _zoo_loss(model, x, y, torch.tensor([0, 1, 2, -100, 1]), 0.0).backward()
        optimizer.step()
    for ours, theirs in zip(one, model.parameters(), strict=True):
        torch.testing.assert_close(ours, theirs.detach(), rtol=1e-5, atol=1e-5)


def test_every_node_of_a_traced_zoo_step_re_executes_from_the_reference() -> None:
    """What the referee does: each node of a step traced with the fast primitives, re-executed from
    the reference definitions on its recorded inputs, gives the recorded digests."""
    from protocol.encoding import compute_digest
    from protocol.recording import Recorder

    torch.manual_seed(0)
    model = _Zoo()
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(5, 4, generator=gen), torch.randn(5, 3, generator=gen)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, foreach=False)
    state = dict(model.named_parameters())
    names = sorted(state)
    before = [compute_digest(state[name]) for name in names]
    recorder = Recorder(keep_tensors=True)
    recorder.bind_state(names, state)
    with ReproducibleMode(RngContext(0, 0), get_primitives_for(), recorder=recorder):
        _zoo_loss(model, x, y, torch.tensor([0, 1, 2, -100, 1]), 0.0).backward()
        optimizer.step()
    checked = assert_nodes_re_execute(recorder.nodes, before, recorder.tensors)
    assert {"aten::softplus_backward.default", "aten::elu_backward.default", "aten::var.correction", "aten::silu_backward.default"} <= checked


def test_module_defines_what_it_documents() -> None:
    from protocol.ops.table import OPS, OpKind

    for short in activations.NATIVE_MOVEMENT_OPS.split():
        assert OPS[f"aten::{short}"].kind is OpKind.NATIVE
    for in_place, functional, _ in IN_PLACE:
        assert OPS[f"aten::{in_place._schema.name.split('::')[1]}.{in_place._overloadname}"].kind is OpKind.DEFINED
        assert f"aten::{functional._schema.name.split('::')[1]}.{functional._overloadname}" in OPS


def test_cross_entropy_with_label_smoothing_trains_reproducibly() -> None:
    """Label smoothing with ignore_index counts the kept targets with `sum.default` of a bool mask
    (an integer sum, exact in any order: torch's kernel defines it)."""
    one, _ = _train_zoo(1, smoothing=0.1, steps=1)
    two, _ = _train_zoo(2, smoothing=0.1, steps=1)
    assert all(same_bits(p, q) for p, q in zip(one, two, strict=True))
