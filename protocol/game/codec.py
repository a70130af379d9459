"""Strict reading of the JSON values the game exchanges.

Every field has exactly one accepted spelling: bytes are lowercase hex of the stated length, integers
are JSON integers (never booleans), objects have exactly the stated keys. A second spelling of the same
value would let a message or a transcript change without changing what it means, so it is refused.
Parsers raise `ParseError`; the callers that face untrusted input turn it into a verdict or a `False`.
"""

from __future__ import annotations

import math
from collections.abc import Collection
from typing import Any

MAX_PROOF_LENGTH = 64  # an inclusion proof is at most one sibling per level of a 2**64-leaf tree


class ParseError(ValueError):
    """A JSON value without the exact shape the protocol expects."""


def parse_object(value: Any, keys: Collection[str], what: str) -> dict[str, Any]:
    """A JSON object with exactly `keys`."""
    if not isinstance(value, dict):
        raise ParseError(f"{what} must be an object, got {type(value).__name__}")
    if set(value) != set(keys):
        raise ParseError(f"{what} must have exactly the keys {sorted(keys)}, got {sorted(map(str, value))}")
    return value


def parse_list(value: Any, what: str, *, max_length: int) -> list[Any]:
    """A JSON array of at most `max_length` elements."""
    if not isinstance(value, list):
        raise ParseError(f"{what} must be a list, got {type(value).__name__}")
    if len(value) > max_length:
        raise ParseError(f"{what} has {len(value)} elements, at most {max_length} allowed")
    return value


def parse_hex(value: Any, what: str, *, size: int | None = None, max_size: int | None = None) -> bytes:
    """Bytes from lowercase hex; `size` is the exact length in bytes, `max_size` an upper bound."""
    if not isinstance(value, str):
        raise ParseError(f"{what} must be a hex string, got {type(value).__name__}")
    if max_size is not None and len(value) > 2 * max_size:
        raise ParseError(f"{what} is longer than {max_size} bytes")
    try:
        data = bytes.fromhex(value)
    except ValueError:
        raise ParseError(f"{what} is not lowercase hex of whole bytes") from None
    if data.hex() != value:  # the one canonical spelling: lowercase, no spaces (C speed, unlike a regex)
        raise ParseError(f"{what} is not lowercase hex of whole bytes")
    if size is not None and len(data) != size:
        raise ParseError(f"{what} must be {size} bytes, got {len(data)}")
    return data


def parse_int(value: Any, what: str, *, low: int, high: int) -> int:
    """A JSON integer in [low, high]."""
    if type(value) is not int:
        raise ParseError(f"{what} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise ParseError(f"{what} = {value} is outside [{low}, {high}]")
    return value


def parse_float(value: Any, what: str) -> float:
    """A finite JSON number written as a float (times are floats, never integers)."""
    if type(value) is not float or not math.isfinite(value):
        raise ParseError(f"{what} must be a finite float, got {value!r}")
    return value


def parse_str(value: Any, what: str, *, choices: Collection[str] | None = None) -> str:
    """A JSON string, optionally one of `choices`."""
    if not isinstance(value, str):
        raise ParseError(f"{what} must be a string, got {type(value).__name__}")
    if choices is not None and value not in choices:
        raise ParseError(f"{what} must be one of {sorted(choices)}, got {value!r}")
    return value


def parse_proof(value: Any, what: str) -> tuple[bytes, ...]:
    """An inclusion proof: a list of 32-byte sibling hashes."""
    items = parse_list(value, what, max_length=MAX_PROOF_LENGTH)
    return tuple(parse_hex(item, f"{what}[{i}]", size=32) for i, item in enumerate(items))


def is_json_value(value: Any, depth: int = 0) -> bool:
    """True for values made only of dicts with str keys, lists, str, int, finite float, bool and None."""
    if depth > 64:
        return False
    if value is None or isinstance(value, bool | int | str):
        return True
    if isinstance(value, float):
        return math.isfinite(value)
    if isinstance(value, list):
        return all(is_json_value(item, depth + 1) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and is_json_value(item, depth + 1) for key, item in value.items())
    return False
