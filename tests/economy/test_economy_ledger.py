"""The durable ledger: exact recovery on restart, rejected transitions never logged, clear errors
for corrupt databases, and no half-applied or lost transition when killed with SIGKILL."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pinpoint.ledger import Ledger, LedgerCorrupt, LedgerExists, LedgerWriteError
from protocol.economy import (
    MINIMAL,
    Action,
    InsufficientFunds,
    ReplayedMessage,
    UnauthorizedAction,
    apply_action,
    check_invariants,
    compute_state_root,
    copy_state,
    create_state,
    sign_transaction,
)
from protocol.signing import get_public_key_bytes, private_key_from_bytes

from .actors import LEDGER_SETUP, compute_action, compute_reference_state, draw_template, make_params

PARAMS = make_params(forced_error_rate_bps=3_000)
WORKER = Path(__file__).with_name("ledger_worker.py")


def test_restart_recovers_exact_state(tmp_path: Path) -> None:
    """Signed, unsigned and system transitions across several snapshots: a reopened ledger holds the
    same state (and root) as an in-memory run of the same transitions."""
    key = private_key_from_bytes(bytes([7]) * 32)
    signer = get_public_key_bytes(key).hex()
    path = tmp_path / "economy.db"
    ledger = Ledger.create(path, PARAMS, b"genesis", trust_unsigned=True, snapshot_every=7, check_each=True)
    reference = create_state(PARAMS, b"genesis", time_source=bytes(ledger.get_time_source_key()))
    actions = list(LEDGER_SETUP) + [
        Action("genesis_allocation", {"account": signer, "amount": 500}),
        sign_transaction(key, "transfer", 0, recipient="carol", amount=40),
        sign_transaction(key, "stake", 1, amount=100),
    ]
    rng = random.Random(11)
    for action in actions:
        ledger.apply(action)
        apply_action(reference, action, trust_unsigned=True)
    applied = 0
    while applied < 60:  # random transitions; only accepted ones count
        action = compute_action(reference, draw_template(rng))
        try:
            apply_action(reference, action, trust_unsigned=True)
        except Exception:
            continue
        ledger.apply(action)
        applied += 1
    assert ledger.state == reference
    sequence = ledger.sequence
    ledger.close()
    with Ledger.open(path, trust_unsigned=True) as reopened:
        assert reopened.sequence == sequence == len(actions) + 60
        assert reopened.state == reference
        assert compute_state_root(reopened.state) == compute_state_root(reference)
        assert [a for _, a in reopened.history()][: len(actions)] == actions
        # the signed transfer is in the log: sending it again is a replay
        with pytest.raises(ReplayedMessage):
            reopened.apply(actions[len(LEDGER_SETUP) + 1])
        reopened.snapshot()
    with Ledger.open(path) as again:  # from the fresh snapshot, nothing to replay
        assert again.state == reference


def test_rejected_transitions_are_not_logged(tmp_path: Path) -> None:
    path = tmp_path / "economy.db"
    with Ledger.create(path, MINIMAL, trust_unsigned=True) as ledger:
        for action in LEDGER_SETUP:
            ledger.apply(action)
        before, sequence = copy_state(ledger.state), ledger.sequence
        with pytest.raises(InsufficientFunds):
            ledger.apply(Action("transfer", {"recipient": "bob", "amount": 10**9}, "alice"))
        assert ledger.state == before and ledger.sequence == sequence
    with Ledger.open(path) as strict:  # a ledger that takes only signed user transactions
        with pytest.raises(UnauthorizedAction):
            strict.apply(Action("transfer", {"recipient": "bob", "amount": 1}, "alice"))
        assert strict.sequence == sequence and strict.state == before
        assert len(list(strict.history())) == sequence


def test_write_failure_leaves_state_as_on_disk(tmp_path: Path) -> None:
    path = tmp_path / "economy.db"
    with Ledger.create(path, MINIMAL, trust_unsigned=True, busy_timeout=0.05) as ledger:
        ledger.apply(LEDGER_SETUP[0])
        before = copy_state(ledger.state)
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock
        with pytest.raises(LedgerWriteError):
            ledger.apply(LEDGER_SETUP[1])
        blocker.execute("ROLLBACK")
        blocker.close()
        assert ledger.state == before and ledger.sequence == 1
        ledger.apply(LEDGER_SETUP[1])
        assert ledger.sequence == 2


def test_corrupt_or_foreign_databases_fail_clearly(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database at all" * 100)
    with pytest.raises(LedgerCorrupt, match="not a readable"):
        Ledger.open(garbage)
    with pytest.raises(LedgerCorrupt, match="no ledger file"):
        Ledger.open(tmp_path / "missing.db")
    foreign = tmp_path / "foreign.db"
    sqlite3.connect(foreign).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(LedgerCorrupt, match="not a pinpoint ledger"):
        Ledger.open(foreign)

    path = tmp_path / "economy.db"
    with Ledger.create(path, MINIMAL, trust_unsigned=True, snapshot_every=3) as ledger:
        for action in LEDGER_SETUP:
            ledger.apply(action)
    with pytest.raises(LedgerExists):
        Ledger.create(path, MINIMAL)

    copies = iter(range(100))

    def tamper(*statements: tuple[str, tuple[object, ...]]) -> Path:
        """A copy of the good ledger with `statements` applied behind the ledger's back."""
        copy = tmp_path / f"tampered{next(copies)}.db"
        source, target = sqlite3.connect(path), sqlite3.connect(copy)
        source.backup(target)
        source.close()
        for sql, args in statements:
            target.execute(sql, args)
        target.commit()
        target.close()
        return copy

    bad_stake = '{"kind":"stake","params":{"amount":999999},"sender":"alice","type":"action"}'
    with pytest.raises(LedgerCorrupt, match="does not match its root"):
        Ledger.open(tamper(("UPDATE snapshots SET state = replace(state, '2000', '2001') WHERE seq = 9", ())))
    with pytest.raises(LedgerCorrupt, match="does not replay"):
        Ledger.open(
            tamper(
                ("DELETE FROM snapshots WHERE seq > 0", ()),
                ("UPDATE log SET action = ? WHERE seq = 6", (bad_stake,)),
            )
        )
    with pytest.raises(LedgerCorrupt, match="missing"):
        Ledger.open(
            tamper(("DELETE FROM snapshots WHERE seq > 3", ()), ("DELETE FROM log WHERE seq = 5", ()))
        )
    with pytest.raises(LedgerCorrupt, match="ahead of the log"):
        Ledger.open(tamper(("DELETE FROM log WHERE seq > 4", ())))
    with pytest.raises(LedgerCorrupt, match="format"):
        Ledger.open(tamper(("UPDATE meta SET value = 'other/9' WHERE key = 'format'", ())))
    with pytest.raises(LedgerCorrupt, match="unreadable"):
        Ledger.open(
            tamper(
                ("DELETE FROM snapshots WHERE seq > 0", ()), ("UPDATE log SET action = '{' WHERE seq = 2", ())
            )
        )
    with Ledger.open(path) as intact:  # the original was never touched
        assert intact.sequence == len(LEDGER_SETUP)


def _run_until_killed(path: Path, seed: int, rng: random.Random) -> int:
    """Start a worker on `path`, SIGKILL it after a random delay; returns the last acknowledged entry."""
    proc = subprocess.Popen(
        [sys.executable, str(WORKER), str(path), str(seed), "100000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
    time.sleep(rng.uniform(0.05, 0.4))
    os.kill(proc.pid, signal.SIGKILL)
    out, err = proc.communicate()
    assert proc.returncode == -signal.SIGKILL, err
    acknowledged = [int(line) for line in out.split() if line.isdigit()]
    return acknowledged[-1] if acknowledged else 0


def test_sigkill_never_loses_or_half_applies(tmp_path: Path) -> None:
    """Kill a writer at random moments (twice per database, the second run resuming after recovery):
    every acknowledged entry survives, and the recovered state is exactly the in-memory state after
    the same number of entries, with every invariant holding."""
    rng = random.Random(2024)
    for seed in range(3):
        path = tmp_path / f"crash{seed}.db"
        with Ledger.create(path, PARAMS, b"genesis", trust_unsigned=True, snapshot_every=5) as ledger:
            for action in LEDGER_SETUP:
                ledger.apply(action)
        acknowledged = len(LEDGER_SETUP)
        for _ in range(2):
            acknowledged = max(acknowledged, _run_until_killed(path, seed, rng))
            with Ledger.open(path, trust_unsigned=True) as recovered:
                assert recovered.sequence >= acknowledged  # nothing committed was lost
                assert recovered.sequence > len(LEDGER_SETUP)  # the worker did write
                reference = compute_reference_state(PARAMS, seed, recovered.sequence,
                                                    bytes(recovered.get_time_source_key()))
                assert recovered.state == reference  # nothing half-applied
                check_invariants(recovered.state)
