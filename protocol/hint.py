"""Structure hints: s_t's layout, proven against s_t's root, so a referee knows step t's structure cheaply.

A step's skeleton (its operators, arguments, shapes and bindings) is a function of the job, of s_t's
*layout* (each tensor's name, dtype and shape) and of the values of s_t's one-element tensors (the step
counter, optimizer step counts and learning rates, which `.item()` reads turn into operator arguments).
Replaying skeletons from s_0 finds them at a cost linear in t. A party that signs a trace commitment
for step t states them instead, as an opening of every state leaf of s_t:

    hint  = entry || entry || …           one per tensor of s_t, in canonical name order
    entry = u16le L || name (L bytes of UTF-8) || header || opening
    header  = the tensor's encoding header (protocol.encoding): "PPT1", dtype code, ndim, dimensions
    opening = the element bytes themselves when they take at most OPENED_BYTES bytes (every
              one-element tensor), else the 32-byte data hash

Each entry opens its tensor's digest, H(header || data hash) (the data hash computed from the element
bytes when those are given), hence its state leaf; the Merkle root over the leaves must be the s_t
both parties agreed on. A hint that opens to that root states the true layout and values whoever sent
it (a different one would be a hash collision), so a referee takes it without trusting its sender,
and a hint that does not is its sender's fault (the game decides it; `open_structure_hint` never
raises). Checking one costs a hash per tensor and the tree over the leaves: bounded by the hint's
size, whatever t is.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass

import torch

from protocol.encoding import (
    MAGIC,
    MAX_NDIM,
    EncodingError,
    compute_data_hash_of_elements,
    compute_digest_of_opening,
    compute_element_bytes,
    compute_header,
    decode_header,
    decode_tensor,
)
from protocol.merkle import compute_tree
from protocol.state import MAX_NAME_BYTES, StateLeafError, compute_state_leaf, get_sorted_names
from protocol.types import DIGEST_SIZE

MAX_HINT_BYTES = 1 << 20  # a state of some ten thousand tensors; bounds what a move may carry and a referee reads
OPENED_BYTES = DIGEST_SIZE  # elements of at most this many bytes travel as themselves: never longer than a hash

StateLayout = tuple[tuple[str, torch.dtype, tuple[int, ...]], ...]


@dataclass(frozen=True)
class StateOpening:
    """What a proven hint says about s_t: every tensor's layout, and the values of the small ones."""

    layout: StateLayout  # (name, dtype, shape) of every tensor, canonical name order
    values: Mapping[str, torch.Tensor]  # each tensor of at most OPENED_BYTES element bytes, on the CPU

    def get_scalars(self) -> dict[str, torch.Tensor]:
        """The one-element tensors (what a step's `.item()` reads may depend on)."""
        return {name: value for name, value in self.values.items() if value.numel() == 1}

    def get_shapes(self) -> dict[str, tuple[torch.dtype, tuple[int, ...]]]:
        return {name: (dtype, shape) for name, dtype, shape in self.layout}


def compute_state_layout(tensors: Mapping[str, torch.Tensor]) -> StateLayout:
    """(name, dtype, shape) of every tensor, in canonical name order."""
    return tuple((name, tensors[name].dtype, tuple(tensors[name].shape)) for name in get_sorted_names(tensors))


def compute_structure_hint(tensors: Mapping[str, torch.Tensor], data_hashes: Mapping[str, bytes] | None = None) -> bytes:
    """The hint of a state: every tensor's name, header and opening. `data_hashes` may give the data
    hashes already computed (`protocol.encoding.compute_data_hash`), so the state is hashed once."""
    out = bytearray()
    for name in get_sorted_names(tensors):
        tensor = tensors[name]
        raw = name.encode()
        out += struct.pack("<H", len(raw)) + raw + compute_header(tensor.dtype, tuple(tensor.shape))
        known = None if data_hashes is None else data_hashes.get(name)
        if known is not None and tensor.numel() * tensor.element_size() > OPENED_BYTES:
            out += bytes(known)
            continue
        elements = compute_element_bytes(tensor)
        out += bytes(elements) if len(elements) <= OPENED_BYTES else compute_data_hash_of_elements(elements)
    return bytes(out)


def open_structure_hint(hint: bytes, state_root: bytes) -> StateOpening | None:
    """The layout and small values of the state whose root is `state_root`, as the hint opens it; None
    when the hint is malformed or does not open to that root. Never raises."""
    try:
        return _open(bytes(hint), bytes(state_root))
    except (EncodingError, StateLeafError, ValueError, IndexError, struct.error):
        return None


def _open(hint: bytes, state_root: bytes) -> StateOpening | None:
    if len(hint) > MAX_HINT_BYTES:
        return None
    leaves: list[bytes] = []
    layout: list[tuple[str, torch.dtype, tuple[int, ...]]] = []
    values: dict[str, torch.Tensor] = {}
    offset, previous = 0, b""
    while offset < len(hint):
        (length,) = struct.unpack_from("<H", hint, offset)
        raw = hint[offset + 2 : offset + 2 + length]
        if not 1 <= length <= MAX_NAME_BYTES or len(raw) != length or (leaves and raw <= previous):
            return None  # a name out of canonical order (or repeated) opens no state
        name, previous = raw.decode(), raw
        offset += 2 + length
        if offset + 6 > len(hint) or hint[offset : offset + 4] != MAGIC or hint[offset + 5] > MAX_NDIM:
            return None
        end = offset + 6 + 8 * hint[offset + 5]
        header_bytes = hint[offset:end]
        header, _ = decode_header(header_bytes)
        offset = end
        if header.nbytes <= OPENED_BYTES:
            elements = hint[offset : offset + header.nbytes]
            if len(elements) != header.nbytes:
                return None
            values[name] = decode_tensor(header_bytes + elements)  # refuses non-canonical elements
            data_hash: bytes = compute_data_hash_of_elements(elements)
            offset += header.nbytes
        else:
            data_hash = hint[offset : offset + DIGEST_SIZE]
            if len(data_hash) != DIGEST_SIZE:
                return None
            offset += DIGEST_SIZE
        leaves.append(compute_state_leaf(name, compute_digest_of_opening(header_bytes, data_hash)))
        layout.append((name, header.dtype, header.shape))
    if not leaves or compute_tree(leaves).root != state_root:
        return None
    return StateOpening(tuple(layout), values)
