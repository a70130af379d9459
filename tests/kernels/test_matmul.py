"""mm and bmm: the canonical order, fast == reference bit for bit, and what must not matter."""

from __future__ import annotations

from fractions import Fraction

import numba
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.semantics import OperandError, reference_bmm, reference_mm
from protocol.semantics.matmul import compute_fma32
from prover.kernels import bmm, mm
from tests.kernels.support import (
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

# shapes that take the parallel path, packed and transposed panels, and edge tiles in both directions; a
# transposed or strided A with more than one panel of B is first copied into row order (its rows padded
# when the depth is a multiple of 1024)
LARGE_SHAPES = [(100, 130, 200), (64, 256, 130), (7, 300, 1000), (250, 64, 64), (21, 1024, 80)]


@pytest.fixture(params=[1, 2], ids=["1-thread", "2-threads"])
def threads(request: pytest.FixtureRequest):
    before = numba.get_num_threads()
    numba.set_num_threads(min(request.param, MAX_THREADS))
    yield request.param
    numba.set_num_threads(before)


@settings(max_examples=60, deadline=None)
@given(
    m=st.integers(1, 40), k=st.integers(0, 70), n=st.integers(1, 140),
    seed=seeds, mode=modes, special_rate=special_rates, layout_a=layouts, layout_b=layouts,
)
def test_mm_fast_equals_reference(m, k, n, seed, mode, special_rate, layout_a, layout_b):
    a = make_values((m, k), seed, mode, special_rate)
    b = make_values((k, n), seed + 1, mode, special_rate)
    expected = reference_mm(a, b)
    assert_same_bits(mm(relayout(a, layout_a), relayout(b, layout_b)), expected, f"mm {m}x{k}x{n}")


@settings(max_examples=30, deadline=None)
@given(
    batch=st.integers(1, 6), m=st.integers(1, 20), k=st.integers(0, 40), n=st.integers(1, 80),
    seed=seeds, mode=modes, special_rate=special_rates, layout_a=layouts, layout_b=layouts,
)
def test_bmm_fast_equals_reference(batch, m, k, n, seed, mode, special_rate, layout_a, layout_b):
    a = make_values((batch, m, k), seed, mode, special_rate)
    b = make_values((batch, k, n), seed + 1, mode, special_rate)
    expected = reference_bmm(a, b)
    assert_same_bits(bmm(relayout(a, layout_a), relayout(b, layout_b)), expected, f"bmm {batch}x{m}x{k}x{n}")


@pytest.mark.parametrize("shape", LARGE_SHAPES)
def test_mm_large_equals_reference_at_any_thread_count(shape, threads):
    m, k, n = shape
    a = make_values((m, k), m + k, "normal", 0.01)
    w = make_values((n, k), n, "normal", 0.01)
    expected = reference_mm(a, w.t())
    assert_same_bits(mm(a, w.t()), expected, f"mm {shape} transposed b, {threads} threads")
    assert_same_bits(mm(a, w.t().contiguous()), expected, f"mm {shape} contiguous b, {threads} threads")
    assert_same_bits(mm(relayout(a, "transposed"), relayout(w.t(), "strided")), expected, f"mm {shape} strided")
    assert_same_bits(mm(relayout(a, "transposed"), w.t().contiguous()), expected, f"mm {shape} transposed a")
    assert_same_bits(mm(relayout(a, "strided"), w.t()), expected, f"mm {shape} strided a")


def test_expanded_operands():
    row = make_values((1, 50), 7, "normal", 0.0).expand(40, 50)  # stride 0 between rows
    column = make_values((50, 1), 8, "normal", 0.0).expand(50, 70)  # stride 0 between columns
    assert_same_bits(mm(row, column), reference_mm(row.contiguous(), column.contiguous()), "expanded")
    big = make_values((1, 300), 9, "normal", 0.0).expand(200, 300)
    assert_same_bits(mm(big, big.t()), reference_mm(big.contiguous(), big.t().contiguous()), "expanded, packed")


def test_bmm_large_equals_reference_at_any_thread_count(threads):
    a = make_values((12, 33, 64), 5, "normal", 0.01)
    b = make_values((12, 64, 70), 6, "normal", 0.01)
    expected = reference_bmm(a, b)
    assert_same_bits(bmm(a, b), expected, f"bmm, {threads} threads")
    assert_same_bits(bmm(a, b.transpose(1, 2).contiguous().transpose(1, 2)), expected, "bmm, transposed b")
    assert_same_bits(bmm(a.transpose(1, 2).contiguous().transpose(1, 2), b), expected, "bmm, transposed a")


@pytest.mark.parametrize("shape", [(37, 29, 53), (130, 300, 100), (256, 256, 64)])
def test_rows_computed_alone_equal_rows_computed_in_a_batch(shape):
    m, k, n = shape
    a = make_values((m, k), 11, "wide", 0.0)
    b = make_values((k, n), 12, "wide", 0.0)
    whole = mm(a, b)
    for i in sorted({0, 1, m // 2, m - 1}):
        assert_same_bits(mm(a[i : i + 1], b), whole[i : i + 1], f"row {i} alone")
    assert_same_bits(mm(a[3 : m - 1], b), whole[3 : m - 1], "a sub-batch of rows")
    assert_same_bits(mm(a, b[:, 1 : n - 1]), whole[:, 1 : n - 1], "a subset of columns")
    stacked = bmm(torch.stack([a, a.flip(0)]), torch.stack([b, b]))
    assert_same_bits(stacked[0], whole, "the same product inside a bmm batch")
    assert_same_bits(stacked[1], whole.flip(0), "reversed rows inside a bmm batch")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda i: i.name)
def test_each_step_is_one_fused_multiply_add(impl: Implementation):
    # acc = fma(a0, b0, 0) = -(1 + 2**-11); then (1 + 2**-12)**2 = 1 + 2**-11 + 2**-24 exactly, plus acc:
    # a fused step keeps the 2**-24 that a separately rounded product (a tie, to even) would drop
    a = torch.tensor([[-(1 + 2.0**-11), 1 + 2.0**-12]])
    b = torch.tensor([[1.0], [1 + 2.0**-12]])
    result = impl("mm", a, b)
    assert result.item() == 2.0**-24, f"{impl.name} mm rounded the product on its own: {result.item()!r}"
    wide = impl("mm", a.repeat(13, 1), b.repeat(1, 70))  # the same through full tiles
    assert bool((wide == 2.0**-24).all())


def _round_to_float32(exact: Fraction) -> float:
    """The float32 nearest to a rational (ties to even), by exact comparison of the candidates."""
    guess = np.float32(float(exact))
    candidates = [np.nextafter(guess, np.float32(-np.inf)), guess, np.nextafter(guess, np.float32(np.inf))]
    finite = [c for c in candidates if np.isfinite(c)]
    return float(min(finite, key=lambda c: (abs(Fraction(float(c)) - exact), int(np.array(c).view(np.uint32)) & 1)))


def _exact_fma(x: float, y: float, z: float) -> float:
    return _round_to_float32(Fraction(x) * Fraction(y) + Fraction(z))


def test_the_reference_fma_is_exact_at_float32_midpoints() -> None:
    # 3 * (1 + k 2**-23) for odd k lies exactly halfway between two float32 values; a tiny z decides
    # the side, which a binary64 sum alone cannot see
    xs, ys, zs = [], [], []
    for k in range(1, 400, 2):
        for z in (2.0**-70, -(2.0**-70), 0.0, 2.0**-40, -(2.0**-40)):
            for sign in (1.0, -1.0):
                xs.append(3.0 * sign)
                ys.append(1 + k * 2.0**-23)
                zs.append(z)
    x, y, z = (torch.tensor(v, dtype=torch.float32) for v in (xs, ys, zs))
    got = compute_fma32(x, y, z).tolist()
    assert got == [_exact_fma(*t) for t in zip(x.tolist(), y.tolist(), z.tolist(), strict=True)]
    # and the hardware's fused multiply-add in the kernel agrees, through mm
    for i in range(0, len(xs), 97):
        pair = mm(torch.tensor([[zs[i], xs[i]]]), torch.tensor([[1.0], [ys[i]]]))
        assert pair.item() == _exact_fma(xs[i], ys[i], zs[i])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(*[st.floats(width=32, min_value=-(2.0**60), max_value=2.0**60, allow_subnormal=True)] * 3),
                min_size=1, max_size=16))
def test_the_reference_fma_is_exact(triples: list[tuple[float, float, float]]) -> None:
    x, y, z = (torch.tensor(column, dtype=torch.float32) for column in zip(*triples, strict=True))
    assert compute_fma32(x, y, z).tolist() == [_exact_fma(*t) for t in triples]


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda i: i.name)
def test_sequential_order_in_k(impl: Implementation):
    # left to right: 1e8, 1e8 + 1 → 1e8 (ulp 8), - 1e8 → 0, + 1 → 1; a pairwise tree would give
    # (1e8 + 1) + (-1e8 + 1) → 1e8 - 1e8 = 0
    a = torch.tensor([[1e8, 1.0, -1e8, 1.0]])
    b = torch.ones(4, 1)
    assert impl("mm", a, b).item() == 1.0
    assert impl("mm", a.repeat(20, 1), b.repeat(1, 80)).eq(1.0).all()  # the same through full tiles


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda i: i.name)
def test_special_values_and_canonical_nan(impl: Implementation):
    inf, nan = float("inf"), float("nan")
    payload = torch.tensor([0x7FC12345], dtype=torch.int32).view(torch.float32).item()
    a = torch.tensor([[inf, 1.0], [0.0, 1.0], [payload, 0.0], [-0.0, -0.0], [2.0**-140, 0.0]])
    b = torch.tensor([[-inf, 1.0], [inf, -0.0]])
    result = bits(impl("mm", a, b))
    nan_bits = 0x7FC00000
    assert result[0, 0].item() == nan_bits  # inf * -inf + 1 * inf = -inf + inf
    assert result[1, 0].item() == nan_bits  # 0 * -inf
    assert result[2, 0].item() == nan_bits and result[2, 1].item() == nan_bits  # NaN payload → canonical
    assert result[3, 1].item() == 0  # +0.0 + (-0 * 1) + (-0 * -0) = +0.0 (acc starts at +0.0)
    assert f32(int(result[4, 1].item()) & 0xFFFFFFFF) == 2.0**-140  # a subnormal survives
    assert impl("mm", torch.tensor([[2.0**-140]]), torch.tensor([[2.0**-5]])).item() == 2.0**-145
    assert nan != nan


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda i: i.name)
def test_empty_dimensions(impl: Implementation):
    assert_same_bits(impl("mm", torch.empty(3, 0), torch.empty(0, 4)), torch.zeros(3, 4), "K = 0 gives +0.0")
    assert impl("mm", torch.empty(0, 5), torch.ones(5, 4)).shape == (0, 4)
    assert impl("bmm", torch.empty(2, 3, 0), torch.empty(2, 0, 4)).shape == (2, 3, 4)
    assert impl("bmm", torch.empty(0, 3, 2), torch.empty(0, 2, 4)).shape == (0, 3, 4)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda i: i.name)
def test_bad_operands_raise_operand_error(impl: Implementation):
    good = torch.ones(2, 3)
    with pytest.raises(OperandError, match="inner dimensions"):
        impl("mm", good, torch.ones(2, 3))
    with pytest.raises(OperandError, match="float32"):
        impl("mm", good.half(), torch.ones(3, 2).half())  # float64 is defined by the reference
    with pytest.raises(OperandError, match="rank"):
        impl("mm", torch.ones(2, 3, 1), torch.ones(3, 2))
    with pytest.raises(OperandError, match="batched shapes"):
        impl("bmm", torch.ones(2, 2, 3), torch.ones(3, 3, 2))
    with pytest.raises(OperandError):
        impl("mm", [[1.0]], good)  # type: ignore[arg-type]


def test_fast_kernels_refuse_non_cpu_tensors():
    meta = torch.ones(2, 2, device="meta")
    with pytest.raises(OperandError, match="CPU"):
        FAST("mm", meta, meta)
    assert REFERENCE("mm", meta, meta).device.type == "meta"  # the reference runs on any device
