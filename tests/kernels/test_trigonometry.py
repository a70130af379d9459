"""sin and cos: the float64-step definition, fast == reference bit for bit, accuracy, specials."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from protocol.ops import execute
from protocol.ops.canonical import canonicalize_call
from protocol.ops.prims import REFERENCE
from protocol.semantics.trigonometry import LARGE, compute_sincos, reference_cos, reference_sin
from prover.fast import FAST
from prover.kernels import trigonometry

NAN_BITS = 0x7FC00000


def _bits(x: torch.Tensor) -> np.ndarray:
    return x.contiguous().view(torch.int32).numpy()


floats = st.floats(width=32, allow_nan=True, allow_infinity=True) | st.floats(-10.0, 10.0, width=32)


@given(st.lists(floats, min_size=1, max_size=300))
def test_fast_equals_reference_bit_for_bit(values: list[float]) -> None:
    x = torch.tensor(values, dtype=torch.float32)
    sin, cos = compute_sincos(x)
    assert np.array_equal(_bits(trigonometry.sin(x)), _bits(sin))
    assert np.array_equal(_bits(trigonometry.cos(x)), _bits(cos))


def test_correctly_rounded_on_a_million_arguments_below_large() -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.cat([torch.empty(500_000).uniform_(-8, 8, generator=g), torch.empty(500_000).uniform_(-LARGE, LARGE, generator=g)])
    truth = x.double().numpy()
    for name, fast, exact in (("sin", trigonometry.sin, np.sin), ("cos", trigonometry.cos, np.cos)):
        got = fast(x).numpy()
        rounded = exact(truth).astype(np.float32)
        ulp = np.spacing(np.abs(rounded)).astype(np.float64)
        error = np.abs(got.astype(np.float64) - exact(truth)) / ulp
        assert error.max() <= 0.5 + 1e-6, name  # float64 steps, one rounding
        assert (got != rounded).mean() < 1e-5, name


def test_special_values() -> None:
    x = torch.tensor([0.0, -0.0, float("inf"), float("-inf"), float("nan"), 1e-45, 3.4e38, -3.4e38])
    sin, cos = reference_sin(x), reference_cos(x)
    assert _bits(sin)[:2].tolist() == [0, -(2**31)]  # sin(±0) = ±0
    assert cos[:2].tolist() == [1.0, 1.0]
    assert (_bits(sin)[2:5] == NAN_BITS).all() and (_bits(cos)[2:5] == NAN_BITS).all()
    assert sin[5].item() == x[5].item()  # the smallest subnormal: sin x = x
    assert (sin[6:].abs() <= 1).all() and (cos[6:].abs() <= 1).all()  # huge arguments: defined, bounded


def test_results_do_not_depend_on_layout_or_threads() -> None:
    x = torch.empty(300, 400).uniform_(-50, 50, generator=torch.Generator().manual_seed(1))
    expected = trigonometry.sin(x)
    assert np.array_equal(_bits(trigonometry.sin(x.t().contiguous()).t()), _bits(expected))
    assert np.array_equal(_bits(trigonometry.sin(x[:, ::2])), _bits(expected[:, ::2]))
    previous = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = trigonometry.cos(x)
    finally:
        torch.set_num_threads(previous)
    assert np.array_equal(_bits(one), _bits(trigonometry.cos(x)))


@pytest.mark.parametrize("op", [torch.ops.aten.sin.default, torch.ops.aten.cos.default])
def test_the_aten_operators_run_the_primitives(op: torch._ops.OpOverload) -> None:
    x = torch.linspace(-20, 20, 1001)
    call = canonicalize_call(op, (x,), {})
    (reference,) = execute(call.op, call.args, call.inputs, REFERENCE)
    (fast,) = execute(call.op, call.args, call.inputs, FAST)
    assert reference is not None and fast is not None
    assert np.array_equal(_bits(reference), _bits(fast))
    assert torch.allclose(reference, op(x), atol=1e-6)


def test_fixed_vectors() -> None:
    x = torch.tensor([1.0, 2.0, 100.0, -0.5, 1.5707963705062866])
    patterns = [b & 0xFFFFFFFF for b in _bits(reference_sin(x)).tolist()]
    assert patterns == [0x3F576AA4, 0x3F68C7B7, 0xBF01A12E, 0xBEF57744, 0x3F800000]
