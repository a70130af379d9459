"""Writing results: every file is written atomically (to a temporary file in the same directory,
flushed and fsynced, then renamed over the target, and the directory fsynced), so a crash leaves
either the old file or the new one, never half of one."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from pinpoint.simulation.report import to_jsonable
from prover.files import write_atomic

TABLE_PARQUET = "runs.parquet"
TABLE_CSV = "runs.csv"
SUMMARY_JSON = "summary.json"
TIMESERIES_PNG = "timeseries.png"
PHASE_PNG = "phase-diagram.png"

"""Permissions of written files (a temporary file starts private; results are meant to be read)."""


class OutputError(OSError):
    """The output directory cannot be used (it is a file, or not writable)."""


def prepare_output_dir(out: Path) -> Path:
    """Create `out` (and its parents) if needed; OutputError if it exists as something else."""
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out} exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OutputError(f"cannot create {out}: {error}") from error
    if not os.access(out, os.W_OK):
        raise OutputError(f"{out} is not writable")
    return out


@contextmanager
def claim_output_dir(out: Path) -> Iterator[Path]:
    """`out` as a new directory for one experiment's outputs, held for the duration: OutputError when
    it is a file or holds files already (nothing is overwritten), or another process holds it (a second
    writer). It is locked with `flock` while inside (released by the kernel however the process ends);
    on an error or interrupt inside, everything written into it is removed again."""
    if out.name in ("", ".", ".."):
        raise OutputError(f"--out {out} names no new directory; give it a name of its own")
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise OutputError(f"--out {out} already exists and is not an empty directory; name a new one (nothing is overwritten)")
    created = not out.exists()
    prepare_output_dir(out)
    fd = os.open(out, os.O_RDONLY | os.O_DIRECTORY)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as error:
            raise OutputError(f"--out {out} is in use by another simulation; wait for it or name another directory") from error
        if any(out.iterdir()):
            raise OutputError(f"--out {out} was filled by another process; name a new directory (nothing is overwritten)")
        try:
            yield out
        except BaseException:
            if created:
                shutil.rmtree(out, ignore_errors=True)
            else:
                for entry in out.iterdir():
                    if entry.is_dir() and not entry.is_symlink():
                        shutil.rmtree(entry, ignore_errors=True)
                    else:
                        entry.unlink(missing_ok=True)
            raise
    finally:
        os.close(fd)


def write_table(table: pd.DataFrame, out: Path) -> list[Path]:
    """The table as Parquet (pyarrow) and CSV."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    written = [write_atomic(out / TABLE_PARQUET, lambda stream: pq.write_table(arrow, stream))]
    csv = table.to_csv(index=False, lineterminator="\n").encode("utf-8")
    written.append(write_atomic(out / TABLE_CSV, lambda stream: stream.write(csv)))
    return written


def write_json(data: Any, path: Path) -> Path:
    text = json.dumps(to_jsonable(data), indent=2, sort_keys=False, allow_nan=False) + "\n"
    return write_atomic(path, lambda stream: stream.write(text.encode("utf-8")))
