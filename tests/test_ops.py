"""Operator semantics: native-exact claims, fast == reference bit for bit, and invariance to batch
size, memory layout and thread count."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.encoding import compute_digest
from protocol.ops import execute
from protocol.ops.canonical import canonicalize_call
from protocol.ops.prims import REFERENCE
from prover.fast import FAST
from prover.run import load_run, regenerate_trace

SPECIALS = [0.0, -0.0, 1.0, -1.0, float("inf"), float("-inf"), float("nan"), 1e-45, -1e-45, 1.17e-38, 3.0e38, -3.0e38, 1e-7]


def floats32(specials: bool = True) -> st.SearchStrategy[float]:
    finite = st.floats(width=32, allow_nan=False, allow_infinity=False, min_value=-1e4, max_value=1e4)
    return st.one_of(finite, st.sampled_from(SPECIALS)) if specials else finite


@st.composite
def matrices(draw: st.DrawFn, rows: int | None = None, cols: int | None = None, specials: bool = True) -> torch.Tensor:
    r = rows if rows is not None else draw(st.integers(1, 9))
    c = cols if cols is not None else draw(st.integers(1, 40))
    values = draw(st.lists(floats32(specials), min_size=r * c, max_size=r * c))
    return torch.tensor(values, dtype=torch.float32).reshape(r, c)


def same_bits(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.dtype == b.dtype and a.shape == b.shape and compute_digest(a) == compute_digest(b)


def run_op(func: Any, *args: Any, prims: Any = REFERENCE, **kwargs: Any) -> tuple[torch.Tensor | None, ...]:
    call = canonicalize_call(func, args, kwargs)
    copies = tuple(t.clone() for t in call.inputs)
    return execute(call.op, call.args, copies, prims)


# --- operators whose native kernels are the definition ------------------------------------------


@given(matrices(rows=3, cols=17), matrices(rows=3, cols=17), floats32())
def test_native_tensor_arithmetic_is_correctly_rounded_like_numpy(a: torch.Tensor, b: torch.Tensor, s: float) -> None:
    aa, bb = a.numpy(), b.numpy()
    with np.errstate(all="ignore"):
        expected = {
            "add": aa + bb, "sub": aa - bb, "mul": aa * bb, "div": aa / bb,
            "mul_scalar": aa * np.float32(s), "div_scalar": aa / np.float32(s), "add_scalar": aa + np.float32(s),
        }
    got = {
        "add": run_op(torch.ops.aten.add.Tensor, a, b)[0],
        "sub": run_op(torch.ops.aten.sub.Tensor, a, b)[0],
        "mul": run_op(torch.ops.aten.mul.Tensor, a, b)[0],
        "div": run_op(torch.ops.aten.div.Tensor, a, b)[0],
        "mul_scalar": run_op(torch.ops.aten.mul.Scalar, a, s)[0],
        "div_scalar": run_op(torch.ops.aten.div.Scalar, a, s)[0],
        "add_scalar": run_op(torch.ops.aten.add.Scalar, a, s)[0],
    }
    for name, value in got.items():
        assert value is not None
        v, e = value.numpy(), expected[name].astype(np.float32)
        nan = np.isnan(e)
        assert np.array_equal(np.isnan(v), nan), name
        assert np.array_equal(v[~nan].view(np.int32), e[~nan].view(np.int32)), name


def test_alpha_and_fused_forms_round_each_operation() -> None:
    x, y, z = (torch.randn(1000, generator=torch.Generator().manual_seed(i)) for i in range(3))
    alpha = -0.1
    (added,) = run_op(torch.ops.aten.add.Tensor, x, y, alpha=alpha)
    assert same_bits(added, x + y * torch.tensor(alpha, dtype=torch.float32))
    (lerped,) = run_op(torch.ops.aten.lerp.Scalar, x, y, 0.9)
    assert same_bits(lerped, x + torch.tensor(0.9, dtype=torch.float32) * (y - x))
    (cdiv,) = run_op(torch.ops.aten.addcdiv.default, x, y, z.abs() + 1, value=0.3)
    assert same_bits(cdiv, x + (y / (z.abs() + 1)) * torch.tensor(0.3, dtype=torch.float32))


# --- fast primitives equal the references ---------------------------------------------------------


def _both(func: Any, *args: Any, **kwargs: Any) -> None:
    reference = run_op(func, *args, prims=REFERENCE, **kwargs)
    fast = run_op(func, *args, prims=FAST, **kwargs)
    assert len(reference) == len(fast)
    for r, f in zip(reference, fast, strict=True):
        assert same_bits(r, f), func


@given(matrices(), st.data())
@settings(max_examples=25)
def test_composites_fast_equals_reference(x: torch.Tensor, data: st.DataObject) -> None:
    rows, cols = x.shape
    grad = data.draw(matrices(rows=rows, cols=cols, specials=False))
    _both(torch.ops.aten._softmax.default, x, 1, False)
    _both(torch.ops.aten._log_softmax.default, x, 1, False)
    _both(torch.ops.aten._softmax.default, x, 0, False)
    y = run_op(torch.ops.aten._softmax.default, x, 1, False)[0]
    _both(torch.ops.aten._softmax_backward_data.default, grad, y, 1, torch.float32)
    _both(torch.ops.aten._log_softmax_backward_data.default, grad, y, 1, torch.float32)
    _both(torch.ops.aten.sum.dim_IntList, x, [0])
    _both(torch.ops.aten.sum.dim_IntList, x, [1], True)
    _both(torch.ops.aten.sum.default, x)
    _both(torch.ops.aten.gelu.default, x)
    _both(torch.ops.aten.gelu.default, x, approximate="tanh")
    _both(torch.ops.aten.gelu_backward.default, grad, x)
    _both(torch.ops.aten.gelu_backward.default, grad, x, approximate="tanh")
    _both(torch.ops.aten.sigmoid.default, x)
    _both(torch.ops.aten.silu.default, x)
    _both(torch.ops.aten.maximum.default, x, grad)
    _both(torch.ops.aten.silu_backward.default, grad, x)
    _both(torch.ops.aten.sigmoid_backward.default, grad, x)
    _both(torch.ops.aten.sqrt.default, x)
    _both(torch.ops.aten.exp.default, x)
    _both(torch.ops.aten.log.default, x)
    _both(torch.ops.aten.tanh.default, x)
    weight, bias = grad[0].clone(), grad[-1].clone()
    out, mean, rstd = run_op(torch.ops.aten.native_layer_norm.default, x, [cols], weight, bias, 1e-5)
    _both(torch.ops.aten.native_layer_norm.default, x, [cols], weight, bias, 1e-5)
    _both(torch.ops.aten.native_layer_norm_backward.default, grad, x, [cols], mean, rstd, weight, bias, [True, True, True])


@given(st.integers(1, 12), st.integers(1, 70), st.integers(1, 33), st.data())
@settings(max_examples=25)
def test_matrix_products_fast_equal_reference_and_are_batch_invariant(m: int, k: int, n: int, data: st.DataObject) -> None:
    a = data.draw(matrices(rows=m, cols=k))
    b = data.draw(matrices(rows=k, cols=n))
    bias = data.draw(matrices(rows=1, cols=n)).reshape(n)
    _both(torch.ops.aten.mm.default, a, b)
    _both(torch.ops.aten.addmm.default, bias, a, b)
    _both(torch.ops.aten.bmm.default, a.unsqueeze(0).expand(2, m, k).contiguous(), b.unsqueeze(0).expand(2, k, n).contiguous())
    full = run_op(torch.ops.aten.addmm.default, bias, a, b, prims=FAST)[0]
    row = data.draw(st.integers(0, m - 1))
    alone = run_op(torch.ops.aten.addmm.default, bias, a[row : row + 1].clone(), b, prims=FAST)[0]
    assert full is not None and alone is not None
    assert same_bits(full[row : row + 1].contiguous(), alone)
    # the same values in another memory layout give the same bits
    strided = run_op(torch.ops.aten.mm.default, a.t().contiguous().t(), b.t().contiguous().t(), prims=FAST)[0]
    assert same_bits(strided, run_op(torch.ops.aten.mm.default, a, b, prims=FAST)[0])


def test_results_do_not_depend_on_thread_count() -> None:
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, 300, generator=gen), torch.randn(300, 96, generator=gen)
    x = torch.randn(40, 50_000, generator=gen)
    previous = torch.get_num_threads()
    results = []
    try:
        for threads in (1, 2):
            torch.set_num_threads(threads)
            results.append((run_op(torch.ops.aten.mm.default, a, b, prims=FAST)[0], run_op(torch.ops.aten.sum.dim_IntList, x, [1], prims=FAST)[0]))
    finally:
        torch.set_num_threads(previous)
    assert all(same_bits(p, q) for p, q in zip(results[0], results[1], strict=True))


@pytest.mark.parametrize("deferred_bytes", [None, 0])
@pytest.mark.parametrize("fixture", ["mlp_run", "transformer_run"])
def test_every_node_of_a_real_step_re_executes_from_the_reference(
    fixture: str, deferred_bytes: int | None, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the referee does, for every node: reference re-execution reproduces the prover's digests,
    with inputs rebuilt from their hashed ancestors through derived (view) operators. With
    deferred_bytes 0, every output is hashed at the step's end, after the in-place writes that follow
    it unless the recorder hashes it first: the same trace."""
    import protocol.recording
    from protocol.trace import is_derived
    from tests.referee_replay import assert_nodes_re_execute

    run = load_run(request.getfixturevalue(fixture))
    if deferred_bytes is not None:
        monkeypatch.setattr(protocol.recording, "DEFERRED_HASH_BYTES", 1 << 62)
        at_once = regenerate_trace(run, 1)
        monkeypatch.setattr(protocol.recording, "DEFERRED_HASH_BYTES", deferred_bytes)
        monkeypatch.setattr(protocol.recording, "POOL_BYTES", 0)  # the hashing threads, whatever the size
    tensors: dict[bytes, torch.Tensor] = {}
    trace = regenerate_trace(run, 1, tensors=tensors)
    if deferred_bytes is not None:
        assert trace.nodes == at_once.nodes
    names = sorted(trace.state_before, key=str.encode)
    assert_nodes_re_execute(trace.nodes, [trace.state_before[name] for name in names], tensors)
    derived = sum(1 for node in trace.nodes if is_derived(node.structure))
    assert derived >= len(trace.nodes) // 5  # views, transposes and detaches: a quarter of the nodes or more


@given(
    p=st.floats(0.0, 1.0, width=32) | st.sampled_from([0.0, 0.1, 0.5, 0.9, 1.0]),
    seed=st.integers(0, 2**31 - 1),
    step=st.integers(0, 2**20),
    offset=st.integers(0, 2**33),
    shape=st.lists(st.integers(0, 9), min_size=1, max_size=3),
)
@settings(max_examples=30)
def test_dropout_masks_fast_equal_reference(p: float, seed: int, step: int, offset: int, shape: list[int]) -> None:
    args = (p, seed, step, offset, tuple(shape), torch.float32, torch.device("cpu"))
    assert same_bits(FAST.bernoulli(*args), REFERENCE.bernoulli(*args))


def test_dropout_masks_keep_the_requested_fraction() -> None:
    mask = FAST.bernoulli(0.9, 1, 2, 3, (1 << 20,), torch.float32, torch.device("cpu"))
    assert abs(float(mask.mean()) - 0.9) < 0.003
    assert not same_bits(mask, FAST.bernoulli(0.9, 1, 3, 3, (1 << 20,), torch.float32, torch.device("cpu")))


@given(st.integers(1, 6), st.integers(1, 6), st.integers(-7, 7), st.integers(-7, 7), st.integers(1, 3))
def test_slice_and_select_backward_place_the_gradient_in_zeros(rows: int, cols: int, start: int, end: int, step: int) -> None:
    """Their native kernels are data movement (zeros, then a copy): exact, as the NATIVE claim says."""
    grad_full = torch.randn(rows, cols, generator=torch.Generator().manual_seed(rows * 7 + cols))
    sliced = grad_full[:, start:end:step]
    (placed,) = run_op(torch.ops.aten.slice_backward.default, sliced, [rows, cols], 1, start, end, step)
    expected = torch.zeros(rows, cols)
    expected[:, start:end:step] = sliced
    assert same_bits(placed, expected)
    index = start % cols
    (selected,) = run_op(torch.ops.aten.select_backward.default, grad_full[:, index], [rows, cols], 1, index)
    expected = torch.zeros(rows, cols)
    expected[:, index] = grad_full[:, index]
    assert same_bits(selected, expected)


def test_fused_tanh_gelu_equals_its_operation_sequence_on_every_kind_of_float32() -> None:
    """The prover's fused tanh-form GELU and SiLU and their backwards give the bits of the reference's sequence of
    separately rounded operations (protocol.ops.prims.compute_gelu_tanh), on random bit patterns
    (subnormals, infinities, NaNs, huge values where x*x*x overflows) and on the range where tanh
    switches between its polynomial and its exponential form."""
    generator = np.random.default_rng(7)
    bits = generator.integers(0, 2**32, 200_000, dtype=np.uint64).astype(np.uint32)
    patterns = torch.from_numpy(bits.view(np.float32).copy())
    switch = torch.linspace(-12.0, 12.0, 100_003, dtype=torch.float32)
    specials = torch.tensor([0.0, -0.0, 1e-45, -1e-45, 1e-38, 5e12, -5e12, 3.4e38, float("inf"), float("-inf"), float("nan")])
    for x in (patterns, switch, specials):
        grad = torch.from_numpy(generator.standard_normal(x.numel()).astype(np.float32))
        assert same_bits(FAST.gelu_tanh(x), REFERENCE.gelu_tanh(x))
        assert same_bits(FAST.gelu_tanh_backward(grad, x), REFERENCE.gelu_tanh_backward(grad, x))
        assert same_bits(FAST.silu(x), REFERENCE.silu(x))  # SiLU too, fused the same way
        assert same_bits(FAST.silu_backward(grad, x), REFERENCE.silu_backward(grad, x))
        other = x.flip(0)  # and max2, with the zeros of both signs, NaNs and infinities among the pairs
        for first, second in ((x, other), (other, x), (x, x), (x, -x)):
            fast_max, reference_max = FAST.maximum(first, second), REFERENCE.maximum(first, second)
            assert torch.equal(fast_max.view(torch.int32), reference_max.view(torch.int32))


@pytest.mark.parametrize("rows", [0, 1, 2, 3, 5, 33, 1000, 2049])
def test_column_sums_are_the_rows_halving_tree_down_each_column(rows: int) -> None:
    """The prover's column sum gives, bit for bit, `rowsum` of the transpose (the definition), on random
    bit patterns (NaNs, infinities, subnormals) and on values with negative zeros; so does a sum over
    leading dims, which reads x as [reduced, kept] instead of moving the reduced dims last."""
    generator = np.random.default_rng(rows)
    for n in (1, 16, 17, 70):
        bits = generator.integers(0, 2**32, rows * n, dtype=np.uint64).astype(np.uint32)
        patterns = torch.from_numpy(bits.view(np.float32).reshape(rows, n).copy())
        values = torch.from_numpy(generator.standard_normal((rows, n)).astype(np.float32))
        values[torch.from_numpy(generator.random((rows, n)) < 0.1)] = -0.0
        for x in (patterns, values):
            expected = REFERENCE.rowsum(x.t().contiguous())
            assert same_bits(FAST.colsum(x), expected) and same_bits(REFERENCE.colsum(x), expected)
    x = torch.from_numpy(generator.standard_normal((max(rows, 1), 3, 5)).astype(np.float32))
    by_rows = REFERENCE.rowsum(x.permute(2, 0, 1).reshape(5, -1))  # the reduced elements in row-major order
    for prims in (REFERENCE, FAST):
        (total,) = run_op(torch.ops.aten.sum.dim_IntList, x, [0, 1], prims=prims)
        (kept,) = run_op(torch.ops.aten.sum.dim_IntList, x, [1, 0], True, prims=prims)
        assert same_bits(total, by_rows) and same_bits(kept, by_rows.reshape(1, 1, 5))


@pytest.mark.parametrize("shape", [(1, 1), (3, 1), (5, 2), (7, 3), (64, 256), (33, 257), (4, 1000)])
def test_fused_layer_norm_backward_equals_its_definition(shape: tuple[int, int]) -> None:
    """The prover's fused layer-norm backward (one pass per row, the halving tree inside) gives the bits of
    the definition's separately rounded operations and `rowsum`s, with and without a weight, on normal
    gradients and on random bit patterns (NaNs, infinities, subnormals)."""
    rows, n = shape
    generator = np.random.default_rng(rows * n)
    x = torch.from_numpy(generator.standard_normal((rows, n)).astype(np.float32) * 3)
    mean = x.mean(1, keepdim=True)
    rstd = torch.rsqrt(x.var(1, keepdim=True, unbiased=False) + 1e-5)
    weight = torch.from_numpy(generator.standard_normal(n).astype(np.float32))
    bits = generator.integers(0, 2**32, rows * n, dtype=np.uint64).astype(np.uint32)
    for grads in (torch.from_numpy(generator.standard_normal((rows, n)).astype(np.float32)),
                  torch.from_numpy(bits.view(np.float32).reshape(rows, n).copy())):
        for w in (weight, None):
            fast = FAST.layer_norm_backward(grads, x, mean, rstd, w)
            reference = REFERENCE.layer_norm_backward(grads, x, mean, rstd, w)
            assert all(same_bits(f, r) for f, r in zip(fast, reference, strict=True)), (shape, w is None)


@given(
    batch=st.integers(1, 9),
    channels=st.integers(1, 5),
    length=st.sampled_from([1, 2, 3, 16, 17, 64, 130]),
    patterns=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
)
@settings(max_examples=40, deadline=None)
def test_fused_batch_norm_channel_sums_equal_their_definition(batch: int, channels: int, length: int, patterns: bool, seed: int) -> None:
    """The prover's batch-norm kernels (each channel's N·L elements gathered in (n, l) order, the halving
    tree inside) give the bits of the definition's `rowsum`s over channel rows, for the moments and the
    backward sums, on normal values and on random bit patterns (NaNs, infinities, subnormals)."""
    generator = np.random.default_rng(seed)
    shape = (batch, channels, length)
    if patterns:
        bits = generator.integers(0, 2**32, batch * channels * length, dtype=np.uint64).astype(np.uint32)
        x = torch.from_numpy(bits.view(np.float32).reshape(shape).copy())
    else:
        x = torch.from_numpy(generator.standard_normal(shape).astype(np.float32) * 3 + 1)
    grads = torch.from_numpy(generator.standard_normal(shape).astype(np.float32))
    fast_moments, reference_moments = FAST.channel_moments(x), REFERENCE.channel_moments(x)
    assert all(same_bits(f, r) for f, r in zip(fast_moments, reference_moments, strict=True))
    mean, squares = reference_moments
    invstd = torch.rsqrt(squares / (batch * length) + 1e-5)
    fast_sums = FAST.channel_gradient_sums(grads, x.transpose(1, 2).contiguous().transpose(1, 2), mean, invstd)
    reference_sums = REFERENCE.channel_gradient_sums(grads, x, mean, invstd)
    assert all(same_bits(f, r) for f, r in zip(fast_sums, reference_sums, strict=True))


@pytest.mark.parametrize("shape", [(1, 1), (3, 2), (9, 5), (128, 128), (7, 300), (2, 1000)])
def test_fused_softmax_rows_equal_their_definition(shape: tuple[int, int]) -> None:
    """The prover's fused softmax (rowmax, exp(fl(x - m)), the halving tree, fl(e / s) in one pass per row)
    gives the definition's bits for the probabilities, maxima and sums, on normal scores, on random bit
    patterns (NaNs, infinities, subnormals) and on rows that are all -inf (a fully masked row)."""
    rows, n = shape
    generator = np.random.default_rng(rows * 31 + n)
    bits = generator.integers(0, 2**32, rows * n, dtype=np.uint64).astype(np.uint32)
    normal = torch.from_numpy(generator.standard_normal((rows, n)).astype(np.float32) * 8)
    masked = normal.clone()
    masked[0] = float("-inf")
    masked[-1, : n // 2] = float("-inf")  # a causal row
    for x in (normal, masked, torch.from_numpy(bits.view(np.float32).reshape(rows, n).copy())):
        fast, reference = FAST.softmax_rows(x), REFERENCE.softmax_rows(x)
        assert all(same_bits(f, r) for f, r in zip(fast, reference, strict=True))


@pytest.mark.parametrize("shape", [(1, 1), (3, 2), (9, 5), (128, 128), (7, 300)])
def test_fused_softmax_backward_equals_its_definition(shape: tuple[int, int]) -> None:
    """The prover's fused softmax backward, fl(y * fl(g - rowsum(fl(g * y)))) in one pass per row, gives the
    definition's bits on softmax outputs with normal gradients and with random bit patterns."""
    rows, n = shape
    generator = np.random.default_rng(rows + 7 * n)
    outputs = torch.softmax(torch.from_numpy(generator.standard_normal((rows, n)).astype(np.float32)), dim=1)
    bits = generator.integers(0, 2**32, rows * n, dtype=np.uint64).astype(np.uint32)
    for grads in (torch.from_numpy(generator.standard_normal((rows, n)).astype(np.float32)),
                  torch.from_numpy(bits.view(np.float32).reshape(rows, n).copy())):
        assert same_bits(FAST.softmax_backward(grads, outputs), REFERENCE.softmax_backward(grads, outputs))
