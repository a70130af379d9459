"""The time source: the party both players accept as the witness of when each event of a game happened.

A game's clocks decide timeouts, so a timeout is only as good as whoever says what time it was and
what had arrived by then. Every event of a game (a move, or the clock being processed) is posted to a
time source, which appends it to that game's log, gives it its time, and returns a signed receipt:

    receipt   Ed25519 signature of kind "game-receipt" over
              {"game_id": hex32, "index": n, "at": seconds, "event": hex32, "prev": hex32}
              n     the event's position in the game's log, from 0
              at    the time the source gives it (never before the previous event's)
              event H(canonical JSON of the event): {"at": at, "message": envelope} or {"at": at, "clock": true}
              prev  the game's history digest before the event (`protocol.game.rules.compute_history`),
                    so a receipt binds every event before it, in order

An honest time source issues one receipt per (game, index): it never forks a game's log. With receipts,
no event of a transcript can be dropped, reordered, re-timed or added without a signature failing,
and a clock event proves that nothing else had arrived by its time. The protocol defines the receipt
and how to check it; a ledger (`pinpoint.ledger`), a chain or a committee implements issuing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import blake3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.game.rules import compute_history
from protocol.signing import compute_canonical_json, sign_statement, verify_statement
from protocol.types import PublicKeyBytes, Root, Seconds, SignatureBytes

RECEIPT_KIND = "game-receipt"


class TimeSourceError(RuntimeError):
    """A time source that cannot stamp an event (an unknown game, a log that would fork)."""


@dataclass(frozen=True)
class Stamp:
    """A time source's answer to a posted event."""

    index: int  # the event's position in the game's log
    at: Seconds  # the time it gives the event
    prev: Root  # the game's history digest before the event
    receipt: SignatureBytes  # its signature of the receipt statement


@dataclass(frozen=True)
class GameLog:
    """What a time source keeps per game: enough to stamp the next event."""

    game_id: bytes
    index: int  # events stamped so far
    history: Root  # the history digest after them (the game id before any)
    last_at: Seconds  # the time of the last event (the start time before any)


class TimeSource(Protocol):
    """The seam to whoever witnesses a game's times (STYLE.md, item 5)."""

    def get_time_source_key(self) -> PublicKeyBytes:
        """The public key that signs this source's receipts."""
        ...

    def open_game(self, game_id: bytes, started_at: Seconds) -> None:
        """Start a log for a game whose first query is asked at `started_at`."""
        ...

    def post_event(self, game_id: bytes, body: dict[str, Any], requested_at: Seconds) -> Stamp:
        """Append an event to the game's log: `body` is {"message": envelope JSON} or {"clock": True}. The
        source gives it its own time, never before `requested_at` nor the last event's."""
        ...


def compute_event_json(at: float, body: dict[str, Any]) -> dict[str, Any]:
    """The event as the history digest and the receipt cover it: the body with its time."""
    return {"at": float(at), **body}


def compute_event_digest(event: dict[str, Any]) -> Root:
    return Root(blake3.blake3(compute_canonical_json(event)).digest())


def compute_receipt_statement(game_id: bytes, index: int, event: dict[str, Any], prev: bytes) -> dict[str, Any]:
    return {"game_id": bytes(game_id).hex(), "index": index, "at": float(event["at"]),
            "event": bytes(compute_event_digest(event)).hex(), "prev": bytes(prev).hex()}


def sign_receipt(key: Ed25519PrivateKey, game_id: bytes, index: int, event: dict[str, Any], prev: bytes) -> SignatureBytes:
    return sign_statement(key, RECEIPT_KIND, compute_receipt_statement(game_id, index, event, prev))


def is_valid_receipt(public_key: bytes, game_id: bytes, index: int, event: dict[str, Any], prev: bytes,
                     signature: bytes) -> bool:
    """True when `public_key` witnessed `event` as event `index` of game `game_id`, after history `prev`;
    never raises."""
    try:
        statement = compute_receipt_statement(game_id, index, event, prev)
    except (TypeError, ValueError, KeyError, AttributeError):
        return False
    return verify_statement(public_key, RECEIPT_KIND, statement, signature)


def compute_opened_log(game_id: bytes, started_at: Seconds) -> GameLog:
    """A game's log before its first event: its history digest starts as the game id."""
    return GameLog(bytes(game_id), 0, Root(bytes(game_id)), started_at)


def compute_stamp(key: Ed25519PrivateKey, log: GameLog, body: dict[str, Any], at: Seconds) -> tuple[Stamp, GameLog]:
    """Stamp the next event of `log` at `at` (at least the last event's time): the receipt, and the log
    after it. What every time source does; only where it keeps its logs differs."""
    at = Seconds(max(float(at), float(log.last_at)))
    event = compute_event_json(at, body)
    receipt = sign_receipt(key, log.game_id, log.index, event, log.history)
    stamp = Stamp(log.index, at, log.history, receipt)
    return stamp, GameLog(log.game_id, log.index + 1, compute_history(log.history, event), at)

