"""Operator semantics: the reference definitions of pinpoint's reproducible numeric kernels.

Each function here *defines* the bits of one operator: a fixed order of correctly rounded float32
operations (or float64 operations followed by one rounding where the docstring proves that exact),
written with torch tensor operations so it runs on any device. The prover's fast kernels
(`prover.kernels`) must equal these bit for bit; the referee runs these.
"""

from protocol.semantics.elementwise import (
    reference_erf,
    reference_exp,
    reference_log,
    reference_pow_scalar,
    reference_rsqrt,
    reference_sqrt,
    reference_tanh,
)
from protocol.semantics.floats import CANONICAL_NAN_BITS, OperandError
from protocol.semantics.matmul import reference_bmm, reference_mm
from protocol.semantics.reductions import reference_rowargmax, reference_rowmax, reference_rowsum
from protocol.semantics.trigonometry import reference_cos, reference_sin

__all__ = [
    "CANONICAL_NAN_BITS",
    "OperandError",
    "reference_bmm",
    "reference_cos",
    "reference_erf",
    "reference_exp",
    "reference_log",
    "reference_mm",
    "reference_pow_scalar",
    "reference_rowargmax",
    "reference_rowmax",
    "reference_rowsum",
    "reference_rsqrt",
    "reference_sin",
    "reference_sqrt",
    "reference_tanh",
]
