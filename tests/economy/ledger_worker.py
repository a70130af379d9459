"""The crash test's subprocess: applies a seeded stream of transitions to a ledger until killed.

Usage: python ledger_worker.py DB SEED LIMIT. Prints "ready", then the sequence number of every
entry once `Ledger.apply` has returned (so the parent knows which entries were acknowledged).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from actors import compute_ledger_action  # noqa: E402

from pinpoint.ledger import Ledger  # noqa: E402
from protocol.economy import EconomyError  # noqa: E402


def main(path: str, seed: int, limit: int) -> None:
    ledger = Ledger.open(path, trust_unsigned=True, snapshot_every=5)
    print("ready", flush=True)
    while ledger.sequence < limit:
        sequence = ledger.sequence + 1
        attempt = 0
        while True:
            try:
                ledger.apply(compute_ledger_action(ledger.state, seed, sequence, attempt))
                break
            except EconomyError:
                attempt += 1
        print(sequence, flush=True)
    print("done", flush=True)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
