"""Units that live in types (see STYLE.md, item 2).

Every quantity the protocol passes around has a named type, so a signature says what it takes:
a `Root` is 32 bytes of BLAKE3 output, a `StepIndex` counts training steps from 0, and so on.
"""

from __future__ import annotations

from typing import NewType

Root = NewType("Root", bytes)
"""32-byte hash: a tensor digest, a Merkle node, a state root, a chain root or a trace root."""

StepIndex = NewType("StepIndex", int)
"""A training step, numbered from 0: step t takes state s_t to s_{t+1}."""

NodeIndex = NewType("NodeIndex", int)
"""A node of a step's trace, numbered from 0 in execution order."""

Tokens = NewType("Tokens", int)
"""An amount of the protocol's token, in its smallest indivisible unit."""

Seconds = NewType("Seconds", float)
"""Wall-clock or protocol time, in seconds."""

PublicKeyBytes = NewType("PublicKeyBytes", bytes)
"""A raw 32-byte Ed25519 public key."""

SignatureBytes = NewType("SignatureBytes", bytes)
"""A raw 64-byte Ed25519 signature."""

DIGEST_SIZE = 32
"""Bytes in every hash the protocol uses (BLAKE3's default output length)."""
