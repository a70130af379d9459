"""Signed statements: Ed25519 over a canonical, domain-separated encoding.

A statement is a JSON object with sorted keys and no whitespace; bytes are lowercase hex. What is
signed is `b"pinpoint/v1/" + kind + b"\\n" + canonical JSON`, so a signature for one kind of
statement can never be replayed as another kind. `verify_statement` never raises.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocol.types import PublicKeyBytes, SignatureBytes

SIGNATURE_DOMAIN = b"pinpoint/v1/"


def compute_canonical_json(obj: Any) -> bytes:
    """Canonical JSON: sorted keys, no whitespace, bytes as hex, no floats that are not finite."""

    def default(value: Any) -> Any:
        if isinstance(value, bytes | bytearray):
            return bytes(value).hex()
        raise TypeError(f"cannot encode {type(value).__name__} canonically")

    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=default, allow_nan=False).encode()


def compute_signing_payload(kind: str, body: Any) -> bytes:
    """The exact bytes an Ed25519 signature covers for a statement of `kind`."""
    if not kind or "\n" in kind:
        raise ValueError(f"bad statement kind {kind!r}")
    return SIGNATURE_DOMAIN + kind.encode() + b"\n" + compute_canonical_json(body)


def generate_private_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def get_public_key_bytes(key: Ed25519PrivateKey) -> PublicKeyBytes:
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return PublicKeyBytes(raw)


def private_key_to_bytes(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def private_key_from_bytes(raw: bytes) -> Ed25519PrivateKey:
    if len(raw) != 32:
        raise ValueError(f"an Ed25519 private key is 32 bytes, got {len(raw)}")
    return Ed25519PrivateKey.from_private_bytes(raw)


def sign_statement(key: Ed25519PrivateKey, kind: str, body: Any) -> SignatureBytes:
    return SignatureBytes(key.sign(compute_signing_payload(kind, body)))


def verify_statement(public_key: bytes, kind: str, body: Any, signature: bytes) -> bool:
    """True when `signature` is `public_key`'s signature of the statement; False on any bad input."""
    try:
        payload = compute_signing_payload(kind, body)
        Ed25519PublicKey.from_public_bytes(bytes(public_key)).verify(bytes(signature), payload)
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False
