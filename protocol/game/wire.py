"""The game's wire format: a compact, lossless binary encoding of a message's JSON.

Messages are JSON values (canonical JSON is what a party signs and what a transcript stores). On the
wire, the same value travels in binary, and `decode_wire(encode_wire(v)) == v` for every JSON value,
so a receiver rebuilds exactly the signed JSON. One tag byte starts each value:

    0x00 null   0x01 false   0x02 true
    0x03 int    zigzag varint (any size)
    0x04 float  8 bytes, IEEE 754 binary64, big-endian
    0x05 str    varint byte length, UTF-8
    0x06 hex    varint byte length, the raw bytes of a lowercase even-length hex string
                (hashes, signatures, leaves and tensors travel as bytes, not as twice as many digits)
    0x07 word   one byte: an index into WORDS (the game's field names and enum values)
    0x08 list   varint count, the items
    0x09 dict   varint count, then key (a str, hex or word value) and value pairs, in sorted key order

The size of a message on the wire is what the game counts as bytes exchanged.
"""

from __future__ import annotations

import struct
from typing import Any

WORDS: tuple[str, ...] = (
    "seq", "sender", "move", "signature", "type", "hashes", "nodes", "states", "previous", "proof",
    "trace", "commitment", "leaf", "evidence", "items", "kind", "index", "digest", "data", "op_leaf",
    "state_before_leaf", "tensor", "worker", "challenger", "job_id", "step", "state_before", "state_after",
    "ops_root", "num_ops", "num_state_after", "game_id", "message",
)
"""Strings common in messages, sent as one byte. Never reorder: only append."""
_WORD_INDEX = {word: index for index, word in enumerate(WORDS)}
assert len(WORDS) < 256

NULL, FALSE, TRUE, INT, FLOAT, STR, HEX, WORD, LIST, DICT = range(10)
MAX_DEPTH = 64


class WireError(ValueError):
    """Bytes that are not a well-formed encoding."""


def is_hex(text: str) -> bool:
    """A lowercase hex string of whole bytes (travels as raw bytes)."""
    if len(text) % 2:
        return False
    try:
        return bytes.fromhex(text).hex() == text
    except ValueError:
        return False


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _encode(value: Any, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise WireError("value nests too deeply")
    if value is None:
        out.append(NULL)
    elif value is False:
        out.append(FALSE)
    elif value is True:
        out.append(TRUE)
    elif isinstance(value, int):
        out.append(INT)
        out += _varint(value * 2 if value >= 0 else -value * 2 - 1)  # zigzag: small magnitudes, small codes
    elif isinstance(value, float):
        out.append(FLOAT)
        out += struct.pack(">d", value)
    elif isinstance(value, str):
        if value in _WORD_INDEX:
            out += bytes((WORD, _WORD_INDEX[value]))
        elif is_hex(value):
            raw = bytes.fromhex(value)
            out.append(HEX)
            out += _varint(len(raw)) + raw
        else:
            raw = value.encode()
            out.append(STR)
            out += _varint(len(raw)) + raw
    elif isinstance(value, list | tuple):
        out.append(LIST)
        out += _varint(len(value))
        for item in value:
            _encode(item, out, depth + 1)
    elif isinstance(value, dict):
        out.append(DICT)
        out += _varint(len(value))
        for key in sorted(value):
            if not isinstance(key, str):
                raise WireError("object keys are strings")
            _encode(key, out, depth + 1)
            _encode(value[key], out, depth + 1)
    else:
        raise WireError(f"{type(value).__name__} is not a JSON value")


def encode_wire(value: Any) -> bytes:
    """The binary encoding of a JSON value."""
    out = bytearray()
    _encode(value, out, 0)
    return bytes(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.at = 0

    def take(self, count: int) -> bytes:
        if count < 0 or self.at + count > len(self.data):
            raise WireError("truncated")
        chunk = self.data[self.at : self.at + count]
        self.at += count
        return chunk

    def varint(self) -> int:
        value, shift = 0, 0
        while True:
            byte = self.take(1)[0]
            value |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                return value
            if shift > 7 * 20:
                raise WireError("varint too long")

    def value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise WireError("value nests too deeply")
        tag = self.take(1)[0]
        if tag in (NULL, FALSE, TRUE):
            return (None, False, True)[tag]
        if tag == INT:
            code = self.varint()
            return code // 2 if code % 2 == 0 else -(code + 1) // 2
        if tag == FLOAT:
            return struct.unpack(">d", self.take(8))[0]
        if tag == STR:
            try:
                return self.take(self.varint()).decode()
            except UnicodeDecodeError as error:
                raise WireError("string is not UTF-8") from error
        if tag == HEX:
            return self.take(self.varint()).hex()
        if tag == WORD:
            index = self.take(1)[0]
            if index >= len(WORDS):
                raise WireError(f"unknown word {index}")
            return WORDS[index]
        if tag == LIST:
            return [self.value(depth + 1) for _ in range(self.varint())]
        if tag == DICT:
            result: dict[str, Any] = {}
            for _ in range(self.varint()):
                key = self.value(depth + 1)
                if not isinstance(key, str) or key in result:
                    raise WireError("object keys are distinct strings")
                result[key] = self.value(depth + 1)
            return result
        raise WireError(f"unknown tag {tag}")


def decode_wire(data: bytes) -> Any:
    """The JSON value a binary encoding holds; WireError on malformed or trailing bytes."""
    reader = _Reader(bytes(data))
    value = reader.value(0)
    if reader.at != len(reader.data):
        raise WireError("trailing bytes")
    return value
