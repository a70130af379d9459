"""The durable ledger: the economy's transitions on SQLite, one transaction per transition.

Design: a log of transitions plus periodic snapshots, not tables of the state. The transitions
are deterministic (protocol/economy has no clock and no randomness of its own), so the state after
n transitions is a function of the genesis state and the first n log entries; storing the log
gives the audit trail for free and keeps one implementation of the rules, since recovery replays
the very functions that produced the state. Snapshots (the canonical JSON of the whole state with
its SHA-256 root) bound the replay at restart to `snapshot_every` entries.

Atomicity: `apply` runs the pure transition on the in-memory state first; a rejected transition
raises before anything is written and leaves the state unchanged. An accepted one is written as
one log row (plus, every `snapshot_every` entries, a snapshot row) inside one SQLite transaction,
in WAL mode with `synchronous=FULL`: when `apply` returns, the entry is durable; a process killed
at any moment leaves either the whole entry or none of it, and a restart recovers exactly the
state of the last committed entry. If the write itself fails, the in-memory state is rebuilt from
the database before the error is raised, so memory never runs ahead of disk.

Settlements check their evidence here, with the referee of the job (`referees`, a
`protocol.economy.RefereeFactory`, e.g. `verifier.settlement.make_job_referees()`): the economy replays the
game's transcript before the transition is committed, and a ledger without referees refuses every
settlement by transcript; a settlement by a committee's attestation is checked with one pairing. A
transition that checks evidence (`EVIDENCE_KINDS`: a settlement, a referee's registration with its proof
of possession, a committee fault's report) is committed with a snapshot of the state after it in the same
SQLite transaction, so recovery never replays one, never needs a referee and never repeats a pairing: such
an entry found after the last snapshot is a corrupt ledger.

Schema (format "pinpoint-ledger/6": the state gained stored checkpoints and their sampling challenges):
    meta(key, value)                 format, time_source_key (hex of the receipt key's seed)
    log(seq, action)                 seq = 1, 2, ...; action = canonical JSON of encode_action(...)
    snapshots(seq, state, root)      state after entry `seq` (seq 0 = genesis), root = hex SHA-256
    games(game_id, next_index, history, last_at)    a game's log at its time source: what comes next
    game_events(game_id, idx, at, event, receipt)   every event stamped, with its receipt
    committee_rounds(game_id, epoch, opened_at, closed_at)  a verdict round of a committee, as witnessed
    committee_shares(game_id, seat, at, statement, share)   each member's valid share, when it arrived

The ledger is also the time source of the dispute games it opens (`protocol.game.timesource`): its
receipt key is made with the ledger and named in the genesis state, so the economy accepts a game's
times only with this key's receipts; the economy issues each dispute its id when it is opened (in the
same transition as the bond); the ledger stamps each event of a game with its time and a signed
receipt, and keeps one log per game whose (game, index) rows are unique, so it can never fork a game.
It witnesses committee verdict rounds the same way: a round is opened once per game, each member's share
is checked (one pairing) and kept with its arrival time, and the close is a record signed with the
receipt key (kind `committee-close`) listing the seats whose share had arrived: the evidence of absence
that `report_absence` slashes with.
Its clock is simulated seconds, like its epochs: an event is stamped at the time its poster asks for,
never earlier than the game's last event; a deployment stamps with block time instead.

A database that cannot be read, has the wrong format, fails SQLite's quick check, holds a snapshot
whose root does not match, or a log entry that no longer applies raises `LedgerCorrupt`.
"""

from __future__ import annotations

import hashlib
import json
import os
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.economy import (
    Action,
    EconomyError,
    InvariantViolation,
    MalformedTransaction,
    Params,
    RefereeFactory,
    SignedTransaction,
    State,
    apply_action,
    check_invariants,
    create_state,
    decode_action,
    decode_state,
    encode_action,
    encode_state,
)
from protocol.economy.codec import StateEncodingError
from protocol.game.timesource import (
    GameLog,
    Stamp,
    TimeSourceError,
    compute_event_json,
    compute_opened_log,
    compute_stamp,
)
from protocol.signing import (
    compute_canonical_json,
    generate_private_key,
    get_public_key_bytes,
    private_key_from_bytes,
    private_key_to_bytes,
)
from protocol.types import PublicKeyBytes, Root, Seconds

_T = TypeVar("_T")

LEDGER_FORMAT = "pinpoint-ledger/6"
"""The value of meta.format; a different value is refused rather than misread."""

DEFAULT_SNAPSHOT_EVERY = 1_000
"""Log entries between snapshots: restart replays at most this many (a few ms each at most)."""

DEFAULT_BUSY_TIMEOUT = 10.0
"""Seconds to wait for another connection's write lock before a write fails."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS log (seq INTEGER PRIMARY KEY, action TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS snapshots (seq INTEGER PRIMARY KEY, state TEXT NOT NULL, root TEXT NOT NULL);
"""

_COMMITTEE_SCHEMA = """
CREATE TABLE IF NOT EXISTS committee_rounds (game_id TEXT PRIMARY KEY, epoch INTEGER NOT NULL, opened_at REAL NOT NULL,
                                             closed_at REAL);
CREATE TABLE IF NOT EXISTS committee_shares (game_id TEXT NOT NULL, seat INTEGER NOT NULL, at REAL NOT NULL,
                                             statement TEXT NOT NULL, share TEXT NOT NULL, PRIMARY KEY (game_id, seat));
"""

_TIME_SOURCE_SCHEMA = """
CREATE TABLE IF NOT EXISTS games (game_id TEXT PRIMARY KEY, next_index INTEGER NOT NULL, history TEXT NOT NULL, last_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS game_events (game_id TEXT NOT NULL, idx INTEGER NOT NULL, at REAL NOT NULL, event TEXT NOT NULL,
                                        receipt TEXT NOT NULL, PRIMARY KEY (game_id, idx));
"""

EVIDENCE_KINDS = frozenset(
    {"settle_dispute", "register_referee", "report_equivocation", "report_wrong_verdict", "report_absence"}
)
"""Transitions that check a transcript, signatures or a proof of possession: each is committed with a
snapshot (see the module doc)."""


class LedgerError(Exception):
    """Base of the ledger's own failures (rule violations stay `EconomyError`s)."""


class LedgerCorrupt(LedgerError):
    """The database cannot be read as a pinpoint ledger, or its contents do not replay."""


class LedgerWriteError(LedgerError):
    """A transition was valid but could not be made durable; the ledger's state is as before it."""


class LedgerExists(LedgerError):
    """`create` was asked for a path that already holds a ledger."""


def compute_snapshot(state: State) -> tuple[str, str]:
    """The canonical JSON text of `state` and the hex SHA-256 root of those bytes."""
    data = compute_canonical_json(encode_state(state))
    return data.decode(), hashlib.sha256(data).hexdigest()


class Ledger:
    """A durable economy. Use `Ledger.create` for a new one and `Ledger.open` to recover one.

    `state` is the live state: read it, never change it (only `apply` may). Unsigned user actions
    are accepted only with `trust_unsigned=True` (a driver that vouches for the sender itself);
    signed transactions and system actions always are. `check_each=True` runs every named invariant
    after each transition (O(state); for tests and demos). `referees` builds the referee that checks a
    settlement's transcript; without it settlements are refused.
    """

    def __init__(
        self,
        connection: sqlite3.Connection,
        path: Path,
        state: State,
        sequence: int,
        *,
        trust_unsigned: bool,
        snapshot_every: int,
        check_each: bool,
        referees: RefereeFactory | None = None,
    ) -> None:
        if type(snapshot_every) is not int or snapshot_every <= 0:
            connection.close()
            raise ValueError(f"snapshot_every must be a positive integer, got {snapshot_every!r}")
        self._conn = connection
        self.path = path
        self._state = state
        self._sequence = sequence
        self.trust_unsigned = trust_unsigned
        self.snapshot_every = snapshot_every
        self.check_each = check_each
        self.referees = referees
        self._receipt_key: Ed25519PrivateKey | None = None  # read on first use as a time source

    # -- opening --------------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | os.PathLike[str],
        params: Params,
        seed: bytes = b"",
        *,
        trust_unsigned: bool = False,
        snapshot_every: int = DEFAULT_SNAPSHOT_EVERY,
        check_each: bool = False,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        referees: RefereeFactory | None = None,
    ) -> Ledger:
        """A new ledger at `path` holding the genesis state under `params` and the epoch-0 `seed`, with a
        fresh time-source key that the genesis state names."""
        path = Path(path)
        if path.exists() and path.stat().st_size > 0:
            raise LedgerExists(f"{path} already exists; open it with Ledger.open")
        receipt_key = generate_private_key()
        state = create_state(params, seed, time_source=bytes(get_public_key_bytes(receipt_key)))
        conn = _connect(path, busy_timeout)
        try:
            text, root = compute_snapshot(state)
            conn.execute("BEGIN IMMEDIATE")  # schema, key and genesis in one transaction: all or nothing
            for statement in (_SCHEMA + _TIME_SOURCE_SCHEMA + _COMMITTEE_SCHEMA).strip().split(";"):
                if statement.strip():
                    conn.execute(statement)
            conn.execute("INSERT INTO meta VALUES ('format', ?)", (LEDGER_FORMAT,))
            conn.execute("INSERT INTO meta VALUES ('time_source_key', ?)", (private_key_to_bytes(receipt_key).hex(),))
            conn.execute("INSERT INTO snapshots VALUES (0, ?, ?)", (text, root))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.close()
            raise LedgerWriteError(f"cannot create a ledger at {path}: {exc}") from exc
        return cls(
            conn,
            path,
            state,
            0,
            trust_unsigned=trust_unsigned,
            snapshot_every=snapshot_every,
            check_each=check_each,
            referees=referees,
        )

    @classmethod
    def open(
        cls,
        path: str | os.PathLike[str],
        *,
        trust_unsigned: bool = False,
        snapshot_every: int = DEFAULT_SNAPSHOT_EVERY,
        check_each: bool = False,
        busy_timeout: float = DEFAULT_BUSY_TIMEOUT,
        referees: RefereeFactory | None = None,
    ) -> Ledger:
        """Recover the ledger at `path`: its latest snapshot plus every later log entry, replayed."""
        path = Path(path)
        if not path.is_file():
            raise LedgerCorrupt(f"{path}: no ledger file there")
        conn = _connect(path, busy_timeout)
        try:
            state, sequence = _recover(conn, path)
        except BaseException:
            conn.close()
            raise
        return cls(
            conn,
            path,
            state,
            sequence,
            trust_unsigned=trust_unsigned,
            snapshot_every=snapshot_every,
            check_each=check_each,
            referees=referees,
        )

    # -- reading --------------------------------------------------------------------------------

    @property
    def state(self) -> State:
        return self._state

    @property
    def sequence(self) -> int:
        """Number of committed transitions."""
        return self._sequence

    def history(self, start: int = 1) -> Iterator[tuple[int, SignedTransaction | Action]]:
        """Committed log entries from `start` on, as (seq, transaction or action)."""
        for seq, text in self._conn.execute(
            "SELECT seq, action FROM log WHERE seq >= ? ORDER BY seq", (start,)
        ):
            yield seq, decode_action(json.loads(text))

    # -- writing --------------------------------------------------------------------------------

    def apply(self, action: SignedTransaction | Action) -> Any:
        """Apply one transition and make it durable; returns the transition's result. A rejected
        transition raises its `EconomyError` and changes nothing, in memory or on disk."""
        try:
            text = compute_canonical_json(encode_action(action)).decode()
        except (TypeError, ValueError, AttributeError) as exc:
            raise MalformedTransaction(f"cannot encode {action!r} for the log: {exc}") from None
        try:
            result = apply_action(self._state, action, trust_unsigned=self.trust_unsigned, referees=self.referees)
            if self.check_each:
                check_invariants(self._state)
        except InvariantViolation:
            self._reload()
            raise
        except EconomyError:
            raise
        except BaseException:
            # not a rule violation: a bug or an interrupt in mid-transition; trust only the disk
            self._reload()
            raise
        sequence = self._sequence + 1
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute("INSERT INTO log VALUES (?, ?)", (sequence, text))
            if sequence % self.snapshot_every == 0 or action.kind in EVIDENCE_KINDS:
                state_text, root = compute_snapshot(self._state)
                self._conn.execute("INSERT INTO snapshots VALUES (?, ?, ?)", (sequence, state_text, root))
            self._conn.execute("COMMIT")
        except BaseException as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            self._reload()
            if isinstance(exc, sqlite3.Error):
                raise LedgerWriteError(f"{self.path}: transition {sequence} not written: {exc}") from exc
            raise
        self._sequence = sequence
        return result

    def snapshot(self) -> None:
        """Write a snapshot of the current state now (restart then replays nothing)."""
        text, root = compute_snapshot(self._state)
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute(
                "INSERT OR REPLACE INTO snapshots VALUES (?, ?, ?)", (self._sequence, text, root)
            )
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            raise LedgerWriteError(f"{self.path}: snapshot not written: {exc}") from exc

    # -- the time source of dispute games --------------------------------------------------------

    def _time_source_key(self) -> Ed25519PrivateKey:
        if self._receipt_key is None:
            self._receipt_key = _ensure_time_source(self._conn, self.path, self._state)
        return self._receipt_key

    def get_time_source_key(self) -> PublicKeyBytes:
        return get_public_key_bytes(self._time_source_key())

    def open_game(self, game_id: bytes, started_at: Seconds) -> None:
        """Start the log of a game (at most once per game id)."""
        log = compute_opened_log(game_id, started_at)

        def insert() -> None:
            try:
                self._conn.execute("INSERT INTO games VALUES (?, ?, ?, ?)",
                                   (bytes(game_id).hex(), log.index, bytes(log.history).hex(), float(log.last_at)))
            except sqlite3.IntegrityError as exc:
                raise TimeSourceError(f"game {bytes(game_id).hex()[:16]} is already open: one game, one log") from exc

        self._write(insert, "game not opened")

    def post_event(self, game_id: bytes, body: dict[str, Any], requested_at: Seconds) -> Stamp:
        """Stamp the next event of an open game and keep it with its receipt, in one SQLite transaction."""
        key = self._time_source_key()

        def stamp() -> Stamp:
            row = self._conn.execute("SELECT next_index, history, last_at FROM games WHERE game_id = ?",
                                     (bytes(game_id).hex(),)).fetchone()
            if row is None:
                raise TimeSourceError(f"no open game {bytes(game_id).hex()[:16]}")
            log = GameLog(bytes(game_id), int(row[0]), Root(bytes.fromhex(row[1])), Seconds(float(row[2])))
            stamped, after = compute_stamp(key, log, body, requested_at)
            event = compute_canonical_json(compute_event_json(stamped.at, body)).decode()
            self._conn.execute("INSERT INTO game_events VALUES (?, ?, ?, ?, ?)",
                               (bytes(game_id).hex(), stamped.index, float(stamped.at), event, bytes(stamped.receipt).hex()))
            self._conn.execute("UPDATE games SET next_index = ?, history = ?, last_at = ? WHERE game_id = ?",
                               (after.index, bytes(after.history).hex(), float(after.last_at), bytes(game_id).hex()))
            return stamped

        return self._write(stamp, "event not stamped")

    # -- the witness of committee rounds -----------------------------------------------------------

    def open_committee_round(self, game_id: bytes, epoch: int, opened_at: Seconds) -> None:
        """Start the verdict round of a game with `epoch`'s committee (at most once per game)."""
        from protocol.economy import get_committee

        get_committee(self._state, epoch)  # NoCommittee: no round without a committee to sign

        def insert() -> None:
            try:
                self._conn.execute("INSERT INTO committee_rounds VALUES (?, ?, ?, NULL)",
                                   (bytes(game_id).hex(), epoch, float(opened_at)))
            except sqlite3.IntegrityError as exc:
                raise TimeSourceError(f"the round of game {bytes(game_id).hex()[:16]} is already open") from exc

        self._write(insert, "round not opened")

    def post_committee_share(self, game_id: bytes, seat: int, statement: dict[str, Any], share: bytes,
                             at: Seconds) -> None:
        """Keep a member's share of a round still open, stamped `at`, once it verifies for that seat; a seat's
        first valid share stands. TimeSourceError for a closed or unknown round or an invalid share."""
        from protocol.committee import is_valid_share, parse_statement_json
        from protocol.economy import get_committee

        epoch, opened_at = self._get_open_round(game_id)
        if float(at) < opened_at:
            raise TimeSourceError("a share cannot arrive before its round opened")
        try:
            parsed = parse_statement_json(statement)
        except ValueError as exc:
            raise TimeSourceError(f"not a verdict statement: {exc}") from None
        if bytes(parsed.game_id) != bytes(game_id):
            raise TimeSourceError("the share's statement is about another game")
        if not is_valid_share(get_committee(self._state, epoch), seat, parsed, share):
            raise TimeSourceError(f"the share does not verify for seat {seat!r}")
        text = compute_canonical_json(statement).decode()

        def insert() -> None:
            self._get_open_round(game_id)  # still open now that the write lock is held
            self._conn.execute("INSERT OR IGNORE INTO committee_shares VALUES (?, ?, ?, ?, ?)",
                               (bytes(game_id).hex(), seat, float(at), text, bytes(share).hex()))

        self._write(insert, "share not kept")

    def close_committee_round(self, game_id: bytes, closed_at: Seconds) -> tuple[dict[str, Any], str]:
        """Close a round and sign its record: (the record's JSON, hex of the signature), what
        `report_absence` takes. Closing is final; the record lists the seats whose share had arrived."""
        from protocol.committee import RoundClose, compute_committee_root, sign_round_close
        from protocol.committee.faults import compute_close_json
        from protocol.economy import get_committee

        key = self._time_source_key()

        def close() -> RoundClose:
            epoch, opened_at = self._get_open_round(game_id)
            if float(closed_at) < opened_at:
                raise TimeSourceError("a round cannot close before it opened")
            seats = tuple(int(seat) for (seat,) in self._conn.execute(
                "SELECT seat FROM committee_shares WHERE game_id = ? AND at <= ? ORDER BY seat",
                (bytes(game_id).hex(), float(closed_at))))
            self._conn.execute("UPDATE committee_rounds SET closed_at = ? WHERE game_id = ?",
                               (float(closed_at), bytes(game_id).hex()))
            return RoundClose(bytes(game_id), epoch, compute_committee_root(get_committee(self._state, epoch)),
                              Seconds(opened_at), Seconds(float(closed_at)), seats)

        record = self._write(close, "round not closed")
        return compute_close_json(record), bytes(sign_round_close(key, record)).hex()

    def _get_open_round(self, game_id: bytes) -> tuple[int, float]:
        """(epoch, opened_at) of the open round of a game; TimeSourceError when none is open."""
        row = self._conn.execute("SELECT epoch, opened_at, closed_at FROM committee_rounds WHERE game_id = ?",
                                 (bytes(game_id).hex(),)).fetchone()
        if row is None or row[2] is not None:
            raise TimeSourceError(f"no open round for game {bytes(game_id).hex()[:16]}")
        return int(row[0]), float(row[1])

    def _write(self, work: Callable[[], _T], what: str) -> _T:
        """Run `work` inside one SQLite write transaction: all of it is durable, or none of it."""
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            result = work()
            self._conn.execute("COMMIT")
            return result
        except BaseException as exc:
            if self._conn.in_transaction:
                self._conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise LedgerWriteError(f"{self.path}: {what}: {exc}") from exc
            raise

    def _reload(self) -> None:
        self._state, self._sequence = _recover(self._conn, self.path)

    # -- closing --------------------------------------------------------------------------------

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _ensure_time_source(conn: sqlite3.Connection, path: Path, state: State) -> Ed25519PrivateKey:
    """The ledger's receipt key, made with the ledger: it must be the key the state names."""
    try:
        row = conn.execute("SELECT value FROM meta WHERE key = 'time_source_key'").fetchone()
        if row is None:
            raise LedgerCorrupt(f"{path}: the ledger has no time-source key")
        key = private_key_from_bytes(bytes.fromhex(row[0]))
    except (sqlite3.Error, ValueError) as exc:
        raise LedgerCorrupt(f"{path}: cannot read the time-source key: {exc}") from exc
    if bytes(get_public_key_bytes(key)).hex() != state.time_source:
        raise LedgerCorrupt(f"{path}: the time-source key is not the one its state names")
    return key


def _connect(path: Path, busy_timeout: float) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL journal, fsync on commit."""
    try:
        conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout)
    except sqlite3.Error as exc:
        raise LedgerCorrupt(f"{path}: cannot open as SQLite: {exc}") from exc
    try:
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        conn.execute("PRAGMA synchronous=FULL")
        if str(mode).lower() != "wal":
            raise LedgerCorrupt(f"{path}: cannot switch to WAL mode (got {mode!r})")
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise LedgerCorrupt(f"{path}: not a readable SQLite database: {exc}") from exc
    return conn


def _recover(conn: sqlite3.Connection, path: Path) -> tuple[State, int]:
    """The state after the last committed entry: latest snapshot, then the log after it."""
    try:
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise LedgerCorrupt(f"{path}: SQLite integrity check failed: {check}")
        tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"meta", "log", "snapshots"} <= tables:
            raise LedgerCorrupt(f"{path}: not a pinpoint ledger (tables: {sorted(tables)})")
        row = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
        if row is None or row[0] != LEDGER_FORMAT:
            raise LedgerCorrupt(
                f"{path}: ledger format {row[0] if row else None!r}, expected {LEDGER_FORMAT!r}"
            )
        snap = conn.execute("SELECT seq, state, root FROM snapshots ORDER BY seq DESC LIMIT 1").fetchone()
        if snap is None:
            raise LedgerCorrupt(f"{path}: no snapshot, not even genesis")
        snap_seq, text, root = snap
        if hashlib.sha256(text.encode()).hexdigest() != root:
            raise LedgerCorrupt(f"{path}: snapshot {snap_seq} does not match its root")
        state = decode_state(json.loads(text))
        last = conn.execute("SELECT MAX(seq) FROM log").fetchone()[0] or 0
        if last < snap_seq:
            raise LedgerCorrupt(f"{path}: snapshot {snap_seq} is ahead of the log's last entry {last}")
        sequence = snap_seq
        for seq, action_text in conn.execute(
            "SELECT seq, action FROM log WHERE seq > ? ORDER BY seq", (snap_seq,)
        ):
            if seq != sequence + 1:
                raise LedgerCorrupt(f"{path}: log entry {sequence + 1} is missing")
            try:
                apply_action(state, decode_action(json.loads(action_text)), trust_unsigned=True)
            except EconomyError as exc:
                raise LedgerCorrupt(f"{path}: log entry {seq} does not replay: {exc}") from exc
            sequence = seq
    except sqlite3.DatabaseError as exc:
        raise LedgerCorrupt(f"{path}: not a readable ledger: {exc}") from exc
    except (StateEncodingError, ValueError, TypeError, KeyError) as exc:
        raise LedgerCorrupt(f"{path}: unreadable ledger contents: {type(exc).__name__}: {exc}") from exc
    return state, sequence
