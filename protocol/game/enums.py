"""Names the game speaks in: roles, phases, trees, outcomes, and why a party lost or a message was refused."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeAlias, TypeVar

_T = TypeVar("_T")
Pair: TypeAlias = tuple[_T, _T]
"""One value per party, indexed by `get_role_index`: (worker's, challenger's)."""


class Role(StrEnum):
    WORKER = "worker"  # the party whose run is disputed
    CHALLENGER = "challenger"  # the party who disputes it


ROLES: tuple[Role, Role] = (Role.WORKER, Role.CHALLENGER)


def get_role_index(role: Role) -> int:
    """Position of a role's value in a `Pair`."""
    return 0 if role is Role.WORKER else 1


def get_opponent(role: Role) -> Role:
    return Role.CHALLENGER if role is Role.WORKER else Role.WORKER


class Phase(StrEnum):
    SETUP = "setup"  # the two run commitments; no round played
    CHAIN = "chain"  # phase 1: dissection over the chain of state roots s_0 … s_T
    TRACE = "trace"  # phase 2: trace commitments, dissection inside one step, the referee


class TreeKind(StrEnum):
    CHAIN = "chain"  # leaves s_0 … s_T (each leaf's bytes are a 32-byte state root)
    OPS = "ops"  # leaves: the op leaves of one step, in execution order
    STATE_AFTER = "state_after"  # leaves: the state leaves of s_{t+1}


class Outcome(StrEnum):
    NO_DISPUTE = "no-dispute"  # equal chain roots
    DECIDED = "decided"  # one winner, one loser
    BOTH_LOSE = "both-lose"  # neither party's claim holds


class Reason(StrEnum):
    """Why the game ended; each names one rule (see `protocol.game.rules`)."""

    NOTHING_TO_DISPUTE = "nothing to dispute"
    TIMEOUT = "silent past its clock"
    MALFORMED_MESSAGE = "malformed message"
    EQUIVOCATION = "equivocation"
    BAD_PROOF = "bad proof"
    NON_CANONICAL_PADDING = "non-canonical tree padding"
    WRONG_INITIAL_STATE = "wrong initial state"
    STATE_DISAGREEMENT = "different preimages of an agreed state"
    BAD_TRACE_SIGNATURE = "bad trace commitment signature"
    INCONSISTENT_TRACE = "trace commitment inconsistent with chain"
    WRONG_STRUCTURE = "wrong step structure"
    BAD_EVIDENCE = "bad evidence"
    MISSING_EVIDENCE = "evidence withheld"
    WRONG_LEAF = "leaf differs from the referee's re-execution"


class Rejection(StrEnum):
    """Why a message was refused without costing its (claimed) sender anything but clock time."""

    UNKNOWN_SENDER = "unknown sender"  # names no role of this game
    BAD_SIGNATURE = "bad signature"  # not signed by the role's key for this game: anyone could have sent it
    DUPLICATE = "duplicate"  # the very answer already accepted
    FUTURE_QUERY = "answer to a query not yet asked"
    CLOSED_QUERY = "answer to a closed query"
    NOT_ASKED = "answer to an evidence query addressed to the other party"
