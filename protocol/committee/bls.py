"""BLS signatures over BLS12-381: the IETF ciphersuite with proof of possession, behind one seam.

    ciphersuite  BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_   (draft-irtf-cfrg-bls-signature, section 4.2.3)
    public key   48 bytes, a compressed G1 point
    signature    96 bytes, a compressed G2 point
    secret key   an integer in [1, r), derived from at least 32 bytes of key material by KeyGen

A committee member registers its public key with a proof of possession (`PopProve`: its signature of
its own public key under the ciphersuite's POP tag). A key is accepted only with a valid proof, so nobody
can register a key made from another member's key (the rogue-key attack) and, with every member's key
checked once at registration, one aggregate signature over a common message is verified with a single
pairing check (`FastAggregateVerify`) whatever the committee's size.

py_ecc is the reference backend. `ARKWORKS` is an optional faster one: the ciphersuite written over the
curve operations of the `py_arkworks_bls12381` wheel (Rust arkworks, the fast backend of Ethereum's
executable consensus spec), byte-compatible with py_ecc on the same keys and messages
(tests/committee/test_backends.py compares keys, signatures, aggregates, proofs and every verdict,
hostile encodings included). It is None when the wheel is not installed. Verification functions
return False on any bad input and never raise (STYLE.md, item 4).
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, NewType, Protocol

_RECURSION_LIMIT = sys.getrecursionlimit()
from py_ecc.bls import G2ProofOfPossession  # noqa: E402

# Importing py_ecc raises the interpreter's recursion limit to 100000 for the whole process, which would
# let hostile nesting overflow the C stack where the limit is what refuses it (e.g. a deeply nested TOML
# config): put it back. Its BLS operations do not recurse that deep.
sys.setrecursionlimit(_RECURSION_LIMIT)

BLSPublicKey = NewType("BLSPublicKey", bytes)
"""A 48-byte compressed G1 point."""

BLSSignature = NewType("BLSSignature", bytes)
"""A 96-byte compressed G2 point."""

BLSSecretKey = NewType("BLSSecretKey", int)
"""A scalar in [1, r): never leaves its holder."""

PUBLIC_KEY_SIZE = 48
SIGNATURE_SIZE = 96
MIN_KEY_MATERIAL = 32  # bytes of secret randomness KeyGen requires
CIPHERSUITE = b"BLS_SIG_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"
POP_TAG = b"BLS_POP_BLS12381G2_XMD:SHA-256_SSWU_RO_POP_"  # the proof of possession's domain (section 4.2.3)


class BLSError(ValueError):
    """Input a signer cannot use (key material too short, nothing to aggregate)."""


class BLSBackend(Protocol):
    """The operations of the ciphersuite a committee needs (the IETF draft's names)."""

    name: str

    def key_gen(self, material: bytes) -> BLSSecretKey: ...

    def sk_to_pk(self, secret: BLSSecretKey) -> BLSPublicKey: ...

    def sign(self, secret: BLSSecretKey, message: bytes) -> BLSSignature: ...

    def pop_prove(self, secret: BLSSecretKey) -> BLSSignature: ...

    def pop_verify(self, public_key: bytes, proof: bytes) -> bool: ...

    def key_validate(self, public_key: bytes) -> bool: ...

    def aggregate(self, signatures: Sequence[bytes]) -> BLSSignature: ...

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool: ...

    def fast_aggregate_verify(self, public_keys: Sequence[bytes], message: bytes, signature: bytes) -> bool: ...


class PyEccBackend:
    """py_ecc's pure-Python implementation: the reference."""

    name = "py_ecc"

    def key_gen(self, material: bytes) -> BLSSecretKey:
        return BLSSecretKey(G2ProofOfPossession.KeyGen(bytes(material)))

    def sk_to_pk(self, secret: BLSSecretKey) -> BLSPublicKey:
        return BLSPublicKey(bytes(G2ProofOfPossession.SkToPk(int(secret))))

    def sign(self, secret: BLSSecretKey, message: bytes) -> BLSSignature:
        return BLSSignature(bytes(G2ProofOfPossession.Sign(int(secret), bytes(message))))

    def pop_prove(self, secret: BLSSecretKey) -> BLSSignature:
        return BLSSignature(bytes(G2ProofOfPossession.PopProve(int(secret))))

    def pop_verify(self, public_key: bytes, proof: bytes) -> bool:
        return bool(G2ProofOfPossession.PopVerify(public_key, proof))  # type: ignore[arg-type]

    def key_validate(self, public_key: bytes) -> bool:
        return bool(G2ProofOfPossession.KeyValidate(public_key))  # type: ignore[arg-type]

    def aggregate(self, signatures: Sequence[bytes]) -> BLSSignature:
        return BLSSignature(bytes(G2ProofOfPossession.Aggregate(list(signatures))))  # type: ignore[arg-type]

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        return bool(G2ProofOfPossession.Verify(public_key, message, signature))  # type: ignore[arg-type]

    def fast_aggregate_verify(self, public_keys: Sequence[bytes], message: bytes, signature: bytes) -> bool:
        return bool(G2ProofOfPossession.FastAggregateVerify(list(public_keys), message, signature))  # type: ignore[arg-type]


PY_ECC: BLSBackend = PyEccBackend()
DEFAULT_BACKEND: BLSBackend = PY_ECC


class ArkworksBackend(PyEccBackend):
    """The ciphersuite on `py_arkworks_bls12381`'s curve operations (Rust arkworks: RFC 9380 hash to G2,
    compressed points, the pairing check). Only KeyGen, a hash with no curve arithmetic, stays py_ecc's.

    A point is accepted only in its canonical compressed encoding (decoded and encoded again, the same
    bytes) and in the prime-order subgroup, as py_ecc accepts it, so both backends refuse the same bytes."""

    name = "arkworks"

    def __init__(self, module: Any) -> None:
        self._ark = module
        self._g1 = module.G1Point()  # the generator

    def _scalar(self, secret: BLSSecretKey) -> Any:
        return self._ark.Scalar(int(secret))

    def _g1_point(self, data: bytes) -> Any:
        point = self._ark.G1Point.from_compressed_bytes(bytes(data))
        if point.to_compressed_bytes() != bytes(data) or not point.is_in_subgroup():
            raise ValueError("not the canonical encoding of a point of G1's subgroup")
        return point

    def _g2_point(self, data: bytes) -> Any:
        point = self._ark.G2Point.from_compressed_bytes(bytes(data))
        if point.to_compressed_bytes() != bytes(data) or not point.is_in_subgroup():
            raise ValueError("not the canonical encoding of a point of G2's subgroup")
        return point

    def _key(self, public_key: bytes) -> Any:
        """KeyValidate's point: in G1's subgroup and not the identity; ValueError otherwise."""
        point = self._g1_point(public_key)
        if point == self._ark.G1Point.identity():
            raise ValueError("the identity is no public key")
        return point

    def _core_sign(self, secret: BLSSecretKey, message: bytes, dst: bytes) -> BLSSignature:
        point = self._ark.G2Point.hash_to_curve(bytes(message), dst) * self._scalar(secret)
        return BLSSignature(bytes(point.to_compressed_bytes()))

    def _core_verify(self, key: Any, message: bytes, signature: bytes, dst: bytes) -> bool:
        """e(key, H(message)) == e(g1, signature), as one product of pairings equal to 1."""
        try:
            point = self._g2_point(signature)
        except ValueError:
            return False
        return bool(self._ark.GT.pairing_check([key, -self._g1], [self._ark.G2Point.hash_to_curve(bytes(message), dst),
                                                                  point]))

    def sk_to_pk(self, secret: BLSSecretKey) -> BLSPublicKey:
        return BLSPublicKey(bytes((self._g1 * self._scalar(secret)).to_compressed_bytes()))

    def sign(self, secret: BLSSecretKey, message: bytes) -> BLSSignature:
        return self._core_sign(secret, message, CIPHERSUITE)

    def pop_prove(self, secret: BLSSecretKey) -> BLSSignature:
        return self._core_sign(secret, self.sk_to_pk(secret), POP_TAG)

    def pop_verify(self, public_key: bytes, proof: bytes) -> bool:
        try:
            return self._core_verify(self._key(public_key), public_key, proof, POP_TAG)
        except ValueError:
            return False

    def key_validate(self, public_key: bytes) -> bool:
        try:
            self._key(public_key)
            return True
        except ValueError:
            return False

    def aggregate(self, signatures: Sequence[bytes]) -> BLSSignature:
        total = self._ark.G2Point.identity()
        for signature in signatures:
            total = total + self._g2_point(signature)
        return BLSSignature(bytes(total.to_compressed_bytes()))

    def verify(self, public_key: bytes, message: bytes, signature: bytes) -> bool:
        try:
            return self._core_verify(self._key(public_key), message, signature, CIPHERSUITE)
        except ValueError:
            return False

    def fast_aggregate_verify(self, public_keys: Sequence[bytes], message: bytes, signature: bytes) -> bool:
        if not public_keys:
            return False
        try:
            total = self._ark.G1Point.identity()
            for key in public_keys:
                total = total + self._key(key)
        except ValueError:
            return False
        return self._core_verify(total, message, signature, CIPHERSUITE)


def _load_arkworks() -> BLSBackend | None:
    try:
        import py_arkworks_bls12381  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return ArkworksBackend(py_arkworks_bls12381)


ARKWORKS: BLSBackend | None = _load_arkworks()
"""The optional fast backend, or None when its wheel is not installed."""

BACKENDS: dict[str, BLSBackend] = {"py_ecc": PY_ECC, **({"arkworks": ARKWORKS} if ARKWORKS is not None else {})}
"""Every backend installed here, by name."""


def _is_bytes(value: object, size: int) -> bool:
    return isinstance(value, bytes | bytearray) and len(value) == size


def generate_secret_key(material: bytes, backend: BLSBackend = DEFAULT_BACKEND) -> BLSSecretKey:
    """KeyGen from at least 32 bytes of secret key material (e.g. `os.urandom(32)`)."""
    if not isinstance(material, bytes | bytearray) or len(material) < MIN_KEY_MATERIAL:
        raise BLSError(f"BLS key material must be at least {MIN_KEY_MATERIAL} bytes")
    return backend.key_gen(bytes(material))


def get_bls_public_key(secret: BLSSecretKey, backend: BLSBackend = DEFAULT_BACKEND) -> BLSPublicKey:
    return backend.sk_to_pk(secret)


def sign_bls(secret: BLSSecretKey, message: bytes, backend: BLSBackend = DEFAULT_BACKEND) -> BLSSignature:
    return backend.sign(secret, bytes(message))


def prove_possession(secret: BLSSecretKey, backend: BLSBackend = DEFAULT_BACKEND) -> BLSSignature:
    """The proof of possession that registers the key: PopProve(secret)."""
    return backend.pop_prove(secret)


def aggregate_signatures(signatures: Sequence[bytes], backend: BLSBackend = DEFAULT_BACKEND) -> BLSSignature:
    """One signature from many over the same message (the sum of the G2 points); BLSError on none or a
    malformed one."""
    if not signatures:
        raise BLSError("nothing to aggregate")
    if not all(_is_bytes(signature, SIGNATURE_SIZE) for signature in signatures):
        raise BLSError(f"every signature to aggregate must be {SIGNATURE_SIZE} bytes")
    try:
        return backend.aggregate([bytes(signature) for signature in signatures])
    except Exception as error:  # a point off the curve or outside the subgroup: the backend's own error
        raise BLSError(f"a signature to aggregate is not a point of G2: {error}") from error


def is_valid_public_key(public_key: bytes, backend: BLSBackend = DEFAULT_BACKEND) -> bool:
    """KeyValidate: 48 bytes that decode to a point of the prime-order subgroup of G1, not the identity."""
    try:
        return _is_bytes(public_key, PUBLIC_KEY_SIZE) and backend.key_validate(bytes(public_key))  # type: ignore[arg-type]
    except Exception:  # never raise on bad input (STYLE.md, item 4)
        return False


def is_valid_possession(public_key: bytes, proof: bytes, backend: BLSBackend = DEFAULT_BACKEND) -> bool:
    """PopVerify: `proof` shows that whoever registers `public_key` holds its secret key."""
    try:
        return (_is_bytes(public_key, PUBLIC_KEY_SIZE) and _is_bytes(proof, SIGNATURE_SIZE)
                and backend.pop_verify(bytes(public_key), bytes(proof)))  # type: ignore[arg-type]
    except Exception:
        return False


def is_valid_bls_signature(public_key: bytes, message: bytes, signature: bytes,
                           backend: BLSBackend = DEFAULT_BACKEND) -> bool:
    """One key's signature of `message`."""
    try:
        return (_is_bytes(public_key, PUBLIC_KEY_SIZE) and _is_bytes(signature, SIGNATURE_SIZE)
                and backend.verify(bytes(public_key), bytes(message), bytes(signature)))  # type: ignore[arg-type]
    except Exception:
        return False


def is_valid_aggregate(public_keys: Sequence[bytes], message: bytes, signature: bytes,
                       backend: BLSBackend = DEFAULT_BACKEND) -> bool:
    """FastAggregateVerify: `signature` aggregates every key's signature of the one `message`. The keys
    must have been registered with a valid proof of possession (that check is not repeated here)."""
    try:
        if not public_keys or not _is_bytes(signature, SIGNATURE_SIZE):
            return False
        if not all(_is_bytes(key, PUBLIC_KEY_SIZE) for key in public_keys):
            return False
        return backend.fast_aggregate_verify([bytes(key) for key in public_keys], bytes(message),  # type: ignore[arg-type]
                                             bytes(signature))  # type: ignore[arg-type]
    except Exception:
        return False
