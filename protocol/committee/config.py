"""The committee's constants: one table, two presets (STYLE.md, item 3)."""

from __future__ import annotations

from dataclasses import dataclass

from protocol.types import Seconds


@dataclass(frozen=True)
class CommitteeConfig:
    size: int  # members: the committee drawn each epoch (fewer when fewer referees are staked)
    quorum_numerator: int  # an attestation needs signers holding at least numerator/denominator
    quorum_denominator: int  # of the committee's stake: 2/3, so up to 1/3 lying or silent cannot stop it
    signing_timeout: Seconds  # from a verdict request to the close of its round: later is silence
    challenge_timeout: Seconds  # from an availability challenge to its deadline
    max_members: int  # bound on the members a committee or a signer list read from JSON may name
    equivocation_slash_bps: int  # of stake: two verdicts for one game, each signed
    wrong_verdict_slash_bps: int  # of stake: a signed verdict the transcript refutes
    absence_slash_bps: int  # of stake: no signature by the round's close
    missed_reveal_slash_bps: int  # of stake: a beacon commitment never revealed (the withheld-reveal bias)
    unavailable_shard_slash_bps: int  # of stake: an availability challenge not answered by its deadline


MAINNET = CommitteeConfig(
    size=64,  # a pairing check is one whatever the size; 64 keeps any 1/3 coalition costly to buy
    quorum_numerator=2,
    quorum_denominator=3,
    signing_timeout=Seconds(600.0),  # re-executing one operator takes seconds; ten minutes covers replays
    challenge_timeout=Seconds(600.0),  # a shard is at most a few MB: minutes to fetch and send
    max_members=1024,
    equivocation_slash_bps=10_000,  # all of it: equivocation has no honest explanation
    wrong_verdict_slash_bps=10_000,  # all of it: the transcript shows anyone what was right
    absence_slash_bps=100,  # 1 %: being offline is a fault, not a fraud
    missed_reveal_slash_bps=500,  # 5 %: more than the bit of bias a withheld reveal can buy is worth
    unavailable_shard_slash_bps=1_000,  # 10 %: data that cannot be produced blocks disputes
)

MINIMAL = CommitteeConfig(
    size=4,
    quorum_numerator=2,
    quorum_denominator=3,
    signing_timeout=Seconds(60.0),
    challenge_timeout=Seconds(60.0),
    max_members=64,
    equivocation_slash_bps=10_000,
    wrong_verdict_slash_bps=10_000,
    absence_slash_bps=100,
    missed_reveal_slash_bps=500,
    unavailable_shard_slash_bps=1_000,
)

PRESETS = {"mainnet": MAINNET, "minimal": MINIMAL}

BPS_DENOMINATOR = 10_000


def compute_penalty(stake: int, bps: int) -> int:
    """The part of `stake` a fault costs: floor, so a penalty never exceeds the stake it is taken from."""
    return stake * bps // BPS_DENOMINATOR
