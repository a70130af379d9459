"""The prover's primitive backend: the fast CPU kernels of `prover.kernels` behind the
`protocol.ops.prims.Primitives` interface, plus the sequential segment sum of embedding gradients.

Non-CPU tensors never reach this backend (see `prover.run.get_primitives_for`): other devices use the
device-generic references, which define the same bits.
"""

from __future__ import annotations

import numba
import numpy as np
import torch

from prover import kernels


@numba.njit(cache=True)
def _segment_sum(values: np.ndarray, segments: np.ndarray, out: np.ndarray) -> None:
    # out[s] += values[p] for p in ascending order: each element's additions happen in that order
    count = out.shape[0]
    for p in range(values.shape[0]):
        s = segments[p]
        if 0 <= s < count:
            for d in range(values.shape[1]):
                out[s, d] = out[s, d] + values[p, d]


class FastPrimitives:
    """Primitives for CPU float32 tensors; bit-equal to `protocol.ops.prims.REFERENCE`."""

    def mm(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return kernels.mm(a, b)

    def bmm(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return kernels.bmm(a, b)

    def rowsum(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.rowsum(x)

    def rowmax(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.rowmax(x)

    def exp(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.exp(x)

    def log(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.log(x)

    def tanh(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.tanh(x)

    def erf(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.erf(x)

    def sqrt(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.sqrt(x)

    def rsqrt(self, x: torch.Tensor) -> torch.Tensor:
        return kernels.rsqrt(x)

    def segment_sum(self, values: torch.Tensor, segments: torch.Tensor, count: int) -> torch.Tensor:
        out = np.zeros((count, values.shape[1]), dtype=np.float32)
        _segment_sum(
            np.ascontiguousarray(values.detach().numpy(), dtype=np.float32),
            np.ascontiguousarray(segments.detach().numpy(), dtype=np.int64),
            out,
        )
        return torch.from_numpy(out)


FAST = FastPrimitives()
