"""Fast CPU kernels, bit-equal to the references in `protocol.semantics`."""

from prover.kernels.matmul import bmm, mm

__all__ = ["bmm", "mm"]
