"""Fast Reed–Solomon encoding and decoding of checkpoints: the code of `protocol.availability`, compiled.

The reference multiplies a whole shard by one coefficient per numpy call; here one compiled loop walks
the bytes once per output row and accumulates every product with a 256-byte row of the field's
multiplication table (which stays in L1). Results are bit for bit the reference's (the tests compare
them), only faster: the matrix, the field and the layout are the protocol's.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from numba import njit

from protocol.availability import MUL, decode_shards, encode_shards


@njit(cache=True, nogil=True)
def _multiply_accumulate(matrix: np.ndarray, rows: np.ndarray, table: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover - compiled
    """out[i] ^= Σ_j matrix[i, j] · rows[j] over GF(2^8), in blocks that keep each output row in cache."""
    count, width = matrix.shape
    size = rows.shape[1]
    block = 16384
    for start in range(0, size, block):
        end = min(size, start + block)
        for i in range(count):
            target = out[i]
            for j in range(width):
                coefficient = matrix[i, j]
                if coefficient == 0:
                    continue
                source = rows[j]
                if coefficient == 1:
                    for s in range(start, end):
                        target[s] ^= source[s]
                else:
                    product = table[coefficient]
                    for s in range(start, end):
                        target[s] ^= product[source[s]]


def compute_product_fast(matrix: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """matrix · rows over GF(2^8), as `protocol.availability.compute_product`."""
    out = np.zeros((matrix.shape[0], rows.shape[1]), dtype=np.uint8)
    _multiply_accumulate(np.ascontiguousarray(matrix, dtype=np.uint8), np.ascontiguousarray(rows, dtype=np.uint8),
                         MUL, out)
    return out


def encode_shards_fast(blob: bytes, k: int, n: int) -> np.ndarray:
    """The n shards of the blob, as `protocol.availability.encode_shards`, with the compiled product."""
    return encode_shards(blob, k, n, product=compute_product_fast)


def decode_shards_fast(shards: Mapping[int, bytes], k: int, n: int) -> bytes:
    """The k data shards, concatenated, as `protocol.availability.decode_shards`, with the compiled product."""
    return decode_shards(shards, k, n, product=compute_product_fast)
