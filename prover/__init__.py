"""prover: computing a job reproducibly and standing behind it."""

import os

# How idle OpenMP threads wait; both variables take effect only if set before the runtime loads (torch's
# on `import torch`, numba's at the first parallel kernel).
# - OMP_WAIT_POLICY=PASSIVE: no runtime spins without bound. torch's and numba's pools share the cores,
#   and pools that never stop spinning starve each other.
# - GOMP_SPINCOUNT=100000 (GNU libgomp, the runtime of both pools on Linux; it takes precedence over the
#   policy): a worker spins about 2.5 ms after its work, then sleeps. A sleeping worker takes some 70 µs
#   to wake, and a parallel matrix product enters up to three parallel regions: with workers that sleep
#   at once, the mid MLP's reproducible step took 8.2 ms instead of 3.3 ms, the mid ResNet's 80 instead
#   of 46 ms.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("GOMP_SPINCOUNT", "100000")
