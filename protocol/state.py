"""State roots: the Merkle root over the named tensors that fully determine the next step.

A state leaf is `u16 length of the name || the name in UTF-8 || the tensor's 32-byte digest`;
leaves are sorted by name (bytewise UTF-8), so the root does not depend on insertion order. A chain
of state roots s_0 … s_T is committed by the Merkle root over the roots themselves (each leaf is the
32-byte root).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping, Sequence

from protocol.merkle import MerkleTree, compute_tree
from protocol.types import DIGEST_SIZE, Root

MAX_NAME_BYTES = 1024


class StateLeafError(ValueError):
    """A state leaf that is not `length || name || digest`."""


def compute_state_leaf(name: str, digest: bytes) -> bytes:
    """The leaf bytes of one named tensor."""
    raw = name.encode()
    if not raw or len(raw) > MAX_NAME_BYTES or len(digest) != DIGEST_SIZE:
        raise StateLeafError(f"bad state leaf for {name!r}")
    return struct.pack("<H", len(raw)) + raw + bytes(digest)


def decode_state_leaf(leaf: bytes) -> tuple[str, Root]:
    """(name, digest) from a state leaf's bytes."""
    if len(leaf) < 2:
        raise StateLeafError("state leaf too short")
    (length,) = struct.unpack("<H", leaf[:2])
    if len(leaf) != 2 + length + DIGEST_SIZE:
        raise StateLeafError("state leaf length does not match its name length")
    try:
        name = leaf[2 : 2 + length].decode()
    except UnicodeDecodeError as error:
        raise StateLeafError("state leaf name is not UTF-8") from error
    return name, Root(leaf[2 + length :])


def get_sorted_names(names: Sequence[str] | Mapping[str, object]) -> list[str]:
    """The canonical order of state names."""
    return sorted(names, key=lambda name: name.encode())


def compute_state_tree(digests: Mapping[str, bytes]) -> MerkleTree:
    """The state tree over named tensor digests."""
    return compute_tree([compute_state_leaf(name, digests[name]) for name in get_sorted_names(digests)])


def compute_state_root(digests: Mapping[str, bytes]) -> Root:
    return compute_state_tree(digests).root


def compute_chain_tree(state_roots: Sequence[bytes]) -> MerkleTree:
    """The tree over s_0 … s_T whose root a run commitment signs."""
    return compute_tree([bytes(root) for root in state_roots])
