"""Binary Merkle trees with domain-separated leaves, nodes and padding.

The tree over n leaves is the complete binary tree over the leaves padded with `EMPTY` to the
next power of two P (P = 1 for n <= 1). Hashes (BLAKE3, 32 bytes):

    leaf  = H(0x00 || leaf bytes)
    node  = H(0x01 || left || right)
    EMPTY = H(0x02)                     the padding leaf, never equal to a real leaf's hash

A node is named by (height, index): height 0 holds the leaf hashes, height log2(P) the root.
The dispute game descends this tree: a party reveals the 2**m descendants of a node both sides
committed to, and anyone can fold them back up (`compute_subtree_root`) to check the reveal.
Verification functions return False on bad input; they never raise (STYLE.md, item 4).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import blake3

from protocol.types import DIGEST_SIZE, Root

LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY: Root = Root(blake3.blake3(b"\x02").digest())


def hash_leaf(data: bytes) -> Root:
    """The hash of one leaf's bytes."""
    return Root(blake3.blake3(LEAF_PREFIX + data).digest())


def hash_node(left: bytes, right: bytes) -> Root:
    """The hash of an inner node from its two children."""
    return Root(blake3.blake3(NODE_PREFIX + left + right).digest())


def compute_padded_size(n: int) -> int:
    """P, the power of two the leaves are padded to (1 for n <= 1)."""
    size = 1
    while size < n:
        size *= 2
    return size


def compute_height(n: int) -> int:
    """Height of the root above the leaves for n leaves."""
    return compute_padded_size(n).bit_length() - 1


def compute_subtree_root(nodes: Sequence[bytes]) -> Root:
    """Fold a power-of-two run of sibling nodes up to the root of their subtree."""
    level = list(nodes)
    if not level or len(level) & (len(level) - 1):
        raise ValueError(f"need a non-empty power-of-two run of nodes, got {len(level)}")
    while len(level) > 1:
        level = [hash_node(level[i], level[i + 1]) for i in range(0, len(level), 2)]
    return Root(level[0])


@dataclass(frozen=True)
class MerkleTree:
    """All levels of a tree: `levels[0]` are the padded leaf hashes, `levels[-1] == [root]`."""

    levels: tuple[tuple[Root, ...], ...]
    size: int  # n, the number of real leaves

    @property
    def root(self) -> Root:
        return self.levels[-1][0]

    @property
    def height(self) -> int:
        return len(self.levels) - 1

    def node(self, height: int, index: int) -> Root:
        return self.levels[height][index]

    def children(self, height: int, index: int, depth: int) -> tuple[Root, ...]:
        """The 2**depth descendants of node (height, index) at height - depth."""
        if not 0 < depth <= height:
            raise ValueError(f"depth {depth} out of range for a node at height {height}")
        width = 1 << depth
        return self.levels[height - depth][index * width : (index + 1) * width]

    def prove(self, index: int) -> tuple[Root, ...]:
        """Inclusion proof of leaf `index`: the sibling hashes from the leaf up to the root."""
        if not 0 <= index < self.size:
            raise IndexError(f"leaf {index} out of range for a tree of {self.size} leaves")
        proof = []
        for level in self.levels[:-1]:
            proof.append(level[index ^ 1])
            index //= 2
        return tuple(proof)


def compute_tree_from_hashes(leaf_hashes: Sequence[bytes]) -> MerkleTree:
    """The tree over already-hashed leaves (each 32 bytes)."""
    size = len(leaf_hashes)
    padded = compute_padded_size(size)
    level = tuple(Root(h) for h in leaf_hashes) + (EMPTY,) * (padded - size)
    levels = [level]
    while len(level) > 1:
        level = tuple(hash_node(level[i], level[i + 1]) for i in range(0, len(level), 2))
        levels.append(level)
    return MerkleTree(levels=tuple(levels), size=size)


def compute_tree(leaves: Sequence[bytes]) -> MerkleTree:
    """The tree over raw leaf bytes."""
    return compute_tree_from_hashes([hash_leaf(leaf) for leaf in leaves])


def compute_root(leaves: Sequence[bytes]) -> Root:
    """The root over raw leaf bytes."""
    return compute_tree(leaves).root


def compute_root_from_proof(index: int, leaf_hash: bytes, proof: Sequence[bytes]) -> Root:
    """Fold an inclusion proof up from a leaf hash; raises ValueError on a malformed proof."""
    node = bytes(leaf_hash)
    if len(node) != DIGEST_SIZE or index < 0 or index >> len(proof):
        raise ValueError("malformed inclusion proof")
    for sibling in proof:
        if not isinstance(sibling, bytes | bytearray) or len(sibling) != DIGEST_SIZE:
            raise ValueError("malformed inclusion proof")
        node = hash_node(node, sibling) if index % 2 == 0 else hash_node(sibling, node)
        index //= 2
    return Root(node)


def verify_inclusion(root: bytes, size: int, index: int, leaf_hash: bytes, proof: Sequence[bytes]) -> bool:
    """True when `proof` shows `leaf_hash` at `index` of the tree of `size` leaves under `root`."""
    try:
        if not 0 <= index < size or len(proof) != compute_height(size):
            return False
        return compute_root_from_proof(index, leaf_hash, proof) == bytes(root)
    except (ValueError, TypeError):
        return False
