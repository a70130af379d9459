"""A time source held in memory: the driver's own witness when no ledger is at hand.

It stamps events on the driver's simulated clock and signs receipts with its own key (a fresh one by
default). A transcript it witnessed proves timeouts to whoever trusts that key, and `verify-transcript`
says which key that is; a game between parties who trust neither each other nor the driver runs
through the durable ledger instead (`pinpoint.ledger.Ledger` is a time source too).
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.game.timesource import GameLog, Stamp, TimeSourceError, compute_opened_log, compute_stamp
from protocol.signing import generate_private_key, get_public_key_bytes
from protocol.types import PublicKeyBytes, Seconds


class LocalTimeSource:
    """A `protocol.game.timesource.TimeSource` in memory, on simulated seconds."""

    def __init__(self, key: Ed25519PrivateKey | None = None) -> None:
        self.key = key if key is not None else generate_private_key()
        self.logs: dict[bytes, GameLog] = {}

    def get_time_source_key(self) -> PublicKeyBytes:
        return get_public_key_bytes(self.key)

    def open_game(self, game_id: bytes, started_at: Seconds) -> None:
        if bytes(game_id) in self.logs:
            raise TimeSourceError(f"game {bytes(game_id).hex()[:16]} is already open: one game, one log")
        self.logs[bytes(game_id)] = compute_opened_log(game_id, started_at)

    def post_event(self, game_id: bytes, body: dict[str, Any], requested_at: Seconds) -> Stamp:
        log = self.logs.get(bytes(game_id))
        if log is None:
            raise TimeSourceError(f"no open game {bytes(game_id).hex()[:16]}")
        stamp, self.logs[bytes(game_id)] = compute_stamp(self.key, log, body, requested_at)
        return stamp
