"""Counter-based randomness: every random bit is a pure function of (seed, step, counter).

Nothing here keeps hidden state. A random draw is named by the job's seed, the training step and a
counter that the step's execution advances by the number of elements drawn, so any party (and the
referee) reproduces the same bits on any device, in any process, with any thread count.

The mixing function is a 32-bit integer hash evaluated in int64 arithmetic whose every product
stays below 2**63 (both factors below 2**32 and 2**31), so it never overflows on any backend:

    mix32(x) = x ^= x >> 16; x = (x * 0x7FEB352D) mod 2**32; x ^= x >> 15;
               x = (x * 0x6A09E667) mod 2**32; x ^= x >> 16
    bits(seed, step, i) = mix32(((i mod 2**32) ^ mix32((step mod 2**32) ^ mix32(seed mod 2**32))))

A uniform float32 in [0, 1) is (bits >> 8) * 2**-24: 24 random bits, exactly representable.
"""

from __future__ import annotations

import blake3
import torch

MASK32 = 0xFFFFFFFF
MUL1 = 0x7FEB352D
MUL2 = 0x6A09E667


def compute_mix32(x: torch.Tensor) -> torch.Tensor:
    """mix32 over an int64 tensor holding values in [0, 2**32)."""
    x = x ^ (x >> 16)
    x = (x * MUL1) & MASK32
    x = x ^ (x >> 15)
    x = (x * MUL2) & MASK32
    return x ^ (x >> 16)


def compute_mix32_int(x: int) -> int:
    """mix32 of one Python int (the same function as `compute_mix32`)."""
    x &= MASK32
    x ^= x >> 16
    x = (x * MUL1) & MASK32
    x ^= x >> 15
    x = (x * MUL2) & MASK32
    return x ^ (x >> 16)


def compute_stream_key(seed: int, step: int) -> int:
    """The 32-bit key of one step's random stream."""
    return compute_mix32_int((step & MASK32) ^ compute_mix32_int(seed & MASK32))


def compute_random_bits(seed: int, step: int, offset: int, numel: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """int64 tensor [numel] of 32-bit random words for counters offset … offset+numel-1."""
    key = compute_stream_key(seed, step)
    counters = (torch.arange(numel, dtype=torch.int64, device=device) + offset) & MASK32
    return compute_mix32(counters ^ key)


def compute_uniform(seed: int, step: int, offset: int, shape: tuple[int, ...], device: torch.device | str = "cpu") -> torch.Tensor:
    """float32 uniforms in [0, 1) of the given shape, from 24 random bits each (exact)."""
    numel = 1
    for size in shape:
        numel *= size
    bits = compute_random_bits(seed, step, offset, numel, device) >> 8
    return (bits.to(torch.float32) * (2.0**-24)).reshape(shape)


def compute_bernoulli(
    p: float, seed: int, step: int, offset: int, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """1 where uniform < float32(p), else 0, as `dtype` (torch's `bernoulli_(p)` contract)."""
    threshold = torch.tensor(p, dtype=torch.float32, device=device)
    return (compute_uniform(seed, step, offset, shape, device) < threshold).to(dtype)


def compute_initial_values(seed: int, name: str, shape: tuple[int, ...], bound: float) -> torch.Tensor:
    """float32 initial values of the parameter `name`: fl(fl(fl(u * 2) - 1) * float32(bound)), u uniform.

    The stream is keyed by (seed ^ 0x1A17, the first 4 bytes of BLAKE3(name) as a little-endian
    integer), so every parameter draws independent values whatever order they are created in."""
    key = int.from_bytes(blake3.blake3(name.encode()).digest()[:4], "little")
    u = compute_uniform(seed ^ 0x1A17, key, 0, shape)
    return (u * 2.0 - 1.0) * torch.tensor(bound, dtype=torch.float32)


def compute_batch_indices(seed: int, step: int, dataset_size: int, batch_size: int) -> torch.Tensor:
    """int64 [batch_size] indices into the data set for `step`, drawn with replacement.

    Index i is bits(seed ^ 0x5EED, step, i) mod dataset_size; the modulo bias is below
    dataset_size / 2**32 and is part of the definition.
    """
    if dataset_size <= 0 or batch_size <= 0:
        raise ValueError(f"need a non-empty data set and batch, got {dataset_size} and {batch_size}")
    return compute_random_bits(seed ^ 0x5EED, step, 0, batch_size) % dataset_size
