"""Atomic files: write to a temporary file beside the target, fsync, rename, fsync the folder.

A reader therefore sees either the old file or the new one, never a torn one, whatever moment the
writer is killed at.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any


def write_atomic(path: str | os.PathLike[str], data: bytes | Callable[[IO[bytes]], object], mode: int = 0o644) -> Path:
    """Write `data` (bytes, or a function that writes to a binary stream) to `path` atomically."""
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


def read_json(path: str | os.PathLike[str], what: str) -> Any:
    """Parse a JSON file; FileFormatError naming `what` when it is missing or malformed."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError as error:
        raise FileFormatError(f"{what} not found: {path}") from error
    except (ValueError, UnicodeDecodeError) as error:
        raise FileFormatError(f"{what} is corrupt (not JSON): {path}") from error


class FileFormatError(ValueError):
    """A file that is missing, truncated or not what it claims to be."""
