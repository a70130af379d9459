"""Governance: parameter changes by stake-weighted vote, with a quorum and an execution delay.

A vote weighs the voter's stake when it votes. Stake cannot move between accounts without
unbonding, and unbonding lasts at least a voting period (a `Params` rule), so the same tokens
cannot vote twice on one proposal through a second account.
"""

from __future__ import annotations

from protocol.economy.errors import (
    AlreadyVoted,
    InsufficientStake,
    MalformedTransaction,
    ProposalAlreadyExecuted,
    ProposalNotPassed,
    UnknownProposal,
    VotingClosed,
    VotingStillOpen,
)
from protocol.economy.helpers import get_account, get_stake
from protocol.economy.params import compute_changed_params
from protocol.economy.state import Proposal, State
from protocol.economy.units import BPS_DENOMINATOR, ProposalId


def get_proposal(state: State, proposal_id: int) -> Proposal:
    proposal = state.proposals.get(proposal_id) if type(proposal_id) is int else None
    if proposal is None:
        raise UnknownProposal(f"no proposal {proposal_id!r}")
    return proposal


def process_propose(state: State, proposer: str, parameter: str, value: int | str) -> ProposalId:
    """Propose setting `parameter` to `value`; the proposer needs `proposal_min_stake` staked and the
    change must be valid against today's parameters. Returns the proposal's id."""
    p = state.params
    get_account(state, proposer)
    if get_stake(state, proposer) < p.proposal_min_stake:
        raise InsufficientStake(f"a proposal takes {p.proposal_min_stake} staked")
    compute_changed_params(p, parameter, value)
    proposal_id = state.next_proposal_id
    state.proposals[proposal_id] = Proposal(
        proposal_id, proposer, parameter, value, state.epoch, state.epoch + p.voting_period_epochs
    )
    state.next_proposal_id += 1
    return ProposalId(proposal_id)


def process_vote(state: State, voter: str, proposal_id: ProposalId, support: bool) -> None:
    """Vote for (`support`) or against a proposal with all of one's current stake, once."""
    proposal = get_proposal(state, proposal_id)
    get_account(state, voter)
    if state.epoch >= proposal.voting_end_epoch:
        raise VotingClosed(f"proposal {proposal_id}'s vote ended at epoch {proposal.voting_end_epoch}")
    if voter in proposal.voters:
        raise AlreadyVoted(f"{voter!r} already voted on proposal {proposal_id}")
    if type(support) is not bool:
        raise MalformedTransaction(f"support is true or false, got {support!r}")
    weight = get_stake(state, voter)
    if weight <= 0:
        raise InsufficientStake(f"{voter!r} has no stake to vote with")
    proposal.voters[voter] = support
    if support:
        proposal.yes += weight
    else:
        proposal.no += weight


def is_proposal_passed(state: State, proposal: Proposal) -> bool:
    """Quorum: votes cast reach `quorum_bps` of today's total stake; approval: yes votes exceed
    `approval_bps` of votes cast (compared in integers, no rounding)."""
    p = state.params
    cast = proposal.yes + proposal.no
    quorum = cast * BPS_DENOMINATOR >= p.quorum_bps * state.total_staked and cast > 0
    return quorum and proposal.yes * BPS_DENOMINATOR > p.approval_bps * cast


def process_execute_proposal(state: State, proposal_id: ProposalId) -> None:
    """Apply a passed proposal once its vote and execution delay are over (anyone may call)."""
    proposal = get_proposal(state, proposal_id)
    if proposal.executed:
        raise ProposalAlreadyExecuted(f"proposal {proposal_id} was executed already")
    ready = proposal.voting_end_epoch + state.params.execution_delay_epochs
    if state.epoch < ready:
        raise VotingStillOpen(f"proposal {proposal_id} can be executed from epoch {ready}")
    if not is_proposal_passed(state, proposal):
        raise ProposalNotPassed(
            f"proposal {proposal_id}: yes {proposal.yes}, no {proposal.no}, total stake {state.total_staked}"
        )
    state.params = compute_changed_params(state.params, proposal.parameter, proposal.value)
    proposal.executed = True
