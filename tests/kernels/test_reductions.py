"""rowsum, rowmax, rowargmax: the defined orders and rules, fast == reference bit for bit."""

from __future__ import annotations

import numba
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.semantics import OperandError, reference_rowargmax, reference_rowmax, reference_rowsum
from prover.kernels import rowargmax, rowmax, rowsum
from tests.kernels.support import (
    IMPLEMENTATIONS,
    MAX_THREADS,
    Implementation,
    assert_same_bits,
    bits,
    layouts,
    make_values,
    modes,
    relayout,
    seeds,
    special_rates,
)

# row lengths around every path of the fast rowsum: one register (n <= 16), registers only
# (n <= 512), and the multi-pass buffer (longer), each at and next to powers of two
ROW_LENGTHS = [2, 3, 15, 16, 17, 31, 33, 64, 65, 255, 257, 511, 512, 513, 1000, 1024, 1025, 2049, 4097, 9000]


def halving_tree_sum(row: np.ndarray) -> np.float32:
    """An independent scalar port of rowsum's definition (numpy float32 scalars, one op at a time)."""
    n = len(row)
    if n == 0:
        return np.float32(0.0)
    if n == 1:
        return np.float32(row[0])
    size = 1
    while size < n:
        size *= 2
    y = [np.float32(v) for v in row] + [np.float32(0.0)] * (size - n)
    while size > 1:
        half = size // 2
        y = [np.float32(y[i] + y[i + half]) for i in range(half)]
        size = half
    return y[0]


@settings(max_examples=50, deadline=None)
@given(rows=st.integers(0, 12), n=st.integers(0, 700), seed=seeds, mode=modes, special_rate=special_rates,
       layout=layouts)
def test_row_reductions_fast_equal_reference(rows, n, seed, mode, special_rate, layout):
    x = make_values((rows, n), seed, mode, special_rate)
    view = relayout(x, layout)
    assert_same_bits(rowsum(view), reference_rowsum(x), f"rowsum {rows}x{n}")
    if n > 0:
        assert_same_bits(rowmax(view), reference_rowmax(x), f"rowmax {rows}x{n}")
        assert_same_bits(rowargmax(view), reference_rowargmax(x), f"rowargmax {rows}x{n}")


@pytest.mark.parametrize("n", ROW_LENGTHS)
def test_rowsum_every_path_equals_reference(n: int):
    x = make_values((3, n), n, "wide", 0.01)
    x[2] = make_values((n,), n + 1, "normal", 0.0) * 1e4  # cancellation makes order visible
    assert_same_bits(rowsum(x), reference_rowsum(x), f"rowsum n={n}")
    assert_same_bits(rowmax(x), reference_rowmax(x), f"rowmax n={n}")
    assert_same_bits(rowargmax(x), reference_rowargmax(x), f"rowargmax n={n}")


@pytest.mark.parametrize("shape", [(1, 1 << 17), (3, 70001), (300, 700), (2048, 65)])
def test_parallel_paths_at_any_thread_count(shape: tuple[int, int]):
    x = make_values(shape, 3, "normal", 0.001) * 1e3
    expected = (reference_rowsum(x), reference_rowmax(x), reference_rowargmax(x))
    before = numba.get_num_threads()
    try:
        for threads in (1, min(2, MAX_THREADS)):
            numba.set_num_threads(threads)
            for fast, want in zip((rowsum, rowmax, rowargmax), expected, strict=True):
                assert_same_bits(fast(x), want, f"{fast.__name__} {shape} with {threads} threads")
    finally:
        numba.set_num_threads(before)


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda i: i.name)
def test_rowsum_is_the_halving_tree(impl: Implementation):
    for n in (0, 1, 2, 3, 5, 8, 13, 40, 100):
        x = make_values((4, n), n, "wide", 0.05)
        got = impl("rowsum", x)
        want = torch.tensor([halving_tree_sum(row) for row in x.numpy()], dtype=torch.float32)
        want = torch.where(want != want, torch.tensor(float("nan")), want)  # canonical NaN
        assert_same_bits(got, want, f"{impl.name} rowsum n={n}")


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda i: i.name)
def test_rowsum_edge_rules(impl: Implementation):
    assert_same_bits(impl("rowsum", torch.empty(3, 0)), torch.zeros(3), "n = 0 gives +0.0")
    single = torch.tensor([[-0.0], [2.0**-149], [float("inf")]])
    assert_same_bits(impl("rowsum", single), single[:, 0], "n = 1 is the element itself, even -0.0")
    # padding is +0.0: three -0.0 sum to +0.0, two to -0.0
    assert bits(impl("rowsum", torch.full((1, 3), -0.0))).item() == 0
    assert bits(impl("rowsum", torch.full((1, 2), -0.0))).item() == bits(torch.tensor(-0.0)).item()
    assert bits(impl("rowsum", torch.tensor([[float("inf"), -float("inf")]]))).item() == 0x7FC00000


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda i: i.name)
def test_rowmax_rules(impl: Implementation):
    x = torch.tensor([
        [-0.0, 0.0, -0.0],  # +0.0 wins over -0.0 …
        [-0.0, -0.0, -1.0],  # … but -0.0 stays when no +0.0 is there
        [1.0, float("nan"), 5.0],  # NaN propagates, canonical
        [-float("inf"), -float("inf"), -float("inf")],
        [2.0**-149, -(2.0**-149), 0.0],
    ])
    got = bits(impl("rowmax", x))
    assert got.tolist() == [0, bits(torch.tensor(-0.0)).item(), 0x7FC00000,
                            bits(torch.tensor(-float("inf"))).item(), 1]
    args = impl("rowargmax", torch.cat([x, torch.tensor([[3.0, 7.0, 7.0]])]))
    assert args.dtype == torch.int64
    assert args.tolist() == [0, 0, 1, 0, 0, 1]  # first zero of either sign; first NaN; first maximum


@pytest.mark.parametrize("impl", IMPLEMENTATIONS, ids=lambda i: i.name)
def test_row_reductions_reject_bad_operands(impl: Implementation):
    with pytest.raises(OperandError, match="empty"):
        impl("rowmax", torch.empty(2, 0))
    with pytest.raises(OperandError, match="empty"):
        impl("rowargmax", torch.empty(2, 0))
    with pytest.raises(OperandError, match="rank"):
        impl("rowsum", torch.ones(3))
    with pytest.raises(OperandError, match="float32"):
        impl("rowsum", torch.ones(2, 2, dtype=torch.float16))
