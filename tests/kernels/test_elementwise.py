"""exp, log, tanh, erf, sqrt, rsqrt: special values, accuracy, fast == reference bit for bit."""

from __future__ import annotations

import math

import numba
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.semantics import OperandError
from tests.kernels.support import (
    ELEMENTWISE,
    FAST,
    IMPLEMENTATIONS,
    MAX_THREADS,
    REFERENCE,
    Implementation,
    assert_same_bits,
    bits,
    f32,
    layouts,
    make_values,
    modes,
    relayout,
    seeds,
    special_rates,
)

NAN = 0x7FC00000
INF = math.inf

# Max error in ulp over every float32 input, as stated in protocol/semantics/elementwise.py.
DOCUMENTED_MAX_ULP = {"exp": 0.98, "log": 0.91, "tanh": 1.04, "erf": 1.22, "sqrt": 0.5, "rsqrt": 1.5}


def _truth(name: str, x: np.ndarray) -> np.ndarray:
    with np.errstate(all="ignore"):
        x64 = x.astype(np.float64)  # signalling NaNs raise "invalid" on conversion
        if name == "exp":
            return np.exp(x64)
        if name == "log":
            return np.log(x64)
        if name == "tanh":
            return np.tanh(x64)
        if name == "erf":
            return torch.special.erf(torch.from_numpy(x64)).numpy()
        if name == "sqrt":
            return np.sqrt(x64)
        return 1.0 / np.sqrt(x64)


def ulp_errors(y: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """|y - truth| in units of the float32 ulp at truth (subnormal spacing below 2**-126)."""
    y = y.astype(np.float64)
    magnitude = np.abs(truth)
    finite = np.isfinite(magnitude) & (magnitude > 0)
    exponent = np.floor(np.log2(np.where(finite, magnitude, 1.0)))
    ulp = np.exp2(np.maximum(exponent, -126) - 23)
    with np.errstate(all="ignore"):
        err = np.abs(y - truth) / ulp
    same = (y == truth) | (np.isnan(y) & np.isnan(truth))
    overflow = (magnitude >= 3.4028235677973366e38) & np.isinf(y) & (np.sign(y) == np.sign(truth))
    return np.where(same | overflow, 0.0, np.where(np.isnan(err), np.inf, err))


def _sample(name: str, count: int, seed: int) -> np.ndarray:
    """Random bit patterns (every class of float32) plus dense values where each function bends."""
    rng = np.random.default_rng(seed)
    patterns = rng.integers(0, 2**32, count, dtype=np.uint64).astype(np.uint32).view(np.float32)
    ranges = {"exp": (-104, 89), "log": (0, 4), "tanh": (-10, 10), "erf": (-4.5, 4.5), "sqrt": (0, 4), "rsqrt": (0, 4)}
    low, high = ranges[name]
    dense = rng.uniform(low, high, count).astype(np.float32)
    return np.concatenate([patterns, dense])


@settings(max_examples=40, deadline=None)
@given(
    shape=st.lists(st.integers(0, 30), min_size=0, max_size=3), seed=seeds, mode=modes,
    special_rate=special_rates, layout=layouts,
)
def test_elementwise_fast_equals_reference(shape, seed, mode, special_rate, layout):
    x = make_values(tuple(shape), seed, mode, special_rate)
    view = relayout(x, layout)
    for name in ELEMENTWISE:
        assert_same_bits(FAST(name, view), REFERENCE(name, x), f"{name} shape {tuple(shape)} {layout}")


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_all_value_classes_and_parallel_path(name: str):
    x = torch.from_numpy(_sample(name, 1 << 17, 1))  # 2**18 values: the parallel path
    expected = REFERENCE(name, x)
    before = numba.get_num_threads()
    try:
        for threads in (1, min(2, MAX_THREADS)):
            numba.set_num_threads(threads)
            assert_same_bits(FAST(name, x), expected, f"{name} with {threads} threads")
    finally:
        numba.set_num_threads(before)


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda i: i.name)
def test_accuracy_against_float64(impl: Implementation, name: str):
    x = _sample(name, 1 << 15 if impl is REFERENCE else 1 << 18, 2)
    err = ulp_errors(impl(name, torch.from_numpy(x)).numpy(), _truth(name, x))
    worst = int(np.argmax(err))
    assert err[worst] <= DOCUMENTED_MAX_ULP[name], f"{name}({x[worst]!r}) off by {err[worst]:.3f} ulp"


def test_sqrt_is_correctly_rounded():
    x = _sample("sqrt", 1 << 18, 3)
    x = x[x >= 0]
    want = np.sqrt(x)  # numpy's float32 sqrt is IEEE 754 correctly rounded
    for impl in IMPLEMENTATIONS:
        got = impl("sqrt", torch.from_numpy(x)).numpy()
        assert np.array_equal(got.view(np.uint32), want.view(np.uint32)), impl.name


SPECIAL_CASES: dict[str, list[tuple[float, float | None]]] = {
    "exp": [(0.0, 1.0), (-0.0, 1.0), (INF, INF), (-INF, 0.0), (89.0, INF), (-104.0, 0.0),
            (f32(0x42B17218), INF), (-103.97, 2.0**-149), (1e-40, 1.0), (1.0, f32(0x402DF854))],
    "log": [(1.0, 0.0), (0.0, -INF), (-0.0, -INF), (-1.0, None), (INF, INF), (-INF, None),
            (2.0**-149, f32(0xC2CE8ED0)), (2.0, f32(0x3F317218))],
    "tanh": [(0.0, 0.0), (-0.0, -0.0), (INF, 1.0), (-INF, -1.0), (2.0**-149, 2.0**-149), (10.0, 1.0),
             (-10.0, -1.0), (1e-30, 1e-30)],
    "erf": [(0.0, 0.0), (-0.0, -0.0), (INF, 1.0), (-INF, -1.0), (f32(0x407AD445), 1.0),
            (-f32(0x407AD445), -1.0), (3.0, f32(0x3F7FFE8D)), (2.0**-149, 2.0**-149)],
    "sqrt": [(0.0, 0.0), (-0.0, -0.0), (INF, INF), (-1.0, None), (-INF, None), (4.0, 2.0),
             (2.0**-148, 2.0**-74)],
    "rsqrt": [(0.0, INF), (-0.0, -INF), (INF, 0.0), (-1.0, None), (4.0, 0.5), (2.0**-148, 2.0**74)],
}


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda i: i.name)
def test_special_values(impl: Implementation, name: str):
    inputs = [x for x, _ in SPECIAL_CASES[name]] + [math.nan]
    got = bits(impl(name, torch.tensor(inputs, dtype=torch.float32))).tolist()
    for (x, want), g in zip(SPECIAL_CASES[name] + [(math.nan, None)], got, strict=True):
        expected = NAN if want is None else bits(torch.tensor(want, dtype=torch.float32)).item()
        assert g == expected, f"{impl.name} {name}({x!r}) = {int(g) & 0xFFFFFFFF:#010x}, want {int(expected) & 0xFFFFFFFF:#010x}"
    payloads = torch.tensor([0x7FC12345, -0x00400000, 0x7F800001], dtype=torch.int32).view(torch.float32)
    assert bits(impl(name, payloads)).tolist() == [NAN] * 3, f"{impl.name} {name} keeps a NaN payload"


@pytest.mark.parametrize("name", ELEMENTWISE)
@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda i: i.name)
def test_elementwise_rejects_bad_operands(impl: Implementation, name: str):
    with pytest.raises(OperandError, match="float32"):
        impl(name, torch.ones(3, dtype=torch.float16))  # float64 has its own definitions
    with pytest.raises(OperandError, match="Tensor"):
        impl(name, [1.0])  # type: ignore[arg-type]


def test_pow_scalar_sequences():
    from protocol.semantics import reference_pow_scalar, reference_rsqrt, reference_sqrt

    x = make_values((500,), 4, "wide", 0.05)
    assert_same_bits(reference_pow_scalar(x, 2.0), torch.where(x != x, torch.tensor(math.nan), x * x), "x**2")
    cube = x * x * x
    assert_same_bits(reference_pow_scalar(x, 3.0), torch.where(cube != cube, torch.tensor(math.nan), cube), "x**3")
    assert_same_bits(reference_pow_scalar(x, 0.5), reference_sqrt(x), "x**0.5")
    assert_same_bits(reference_pow_scalar(x, -0.5), reference_rsqrt(x), "x**-0.5")
    assert_same_bits(reference_pow_scalar(x, 0.0), torch.ones(500), "x**0 is 1, even for NaN")
    inverse = torch.tensor(1.0) / x
    assert_same_bits(reference_pow_scalar(x, -1.0), torch.where(x != x, torch.tensor(math.nan), inverse), "1/x")
    with pytest.raises(OperandError, match="exponent"):
        reference_pow_scalar(x, 2.5)
