"""The protocol's scalar math: correctly rounded pow, exp, cos, … and how a step's Python floats
are made to follow it (`protocol.scalar_mode`)."""

from __future__ import annotations

import math

import mpmath
import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.scalar_mode import ProtocolFloat, as_protocol_float, protocol_math
from protocol.semantics.scalars import MATH_FUNCTIONS, compute_cos, compute_exp, compute_pow

_EXACT = mpmath.MPContext()
_EXACT.prec = 3000


def _nearest(value: mpmath.mpf, guess: float) -> float:
    """The binary64 nearest to an exact value, among the guess and its two neighbours."""
    candidates = [guess, math.nextafter(guess, math.inf), math.nextafter(guess, -math.inf)]
    return min(candidates, key=lambda c: (abs(_EXACT.mpf(c) - value), c))


@given(st.floats(0.01, 2.0), st.floats(-2000.0, 2000.0))
def test_pow_is_the_nearest_binary64(x: float, y: float) -> None:
    result = compute_pow(x, y)
    if result == 0.0 or math.isinf(result):
        return
    assert result == _nearest(_EXACT.power(_EXACT.mpf(x), _EXACT.mpf(y)), result)


@given(st.sampled_from(sorted(MATH_FUNCTIONS)), st.floats(-30.0, 30.0))
def test_math_functions_are_the_nearest_binary64(name: str, x: float) -> None:
    exact = {
        "exp": _EXACT.exp, "expm1": _EXACT.expm1, "log": _EXACT.log, "log2": lambda v: _EXACT.log(v, 2),
        "log10": _EXACT.log10, "log1p": _EXACT.log1p, "sin": _EXACT.sin, "cos": _EXACT.cos, "tan": _EXACT.tan,
        "atan": _EXACT.atan, "tanh": _EXACT.tanh,
    }[name]
    if name.startswith("log") and x <= (-1.0 if name == "log1p" else 0.0):
        with pytest.raises(ValueError):
            MATH_FUNCTIONS[name](x)
        return
    result = MATH_FUNCTIONS[name](x)
    if x == 0.0 or math.isinf(result):
        assert result == getattr(math, name)(x)
        return
    assert result == _nearest(exact(_EXACT.mpf(x)), result), (name, x)


POW_VECTORS = [  # (x, y, x ** y correctly rounded), hex; a widely deployed C library returns a neighbour
    ("0x1.a9d99cad9af1ep-1", "0x1.7b832bac6d6cdp+10", "0x1.6b4c5d027a9ebp-404"),
    ("0x1.fb282d8fab4a6p-1", "0x1.71f5b7c64420ep+15", "0x1.9d9c91b1153edp-650"),
    ("0x1.ffcd039cfca50p-1", "0x1.6432ba701c31bp+15", "0x1.53b8a4fe67836p-26"),
]
COS_VECTORS = [("-0x1.4995e1492a640p+0", "0x1.1e4953979fca3p-2"), ("0x1.d4713487f3da0p+2", "0x1.04d9a24d6902fp-1")]


def test_vectors_where_a_common_c_library_rounds_the_other_way() -> None:
    for x, y, expected in POW_VECTORS:
        result = compute_pow(float.fromhex(x), float.fromhex(y))
        assert result.hex() == expected
        assert result == _nearest(_EXACT.power(_EXACT.mpf(float.fromhex(x)), _EXACT.mpf(float.fromhex(y))), result)
    for x, expected in COS_VECTORS:
        assert compute_cos(float.fromhex(x)).hex() == expected
        assert float.fromhex(expected) == _nearest(_EXACT.cos(_EXACT.mpf(float.fromhex(x))), float.fromhex(expected))
    assert compute_pow(0.5, 3.0) == 0.125 and compute_pow(-2.0, 3.0) == -8.0 and compute_pow(0.25, 0.5) == 0.5
    assert compute_exp(1.0) == 2.718281828459045 and compute_cos(math.pi / 3) == 0.5000000000000001


def test_protocol_floats_keep_their_type_and_python_semantics() -> None:
    step = as_protocol_float(7.0)
    assert type(step) is ProtocolFloat and as_protocol_float(3) == 3 and type(as_protocol_float(True)) is bool
    correction = 1 - 0.999 ** step
    assert type(correction) is ProtocolFloat
    root = correction ** 0.5
    assert type(root) is ProtocolFloat and root == compute_pow(float(correction), 0.5)
    assert type(-step) is type(abs(step)) is type(step / 2) is type(2 / step) is ProtocolFloat
    assert repr(step) == "7.0" and step.hex() == (7.0).hex()
    with pytest.raises(OverflowError):
        ProtocolFloat(10.0) ** 400
    with pytest.raises(ZeroDivisionError):
        0.0 ** ProtocolFloat(-1.0)


def test_protocol_math_replaces_and_restores_the_math_module() -> None:
    original = math.cos
    with protocol_math():
        assert math.cos is not original
        assert math.cos(math.pi / 3) == compute_cos(math.pi / 3)
        assert math.log(8, 2) == 3.0
        assert math.log(10**400) > 921  # a huge int goes to the original function
    assert math.cos is original
    with pytest.raises(RuntimeError), protocol_math():
        raise RuntimeError("restored on errors too")
    assert math.cos is original


def test_reads_of_tensors_inside_a_step_are_protocol_floats() -> None:
    import torch
    from torch.optim.optimizer import _get_value

    from protocol.scalar_mode import protocol_items

    step = torch.tensor(3.0)
    with protocol_items():
        assert type(_get_value(step)) is ProtocolFloat  # what Adam's bias corrections are computed from
        assert type(step.item()) is ProtocolFloat and type(torch.tensor(3).item()) is int
    assert type(step.item()) is float
