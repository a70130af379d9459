"""pinpoint: the edges (command line, ledger, demo, simulation) over protocol, prover and verifier."""

import prover  # noqa: F401  (first: it sets the OpenMP environment before torch loads)
