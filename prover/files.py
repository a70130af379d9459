"""Files: atomic writes, and reads bounded before anything is allocated.

A write goes to a temporary file beside the target, is fsynced and renamed into place, and the folder
is fsynced: a reader sees either the old file or the new one, never a torn one, whatever moment the
writer is killed at. An exclusive write links the finished file into place instead, so it never
replaces a file that exists (a second writer is refused).

A read opens the file without following it into a device, a pipe or a directory (through a symlink
or not), checks its size against a limit before reading, and, for JSON, its nesting depth before
parsing: a hostile or mistaken file is a `FileFormatError` naming it, never a hang, an exhausted
memory or a stack overflow.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

MAX_JSON_BYTES = 1 << 26  # 64 MiB: run.json, roots.json, a job spec (a 10^6-step run's roots are 67 MB of hex)
MAX_JSON_DEPTH = 64  # pinpoint's own JSON files nest a dozen levels at most
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


class FileFormatError(ValueError):
    """A file that is missing, unreadable, too large, or not what it claims to be."""


def write_atomic(
    path: str | os.PathLike[str], data: bytes | Callable[[IO[bytes]], object], mode: int = 0o644, exclusive: bool = False
) -> Path:
    """Write `data` (bytes, or a function that writes to a binary stream) to `path` atomically. With
    `exclusive`, a file already at `path` is never replaced: FileExistsError instead."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            if isinstance(data, bytes | bytearray | memoryview):
                handle.write(data)
            else:
                data(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, mode)
        if exclusive:
            os.link(temporary, target)  # fails if the target exists, whoever made it and when
            os.unlink(temporary)
        else:
            os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    folder = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    return target


def write_json_atomic(path: str | os.PathLike[str], value: Any) -> None:
    write_atomic(path, (json.dumps(value, indent=2, sort_keys=True) + "\n").encode())


def read_bounded(path: str | os.PathLike[str], what: str, limit: int) -> bytes:
    """The bytes of the regular file at `path`, at most `limit` of them; FileFormatError naming `what`
    and the file when it is missing, unreadable, not a regular file (a device, a pipe or a folder,
    through a symlink or not) or larger than `limit`."""
    try:
        # O_NONBLOCK: opening a pipe must not wait for a writer (no effect on regular files)
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError as error:
        raise FileFormatError(f"{what} not found: {path}") from error
    except OSError as error:
        raise FileFormatError(f"cannot read {what} {path}: {error.strerror}") from error
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise FileFormatError(f"{what} {path} is not a regular file (a folder, device or pipe)")
        if info.st_size > limit:
            raise FileFormatError(f"{what} {path} is {info.st_size} bytes, more than the limit of {limit}")
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(info.st_size + 1)  # one byte more tells a file that grew meanwhile
    except OSError as error:
        raise FileFormatError(f"cannot read {what} {path}: {error.strerror}") from error
    finally:
        os.close(fd)
    if len(data) != info.st_size:
        raise FileFormatError(f"{what} {path} changed while it was read; read it again once it is written")
    return data


def compute_json_depth(data: bytes) -> int:
    """The deepest nesting of arrays and objects in JSON text (strings skipped), without parsing it."""
    import numpy as np

    codes = np.frombuffer(_STRING.sub(b'""', data), dtype=np.uint8)
    steps = np.isin(codes, (ord("["), ord("{"))).astype(np.int64) - np.isin(codes, (ord("]"), ord("}"))).astype(np.int64)
    return int(np.cumsum(steps).max()) if steps.size else 0


def read_json(path: str | os.PathLike[str], what: str, limit: int = MAX_JSON_BYTES) -> Any:
    """Parse a JSON file of at most `limit` bytes and `MAX_JSON_DEPTH` levels; FileFormatError naming
    `what` when it is missing, unreadable, too large, too deep or malformed."""
    data = read_bounded(path, what, limit)
    if compute_json_depth(data) > MAX_JSON_DEPTH:
        raise FileFormatError(f"{what} {path} nests deeper than {MAX_JSON_DEPTH} levels")
    try:
        return json.loads(data)
    except (ValueError, UnicodeDecodeError, RecursionError) as error:
        raise FileFormatError(f"{what} is corrupt (not JSON): {path}") from error
