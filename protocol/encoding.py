"""Canonical tensor encoding and digest.

    encoding  = header || the elements, row-major, little-endian
    header    = MAGIC (4 bytes "PPT1") || dtype code (1 byte) || ndim (1 byte)
                || each dimension as u64 little-endian
    data hash = BLAKE3("pinpoint/v1/tensor-data\\n" || the elements)
    digest    = BLAKE3(header || data hash), 32 bytes

The digest is split in two so that a tensor's dtype and shape can be proven without its data: the
header and the 32-byte data hash open a digest (`compute_digest_of_opening`). A state's layout is proven
that way against its root (`protocol.hint`); hashing costs the same, dominated by the elements.

The encoding depends only on the tensor's dtype, shape and values: never on strides, storage offset,
device or the machine's byte order. Every NaN is encoded as the one quiet NaN with a clear sign and
payload (0x7FC00000 for float32), since processors disagree on the NaN bits an operation produces
(x86 gives 0xFFC00000 for inf - inf, ARM 0x7FC00000), and every true bool as the byte 0x01 (a bool
tensor viewed from other bytes may hold any non-zero byte). Otherwise two tensors have the same digest
exactly when they have the same dtype, shape and bits.

Decoding accepts exactly the canonical encodings: every byte string `decode_tensor` accepts is the
encoding of the tensor it returns. It rejects a bad magic, an unknown dtype code, more than MAX_NDIM
dimensions, a dimension of 2**63 or more, a length other than header + numel × element size (so
trailing bytes too), a float NaN other than its dtype's canonical one, and a bool byte other than 0
or 1. docs/spec.md states the format with test vectors.
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
DATA_TAG = b"pinpoint/v1/tensor-data\n"  # what a data hash's input begins with
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
CANONICAL_NAN_BITS: dict[torch.dtype, int] = {
    torch.float32: 0x7FC00000,
    torch.float64: 0x7FF8000000000000,
    torch.float16: 0x7E00,
    torch.bfloat16: 0x7FC0,
}
"""Each float dtype's one NaN: sign clear, exponent all ones, only the top mantissa bit set."""
_INFINITY_BITS: dict[torch.dtype, int] = {
    torch.float32: 0x7F800000,
    torch.float64: 0x7FF0000000000000,
    torch.float16: 0x7C00,
    torch.bfloat16: 0x7F80,
}  # +inf; with the sign bit cleared, exactly the patterns above it are NaNs
MAX_DIMENSION = (1 << 63) - 1  # torch sizes are signed 64-bit integers
_UNSIGNED: dict[int, np.dtype] = {2: np.dtype("<u2"), 4: np.dtype("<u4"), 8: np.dtype("<u8")}
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
    if flat.numel() == 0:  # numpy cannot view an empty tensor whose dimensions multiply past 2**63
        return memoryview(b"")
    flat = flat.contiguous()
    if flat.dtype == torch.bool and bool((flat.view(torch.uint8) > 1).any()):
        flat = flat.view(torch.uint8) != 0  # a bool whose byte is not 0 or 1 (made by a view) is true: 0x01
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


def compute_data_hash_of_elements(elements: bytes | memoryview) -> Root:
    """The data hash of element bytes: BLAKE3 of the data tag and the elements."""
    threads = blake3.blake3.AUTO if len(elements) >= PARALLEL_HASH_BYTES else 1
    hasher = blake3.blake3(DATA_TAG, max_threads=threads)
    hasher.update(elements)
    return Root(hasher.digest())


HASH_BLOCK_BYTES = 1 << 18
"""`compute_data_hash` checks a large float tensor for NaNs block by block, each block just before it is
hashed (while it is in cache): one pass over memory instead of two. The data hash does not depend on it."""
_BLOCKWISE = frozenset({torch.float32, torch.float64})  # the float dtypes numpy holds as floats


def compute_data_hash(tensor: torch.Tensor) -> Root:
    """The data hash of the tensor's canonical elements."""
    flat = tensor.detach()
    if (flat.dtype not in _BLOCKWISE or flat.nbytes <= HASH_BLOCK_BYTES or flat.device.type != "cpu"
            or not flat.is_contiguous() or sys.byteorder != "little"):
        return compute_data_hash_of_elements(compute_element_bytes(flat))
    array = flat.numpy().reshape(-1)
    hasher = blake3.blake3(DATA_TAG)  # one thread: blocks this small gain nothing from more
    count = HASH_BLOCK_BYTES // array.itemsize
    for start in range(0, array.size, count):
        block = array[start : start + count]
        if np.isnan(block.max()):  # a NaN in the block (max propagates it): the general path canonicalises
            return compute_data_hash_of_elements(compute_element_bytes(flat))
        hasher.update(block.view(np.uint8).data)
    return Root(hasher.digest())


def compute_digest_of_opening(header: bytes, data_hash: bytes) -> Root:
    """The digest a header and a data hash open: BLAKE3(header || data hash)."""
    return Root(blake3.blake3(bytes(header) + bytes(data_hash)).digest())


def compute_digest(tensor: torch.Tensor) -> Root:
    """The tensor's digest, without materialising its encoding."""
    return compute_digest_of_opening(compute_header(tensor.dtype, tuple(tensor.shape)), compute_data_hash(tensor))


def compute_digest_of_encoding(data: bytes) -> Root:
    """Digest of an already encoded tensor (what a receiver checks before decoding). The header must
    parse (EncodingError otherwise); the rest is hashed as the elements, whatever its length."""
    _, start = decode_header(data)
    return compute_digest_of_opening(data[:start], compute_data_hash_of_elements(memoryview(data)[start:]))


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
    if any(size > MAX_DIMENSION for size in shape):
        raise EncodingError(f"a dimension of {max(shape)} is beyond what a tensor can have")
    extent = 1
    for size in shape:
        extent *= max(size, 1)
    if extent > MAX_DIMENSION:  # even when empty: torch's strides and element count must fit 64 bits
        raise EncodingError(f"the dimensions {shape} multiply (a zero counted as one) beyond what a tensor can have")
    return TensorHeader(DTYPES_BY_CODE[code], tuple(shape)), end


def _check_canonical_elements(dtype: torch.dtype, data: bytes, start: int, numel: int) -> None:
    """Reject element bytes that no tensor encodes to: a non-canonical NaN, a bool byte not 0 or 1."""
    if dtype == torch.bool:
        if numel and int(np.frombuffer(data, dtype=np.uint8, offset=start, count=numel).max()) > 1:
            raise EncodingError("a bool element is a byte other than 0 or 1")
        return
    if dtype not in CANONICAL_NAN_BITS or not numel:
        return
    width = torch.empty((), dtype=dtype).element_size()
    bits = np.frombuffer(data, dtype=_UNSIGNED[width], offset=start, count=numel)
    magnitude = bits & np.array((1 << (8 * width - 1)) - 1, dtype=bits.dtype)  # the sign bit cleared
    is_nan = magnitude > np.array(_INFINITY_BITS[dtype], dtype=bits.dtype)
    if is_nan.any() and bool((bits[is_nan] != np.array(CANONICAL_NAN_BITS[dtype], dtype=bits.dtype)).any()):
        raise EncodingError(f"a {dtype} NaN other than the canonical {CANONICAL_NAN_BITS[dtype]:#x}")


def decode_tensor(data: bytes) -> torch.Tensor:
    """Rebuild a CPU tensor from its canonical encoding; EncodingError on any malformed input."""
    header, start = decode_header(data)
    if len(data) - start != header.nbytes:
        raise EncodingError(f"expected {header.nbytes} element bytes for {header}, got {len(data) - start}")
    _check_canonical_elements(header.dtype, data, start, header.numel)
    view_dtype = _NUMPY_VIEW.get(header.dtype, header.dtype)
    np_dtype = torch.empty((), dtype=view_dtype).numpy().dtype.newbyteorder("<")
    array = np.frombuffer(data, dtype=np_dtype, offset=start, count=header.numel).astype(np_dtype.newbyteorder("="))
    tensor = torch.from_numpy(array.copy()).view(header.dtype)
    try:
        return tensor.reshape(header.shape)
    except (RuntimeError, TypeError, ValueError) as error:  # an empty shape torch cannot hold
        raise EncodingError(f"shape {header.shape} is not a tensor shape: {error}") from None


assert blake3.blake3.digest_size == DIGEST_SIZE
