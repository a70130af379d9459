"""Canonical tensor encoding and digest.

    encoding = MAGIC (4 bytes "PPT1") || dtype code (1 byte) || ndim (1 byte)
               || each dimension as u64 little-endian || the elements, row-major, little-endian
    digest   = BLAKE3(encoding), 32 bytes

The encoding depends only on the tensor's dtype, shape and values: never on strides, storage offset,
device or the machine's byte order. Every NaN is encoded as the one quiet NaN with a clear sign and
payload (0x7FC00000 for float32), since processors disagree on the NaN bits an operation produces
(x86 gives 0xFFC00000 for inf - inf, ARM 0x7FC00000). Otherwise two tensors have the same digest
exactly when they have the same dtype, shape and bits.
"""

from __future__ import annotations

import struct
import sys
from dataclasses import dataclass

import blake3
import numpy as np
import torch

from protocol.types import DIGEST_SIZE, Root

MAGIC = b"PPT1"
MAX_NDIM = 64

# Codes are part of the protocol: never renumber, only append.
DTYPE_CODES: dict[torch.dtype, int] = {
    torch.float32: 1,
    torch.float64: 2,
    torch.float16: 3,
    torch.bfloat16: 4,
    torch.int64: 5,
    torch.int32: 6,
    torch.int16: 7,
    torch.int8: 8,
    torch.uint8: 9,
    torch.bool: 10,
}
DTYPES_BY_CODE: dict[int, torch.dtype] = {code: dtype for dtype, code in DTYPE_CODES.items()}

# numpy has no bfloat16: its bytes travel as int16 of the same width.
_NUMPY_VIEW: dict[torch.dtype, torch.dtype] = {torch.bfloat16: torch.int16}


class EncodingError(ValueError):
    """A tensor or a byte string that is not a valid canonical encoding."""


@dataclass(frozen=True)
class TensorHeader:
    """What a canonical encoding says about its tensor before the elements."""

    dtype: torch.dtype
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        count = 1
        for size in self.shape:
            count *= size
        return count

    @property
    def nbytes(self) -> int:
        return self.numel * torch.empty((), dtype=self.dtype).element_size()


def compute_header(dtype: torch.dtype, shape: tuple[int, ...]) -> bytes:
    """The encoding's header for a tensor of this dtype and shape."""
    if dtype not in DTYPE_CODES:
        raise EncodingError(f"dtype {dtype} has no canonical encoding")
    if len(shape) > MAX_NDIM or any(size < 0 for size in shape):
        raise EncodingError(f"shape {shape} has no canonical encoding")
    return MAGIC + bytes([DTYPE_CODES[dtype], len(shape)]) + struct.pack(f"<{len(shape)}Q", *shape)


CANONICAL_NAN = float("nan")  # torch creates it as the quiet NaN with clear sign and payload
PARALLEL_HASH_BYTES = 1 << 20  # from this size on, BLAKE3 hashes on all cores (same digest)


def _has_nan(tensor: torch.Tensor) -> bool:
    if not tensor.dtype.is_floating_point:
        return False
    if tensor.dtype in _NUMPY_VIEW:
        return bool(torch.isnan(tensor).any())
    return bool(np.isnan(tensor.numpy()).any())  # one vectorised pass, cheaper than torch's here


def compute_element_bytes(tensor: torch.Tensor) -> memoryview:
    """The tensor's elements, row-major and little-endian, NaNs canonical; no copy when already so."""
    flat = tensor.detach()
    if flat.device.type != "cpu":
        flat = flat.cpu()
    flat = flat.contiguous()
    if _has_nan(flat):
        flat = torch.where(torch.isnan(flat), torch.tensor(CANONICAL_NAN, dtype=flat.dtype), flat)
    flat = flat.view(_NUMPY_VIEW.get(flat.dtype, flat.dtype))
    array = flat.numpy().reshape(-1)
    if sys.byteorder == "big" and array.dtype.itemsize > 1:
        array = array.byteswap()
    return array.data.cast("B")


def encode_tensor(tensor: torch.Tensor) -> bytes:
    """The full canonical encoding of a tensor."""
    return compute_header(tensor.dtype, tuple(tensor.shape)) + bytes(compute_element_bytes(tensor))


def compute_digest(tensor: torch.Tensor) -> Root:
    """BLAKE3 digest of the tensor's canonical encoding, without materialising the encoding."""
    elements = compute_element_bytes(tensor)
    threads = blake3.blake3.AUTO if len(elements) >= PARALLEL_HASH_BYTES else 1
    hasher = blake3.blake3(compute_header(tensor.dtype, tuple(tensor.shape)), max_threads=threads)
    hasher.update(elements)
    return Root(hasher.digest())


def compute_digest_of_encoding(data: bytes) -> Root:
    """Digest of an already encoded tensor (what a receiver checks before decoding)."""
    return Root(blake3.blake3(data).digest())


def decode_header(data: bytes) -> tuple[TensorHeader, int]:
    """Parse the header; returns it and the offset where the elements start."""
    if len(data) < 6 or data[:4] != MAGIC:
        raise EncodingError("not a canonical tensor encoding (bad magic or too short)")
    code, ndim = data[4], data[5]
    if code not in DTYPES_BY_CODE:
        raise EncodingError(f"unknown dtype code {code}")
    end = 6 + 8 * ndim
    if ndim > MAX_NDIM or len(data) < end:
        raise EncodingError("truncated tensor header")
    shape = struct.unpack(f"<{ndim}Q", data[6:end])
    return TensorHeader(DTYPES_BY_CODE[code], tuple(shape)), end


def decode_tensor(data: bytes) -> torch.Tensor:
    """Rebuild a CPU tensor from its canonical encoding; EncodingError on any malformed input."""
    header, start = decode_header(data)
    if len(data) - start != header.nbytes:
        raise EncodingError(f"expected {header.nbytes} element bytes for {header}, got {len(data) - start}")
    view_dtype = _NUMPY_VIEW.get(header.dtype, header.dtype)
    np_dtype = torch.empty((), dtype=view_dtype).numpy().dtype.newbyteorder("<")
    array = np.frombuffer(data, dtype=np_dtype, offset=start, count=header.numel).astype(np_dtype.newbyteorder("="))
    tensor = torch.from_numpy(array.copy()).view(header.dtype)
    return tensor.reshape(header.shape)


assert blake3.blake3.digest_size == DIGEST_SIZE
