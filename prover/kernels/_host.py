"""What the host CPU offers the kernels (plain Python: no compiled code lives here)."""

from __future__ import annotations

import os

import llvmlite.binding as llvm_binding

WIDTH_OVERRIDE = "PINPOINT_KERNEL_WIDTH"
"""Environment variable forcing the vector width (8 or 16), e.g. to test the narrower kernels."""


def compute_vector_width() -> int:
    """Float32 lanes per vector register: 16 with AVX-512F, else 8 (any x86-64 with AVX2, or LLVM
    splits the vectors). The width changes speed only, never results: every kernel's per-element
    operation order is the same at any width."""
    forced = os.environ.get(WIDTH_OVERRIDE)
    if forced is not None:
        if forced not in ("8", "16"):
            raise ValueError(f"{WIDTH_OVERRIDE} must be 8 or 16, got {forced!r}")
        return int(forced)
    features = llvm_binding.get_host_cpu_features()
    return 16 if features.get("avx512f", False) else 8


WIDTH = compute_vector_width()
"""The vector width the kernels are built for."""
CACHE = WIDTH_OVERRIDE not in os.environ
"""Whether compiled kernels are cached on disk: not under a forced width, whose machine code must
neither reuse nor overwrite the host width's cached code (numba keys its cache on the CPU, not on
module-level choices like this one)."""
