"""Structure hints: what a referee needs, besides the job, to know the structure of step t cheaply.

A step's skeleton (its operators, arguments, shapes and bindings) is a function of the job and of
s_t's *layout* (each tensor's name, dtype and shape) and of the values of s_t's one-element tensors
(optimizer step counters, which `.item()` reads turn into operator arguments). Replaying skeletons
from s_0 finds both, at a cost linear in t. A party that signs a trace commitment for step t also
states them, in a few dozen bytes:

    hint = layout digest (32 bytes) || runs
    runs = the one-element tensors of s_t in canonical name order, with their elements as in their
           canonical encodings, grouped into runs of equal element bytes: each run is a varint count
           followed by the elements once (optimizer step counters are all equal: one run)

    layout digest = BLAKE3("pinpoint/v1/state-layout\\n" || canonical JSON [[name, dtype code, shape], …])

The values travel without names, dtypes or shapes: a receiver that knows (or guesses) the layout
checks it against the digest and then reads the values. A hint is only ever *used* when both parties
signed the same one; since an honest party's hint is true, agreement makes it true, and anything else
falls back to the replay.
"""

from __future__ import annotations

from collections.abc import Mapping

import blake3
import torch

from protocol.encoding import DTYPE_CODES, EncodingError, compute_element_bytes, compute_header, decode_tensor
from protocol.signing import compute_canonical_json
from protocol.state import get_sorted_names
from protocol.types import DIGEST_SIZE, Root

LAYOUT_DOMAIN = b"pinpoint/v1/state-layout\n"
MAX_HINT_BYTES = 1 << 16  # far beyond the counters of any model here; bounds what a move may carry

StateLayout = tuple[tuple[str, torch.dtype, tuple[int, ...]], ...]


class HintError(ValueError):
    """A state that cannot be described by a hint (a dtype without an encoding)."""


def compute_state_layout(tensors: Mapping[str, torch.Tensor]) -> StateLayout:
    """(name, dtype, shape) of every tensor, in canonical name order."""
    return tuple((name, tensors[name].dtype, tuple(tensors[name].shape)) for name in get_sorted_names(tensors))


def compute_layout_digest(layout: StateLayout) -> Root:
    try:
        body = [[name, DTYPE_CODES[dtype], list(shape)] for name, dtype, shape in layout]
    except KeyError as error:
        raise HintError(f"dtype {error.args[0]} has no canonical encoding") from error
    return Root(blake3.blake3(LAYOUT_DOMAIN + compute_canonical_json(body)).digest())


def _is_scalar(shape: tuple[int, ...]) -> bool:
    count = 1
    for size in shape:
        count *= size
    return count == 1


def compute_structure_hint(tensors: Mapping[str, torch.Tensor]) -> bytes:
    """The hint of a state: its layout digest and its one-element tensors' elements."""
    layout = compute_state_layout(tensors)
    values = [bytes(compute_element_bytes(tensors[name])) for name, _, shape in layout if _is_scalar(shape)]
    runs = bytearray()
    start = 0
    while start < len(values):
        end = start
        while end < len(values) and values[end] == values[start]:
            end += 1
        runs += _encode_varint(end - start) + values[start]
        start = end
    return bytes(compute_layout_digest(layout)) + bytes(runs)


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _decode_varint(data: bytes, offset: int) -> tuple[int, int] | None:
    value = shift = 0
    while offset < len(data) and shift < 64:
        byte = data[offset]
        value |= (byte & 0x7F) << shift
        offset += 1
        if not byte & 0x80:
            return (value, offset) if byte or shift == 0 else None  # minimal encodings only
        shift += 7
    return None


def parse_structure_hint(hint: bytes, layout: StateLayout) -> dict[str, torch.Tensor] | None:
    """The one-element tensors a hint states for a state of this layout (CPU tensors), or None when
    the hint is for another layout or does not have exactly their bytes. Never raises."""
    try:
        if len(hint) < DIGEST_SIZE or hint[:DIGEST_SIZE] != compute_layout_digest(layout):
            return None
    except HintError:
        return None
    entries = [(name, dtype, shape) for name, dtype, shape in layout if _is_scalar(shape)]
    scalars: dict[str, torch.Tensor] = {}
    offset, index = DIGEST_SIZE, 0
    while index < len(entries):
        decoded = _decode_varint(hint, offset)
        if decoded is None or decoded[0] == 0 or index + decoded[0] > len(entries):
            return None
        count, offset = decoded
        size = torch.empty((), dtype=entries[index][1]).element_size()
        chunk = hint[offset : offset + size]
        offset += size
        for name, dtype, shape in entries[index : index + count]:
            if len(chunk) != size or torch.empty((), dtype=dtype).element_size() != size:
                return None
            try:
                scalars[name] = decode_tensor(compute_header(dtype, shape) + chunk)
            except EncodingError:
                return None
        index += count
    return scalars if offset == len(hint) else None
