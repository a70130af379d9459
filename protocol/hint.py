"""Structure hints: what a referee needs, besides the job, to know the structure of step t cheaply.

A step's skeleton (its operators, arguments, shapes and bindings) is a function of the job and of
s_t's *layout* (each tensor's name, dtype and shape) and of the values of s_t's one-element tensors
(optimizer step counters, which `.item()` reads turn into operator arguments). Replaying skeletons
from s_0 finds both, at a cost linear in t. A party that signs a trace commitment for step t also
states them, in a few hundred bytes:

    hint = layout digest (32 bytes) || the elements of each one-element tensor of s_t, in canonical
                                       name order, as in their canonical encodings

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
    values = b"".join(bytes(compute_element_bytes(tensors[name])) for name, _, shape in layout if _is_scalar(shape))
    return bytes(compute_layout_digest(layout)) + values


def parse_structure_hint(hint: bytes, layout: StateLayout) -> dict[str, torch.Tensor] | None:
    """The one-element tensors a hint states for a state of this layout (CPU tensors), or None when
    the hint is for another layout or does not have exactly their bytes. Never raises."""
    try:
        if len(hint) < DIGEST_SIZE or hint[:DIGEST_SIZE] != compute_layout_digest(layout):
            return None
    except HintError:
        return None
    scalars: dict[str, torch.Tensor] = {}
    offset = DIGEST_SIZE
    for name, dtype, shape in layout:
        if not _is_scalar(shape):
            continue
        size = torch.empty((), dtype=dtype).element_size()
        chunk = hint[offset : offset + size]
        if len(chunk) != size:
            return None
        try:
            scalars[name] = decode_tensor(compute_header(dtype, shape) + chunk)
        except EncodingError:
            return None
        offset += size
    return scalars if offset == len(hint) else None
