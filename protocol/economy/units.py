"""Units of the economy, in types (STYLE.md, item 2).

Money is `protocol.types.Tokens`: an integer count of the token's smallest unit. Protocol time is
counted in epochs (`Epoch`), never read from a clock: every transition works on `state.epoch`,
which only `process_epoch` advances.

Accounts are named by an `AccountId`, a non-empty string. An account that signs transactions is
named by the lowercase hex of its raw 32-byte Ed25519 public key (64 characters), so the message
layer can check a signature against the sender's name alone. A driver that applies transitions
directly (the simulation, tests) may use any short name such as "alice"; such an account can never
send a signed transaction, because no key's hex equals its name.
"""

from __future__ import annotations

from typing import NewType

AccountId = NewType("AccountId", str)
"""An account's name: hex of its Ed25519 public key, or a free name for directly driven accounts."""

JobId = NewType("JobId", int)
"""A job, numbered from 0 in the order jobs are posted."""

ProposalId = NewType("ProposalId", int)
"""A governance proposal, numbered from 0 in the order proposals are made."""

Epoch = NewType("Epoch", int)
"""Protocol time: epochs counted from 0 at genesis."""

BasisPoints = NewType("BasisPoints", int)
"""A fraction in units of 1/10,000 (10,000 basis points = 1)."""

WorkUnits = NewType("WorkUnits", int)
"""Compute a job asks for, in abstract units (e.g. training steps x model size); prices are per unit."""

ReputationPoints = NewType("ReputationPoints", int)
"""Reputation, a non-negative integer score that grows with settled jobs and decays each epoch."""

BPS_DENOMINATOR = 10_000
"""Basis points in a whole."""
