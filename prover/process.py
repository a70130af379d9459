"""Process-wide settings for long-running jobs (the command line and the benchmarks call this).

- The cyclic garbage collector's full collections scan every tracked object; after torch is
  imported there are some 460,000, and a collection landing inside a traced step costs about 0.2 s.
  `gc.freeze()` moves the objects alive now out of the collector's sight (they are still freed by
  reference counting); later objects are collected as usual.
- glibc returns freed blocks above a dynamic threshold straight to the kernel, so the next step's
  tensors of the same sizes fault their pages in again. A fixed mmap threshold of 32 MiB and a trim
  threshold of 1 GiB keep the step's memory for reuse (a regenerated mid-transformer trace: about
  8% faster). Skipped where the C library is not glibc.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3


def tune_process() -> None:
    """Freeze the objects alive now out of the garbage collector's scans and keep freed memory."""
    gc.freeze()
    name = ctypes.util.find_library("c")
    if name is None:
        return
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return  # not glibc: nothing to tune
    mallopt(M_MMAP_THRESHOLD, 32 << 20)
    mallopt(M_TRIM_THRESHOLD, 1 << 30)
