"""prover: computing a job reproducibly and standing behind it."""

import os

# Idle OpenMP threads sleep instead of spinning. torch's and numba's thread pools share the cores,
# and spinning pools starve each other: a small training step was measured 100x slower with the
# default policy. The variable only takes effect if set before torch is first imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
