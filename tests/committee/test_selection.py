"""The committee draw: stake-weighted, without replacement, from a commit–reveal seed, rotating by epoch.

No BLS operation is needed: keys here are opaque 48-byte names (registration checks them elsewhere)."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.committee import (
    Candidate,
    SelectionError,
    compute_beacon_commitment,
    compute_committee,
    compute_committee_root,
    compute_epoch_seed,
    compute_missing_reveals,
)
from protocol.committee.bls import BLSPublicKey
from tests.game.game_support import game_settings


def key(i: int) -> BLSPublicKey:
    return BLSPublicKey(i.to_bytes(48, "big"))


def candidates(stakes: list[int]) -> list[Candidate]:
    return [Candidate(f"referee-{i}", key(i), stake) for i, stake in enumerate(stakes)]


def secret(i: int) -> bytes:
    return bytes([i]) * 32


@given(stakes=st.lists(st.integers(1, 10**6), min_size=1, max_size=12), size=st.integers(1, 8),
       seed=st.binary(min_size=32, max_size=32))
@game_settings(100)
def test_a_committee_is_distinct_candidates_drawn_deterministically(stakes: list[int], size: int, seed: bytes) -> None:
    pool = candidates(stakes)
    committee = compute_committee(3, seed, pool, size)
    assert len(committee.members) == min(size, len(pool))
    assert len({member.key for member in committee.members}) == len(committee.members)
    assert {(m.account, m.key, m.stake) for m in committee.members} <= {(c.account, c.key, c.stake) for c in pool}
    # the order candidates are listed in is not an input
    assert compute_committee(3, seed, list(reversed(pool)), size) == committee
    assert compute_committee_root(committee) == compute_committee_root(compute_committee(3, seed, pool, size))


def test_seats_go_to_stake() -> None:
    """A one-seat committee over stakes 1 : 2 : 3 : 4 picks each candidate at its share of the stake
    (2000 seeds; each count within 4.5 standard deviations of its expectation)."""
    stakes = [1_000, 2_000, 3_000, 4_000]
    pool = candidates(stakes)
    counts = [0] * 4
    trials = 2_000
    for n in range(trials):
        member = compute_committee(0, n.to_bytes(32, "little"), pool, 1).members[0]
        counts[int(member.account.split("-")[1])] += 1
    for stake, count in zip(stakes, counts, strict=True):
        p = stake / sum(stakes)
        assert abs(count - trials * p) < 4.5 * math.sqrt(trials * p * (1 - p)), (counts, stakes)


def test_the_seed_needs_one_valid_reveal_and_binds_every_one() -> None:
    epoch = 9
    commitments = {bytes(key(i)): compute_beacon_commitment(epoch, key(i), secret(i)) for i in range(3)}
    reveals = {bytes(key(i)): secret(i) for i in range(3)}
    seed = compute_epoch_seed(epoch, commitments, reveals)
    assert compute_missing_reveals(epoch, commitments, reveals) == ()
    # one reveal withheld: another seed, and the withholder is named for its fault
    partial = {k: v for k, v in reveals.items() if k != bytes(key(2))}
    assert compute_epoch_seed(epoch, commitments, partial) != seed
    assert compute_missing_reveals(epoch, commitments, partial) == (bytes(key(2)),)
    # a reveal that does not open its commitment (another secret, another epoch's) counts as withheld
    wrong = {**reveals, bytes(key(1)): secret(7)}
    assert compute_missing_reveals(epoch, commitments, wrong) == (bytes(key(1)),)
    assert compute_epoch_seed(epoch, commitments, wrong) == compute_epoch_seed(
        epoch, commitments, {k: v for k, v in reveals.items() if k != bytes(key(1))})
    assert compute_missing_reveals(epoch + 1, commitments, reveals) == tuple(sorted(commitments))
    # a reveal from a key that never committed adds nothing
    assert compute_epoch_seed(epoch, commitments, {**reveals, bytes(key(5)): secret(5)}) == seed
    with pytest.raises(SelectionError, match="predictable"):
        compute_epoch_seed(epoch, commitments, {})


def test_committees_rotate_with_the_epochs_seed() -> None:
    pool = candidates([100] * 16)
    committees = []
    for epoch in range(6):
        commitments = {bytes(key(i)): compute_beacon_commitment(epoch, key(i), secret(i)) for i in range(16)}
        reveals = {bytes(key(i)): secret(i) for i in range(16)}
        committees.append(compute_committee(epoch, compute_epoch_seed(epoch, commitments, reveals), pool, 4))
    assert len({tuple(member.key for member in c.members) for c in committees}) == 6
    assert len({compute_committee_root(c) for c in committees}) == 6


def test_bad_candidate_lists_are_refused() -> None:
    seed = bytes(32)
    with pytest.raises(SelectionError, match="same key"):
        compute_committee(0, seed, [Candidate("a", key(1), 5), Candidate("b", key(1), 5)], 2)
    with pytest.raises(SelectionError, match="two candidates"):
        compute_committee(0, seed, [Candidate("a", key(1), 5), Candidate("a", key(2), 5)], 2)
    with pytest.raises(SelectionError, match="no stake"):
        compute_committee(0, seed, [Candidate("a", key(1), 0)], 1)
    with pytest.raises(SelectionError, match="32 bytes"):
        compute_committee(0, bytes(31), candidates([1]), 1)
    with pytest.raises(SelectionError, match="at least one seat"):
        compute_committee(0, seed, candidates([1]), 0)
    with pytest.raises(SelectionError, match="epoch"):
        compute_committee(-1, seed, candidates([1]), 1)
