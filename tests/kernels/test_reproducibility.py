"""What must not change a bit: the process, numba's thread count, the vector width of the build,
and the floating-point environment (checked, not assumed)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import prover.kernels as fast
from prover.kernels import (
    FloatEnvironmentError,
    _matmul,
    is_float_environment_ieee,
    require_float_environment_ieee,
)
from tests.kernels.support import kernel_digests

ROOT = Path(__file__).resolve().parents[2]

# A child process: the digests of a fixed set of kernel results, the vector width it was built for
# and, with --asm (only possible when numba's cache is off), the FMA instructions in its machine code.
CHILD = r"""
import json, re, sys
from prover.kernels import _elementwise, _matmul, _reductions
from tests.kernels.support import kernel_digests

report = {"digests": kernel_digests(), "width": _matmul.WIDTH}
if "--asm" in sys.argv:
    counts = {}
    for module in (_matmul, _elementwise, _reductions):
        fused = multiplies = 0
        for value in vars(module).values():
            for signature in getattr(value, "signatures", []):
                code = value.inspect_asm(signature)
                fused += len(re.findall(r"\bvfn?m(add|sub)", code))
                multiplies += len(re.findall(r"\bvmulps", code))
        counts[module.__name__.rsplit(".", 1)[-1]] = {"fused": fused, "multiplies": multiplies}
    report["asm"] = counts
print(json.dumps(report))
"""


def _run_child(env_extra: dict[str, str], *flags: str) -> dict:
    env = dict(os.environ, **env_extra)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-c", CHILD, *flags], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def here() -> dict[str, str]:
    return kernel_digests()


def test_another_process_with_one_thread_computes_the_same_bits(here: dict[str, str]):
    child = _run_child({"NUMBA_NUM_THREADS": "1"})
    assert child["digests"] == here


@pytest.mark.slow
def test_a_build_with_narrower_vectors_computes_the_same_bits_fusing_only_where_defined(here: dict[str, str]):
    other = 8 if _matmul.WIDTH == 16 else 16
    child = _run_child({"PINPOINT_KERNEL_WIDTH": str(other)}, "--asm")
    assert child["width"] == other
    assert child["digests"] == here
    asm = child["asm"]
    assert asm["_elementwise"]["multiplies"] + asm["_reductions"]["multiplies"] > 100, "the machine code was not inspected"
    assert asm["_elementwise"]["fused"] == asm["_reductions"]["fused"] == 0, "LLVM contracted a multiply and an add into an FMA"
    assert asm["_matmul"]["fused"] > 0, "the matrix product's steps are fused multiply-adds by definition"


def test_float_environment_is_checked():
    assert is_float_environment_ieee()
    require_float_environment_ieee()
    torch.set_flush_denormal(True)
    try:
        if torch.tensor([2.0**-127]).item() != 0:  # this build/CPU cannot flush: nothing to detect
            pytest.skip("torch.set_flush_denormal has no effect here")
        assert not is_float_environment_ieee()
        with pytest.raises(FloatEnvironmentError, match="flushed"):
            require_float_environment_ieee()
    finally:
        torch.set_flush_denormal(False)
    assert is_float_environment_ieee()


def test_warmup_compiles_and_self_checks():
    assert fast.warmup() >= 0.0
