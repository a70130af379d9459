"""Specific exception types for the economy (STYLE.md, item 4).

Every invalid transition raises a subclass of `EconomyError` before it changes anything, so the
state after a failed transition equals the state before it. The groups below are there so a driver
can catch a family (`JobStateError`) while tests check the precise type.
"""

from __future__ import annotations


class EconomyError(Exception):
    """Base of every rule violation the economy reports."""


# -- accounts and money ---------------------------------------------------------------------------


class UnknownAccount(EconomyError):
    """The named account was never opened."""


class AccountExists(EconomyError):
    """An account of that name is already open."""


class InvalidAccountName(EconomyError):
    """An account name is empty, too long, or (for a signer) not the hex of an Ed25519 key."""


class InvalidAmount(EconomyError):
    """An amount is not a positive integer (or not a non-negative one where zero is allowed)."""


class InsufficientFunds(EconomyError):
    """The account's liquid balance is smaller than what the transition needs."""


class GenesisClosed(EconomyError):
    """Genesis allocations are only possible in epoch 0; afterwards tokens come from emission only."""


# -- staking --------------------------------------------------------------------------------------


class InsufficientStake(EconomyError):
    """The account's stake is below what the action requires (minimum, bonding curve, proposal)."""


class NothingToWithdraw(EconomyError):
    """No unbonding entry has matured (also what a second withdrawal of the same entry raises)."""


class TooManyUnbondingEntries(EconomyError):
    """The account already has the maximum number of unbonding entries in flight."""


class NotAWorker(EconomyError):
    """The account is not a registered, active worker."""


class AlreadyRegistered(EconomyError):
    """The account is already an active worker (or referee: one bonded role per account)."""


class NotAReferee(EconomyError):
    """The account is not a registered, active referee."""


class InvalidShard(EconomyError):
    """An availability answer that is not the challenged shard with its inclusion proof, or answers no open
    challenge."""


class InvalidRegistration(EconomyError):
    """A referee's BLS key is not a valid point of G1, its proof of possession fails, or another referee
    registered the same key."""


class NotSlashable(EconomyError):
    """A slash was requested but its condition (missed heartbeat, missed deadline) does not hold."""


class HeartbeatsNotMissed(NotSlashable):
    """A downtime slash was requested for a worker that is inactive or still within its grace period."""


class NothingToClaim(EconomyError):
    """No vested payment is claimable yet."""


# -- jobs and auctions ----------------------------------------------------------------------------


class UnknownJob(EconomyError):
    """No job has that id."""


class JobStateError(EconomyError):
    """The job is not in the status the transition needs."""


class JobAlreadySettled(JobStateError):
    """The job reached a terminal status already; it settles exactly once."""


class JobNotOpen(JobStateError):
    """The job's auction is over (or the job was never open for bids)."""


class JobNotAssigned(JobStateError):
    """The job has no worker yet, or its commitment was already submitted."""


class JobNotCommitted(JobStateError):
    """The job has no commitment to challenge or to settle."""


class WrongAuctionMode(EconomyError):
    """An unknown auction mode, or a per-job bid on a batch-auction job."""


class AuctionStillOpen(EconomyError):
    """The reverse auction cannot be closed before its last bidding epoch has passed."""


class InvalidBid(EconomyError):
    """A bid or ask price is out of range (above the job's maximum, below the minimum payment)."""


class DuplicateBid(EconomyError):
    """The worker already bid on this job."""


class AuctionFull(EconomyError):
    """The job already holds the maximum number of bids."""


class NoBids(EconomyError):
    """The auction closed with no acceptable bid."""


class NotJobOwner(EconomyError):
    """Only the user who posted the job may do this."""


class NotJobWorker(EconomyError):
    """Only the worker the job was assigned to may do this."""


class DeadlinePassed(EconomyError):
    """The commitment deadline is over."""


class DeadlineNotPassed(NotSlashable):
    """A missed-deadline slash was requested while the worker still has time."""


class InvalidCommitment(EconomyError):
    """A run commitment is malformed, not signed by its key, not for the job's training job, not the
    sender's own, or of another length than the commitment it challenges."""


class InvalidSeal(EconomyError):
    """A seal that is malformed, or an opening that does not open it (or shows the forced error unmade)."""


class SealRequired(JobStateError):
    """Forced errors are on: the worker seals its true result before it reveals a public commitment."""


class DrawPending(JobStateError):
    """The seal's draw (the next epoch's seed) is not in yet: the worker cannot reveal before it."""


class SealNotOpened(JobStateError):
    """A sealed job is paid only once its seal is opened."""


class SealNotDue(NotSlashable):
    """The seal may still be opened: an unopened seal is slashed only after the challenge window."""


class ReplicasDisagree(JobStateError):
    """A replica stands only when every other live replica of its job committed to the same result."""


class DuplicateReplica(EconomyError):
    """One worker holds at most one replica of a job (replicas are independent workers)."""


class DuplicatePosting(EconomyError):
    """A training job id was posted already: one posting, one ledger job, so no commitment can be
    replayed from one job onto another."""


# -- disputes -------------------------------------------------------------------------------------


class ChallengeWindowClosed(EconomyError):
    """A dispute was opened after the job's challenge window ended."""


class ChallengeWindowOpen(EconomyError):
    """A job was settled before its challenge window ended."""


class DisputeAlreadyOpen(JobStateError):
    """The job is already under dispute."""


class NoOpenDispute(JobStateError):
    """A verdict was given for a job that has no open dispute."""


class SelfDispute(EconomyError):
    """A worker cannot challenge its own job."""


class NothingToDispute(EconomyError):
    """A challenge whose commitment agrees with the worker's: there is no game to play."""


class InvalidEvidence(EconomyError):
    """A settlement's transcript is malformed, not of the registered dispute (commitments, dispute id,
    time source), does not replay to its recorded verdict, or proves no verdict at all."""


class NoCommittee(InvalidEvidence):
    """No committee was drawn for the epoch an attestation or a fault report names (or it is no longer kept)."""


class InvalidFaultProof(EconomyError):
    """A committee fault report whose evidence proves no fault, or a fault already slashed."""


class NoReferee(InvalidEvidence):
    """A settlement was submitted where no referee is at hand to check it: nothing is taken on trust."""


class InvalidOutcome(EconomyError):
    """A dispute outcome does not name the dispute's worker and challenger as winner and loser."""


# -- governance -----------------------------------------------------------------------------------


class UnknownProposal(EconomyError):
    """No proposal has that id."""


class InvalidParameter(EconomyError):
    """A parameter name or value is not allowed (unknown, wrong type, out of range, inconsistent)."""


class AlreadyVoted(EconomyError):
    """The account already voted on this proposal."""


class VotingClosed(EconomyError):
    """The proposal's voting period is over."""


class VotingStillOpen(EconomyError):
    """The proposal cannot be executed before its voting period and execution delay have passed."""


class ProposalNotPassed(EconomyError):
    """The proposal missed its quorum or its approval threshold."""


class ProposalAlreadyExecuted(EconomyError):
    """The proposal was executed already."""


# -- messages -------------------------------------------------------------------------------------


class MessageError(EconomyError):
    """A transaction failed at the message layer, before any rule was applied."""


class BadSignature(MessageError):
    """The signature is not the sender's signature of this transaction."""


class ReplayedMessage(MessageError):
    """The transaction's nonce was used already by this sender."""


class InvalidNonce(MessageError):
    """The transaction's nonce skips ahead of the sender's next nonce."""


class MalformedTransaction(MessageError):
    """A transaction's kind, fields or field types are wrong."""


class UnauthorizedAction(MessageError):
    """An unsigned user action was given to a driver that accepts only signed ones."""


# -- invariants -----------------------------------------------------------------------------------


class InvariantViolation(EconomyError):
    """A named invariant does not hold; a bug in a transition, never a user's mistake."""


class StakeLocked(EconomyError):
    """Unbonded stake cannot be withdrawn while the account still has unsettled jobs as a worker."""
