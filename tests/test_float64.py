"""float64: the elementwise definitions of `protocol.semantics.float64` (coefficients, accuracy,
special values, correct rounding of sqrt, fixed vectors), the structural primitives in float64, the
operator table's dtype rule, and a float64 task training to native float64's numbers."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import mpmath
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import semantics
from protocol.ops import UnsupportedOperator, execute
from protocol.ops.prims import REFERENCE
from protocol.recording import ReproducibleMode, RngContext
from protocol.semantics import float64 as f64
from protocol.session import Session, make_job
from prover.fast import FAST
from prover.task import load_task
from tests.make_float64_vectors import ELEMENTWISE, build_cases, decode

REPO = Path(__file__).resolve().parents[1]
VECTORS = json.loads((REPO / "tests" / "vectors" / "float64.json").read_text())["cases"]
ACCURACY = {"exp": 1.0, "log": 1.0, "tanh": 1.5, "erf": 1.0, "sin": 1.5, "cos": 1.5, "sqrt": 0.5, "rsqrt": 1.5}
"""The documented bound (ulps) of each definition, asserted below."""
GROUND_TRUTH = {
    "exp": mpmath.exp, "log": mpmath.log, "tanh": mpmath.tanh, "erf": mpmath.erf, "sin": mpmath.sin,
    "cos": mpmath.cos, "sqrt": mpmath.sqrt, "rsqrt": lambda v: 1 / mpmath.sqrt(v),
}
SAMPLE_RANGES = {
    "exp": (1e-18, 709.0), "log": (1e-310, 1e308), "tanh": (1e-18, 25.0), "erf": (1e-18, 6.5), "sin": (1e-18, 1e6),
    "cos": (1e-18, 1e6), "sqrt": (1e-320, 1e308), "rsqrt": (1e-300, 1e300),
}
POSITIVE_ONLY = {"log", "sqrt", "rsqrt"}


def _bits(v: float) -> int:
    return int(struct.unpack("<q", struct.pack("<d", v))[0])


def _ulp_error(got: float, exact: mpmath.mpf) -> float:
    if exact == 0:
        return 0.0 if got == 0 else math.inf
    exponent = max(int(mpmath.floor(mpmath.log(abs(exact), 2))), -1022)
    return float(abs(mpmath.mpf(got) - exact) / mpmath.mpf(2) ** (exponent - 52))


def _samples(name: str, count: int, seed: int) -> torch.Tensor:
    low, high = SAMPLE_RANGES[name]
    generator = torch.Generator().manual_seed(seed)
    u = torch.rand(count, dtype=torch.float64, generator=generator)
    values = torch.exp(math.log(low) + u * (math.log(high) - math.log(low)))  # log-uniform magnitudes
    near = torch.rand(count // 4, dtype=torch.float64, generator=generator) * 4 - 2  # and the busy middle
    values = torch.cat([values, near.abs() if name in POSITIVE_ONLY else near])
    if name not in POSITIVE_ONLY:
        signs = torch.where(torch.rand(values.shape, generator=generator) < 0.5, -1.0, 1.0).to(torch.float64)
        values = values * signs
    return values


# --- the constants ----------------------------------------------------------------------------------


def test_every_coefficient_table_is_its_definition_rounded_to_float64() -> None:
    mpmath.mp.dps = 60
    nearest = lambda value: float(mpmath.mpf(value))  # noqa: E731  (mpmath rounds to nearest)
    assert tuple(1 / math.factorial(k + 2) for k in range(12)) == f64.EXP_POLY
    assert tuple(2 / (2 * k + 1) for k in range(1, 11)) == f64.LOG_POLY
    assert tuple((-1) ** (i + 1) / math.factorial(2 * i + 3) for i in range(9)) == f64.SIN_POLY
    assert tuple((-1) ** i / math.factorial(2 * i + 4) for i in range(9)) == f64.COS_POLY
    tanh = mpmath.taylor(mpmath.tanh, 0, 43)
    assert tuple(nearest(tanh[2 * k + 1]) for k in range(1, 22)) == f64.TANH_POLY
    scale = 2 / mpmath.sqrt(mpmath.pi)
    erf = [scale - 1] + [scale * (-1) ** n / (mpmath.factorial(n) * (2 * n + 1)) for n in range(1, 17)]
    assert tuple(nearest(c) for c in erf) == f64.ERF_POLY
    erfcx = lambda x: mpmath.erfc(x) * mpmath.exp(x * x)  # noqa: E731
    for center, table in zip(f64.ERFC_CENTERS, f64.ERFC_TAILS, strict=True):
        assert table == tuple(nearest(c) for c in mpmath.taylor(erfcx, mpmath.mpf(center), len(table) - 1))
    assert f64.LN2_HIGH + nearest(mpmath.log(2) - f64.LN2_HIGH) == nearest(mpmath.log(2))
    assert _bits(f64.LN2_HIGH) & ((1 << 21) - 1) == 0  # n * LN2_HIGH exact for |n| < 2**21
    assert mpmath.erf(f64.ERF_ONE) >= 1 - mpmath.mpf(2) ** -54 > mpmath.erf(math.nextafter(f64.ERF_ONE, 0))


# --- accuracy and special values ----------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(ACCURACY))
def test_every_function_is_within_its_documented_error(name: str) -> None:
    mpmath.mp.dps = 40
    x = _samples(name, 400, seed=len(name))
    got = getattr(semantics, f"reference_{name}")(x)
    worst = max(_ulp_error(y, GROUND_TRUTH[name](mpmath.mpf(v))) for v, y in zip(x.tolist(), got.tolist(), strict=True))
    assert worst <= ACCURACY[name], f"{name}: {worst:.3f} ulp"


SPECIAL = {  # (input, result) pairs: a dict would merge 0.0 and -0.0
    "exp": [(0.0, 1.0), (-0.0, 1.0), (math.inf, math.inf), (-math.inf, 0.0), (710.0, math.inf), (-746.0, 0.0)],
    "log": [(0.0, -math.inf), (-0.0, -math.inf), (1.0, 0.0), (math.inf, math.inf), (-1.0, math.nan)],
    "tanh": [(0.0, 0.0), (-0.0, -0.0), (math.inf, 1.0), (-math.inf, -1.0), (30.0, 1.0)],
    "erf": [(0.0, 0.0), (-0.0, -0.0), (math.inf, 1.0), (-math.inf, -1.0), (f64.ERF_ONE, 1.0)],
    "sqrt": [(0.0, 0.0), (-0.0, -0.0), (math.inf, math.inf), (-1.0, math.nan), (4.0, 2.0), (5e-324, 2.2227587494850775e-162)],
    "rsqrt": [(0.0, math.inf), (-0.0, -math.inf), (math.inf, 0.0), (-1.0, math.nan), (0.25, 2.0)],
    "sin": [(0.0, 0.0), (-0.0, -0.0), (math.inf, math.nan), (-math.inf, math.nan)],
    "cos": [(0.0, 1.0), (math.inf, math.nan)],
}


@pytest.mark.parametrize("name", sorted(SPECIAL))
def test_special_values_and_every_nan_is_the_canonical_one(name: str) -> None:
    inputs = [value for value, _ in SPECIAL[name]]
    x = torch.tensor(inputs + [math.nan, -math.nan], dtype=torch.float64)
    x[-1] = torch.tensor(0x7FF4000000000001, dtype=torch.int64).view(torch.float64)  # a signalling payload
    got = getattr(semantics, f"reference_{name}")(x)
    for (value, expected), result in zip(SPECIAL[name], got.tolist()[: len(inputs)], strict=True):
        assert (_bits(result) == _bits(expected)) or (math.isnan(expected) and math.isnan(result)), (name, value, result)
    nans = got.view(torch.int64)[torch.isnan(got)]
    assert nans.numel() >= 2 and bool((nans == f64.CANONICAL_NAN64_BITS).all())


# --- sqrt: correctly rounded whatever the device's sqrt gives --------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=0.0, allow_nan=False, allow_infinity=False), min_size=1, max_size=64))
def test_sqrt_is_correctly_rounded(values: list[float]) -> None:
    got = f64.reference_sqrt64(torch.tensor(values, dtype=torch.float64)).tolist()
    assert [_bits(v) for v in got] == [_bits(math.sqrt(v)) for v in values]


def test_sqrt_repairs_a_candidate_two_ulps_off_and_hard_cases_near_midpoints() -> None:
    # x = (m + 1/2)**2 rounded, for odd m: sqrt(x) sits next to a midpoint between two floats
    generator = torch.Generator().manual_seed(7)
    m = torch.randint(2**52, 2**53, (2000,), generator=generator, dtype=torch.int64)
    near = [((int(v) + 0.5) * 2.0**-52) ** 2 for v in m.tolist()]
    x = torch.tensor(near + [v * 2.0**-1070 for v in near[:200]], dtype=torch.float64)
    expected = torch.tensor([math.sqrt(v) for v in x.tolist()], dtype=torch.float64)
    assert torch.equal(f64.reference_sqrt64(x), expected)
    # the correction itself (on normal x): start two ulps away on either side, land on the right value
    normal, root = x[:2000], expected[:2000]
    for offset in (-2, -1, 1, 2):
        y = (root.view(torch.int64) + offset).view(torch.float64)
        for _ in range(2):
            y = f64._correct_square_root(normal, y)
        assert torch.equal(y, root), offset


# --- fixed vectors, primitives, the operator table ------------------------------------------------------


def test_vectors_are_what_the_generator_writes_today() -> None:
    assert build_cases() == VECTORS
    assert {case["op"] for case in VECTORS} >= set(ELEMENTWISE) | {"mm", "bmm", "rowsum", "rowmax"}


@pytest.mark.parametrize("backend", [REFERENCE, FAST], ids=["reference", "fast"])
@pytest.mark.parametrize("index", range(len(VECTORS)), ids=lambda i: f"{VECTORS[i]['op']}-{i}")
def test_both_backends_reproduce_the_vectors(backend: object, index: int) -> None:
    case = VECTORS[index]
    got = getattr(backend, case["op"])(*[decode(item) for item in case["inputs"]])
    assert torch.equal(got.view(torch.int64), decode(case["output"]).view(torch.int64)), case["op"]


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.integers(0, 9), st.integers(1, 6), st.integers(0, 2**32 - 1))
def test_float64_matmul_and_rowsum_follow_the_canonical_orders(m: int, k: int, n: int, seed: int) -> None:
    generator = torch.Generator().manual_seed(seed)
    a = torch.randn(m, k, dtype=torch.float64, generator=generator) * 1e8
    b = torch.randn(k, n, dtype=torch.float64, generator=generator)
    c = semantics.reference_mm(a, b)
    for i in range(m):
        for j in range(n):
            acc = 0.0
            for p in range(k):
                acc = acc + float(a[i, p]) * float(b[p, j])  # Python floats: binary64, one rounding each
            assert _bits(float(c[i, j])) == _bits(acc)
    rows = semantics.reference_rowsum(a)
    for i in range(m):
        level = [float(v) for v in a[i]] + [0.0] * ((1 << max(k - 1, 0).bit_length()) - k if k > 1 else 0)
        while len(level) > 1:
            half = len(level) // 2
            level = [level[p] + level[p + half] for p in range(half)]
        assert _bits(float(rows[i])) == _bits(level[0] if level else 0.0)


def test_mixed_float32_and_float64_operands_are_refused() -> None:
    a = torch.ones(2, 3, dtype=torch.float64)
    b = torch.ones(3, 2, dtype=torch.float32)
    with pytest.raises(UnsupportedOperator, match="mixed dtypes"):
        execute("aten::mm.default", {"self": {"t": 0}, "mat2": {"t": 1}}, [a, b])
    with pytest.raises(semantics.OperandError):
        semantics.reference_mm(a, b)


# --- a float64 task ---------------------------------------------------------------------------------------


def test_a_float64_task_trains_reproducibly_to_native_float64_numbers() -> None:
    task = load_task(REPO / "examples" / "tasks" / "float64.py")
    job = make_job(task, 8, 3)
    reproducible, native = Session(job, task), Session(job, task)
    for step in range(8):
        with ReproducibleMode(RngContext(job.seed, step), lambda device: FAST):
            loss = reproducible.run_step()
        assert loss.dtype == torch.float64
        assert math.isclose(loss.item(), native.run_step().item(), rel_tol=1e-13)
    mine, theirs = reproducible.model.state_dict(), native.model.state_dict()
    for name, value in mine.items():
        assert value.dtype == torch.float64
        assert torch.allclose(value, theirs[name], rtol=1e-11, atol=1e-13), name
