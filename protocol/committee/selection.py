"""Who sits on an epoch's committee: referees registered with stake, drawn by stake from a seed that no
member controls in advance.

**Registration.** A referee registers its BLS public key with a proof of possession (checked here) and
with its beacon commitment for the next epoch, `H("pinpoint/v1/committee-beacon\\n" || epoch (8 bytes,
little-endian) || key || secret)` for a 32-byte secret it keeps. Registration for epoch e closes before
any secret for e is revealed.

**The seed** of epoch e is `H("pinpoint/v1/committee-seed\\n" || epoch || for each valid reveal, in order
of key: key || secret)`. Every secret was fixed by its commitment before any was revealed, so one honest
referee's secret makes the seed unpredictable to all the others until it is revealed; a candidate list
is fixed before then, so nobody can register, or leave, knowing the draw. The last revealer can still
withhold its reveal and choose between two seeds; a commitment not revealed is a fault that costs
`missed_reveal_slash_bps` of stake (`compute_missing_reveals`), more than that bit is worth.

**The draw** is stake-weighted sampling without replacement: candidates in order of key, seat i takes
`x_i = int(H("pinpoint/v1/committee-draw\\n" || seed || i (8 bytes, little-endian)), little-endian)
mod W`, W the stake of the candidates not yet drawn, and picks the candidate whose interval of the
running sum of stakes holds x_i. (x_i mod W is biased by less than W / 2**256: negligible for any supply
of tokens.) Committees rotate every epoch: a new seed and a new stake snapshot draw a new committee.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import blake3

from protocol.committee.bls import (
    DEFAULT_BACKEND,
    PUBLIC_KEY_SIZE,
    BLSBackend,
    BLSPublicKey,
    is_valid_possession,
    is_valid_public_key,
)
from protocol.types import DIGEST_SIZE, Root

BEACON_DOMAIN = b"pinpoint/v1/committee-beacon\n"
SEED_DOMAIN = b"pinpoint/v1/committee-seed\n"
DRAW_DOMAIN = b"pinpoint/v1/committee-draw\n"
COMMITTEE_DOMAIN = b"pinpoint/v1/committee\n"
SECRET_SIZE = 32
MAX_EPOCH = (1 << 64) - 1


class SelectionError(ValueError):
    """A candidate list or beacon input that cannot draw a committee."""


@dataclass(frozen=True)
class Registration:
    """What a referee sends to join the candidates: its account, its BLS key and the proof it holds it."""

    account: str
    key: BLSPublicKey
    proof: bytes  # PopProve(secret key), 96 bytes


@dataclass(frozen=True)
class Candidate:
    """A registered referee at the stake snapshot of an epoch."""

    account: str
    key: BLSPublicKey
    stake: int  # tokens bonded at the snapshot


@dataclass(frozen=True)
class Member:
    account: str
    key: BLSPublicKey
    stake: int  # tokens: the member's weight in the quorum


@dataclass(frozen=True)
class Committee:
    """One epoch's committee; members in the order they were drawn, indexed from 0 by attestations."""

    epoch: int
    seed: Root
    members: tuple[Member, ...]

    @property
    def total_stake(self) -> int:
        return sum(member.stake for member in self.members)


def get_registration_problem(registration: Registration, backend: BLSBackend = DEFAULT_BACKEND) -> str | None:
    """Why a registration cannot be accepted (None when it can): a key that is not a valid point of G1, or a
    proof of possession that does not verify for it."""
    if not isinstance(registration.account, str) or not registration.account:
        return "a registration names an account"
    if not is_valid_public_key(registration.key, backend):
        return f"the key is not a valid BLS public key ({PUBLIC_KEY_SIZE} bytes, a point of G1's subgroup)"
    if not is_valid_possession(registration.key, registration.proof, backend):
        return "the proof of possession does not verify for the key"
    return None


def _epoch_bytes(epoch: int) -> bytes:
    if type(epoch) is not int or not 0 <= epoch <= MAX_EPOCH:
        raise SelectionError(f"an epoch is an integer in [0, 2**64), got {epoch!r}")
    return epoch.to_bytes(8, "little")


def compute_beacon_commitment(epoch: int, key: bytes, secret: bytes) -> Root:
    """What a referee commits to at registration for epoch `epoch`'s seed."""
    if len(secret) != SECRET_SIZE or len(key) != PUBLIC_KEY_SIZE:
        raise SelectionError(f"a beacon secret is {SECRET_SIZE} bytes and a key {PUBLIC_KEY_SIZE}")
    return Root(blake3.blake3(BEACON_DOMAIN + _epoch_bytes(epoch) + bytes(key) + bytes(secret)).digest())


def get_valid_reveals(epoch: int, commitments: Mapping[bytes, bytes], reveals: Mapping[bytes, bytes]) -> dict[bytes, bytes]:
    """The reveals that open their key's commitment (others are ignored: they are not reveals)."""
    valid = {}
    for key, secret in reveals.items():
        commitment = commitments.get(bytes(key))
        if (commitment is not None and isinstance(secret, bytes) and len(secret) == SECRET_SIZE
                and compute_beacon_commitment(epoch, key, secret) == bytes(commitment)):
            valid[bytes(key)] = bytes(secret)
    return valid


def compute_missing_reveals(epoch: int, commitments: Mapping[bytes, bytes], reveals: Mapping[bytes, bytes]) -> tuple[bytes, ...]:
    """Keys that committed and did not open their commitment: each is a fault."""
    valid = get_valid_reveals(epoch, commitments, reveals)
    return tuple(sorted(key for key in commitments if bytes(key) not in valid))


def compute_epoch_seed(epoch: int, commitments: Mapping[bytes, bytes], reveals: Mapping[bytes, bytes]) -> Root:
    """The seed of `epoch` from the reveals that open their commitments; SelectionError when none does
    (then nothing unpredictable went in, and no committee may be drawn from it)."""
    valid = get_valid_reveals(epoch, commitments, reveals)
    if not valid:
        raise SelectionError(f"no valid beacon reveal for epoch {epoch}: its seed would be predictable")
    hasher = blake3.blake3(SEED_DOMAIN + _epoch_bytes(epoch))
    for key in sorted(valid):
        hasher.update(key + valid[key])
    return Root(hasher.digest())


def compute_draw(seed: bytes, seat: int, weight: int) -> int:
    """x_seat: a point in [0, weight) of the running sum of the remaining candidates' stakes."""
    digest = blake3.blake3(DRAW_DOMAIN + bytes(seed) + seat.to_bytes(8, "little")).digest()
    return int.from_bytes(digest, "little") % weight  # bias < weight / 2**256, negligible


def compute_committee(epoch: int, seed: bytes, candidates: Sequence[Candidate], size: int) -> Committee:
    """The committee of `epoch`: `size` candidates (all of them when fewer), drawn by stake."""
    _epoch_bytes(epoch)
    if len(seed) != DIGEST_SIZE:
        raise SelectionError(f"a seed is {DIGEST_SIZE} bytes, got {len(seed)}")
    if type(size) is not int or size < 1:
        raise SelectionError(f"a committee has at least one seat, got {size!r}")
    keys = [bytes(candidate.key) for candidate in candidates]
    if len(set(keys)) != len(keys):
        raise SelectionError("two candidates register the same key: one member would count twice")
    accounts = [candidate.account for candidate in candidates]
    if len(set(accounts)) != len(accounts):
        raise SelectionError("an account registers two candidates")
    for candidate in candidates:
        if type(candidate.stake) is not int or candidate.stake <= 0:
            raise SelectionError(f"candidate {candidate.account!r} has no stake ({candidate.stake!r})")
    remaining = sorted(candidates, key=lambda candidate: bytes(candidate.key))
    drawn: list[Member] = []
    for seat in range(min(size, len(remaining))):
        x = compute_draw(seed, seat, sum(candidate.stake for candidate in remaining))
        for position, candidate in enumerate(remaining):
            if x < candidate.stake:
                drawn.append(Member(candidate.account, candidate.key, candidate.stake))
                del remaining[position]
                break
            x -= candidate.stake
    return Committee(epoch, Root(bytes(seed)), tuple(drawn))


def compute_committee_root(committee: Committee) -> Root:
    """H over the epoch, the seed and the members (key and stake, in seat order): what an attestation is
    checked against, so two parties holding the same root hold the same committee."""
    hasher = blake3.blake3(COMMITTEE_DOMAIN + _epoch_bytes(committee.epoch) + bytes(committee.seed))
    for member in committee.members:
        hasher.update(bytes(member.key) + member.stake.to_bytes(16, "little"))
    return Root(hasher.digest())
