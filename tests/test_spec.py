"""docs/spec.md, its vectors (tests/vectors/spec.json) and the code agree, and an implementation written
from the page alone reproduces every vector.

The page's `key = value` lines and the JSON file must state the same values; the protocol's own
functions (`tests/make_spec_vectors.build`) must reproduce the JSON; and the implementation in the
first part of this file, written from the page with numpy, blake3, the standard library and
cryptography's Ed25519 only (never the protocol's functions), must reproduce every vector. The last
part checks that the two implementations agree beyond the vectors, and that `decode_tensor` accepts
exactly the canonical encodings.
"""

from __future__ import annotations

import json
import math
import struct
from decimal import ROUND_FLOOR, Decimal, localcontext
from typing import Any

import blake3
import numpy as np
import pytest
import torch
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.encoding import DTYPE_CODES, EncodingError, decode_tensor, encode_tensor
from protocol.hint import open_structure_hint
from tests.make_spec_vectors import JSON_PATH, PAGE_PATH, build, flatten, read_page_vectors

DATA = json.loads(JSON_PATH.read_text())
V = DATA["vectors"]
PAGE = PAGE_PATH.read_text()


# ================================================================================================
# An independent implementation, written from docs/spec.md
# ================================================================================================


def H(data: bytes) -> bytes:
    return blake3.blake3(data).digest()


# -- canonical JSON (spec section "Canonical JSON") -------------------------------------------------

_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def spec_string(text: str) -> str:
    out = ['"']
    for char in text:
        code = ord(char)
        if char in _SHORT_ESCAPES:
            out.append(_SHORT_ESCAPES[char])
        elif 0x20 <= code <= 0x7E:
            out.append(char)
        elif code <= 0xFFFF:
            out.append(f"\\u{code:04x}")
        else:  # a UTF-16 surrogate pair
            code -= 0x10000
            out.append(f"\\u{0xD800 + (code >> 10):04x}\\u{0xDC00 + (code & 0x3FF):04x}")
    out.append('"')
    return "".join(out)


def spec_float(value: float) -> str:
    """Shortest round-trip digits; fixed notation for decimal exponents -4 … 15, else d.ddde±XX."""
    if not math.isfinite(value):
        raise ValueError("not finite")
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    sign = "-" if value < 0 else ""
    exact = Decimal(abs(value))  # the binary64 value, exactly
    with localcontext() as context:
        context.prec = 1200  # exact arithmetic on any binary64 value
        for precision in range(1, 18):
            # the two precision-digit decimals around the value; keep those that read back, take the nearest
            step = Decimal(1).scaleb(exact.adjusted() - precision + 1)
            below = (exact / step).to_integral_value(ROUND_FLOOR) * step
            candidates = [c for c in (below, below + step) if float(c) == abs(value)]
            if candidates:
                best = min(candidates, key=lambda c: (abs(c - exact), int(c / step) % 2))  # ties: even digit
                break
    digits_tuple = best.normalize().as_tuple()
    digits = "".join(map(str, digits_tuple.digits))
    exponent = best.normalize().adjusted()  # value = d.ddd × 10**exponent
    if -4 <= exponent < 16:
        if exponent >= 0:
            whole = digits[: exponent + 1].ljust(exponent + 1, "0")
            fraction = digits[exponent + 1 :] or "0"
        else:
            whole, fraction = "0", "0" * (-exponent - 1) + digits
        return f"{sign}{whole}.{fraction}"
    body = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
    return f"{sign}{body}e{'-' if exponent < 0 else '+'}{abs(exponent):02d}"


def spec_json(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return spec_float(value)
    if isinstance(value, str):
        return spec_string(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(spec_json(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(spec_string(k) + ":" + spec_json(value[k]) for k in sorted(value)) + "}"
    raise TypeError(type(value).__name__)


def canonical(value: Any) -> bytes:
    return spec_json(value).encode("ascii")


# -- tensors (spec section "Tensors") ---------------------------------------------------------------

# name: (code, element bytes, numpy dtype of the bit pattern, canonical NaN bits or None, +inf bits)
SPEC_DTYPES: dict[str, tuple[int, int, str, int | None, int | None]] = {
    "float32": (1, 4, "<u4", 0x7FC00000, 0x7F800000),
    "float64": (2, 8, "<u8", 0x7FF8000000000000, 0x7FF0000000000000),
    "float16": (3, 2, "<u2", 0x7E00, 0x7C00),
    "bfloat16": (4, 2, "<u2", 0x7FC0, 0x7F80),
    "int64": (5, 8, "<u8", None, None),
    "int32": (6, 4, "<u4", None, None),
    "int16": (7, 2, "<u2", None, None),
    "int8": (8, 1, "<u1", None, None),
    "uint8": (9, 1, "<u1", None, None),
    "bool": (10, 1, "<u1", None, None),
}
SPEC_BY_CODE = {code: name for name, (code, *_) in SPEC_DTYPES.items()}


def spec_encode(dtype: str, shape: list[int], bits: list[int]) -> bytes:
    """The canonical encoding of a tensor given by each element's bit pattern (row-major)."""
    code, width, pattern, nan, infinity = SPEC_DTYPES[dtype]
    if nan is not None:
        sign = 1 << (8 * width - 1)
        bits = [nan if (b & ~sign) > infinity else b for b in bits]  # type: ignore[operator]
    if dtype == "bool":
        bits = [1 if b else 0 for b in bits]
    header = b"PPT1" + bytes([code, len(shape)]) + b"".join(struct.pack("<Q", size) for size in shape)
    return header + np.array(bits, dtype=pattern).tobytes()


def spec_decode(data: bytes) -> tuple[str, list[int], list[int]]:
    """(dtype, shape, element bits) of a canonical encoding; ValueError for anything else."""
    if len(data) < 6 or data[:4] != b"PPT1" or data[4] not in SPEC_BY_CODE or data[5] > 64:
        raise ValueError("bad header")
    dtype, ndim = SPEC_BY_CODE[data[4]], data[5]
    if len(data) < 6 + 8 * ndim:
        raise ValueError("short header")
    shape = [int.from_bytes(data[6 + 8 * i : 14 + 8 * i], "little") for i in range(ndim)]
    if any(size >= 1 << 63 for size in shape) or math.prod(max(size, 1) for size in shape) >= 1 << 63:
        raise ValueError("dimension too large")
    _, width, pattern, nan, infinity = SPEC_DTYPES[dtype]
    count = math.prod(shape)
    if len(data) != 6 + 8 * ndim + width * count:
        raise ValueError("length")
    bits = [int(b) for b in np.frombuffer(data, dtype=pattern, offset=6 + 8 * ndim)]
    if nan is not None and any((b & ~(1 << (8 * width - 1))) > infinity and b != nan for b in bits):  # type: ignore[operator]
        raise ValueError("non-canonical NaN")
    if dtype == "bool" and any(b > 1 for b in bits):
        raise ValueError("bool byte")
    return dtype, shape, bits


def spec_data_hash(elements: bytes) -> bytes:
    return H(b"pinpoint/v1/tensor-data\n" + elements)


def spec_digest(encoding: bytes) -> bytes:
    """H(header || data hash), the header being the first 6 + 8·n bytes."""
    end = 6 + 8 * encoding[5]
    return H(encoding[:end] + spec_data_hash(encoding[end:]))


# -- Merkle trees -----------------------------------------------------------------------------------

EMPTY = H(b"\x02")


def leaf_hash(data: bytes) -> bytes:
    return H(b"\x00" + data)


def node_hash(left: bytes, right: bytes) -> bytes:
    return H(b"\x01" + left + right)


def spec_levels(leaf_hashes: list[bytes]) -> list[list[bytes]]:
    size = 1
    while size < len(leaf_hashes):
        size *= 2
    level = list(leaf_hashes) + [EMPTY] * (size - len(leaf_hashes))
    levels = [level]
    while len(level) > 1:
        level = [node_hash(level[i], level[i + 1]) for i in range(0, len(level), 2)]
        levels.append(level)
    return levels


def spec_root(leaves: list[bytes]) -> bytes:
    return spec_levels([leaf_hash(leaf) for leaf in leaves])[-1][0]


def spec_proof(leaves: list[bytes], index: int) -> list[bytes]:
    proof = []
    for level in spec_levels([leaf_hash(leaf) for leaf in leaves])[:-1]:
        proof.append(level[index ^ 1])
        index //= 2
    return proof


def spec_fold(index: int, node: bytes, proof: list[bytes]) -> bytes:
    for sibling in proof:
        node = node_hash(node, sibling) if index % 2 == 0 else node_hash(sibling, node)
        index //= 2
    return node


# -- state, job, signatures -------------------------------------------------------------------------


def state_leaf(name: str, digest: bytes) -> bytes:
    raw = name.encode("utf-8")
    return len(raw).to_bytes(2, "little") + raw + digest


def state_root(digests: dict[str, bytes]) -> bytes:
    names = sorted(digests, key=lambda n: n.encode("utf-8"))
    return spec_root([state_leaf(n, digests[n]) for n in names])


def signing_payload(kind: str, body: Any) -> bytes:
    return b"pinpoint/v1/" + kind.encode() + b"\n" + canonical(body)


# -- traces -----------------------------------------------------------------------------------------


def float_hex(value: float) -> str:
    """The {"f": …} text of a float, from its IEEE 754 binary64 bits."""
    (bits,) = struct.unpack("<Q", struct.pack("<d", value))
    sign = "-" if bits >> 63 else ""
    exponent, mantissa = (bits >> 52) & 0x7FF, bits & ((1 << 52) - 1)
    if exponent == 0x7FF:
        return "nan" if mantissa else f"{sign}inf"
    if exponent == 0 and mantissa == 0:
        return f"{sign}0x0.0p+0"
    if exponent == 0:
        return f"{sign}0x0.{mantissa:013x}p-1022"
    power = exponent - 1023
    return f"{sign}0x1.{mantissa:013x}p{'+' if power >= 0 else '-'}{abs(power)}"


class Placement:
    """An argument of type Device, Layout, MemoryFormat or Generator, or named pin_memory / non_blocking."""


def arg_json(value: Any) -> Any:
    if isinstance(value, Placement):
        return None
    if isinstance(value, tuple) and value[0] == "t":
        return {"t": value[1]}
    if isinstance(value, tuple) and value[0] == "dtype":
        return {"dtype": value[1]}
    if isinstance(value, float):
        return {"f": float_hex(value)}
    if isinstance(value, list):
        return [arg_json(item) for item in value]
    if isinstance(value, dict):
        return {key: arg_json(item) for key, item in value.items()}
    return value


def f32_bits(values: Any) -> list[int]:
    return [int(b) for b in np.asarray(values, dtype="<f4").reshape(-1).view("<u4")]


def f64_bits(values: Any) -> list[int]:
    return [int(b) for b in np.asarray(values, dtype="<f8").reshape(-1).view("<u8")]


def tensor_digest(dtype: str, shape: list[int], bits: list[int]) -> str:
    return spec_digest(spec_encode(dtype, shape, bits)).hex()


def spec_trace_leaves() -> dict[str, str]:
    """The seven nodes of the page's trace example, built from its description."""
    a = np.array([[1, 2], [3, 4]], dtype=np.float32)
    b = np.array([[5, 6], [7, 8]], dtype=np.float32)
    p = a @ b  # exact: small integers
    b_const = spec_encode("float32", [2, 2], f32_bits(b)).hex()
    one_const = spec_encode("float32", [], f32_bits([1.0])).hex()
    f32 = 1

    def out(dtype: str, code: int, shape: list[int], bits: list[int] | None) -> list[Any]:
        return [code, shape, "" if bits is None else tensor_digest(dtype, shape, bits)]

    nodes: dict[str, tuple[str, dict[str, Any], list[Any], list[Any]]] = {
        "mm": ("aten::mm.default", {"self": ("t", 0), "mat2": ("t", 1)}, [["s", 0], ["c", b_const]],
               [out("float32", f32, [2, 2], f32_bits(p))]),
        "mul": ("aten::mul.Tensor", {"self": ("t", 0), "other": 0.5}, [["n", 0, 0]],
                [out("float32", f32, [2, 2], f32_bits(p * np.float32(0.5)))]),
        "add": ("aten::add.Tensor", {"self": ("t", 0), "other": ("t", 1), "alpha": 1}, [["n", 0, 0], ["c", one_const]],
                [out("float32", f32, [2, 2], f32_bits(p + np.float32(1)))]),
        "view": ("aten::view.default", {"self": ("t", 0), "size": [4]}, [["n", 0, 0]], [out("float32", f32, [4], None)]),
        "to_copy": ("aten::_to_copy.default",
                    {"self": ("t", 0), "dtype": ("dtype", "float64"), "layout": Placement(), "device": Placement(),
                     "pin_memory": Placement(), "non_blocking": Placement(), "memory_format": Placement()},
                    [["n", 0, 0]], [out("float64", 2, [2, 2], f64_bits(p.astype(np.float64)))]),
        "foreach_mul": ("aten::_foreach_mul_.Scalar", {"self": [("t", 0), ("t", 1)], "scalar": 0.5},
                        [["n", 0, 0], ["n", 2, 0]],
                        [out("float32", f32, [2, 2], f32_bits(p * np.float32(0.5))),
                         out("float32", f32, [2, 2], f32_bits((p + np.float32(1)) * np.float32(0.5)))]),
        "bernoulli": ("aten::bernoulli_.float",
                      {"self": ("t", 0), "p": 0.3, "generator": Placement(), "pinpoint.rng": {"seed": 7, "step": 3, "offset": 4}},
                      [["n", 1, 0]],
                      [out("float32", f32, [2, 2], f32_bits((uniform(7, 3, 4, 4) < np.float32(0.3)).astype(np.float32)))]),
    }
    return {label: spec_json({"op": op, "args": {k: arg_json(v) for k, v in args.items()}, "in": refs, "out": outs})
            for label, (op, args, refs, outs) in nodes.items()}


# -- structure hints --------------------------------------------------------------------------------


def hint_entry(name: str, dtype: str, shape: list[int], bits: list[int]) -> bytes:
    """One entry of a hint: the name, the header, and the elements (at most 32 bytes) or their data hash."""
    encoding = spec_encode(dtype, shape, bits)
    end = 6 + 8 * len(shape)
    elements = encoding[end:]
    raw = name.encode("utf-8")
    return len(raw).to_bytes(2, "little") + raw + encoding[:end] + (elements if len(elements) <= 32 else spec_data_hash(elements))


def spec_open_hint(hint: bytes) -> tuple[bytes, list[tuple[str, int, list[int]]]] | None:
    """(the root a hint opens, its layout), or None when it is not a hint."""
    offset, leaves, layout, previous = 0, [], [], b""
    try:
        while offset < len(hint):
            length = int.from_bytes(hint[offset : offset + 2], "little")
            raw = hint[offset + 2 : offset + 2 + length]
            if not 1 <= length <= 1024 or len(raw) != length or (leaves and raw <= previous):
                return None
            previous, offset = raw, offset + 2 + length
            code, ndim = hint[offset + 4], hint[offset + 5]
            if hint[offset : offset + 4] != b"PPT1" or code not in SPEC_BY_CODE or ndim > 64:
                return None
            end = offset + 6 + 8 * ndim
            header = hint[offset:end]
            shape = [int.from_bytes(header[6 + 8 * i : 14 + 8 * i], "little") for i in range(ndim)]
            if len(header) != 6 + 8 * ndim or math.prod(max(size, 1) for size in shape) >= 1 << 63:
                return None
            size = SPEC_DTYPES[SPEC_BY_CODE[code]][1] * math.prod(shape)
            opening = hint[end : end + (size if size <= 32 else 32)]
            if len(opening) != (size if size <= 32 else 32):
                return None
            if size <= 32:
                spec_decode(header + opening)  # canonical elements only
            data_hash = spec_data_hash(opening) if size <= 32 else opening
            leaves.append(state_leaf(raw.decode("utf-8"), H(header + data_hash)))
            layout.append((raw.decode("utf-8"), code, shape))
            offset = end + len(opening)
    except (ValueError, IndexError):
        return None
    return (spec_root(leaves), layout) if leaves else None


# -- randomness -------------------------------------------------------------------------------------

M32 = 0xFFFFFFFF


def mix32(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64) & M32
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x7FEB352D)) & np.uint64(M32)
    x ^= x >> np.uint64(15)
    x = (x * np.uint64(0x6A09E667)) & np.uint64(M32)
    return x ^ (x >> np.uint64(16))


def stream_key(seed: int, step: int) -> int:
    inner = int(mix32(np.array([seed & M32]))[0])
    return int(mix32(np.array([(step & M32) ^ inner]))[0])


def random_bits(seed: int, step: int, offset: int, count: int) -> np.ndarray:
    counters = (np.arange(count, dtype=np.uint64) + np.uint64(offset)) & np.uint64(M32)
    return mix32(counters ^ np.uint64(stream_key(seed, step)))


def uniform(seed: int, step: int, offset: int, count: int) -> np.ndarray:
    return (random_bits(seed, step, offset, count) >> np.uint64(8)).astype(np.float32) * np.float32(2.0**-24)


# ================================================================================================
# The page, the JSON and the code agree
# ================================================================================================


def test_page_and_json_state_the_same_vectors() -> None:
    on_page = read_page_vectors(PAGE)
    in_json = flatten(V)
    assert sorted(set(in_json) - set(on_page)) == [], "vectors missing from docs/spec.md"
    assert sorted(set(on_page) - set(in_json)) == [], "vectors on the page but not in spec.json"
    different = {key: (on_page[key], in_json[key]) for key in in_json if on_page[key] != in_json[key]}
    assert different == {}


def test_code_reproduces_the_json() -> None:
    assert build() == DATA


def test_page_names_the_protocol_constants() -> None:
    for text in ("PPT1", "pinpoint/v1/", "pinpoint/v2/task\\n", "pinpoint/v2/job\\n", "pinpoint/v1/trace-root\\n",
                 "pinpoint/v1/tensor-data\\n", "pinpoint/v1/game-id\\n", "pinpoint/v1/game-history\\n",
                 "0x7FEB352D", "0x6A09E667", "0x5EED", "0x1A17"):
        assert text in PAGE, text


# ================================================================================================
# The independent implementation reproduces every vector
# ================================================================================================


def test_spec_canonical_json() -> None:
    vector = V["json"]
    assert canonical(json.loads(vector["input"])).decode() == vector["text"]
    assert canonical(json.loads(vector["input"])).hex() == vector["hex"]


@pytest.mark.parametrize("name", sorted(V["tensor"]))
def test_spec_tensor(name: str) -> None:
    vector = V["tensor"][name]
    shape = [] if vector["shape"] == "scalar" else [int(s) for s in vector["shape"].split()]
    bits = [] if vector["bits"] == "none" else [int(word, 16) for word in vector["bits"].split()]
    encoding = spec_encode(vector["dtype"], shape, bits)
    assert encoding.hex() == vector["encoding"]
    assert spec_data_hash(encoding[6 + 8 * len(shape) :]).hex() == vector["data_hash"]
    assert spec_digest(encoding).hex() == vector["digest"]
    assert spec_encode(*spec_decode(encoding)) == encoding
    decoded = decode_tensor(encoding)  # the code's decoder takes it back, bit for bit
    assert encode_tensor(decoded) == encoding


@pytest.mark.parametrize("name", sorted(V["reject"]))
def test_spec_rejected_encodings(name: str) -> None:
    data = bytes.fromhex(V["reject"][name])
    with pytest.raises(ValueError):
        spec_decode(data)
    with pytest.raises(EncodingError):
        decode_tensor(data)


def test_spec_merkle() -> None:
    m = V["merkle"]
    leaves = [bytes.fromhex(leaf) for leaf in m["leaves"]]
    assert [leaf_hash(leaf).hex() for leaf in leaves] == m["leaf_hashes"]
    assert EMPTY.hex() == m["empty"]
    empties = [EMPTY]
    for _ in range(3):
        empties.append(node_hash(empties[-1], empties[-1]))
    assert [e.hex() for e in empties] == m["empty_roots"]
    levels = spec_levels([leaf_hash(leaf) for leaf in leaves])
    assert (levels[1][0].hex(), levels[1][1].hex(), levels[2][0].hex()) == (m["node_1_0"], m["node_1_1"], m["root"])
    assert [p.hex() for p in spec_proof(leaves, 2)] == m["proof_2"]
    assert spec_fold(2, leaf_hash(leaves[2]), spec_proof(leaves, 2)).hex() == m["root"]
    assert [h.hex() for h in levels[0]] == m["reveal_2_0_depth_2"]
    reveal = [bytes.fromhex(h) for h in m["reveal_2_0_depth_2"]]
    while len(reveal) > 1:
        reveal = [node_hash(reveal[i], reveal[i + 1]) for i in range(0, len(reveal), 2)]
    assert reveal[0].hex() == m["reveal_fold"] == m["root"]


def test_spec_state_and_chain() -> None:
    s = V["state"]
    digests = {name: bytes.fromhex(h) for name, h in s["digests"].items()}
    assert digests["step"].hex() == tensor_digest("int64", [], [3])
    assert digests["param/w"].hex() == tensor_digest("float32", [2, 2], f32_bits([[1, 2], [3, 4]]))
    assert state_leaf("param/w", digests["param/w"]).hex() == s["leaf_0"]
    assert state_leaf("step", digests["step"]).hex() == s["leaf_1"]
    assert state_root(digests).hex() == s["root"]
    roots = [bytes.fromhex(r) for r in s["chain_state_roots"]]
    assert roots[0].hex() == s["root"]
    assert spec_root(roots).hex() == s["chain_root"]
    assert [p.hex() for p in spec_proof(roots, 1)] == s["chain_proof_1"]


def test_spec_job() -> None:
    j = V["job"]
    assert H(b"pinpoint/v2/task\n" + bytes.fromhex(j["task_bytes"])).hex() == j["task_digest"]
    encodings = {name: bytes.fromhex(h) for name, h in j["data_encodings"].items()}
    assert encodings["data/x"].hex() == spec_encode("float32", [3, 1], f32_bits([0.5, -1.0, 2.0])).hex()
    assert encodings["data/y"].hex() == spec_encode("int64", [3], [0, 1, 1]).hex()
    assert state_root({name: spec_digest(e) for name, e in encodings.items()}).hex() == j["data_root"]
    assert (j["spec"]["task"], j["spec"]["data"], j["spec"]["initial"]) == (j["task_digest"], j["data_root"], V["state"]["root"])
    assert canonical(j["spec"]).decode() == j["canonical"]
    assert H(b"pinpoint/v2/job\n" + canonical(j["spec"])).hex() == j["id"]


def test_spec_signed_commitments() -> None:
    s = V["signing"]
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(s["seed"]))
    public = key.public_key().public_bytes_raw()
    assert public.hex() == s["public_key"]
    run = s["run"]["body"]
    assert run == {"job_id": V["job"]["id"], "steps": 10, "chain_root": V["state"]["chain_root"], "worker_key": s["public_key"],
                   "availability_root": V["availability"]["run_root"]}
    payload = signing_payload("run-commitment", run)
    assert payload == b"pinpoint/v1/run-commitment\n" + s["run"]["statement"].encode()
    assert key.sign(payload).hex() == s["run"]["signature"]  # Ed25519 signatures are deterministic
    Ed25519PublicKey.from_public_bytes(public).verify(bytes.fromhex(s["run"]["signature"]), payload)
    trace = s["trace"]["body"]
    t = V["trace"]
    assert (trace["ops_root"], trace["num_ops"], trace["state_before"], trace["state_after"], trace["hint"]) == (
        t["ops_root"], t["num_ops"], t["state_before"], t["state_after"], V["hint"]["hint"])
    payload = signing_payload("trace-commitment", trace)
    assert payload == b"pinpoint/v1/trace-commitment\n" + s["trace"]["statement"].encode()
    assert key.sign(payload).hex() == s["trace"]["signature"]


def test_spec_game_statements() -> None:
    g = V["signing"]["game"]
    key = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(V["signing"]["seed"]))
    other = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(g["challenger_seed"]))
    setup = json.loads(g["setup"])
    assert canonical(setup).decode() == g["setup"]
    challenger = setup["challenger"]
    assert challenger["commitment"]["worker_key"] == other.public_key().public_bytes_raw().hex()
    assert other.sign(signing_payload("run-commitment", challenger["commitment"])).hex() == challenger["signature"]
    assert setup["worker"] == {"commitment": V["signing"]["run"]["body"], "signature": V["signing"]["run"]["signature"]}
    game_id = H(b"pinpoint/v1/game-id\n" + canonical(setup))
    assert game_id.hex() == g["id"]
    witness = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(g["time_source_seed"]))
    assert setup["time_source"] == witness.public_key().public_bytes_raw().hex()
    assert setup["dispute_id"] == "11" * 32
    move = {"type": "nodes", "hashes": [EMPTY.hex(), bytes(32).hex()]}
    # the first query is asked at the start: the history is still the game id
    payload = signing_payload("game-move", {"game_id": g["id"], "prev": g["id"], "seq": 0, "sender": "worker",
                                            "move": move})
    assert payload == b"pinpoint/v1/game-move\n" + g["move_statement"].encode()
    assert key.sign(payload).hex() == g["move_signature"]
    data = "50505431"
    item = {"kind": "tensor", "digest": bytes(32).hex(), "data": {"blake3": H(canonical(data)).hex()}}
    statement = {"game_id": g["id"], "prev": "00" * 32, "seq": 5, "sender": "worker",
                 "move": {"type": "evidence", "items": [item]}}
    assert canonical(statement).decode() == g["evidence_statement"]
    event = {"at": 1001.25, "message": {"seq": 0, "sender": "worker", "move": move, "signature": g["move_signature"]}}
    assert H(b"pinpoint/v1/game-history\n" + game_id + canonical(event)).hex() == g["history_1"]
    receipt = {"game_id": g["id"], "index": 0, "at": 1001.25, "event": H(canonical(event)).hex(), "prev": g["id"]}
    payload = signing_payload("game-receipt", receipt)
    assert payload == b"pinpoint/v1/game-receipt\n" + g["receipt_statement"].encode()
    assert witness.sign(payload).hex() == g["receipt_signature"]


def test_spec_trace() -> None:
    t = V["trace"]
    leaves = spec_trace_leaves()
    assert list(leaves) == list(t["nodes"])
    for label, text in leaves.items():
        assert text == t["nodes"][label]["leaf"], label
        assert leaf_hash(text.encode()).hex() == t["nodes"][label]["leaf_hash"], label
    ops_root = spec_root([text.encode() for text in leaves.values()])
    assert ops_root.hex() == t["ops_root"]
    body = {"state_before": t["state_before"], "state_after": t["state_after"], "ops_root": t["ops_root"], "num_ops": len(leaves)}
    assert H(b"pinpoint/v1/trace-root\n" + canonical(body)).hex() == t["trace_root"]


def test_spec_hint() -> None:
    h = V["hint"]
    state = {"param/w": ("float32", [3, 3], f32_bits(np.arange(9, dtype=np.float32))),
             "optim/w/step": ("float32", [], f32_bits([3.0])),
             "seed": ("int64", [], [7]), "step": ("int64", [], [3])}
    names = sorted(state, key=lambda name: name.encode("utf-8"))
    assert names == h["names"]
    entries = [hint_entry(name, *state[name]) for name in names]
    assert [entry.hex() for entry in entries] == h["entries"]
    assert b"".join(entries).hex() == h["hint"]
    root = state_root({name: bytes.fromhex(tensor_digest(*state[name])) for name in names})
    assert root.hex() == h["state_root"]
    opened = spec_open_hint(b"".join(entries))
    assert opened is not None and opened[0] == root
    assert opened[1] == [(name, SPEC_DTYPES[state[name][0]][0], state[name][1]) for name in names]


@given(st.binary(max_size=200), st.data())
def test_hint_openings_agree(noise: bytes, data: st.DataObject) -> None:
    """The code and the page's reading of a hint agree on what it opens, for the vector with any one
    byte changed and for arbitrary bytes."""
    hint = bytes.fromhex(V["hint"]["hint"])
    position = data.draw(st.integers(0, len(hint) - 1))
    changed = hint[:position] + bytes([data.draw(st.integers(0, 255))]) + hint[position + 1 :]
    root = bytes.fromhex(V["hint"]["state_root"])
    for candidate in (hint, changed, noise, hint + noise):
        ours = spec_open_hint(candidate)
        if ours is not None:  # the code opens the same root to the same layout
            theirs = open_structure_hint(candidate, ours[0])
            assert theirs is not None
            assert [(name, DTYPE_CODES[dtype], list(shape)) for name, dtype, shape in theirs.layout] == ours[1]
        assert (open_structure_hint(candidate, root) is not None) == (ours is not None and ours[0] == root)


def test_spec_randomness() -> None:
    r = V["random"]
    for given_x, expected in r["mix32"].items():
        assert f"{int(mix32(np.array([int(given_x, 16)]))[0]):08x}" == expected
    assert f"{stream_key(7, 3):08x}" == r["stream_key_seed_7_step_3"]
    assert " ".join(f"{int(v):08x}" for v in random_bits(7, 3, 0, 8)) == r["bits_seed_7_step_3"]
    assert " ".join(f"{b:08x}" for b in f32_bits(uniform(7, 3, 0, 8))) == r["uniform_seed_7_step_3"]
    mask = (uniform(7, 3, 4, 8) < np.float32(0.3)).astype(np.float32)
    assert " ".join(str(int(v)) for v in mask) == r["bernoulli_p_0_3_seed_7_step_3_offset_4"]
    for step in (0, 1):
        indices = random_bits(7 ^ 0x5EED, step, 0, 8) % np.uint64(10)
        assert " ".join(str(int(v)) for v in indices) == r[f"batch_seed_7_step_{step}_size_10"]
    name_key = int.from_bytes(H(b"fc.weight")[:4], "little")
    assert f"{name_key:08x}" == r["initial_name_key"]
    bound = 1 / math.sqrt(3)
    assert bound.hex() == r["initial_bound"]
    u = uniform(7 ^ 0x1A17, name_key, 0, 6)
    values = ((u * np.float32(2.0)) - np.float32(1.0)) * np.float32(bound)
    assert values.dtype == np.float32
    assert " ".join(f"{b:08x}" for b in f32_bits(values)) == r["initial_seed_7_fc_weight"]
    assert tensor_digest("float32", [2, 3], f32_bits(values)) == r["initial_digest"]


# ================================================================================================
# Properties: the two implementations agree beyond the vectors
# ================================================================================================

DTYPE_NAMES = list(SPEC_DTYPES)
TORCH_DTYPES = {
    "float32": torch.float32, "float64": torch.float64, "float16": torch.float16, "bfloat16": torch.bfloat16,
    "int64": torch.int64, "int32": torch.int32, "int16": torch.int16, "int8": torch.int8, "uint8": torch.uint8,
    "bool": torch.bool,
}
_INT_OF_WIDTH = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}


@st.composite
def bit_tensors(draw: st.DrawFn) -> tuple[str, list[int], list[int]]:
    """(dtype, shape, element bits): any bit pattern, NaNs of every payload and sign included."""
    dtype = draw(st.sampled_from(DTYPE_NAMES))
    shape = draw(st.lists(st.integers(0, 3), max_size=3))
    width = SPEC_DTYPES[dtype][1]
    special = SPEC_DTYPES[dtype][4]
    words = st.integers(0, (1 << 8 * width) - 1)
    if special is not None:  # favour the NaN range and the signed zeros
        sign = 1 << (8 * width - 1)
        words = st.one_of(words, st.sampled_from([0, sign, special, special | 1, special | sign | 1, (sign - 1) | sign]))
    if dtype == "bool":
        words = st.one_of(st.integers(0, 1), st.integers(0, 255))  # any non-zero byte is true
    bits = draw(st.lists(words, min_size=math.prod(shape), max_size=math.prod(shape)))
    return dtype, shape, bits


def as_torch(dtype: str, shape: list[int], bits: list[int]) -> torch.Tensor:
    width = SPEC_DTYPES[dtype][1]
    signed = [b - (1 << 8 * width) if width > 1 and b >= 1 << (8 * width - 1) else b for b in bits]
    return torch.tensor(signed, dtype=_INT_OF_WIDTH[width]).view(TORCH_DTYPES[dtype]).reshape(shape)


@settings(max_examples=300, deadline=None)
@given(bit_tensors())
def test_encodings_agree_and_round_trip(case: tuple[str, list[int], list[int]]) -> None:
    dtype, shape, bits = case
    tensor = as_torch(dtype, shape, bits)
    encoding = encode_tensor(tensor)
    assert encoding == spec_encode(dtype, shape, bits)
    if dtype == "bool":  # equal tensors, equal encodings, whatever bytes held them
        assert encoding == encode_tensor(tensor.to(torch.uint8).ne(0))
    decoded = decode_tensor(encoding)
    assert decoded.dtype == tensor.dtype and tuple(decoded.shape) == tuple(shape)
    assert encode_tensor(decoded) == encoding
    assert spec_encode(*spec_decode(encoding)) == encoding


def _check_mutation(mutated: bytes) -> None:
    """A mutated encoding is rejected, or is the canonical encoding of what it decodes to; the
    independent decoder makes the same call."""
    try:
        decoded = decode_tensor(mutated)
    except EncodingError:
        with pytest.raises(ValueError):
            spec_decode(mutated)
        return
    assert encode_tensor(decoded) == mutated
    assert spec_encode(*spec_decode(mutated)) == mutated


@settings(max_examples=300, deadline=None)
@given(bit_tensors(), st.data())
def test_single_byte_mutations_decode_canonically_or_are_rejected(case: tuple[str, list[int], list[int]], data: st.DataObject) -> None:
    encoding = spec_encode(*case)
    position = data.draw(st.integers(0, len(encoding) - 1))
    value = data.draw(st.integers(0, 255).filter(lambda v: v != encoding[position]))
    _check_mutation(encoding[:position] + bytes([value]) + encoding[position + 1 :])


@pytest.mark.parametrize("name", ["f32_specials", "f64_nan", "f16_nan", "bf16_nan", "bool_matrix", "i8_vector", "f32_scalar"])
def test_every_single_byte_mutation_of_a_vector(name: str) -> None:
    encoding = bytes.fromhex(V["tensor"][name]["encoding"])
    for position in range(len(encoding)):
        for value in range(256):
            if value != encoding[position]:
                _check_mutation(encoding[:position] + bytes([value]) + encoding[position + 1 :])


def test_truncations_and_extensions_are_rejected() -> None:
    for name in V["tensor"]:
        encoding = bytes.fromhex(V["tensor"][name]["encoding"])
        for cut in range(len(encoding)):
            with pytest.raises(EncodingError):
                decode_tensor(encoding[:cut])
        for extra in (b"\x00", b"\xff" * 8):
            with pytest.raises(EncodingError):
                decode_tensor(encoding + extra)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=6), children, max_size=4),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(json_values)
def test_canonical_json_agrees(value: Any) -> None:
    from protocol.signing import compute_canonical_json

    assert canonical(value) == compute_canonical_json(value)


@settings(max_examples=200, deadline=None)
@given(st.floats(allow_nan=True, allow_infinity=True))
def test_float_arguments_agree(value: float) -> None:
    from protocol.ops.canonical import encode_scalar

    expected = encode_scalar(value)
    assert {"f": float_hex(value)} == expected or (math.isnan(value) and expected == {"f": "nan"})


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(0, 2**40), st.integers(0, 2**33), st.integers(1, 16))
def test_random_bits_agree(seed: int, step: int, offset: int, count: int) -> None:
    from protocol.ops.random import compute_random_bits

    expected = compute_random_bits(seed, step, offset, count).tolist()
    assert [int(v) for v in random_bits(seed, step, offset, count)] == expected


@pytest.mark.parametrize("dtype", ["float32", "float64", "float16", "bfloat16"])
def test_every_non_canonical_nan_pattern_is_rejected(dtype: str) -> None:
    """Negative NaNs, payloads, signalling NaNs: only the canonical pattern decodes, for each float dtype."""
    _, width, _, nan, infinity = SPEC_DTYPES[dtype]
    assert nan is not None and infinity is not None
    sign, top = 1 << (8 * width - 1), 1 << (8 * width - 2)
    quiet = nan - infinity  # the top mantissa bit
    patterns = {nan | sign, nan + 1, nan | (quiet >> 1), infinity + 1, infinity | sign | 1, (sign - 1), (sign - 1) | sign}
    assert all(p & (top | infinity) == infinity and p & ~sign != infinity for p in patterns)  # all NaNs
    canonical_encoding = spec_encode(dtype, [2], [0, nan])
    assert encode_tensor(decode_tensor(canonical_encoding)) == canonical_encoding
    for pattern in sorted(patterns):
        data = canonical_encoding[:-width] + pattern.to_bytes(width, "little")
        with pytest.raises(EncodingError, match="NaN"):
            decode_tensor(data)


def test_spec_seal_and_forced_error_draw() -> None:
    """The seal and the draw from the page's formulas, with BLAKE3 and SHA-256 directly."""
    import hashlib

    import blake3

    e = V["economy"]
    run = V["signing"]["run"]
    signed = json.dumps({"commitment": run["body"], "signature": run["signature"]}, sort_keys=True, separators=(",", ":"))
    assert signed == e["sealed_statement"]
    salt = bytes.fromhex(e["salt"])
    assert blake3.blake3(b"pinpoint/v1/sealed-result\n" + salt + signed.encode()).hexdigest() == e["seal"]
    digest = hashlib.sha256(b"pinpoint/v1/forced-error\n" + bytes.fromhex(e["draw_seed"]) + salt
                            + e["draw_job"].to_bytes(8, "big")).digest()
    value = int.from_bytes(digest[:8], "big") % 10_000
    assert value == e["draw_value"]
    assert (value < 2_000, value < 9_000) == (e["forced_at_2000_bps"], e["forced_at_9000_bps"])


# -- committee verdicts and availability (sections 13 and 14) -------------------------------------------


def test_spec_committee() -> None:
    """The BLS vectors checked with py_ecc's ciphersuite directly (two pairing checks), the beacon, the seed
    and the draw recomputed from the page."""
    from protocol.committee.bls import (
        G2ProofOfPossession as bls,  # py_ecc's, imported without its recursion limit
    )

    c = V["committee"]
    secret = bls.KeyGen(bytes.fromhex(c["key_material"]))
    assert f"{secret:064x}" == c["secret_key"]
    public = bls.SkToPk(secret)
    assert public.hex() == c["public_key"]
    assert bls.PopVerify(public, bytes.fromhex(c["proof_of_possession"]))
    message = b"pinpoint/v1/committee-verdict\n" + canonical(json.loads(c["statement"]))
    assert canonical(json.loads(c["statement"])).decode() == c["statement"]
    assert bls.FastAggregateVerify([public], message, bytes.fromhex(c["signature"]))
    keys = [bytes([i]) * 48 for i in range(1, 4)]
    secrets = [bytes([0x10 + i]) * 32 for i in range(1, 4)]
    epoch = (7).to_bytes(8, "little")
    assert H(b"pinpoint/v1/committee-beacon\n" + epoch + keys[0] + secrets[0]).hex() == c["beacon_commitment_1"]
    seed = H(b"pinpoint/v1/committee-seed\n" + epoch + b"".join(k + s for k, s in zip(keys, secrets, strict=True)))
    assert seed.hex() == c["seed"]
    pool = [(keys[i], f"r{i}", 100 * (i + 1)) for i in range(3)]
    members = []
    for seat in range(2):
        x = int.from_bytes(H(b"pinpoint/v1/committee-draw\n" + seed + seat.to_bytes(8, "little")), "little")
        x %= sum(stake for _, _, stake in pool)
        for position, (key, account, stake) in enumerate(pool):
            if x < stake:
                members.append((key, account, stake))
                del pool[position]
                break
            x -= stake
    assert [account for _, account, _ in members] == c["members"]
    root = H(b"pinpoint/v1/committee\n" + epoch + seed + b"".join(k + s.to_bytes(16, "little") for k, _, s in members))
    assert root.hex() == c["committee_root"]

    # on the ledger: the committee seed from the economy's epoch seed, a one-seat committee, its attestation
    one = (1).to_bytes(8, "little")
    economy_seed = H(b"pinpoint/v1/committee-economy-seed\n" + one + b"beacon-1")
    assert economy_seed.hex() == c["economy_seed_1"]
    alone = H(b"pinpoint/v1/committee\n" + one + economy_seed + public + (100).to_bytes(16, "little"))
    assert alone.hex() == c["one_seat_root"]
    attestation = json.loads(c["attestation"])
    assert canonical(attestation).decode() == c["attestation"]
    assert attestation == {"committee": alone.hex(), "epoch": 1, "signature": c["signature"], "signers": [0],
                           "statement": json.loads(c["statement"])}


def test_spec_availability() -> None:
    """The Reed–Solomon vectors recomputed with galois's GF(2^8) (an independent field implementation)."""
    import galois

    a = V["availability"]
    field = galois.GF(2**8, irreducible_poly=0x11D)
    blob = bytes.fromhex(a["blob"])
    k, n = 3, 5
    size = max(1, -(-len(blob) // k))
    data = np.frombuffer(blob + bytes(k * size - len(blob)), dtype=np.uint8).reshape(k, size)
    cauchy = field([[int(field(1) / field((k + i) ^ j)) for j in range(k)] for i in range(n - k)])
    shards = [row.tobytes() for row in data] + [np.asarray(row, dtype=np.uint8).tobytes() for row in cauchy @ field(data)]
    assert [s.hex() for s in shards] == a["shards"]
    assert spec_root(shards).hex() == a["shards_root"]
    body = {"data_digest": H(b"pinpoint/v1/availability-data\n" + blob).hex(), "job_id": "22" * 32, "k": k, "n": n,
            "shard_size": size, "shards_root": a["shards_root"], "size": len(blob), "state_root": "33" * 32, "step": 3}
    assert canonical(body).decode() == a["commitment"]
    commitment_id = H(b"pinpoint/v1/availability-id\n" + canonical(body))
    assert commitment_id.hex() == a["commitment_id"]
    indices = [int.from_bytes(H(b"pinpoint/v1/availability-challenge\n" + bytes(32) + commitment_id
                                + j.to_bytes(8, "little")), "little") % n for j in range(8)]
    assert " ".join(map(str, indices)) == a["challenges_seed_0"]
    run_leaves = [bytes(32)] * 11  # T = 10: a leaf per state, the id at the step of the one coded checkpoint
    run_leaves[3] = commitment_id
    assert spec_root(run_leaves).hex() == a["run_root"]
    assert [node.hex() for node in spec_proof(run_leaves, 3)] == a["run_proof_3"]
    assert spec_fold(3, leaf_hash(commitment_id), [bytes.fromhex(h) for h in a["run_proof_3"]]).hex() == a["run_root"]
    positions = [int.from_bytes(H(b"pinpoint/v1/availability-sample\n" + (7).to_bytes(8, "little") + bytes([0x44] * 32)
                                  + j.to_bytes(8, "little")), "little") % 5 for j in range(8)]
    assert " ".join(map(str, positions)) == a["sample_positions_epoch_7"]
