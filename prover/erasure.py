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

from protocol.availability import (
    MUL,
    AvailabilityError,
    check_code,
    compute_data_shards,
    compute_decoding_matrix,
    compute_generator,
)


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
    """The n shards of the blob, as `protocol.availability.encode_shards`."""
    check_code(k, n)
    data = compute_data_shards(bytes(blob), k)
    return np.concatenate([data, compute_product_fast(compute_generator(k, n)[k:], data)])


def decode_shards_fast(shards: Mapping[int, bytes], k: int, n: int) -> bytes:
    """The k data shards, concatenated, from k shards by index, as `protocol.availability.decode_shards`."""
    indices = sorted(shards)
    shard_size = len(shards[indices[0]]) if indices else 0
    if len(indices) != k or shard_size == 0 or any(len(shards[i]) != shard_size for i in indices):
        raise AvailabilityError(f"decoding needs {k} shards of one non-zero size")
    rows = np.stack([np.frombuffer(bytes(shards[i]), dtype=np.uint8) for i in indices])
    data = np.zeros((k, shard_size), dtype=np.uint8)
    missing = [j for j in range(k) if j not in shards]
    for j in range(k):
        if j in shards:
            data[j] = rows[indices.index(j)]
    if missing:
        data[missing] = compute_product_fast(compute_decoding_matrix(indices, k, n)[missing], rows)
    return data.tobytes()
