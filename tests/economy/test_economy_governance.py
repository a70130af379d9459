"""Governance: stake-weighted votes, quorum, approval, execution delay, validated changes."""

from __future__ import annotations

from protocol.economy import (
    AlreadyVoted,
    InsufficientStake,
    InvalidParameter,
    ProposalAlreadyExecuted,
    ProposalNotPassed,
    UnknownProposal,
    VotingClosed,
    VotingStillOpen,
    check_invariants,
    compute_tax_bps,
    process_execute_proposal,
    process_propose,
    process_stake,
    process_vote,
)
from protocol.economy.state import State

from .actors import advance, expect_unchanged, make_economy


def staked_economy() -> State:
    s = make_economy()
    for name, amount in [("alice", 500), ("bob", 300), ("carol", 200)]:
        process_stake(s, name, amount)
    return s


def test_passed_proposal_executes_after_delay() -> None:
    s = staked_economy()
    pid = process_propose(s, "alice", "slash_fraction_bps", 8_000)
    process_vote(s, "alice", pid, True)
    process_vote(s, "carol", pid, False)
    expect_unchanged(s, AlreadyVoted, process_vote, "alice", pid, True)
    expect_unchanged(s, VotingStillOpen, process_execute_proposal, pid)
    advance(s, s.params.voting_period_epochs)
    expect_unchanged(s, VotingClosed, process_vote, "bob", pid, False)
    advance(s, s.params.execution_delay_epochs - 1)
    expect_unchanged(s, VotingStillOpen, process_execute_proposal, pid)
    advance(s, 1)
    process_execute_proposal(s, pid)
    assert s.params.slash_fraction_bps == 8_000
    expect_unchanged(s, ProposalAlreadyExecuted, process_execute_proposal, pid)
    check_invariants(s)


def test_quorum_and_approval() -> None:
    s = staked_economy()  # stakes: alice 500, bob 300, carol 200; quorum 50%, approval > 50%
    low = process_propose(s, "alice", "job_tax_bps", 100)
    process_vote(s, "carol", low, True)  # 200 of 1,000 staked: no quorum
    tie = process_propose(s, "alice", "job_tax_bps", 200)
    process_vote(s, "bob", tie, True)
    process_vote(s, "carol", tie, True)
    process_vote(s, "alice", tie, False)  # 500 yes, 500 no: not more than half
    against = process_propose(s, "bob", "job_tax_bps", 300)
    process_vote(s, "alice", against, False)
    process_vote(s, "bob", against, True)
    passing = process_propose(s, "bob", "job_tax_bps", 400)
    process_vote(s, "bob", passing, True)
    process_vote(s, "carol", passing, False)  # 300 yes, 200 no, 500 cast: quorum met, approved
    advance(s, s.params.voting_period_epochs + s.params.execution_delay_epochs)
    for pid in (low, tie, against):
        expect_unchanged(s, ProposalNotPassed, process_execute_proposal, pid)
    process_execute_proposal(s, passing)
    assert compute_tax_bps(s.params) == 400


def test_proposal_rules() -> None:
    s = staked_economy()
    expect_unchanged(s, InsufficientStake, process_propose, "dave", "job_tax_bps", 100)
    expect_unchanged(s, InvalidParameter, process_propose, "alice", "job_tax_bps", 20_000)
    expect_unchanged(s, InvalidParameter, process_propose, "alice", "nonsense", 1)
    expect_unchanged(s, InvalidParameter, process_propose, "alice", "reward_model", "lottery")
    expect_unchanged(s, UnknownProposal, process_vote, "alice", 7, True)
    pid = process_propose(s, "alice", "reward_model", "stake")
    expect_unchanged(s, InsufficientStake, process_vote, "dave", pid, True)
