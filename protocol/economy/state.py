"""The economy's state: typed containers, nothing else (STYLE.md, item 1).

Every container is a plain mutable dataclass; transitions (`process_*`, `slash_*`, `increase_*`,
`decrease_*`) change them in place after checking every rule, so a failed transition leaves them as
they were and a successful one costs O(what it touches), never O(accounts). `copy_state` is the
explicit snapshot for drivers that want one.

Where tokens sit (the buckets the conservation invariant adds up):

    accounts[a].balance        liquid tokens
    stakes[a]                  bonded stake
    unbonding[a][i].amount     stake on its way out, still slashable until withdrawn
    escrow[job]                a job's payment (plus its tax before the auction clears)
    disputes[n].bond           a challenger's bond, while its dispute n is open
                               (a referee's stake is in stakes, like a worker's: a committee fault slashes it)
    vesting[a][i]              held-back pay: total - claimed is still held
    jackpot                    forced-error jackpot, funded by the job tax
    burned                     tokens out of circulation for good
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from enum import StrEnum

from protocol.economy.params import Params, validate_params


class JobStatus(StrEnum):
    OPEN = "open"  # posted, payment in escrow, taking bids
    ASSIGNED = "assigned"  # a worker won; waiting for its run commitment (or, with forced errors on, its seal)
    SEALED = "sealed"  # forced errors on: the sealed true result is in; waiting for the draw and the reveal
    COMMITTED = "committed"  # commitment in; challenge window running or over, disputes may be open
    SETTLED = "settled"  # terminal: worker paid
    SLASHED = "slashed"  # terminal: worker lost a dispute, user refunded
    EXPIRED = "expired"  # terminal: worker missed its deadline, user refunded
    CANCELLED = "cancelled"  # terminal: user withdrew the job before it was assigned


TERMINAL_STATUSES = frozenset({JobStatus.SETTLED, JobStatus.SLASHED, JobStatus.EXPIRED, JobStatus.CANCELLED})


class AuctionMode(StrEnum):
    REVERSE = "reverse"  # workers bid on this job; lowest acceptable price wins
    BATCH = "batch"  # the job waits for the end-of-epoch batch auction against workers' asks


@dataclass(slots=True)
class Account:
    balance: int = 0  # liquid tokens
    nonce: int = 0  # next nonce a signed transaction from this account must carry


@dataclass(slots=True)
class UnbondingEntry:
    amount: int  # tokens
    release_epoch: int  # first epoch at which the amount may be withdrawn


@dataclass(slots=True)
class WorkerRecord:
    required_stake: (
        int  # tokens: the bonding-curve price paid to enter; stake must stay at or above it to bid
    )
    registered_epoch: int
    last_heartbeat_epoch: int
    active: bool = True
    open_jobs: int = 0  # jobs assigned and not yet terminal; withdrawals wait until it is zero


@dataclass(slots=True)
class Ask:
    """A worker's standing offer in the per-epoch batch auction."""

    unit_price: int  # tokens per work unit
    capacity: int  # jobs per epoch


@dataclass(slots=True)
class Job:
    job_id: int
    user: str
    max_price: int  # tokens: the most the user pays
    work_units: int
    mode: AuctionMode
    posted_epoch: int
    posting_tax: int  # tokens: tax on max_price, escrowed with it until the auction clears
    status: JobStatus = JobStatus.OPEN
    bids: dict[str, int] = field(default_factory=dict)  # worker -> price in tokens (reverse auctions)
    worker: str | None = None
    price: int = 0  # tokens: the cleared price the worker is paid
    assigned_epoch: int = -1
    commit_deadline: int = -1  # last epoch in which the commitment is accepted
    training_job: str = ""  # hex of the training job's id (protocol.job: the hash of its spec)
    replica_of: int = -1  # a replicated job: the id of its first replica (itself for the first); -1: not replicated
    replicas: int = 1  # replicas of the training job posted together (ids replica_of .. replica_of + replicas - 1)
    commitment: str = ""  # hex of the chain root of the worker's signed run commitment
    commitment_statement: str = ""  # canonical JSON of that signed run commitment, as checked on entry
    commit_epoch: int = -1
    window_end: int = -1  # first epoch after the challenge window; it stays open while a dispute is open
    forced_rate_bps: int = 0  # forced-error rate in force when assigned; > 0: the worker seals its true result
    sealed: str = ""  # hex of the hiding commitment to the worker's true signed run commitment (evidence.compute_seal)
    draw_seed: str = ""  # hex of the seed of the epoch after the seal: with the seal's salt it decides the forced error
    opened: bool = False  # the worker opened its seal (so the forced error, if any, is known)
    true_commitment: str = ""  # an opened forced-error job: hex of the chain root of the worker's true result
    true_statement: str = ""  # canonical JSON of that signed run commitment, what later games are played against
    public_wrong: bool = False  # a verified game showed the public commitment wrong before the seal was opened
    catcher: str = ""  # the challenger who first won such a game (paid once the seal is opened or not)
    forced_error: bool = False  # the opened seal shows a forced error (known only once opened)
    forced_caught: bool = False  # a challenger was paid the jackpot for this job's forced error
    proven_wrong: bool = False  # a verified game showed the worker's commitment wrong
    held_share: int = 0  # tokens: losing challengers' bond shares owed to the worker, paid if the job settles, burned if slashed
    disputes: int = 0  # disputes opened on this job so far
    open_disputes: int = 0  # disputes opened on this job and not yet settled
    settle_count: int = 0  # times the job reached a terminal status: 0 or 1


@dataclass(slots=True)
class Dispute:
    number: int  # the dispute's number, from 0 in the order disputes are opened
    job_id: int
    challenger: str
    bond: int  # tokens
    opened_epoch: int
    commitment: str  # hex of the chain root of the challenger's signed run commitment
    commitment_statement: str  # canonical JSON of that signed run commitment
    dispute_id: str  # hex of the id its game binds (evidence.compute_dispute_id)
    worker_statement: str = ""  # canonical JSON of the worker's signed run commitment its game is played against
    against_true: bool = False  # the game is against an opened seal's true result, not the public commitment


@dataclass(slots=True)
class RefereeRecord:
    """A referee registered for committees: its BLS key, checked with its proof of possession on entry."""

    key: str  # hex of the 48-byte BLS public key
    registered_epoch: int
    active: bool = True  # drawn into committees from the next epoch on while active and staked


@dataclass(slots=True)
class CommitteeSeat:
    account: str
    key: str  # hex of the member's BLS public key
    stake: int  # tokens bonded when the committee was drawn: its weight in the quorum


@dataclass(slots=True)
class CommitteeRecord:
    """The committee drawn for one epoch (protocol.committee.compute_committee), seats in draw order."""

    epoch: int
    seed: str  # hex of the committee seed of the epoch (committee.compute_committee_seed)
    root: str  # hex of protocol.committee.compute_committee_root: what attestations name
    seats: list[CommitteeSeat] = field(default_factory=list)


@dataclass(slots=True)
class StoredCheckpoint:
    """A worker's erasure-coded checkpoint and who holds its shards (storage.py)."""

    job_id: int  # the ledger job whose worker stored it
    commitment: str  # canonical JSON of its checkpoint commitment (protocol.availability), as checked
    placement: list[str]  # placement[i]: the referee holding shard i
    accepted: list[bool]  # accepted[i]: its holder took shard i and answers for it
    epoch: int  # when it was stored


@dataclass(slots=True)
class AvailabilityChallenge:
    """An open sampling challenge: the holder must post the shard and its proof by `deadline_epoch`."""

    commitment_id: str  # hex of the stored commitment's id
    index: int  # the shard asked for
    holder: str
    epoch: int  # the epoch that drew it
    deadline_epoch: int  # last epoch in which an answer is accepted


@dataclass(slots=True)
class VestingEntry:
    job_id: int
    total: int  # tokens held back from the job's payment
    claimed: int  # tokens released to the balance so far
    start_epoch: int
    end_epoch: int  # fully released from this epoch on
    mode: str  # one of VESTING_MODES, fixed when the entry is made


@dataclass(slots=True)
class ReputationRecord:
    score: int  # reputation points as of `epoch`
    epoch: int  # when `score` was last brought up to date (decay is applied lazily)


@dataclass(slots=True)
class Proposal:
    proposal_id: int
    proposer: str
    parameter: str
    value: int | str
    created_epoch: int
    voting_end_epoch: int  # first epoch in which votes are no longer taken
    yes: int = 0  # tokens of stake voting for
    no: int = 0  # tokens of stake voting against
    voters: dict[str, bool] = field(default_factory=dict)
    executed: bool = False


@dataclass(slots=True)
class EmissionState:
    per_epoch: int  # tokens the exponential and goal schedules emit this epoch
    inflation_bps: int  # yearly rate of the disinflationary schedule, this year


@dataclass(slots=True)
class Totals:
    """Running totals, for reports and for the supply invariant."""

    genesis: int = 0  # tokens allocated at genesis
    emitted: int = 0  # tokens minted by emission
    slashed: int = 0  # tokens taken by every slash
    challenger_rewards: int = 0  # slash shares paid to dispute winners
    jackpot_paid: int = 0  # jackpot paid to challengers who caught forced errors
    refunded: int = 0  # payments returned to users of failed jobs


@dataclass(slots=True)
class SlashEvent:
    epoch: int
    account: str
    reason: str  # "dispute", "bond", "deadline", "downtime" or "committee-<fault kind>"
    amount: int  # tokens taken
    at_stake: int  # tokens that were slashable for this reason just before
    job_id: int | None = None


@dataclass(slots=True)
class State:
    params: Params
    epoch: int = 0
    seed: str = ""  # hex of this epoch's seed, given by the driver; decides forced errors
    time_source: str = ""  # hex of the key whose receipts witness this economy's games ("" for none)
    total_supply: int = 0  # every token ever created (genesis + emission), burned ones included
    accounts: dict[str, Account] = field(default_factory=dict)
    stakes: dict[str, int] = field(default_factory=dict)
    total_staked: int = 0  # sum of stakes, kept up to date so quorum and curves cost O(1)
    unbonding: dict[str, list[UnbondingEntry]] = field(default_factory=dict)
    workers: dict[str, WorkerRecord] = field(default_factory=dict)
    active_workers: int = 0  # number of workers with active=True (the bonding curve's n)
    asks: dict[str, Ask] = field(default_factory=dict)
    jobs: dict[int, Job] = field(default_factory=dict)
    next_job_id: int = 0
    batch_queue: list[int] = field(default_factory=list)  # open batch-auction jobs, oldest first
    escrow: dict[int, int] = field(default_factory=dict)
    postings: dict[str, int] = field(default_factory=dict)  # training job id (hex) -> the job posting it
    draws: list[int] = field(default_factory=list)  # jobs sealed this epoch: the next epoch's seed is their draw
    disputes: dict[int, Dispute] = field(default_factory=dict)  # open disputes by number
    referees: dict[str, RefereeRecord] = field(default_factory=dict)  # account -> its registration
    committees: dict[int, CommitteeRecord] = field(default_factory=dict)  # epoch -> its committee, while kept
    committee_faults: dict[str, int] = field(default_factory=dict)  # fault id -> epoch of its committee
    stored: dict[str, StoredCheckpoint] = field(default_factory=dict)  # checkpoint commitment id (hex) -> its storage
    availability_challenges: dict[int, AvailabilityChallenge] = field(default_factory=dict)  # open, by number
    next_availability_challenge: int = 0
    next_dispute: int = 0
    vesting: dict[str, list[VestingEntry]] = field(default_factory=dict)
    jackpot: int = 0
    burned: int = 0
    reputation: dict[str, ReputationRecord] = field(default_factory=dict)
    proposals: dict[int, Proposal] = field(default_factory=dict)
    next_proposal_id: int = 0
    emission: EmissionState = field(default_factory=lambda: EmissionState(0, 0))
    totals: Totals = field(default_factory=Totals)
    epoch_work: dict[str, int] = field(default_factory=dict)  # worker -> work units settled this epoch
    epoch_tasks: dict[str, int] = field(default_factory=dict)  # worker -> jobs settled this epoch
    slash_events: list[SlashEvent] = field(default_factory=list)  # this epoch's slashes


def create_state(params: Params, seed: bytes = b"", time_source: bytes = b"") -> State:
    """Genesis: an empty economy under `params`, epoch 0, with the driver-given seed for epoch 0 and the
    public key of the time source whose receipts witness its dispute games (a ledger's; empty for none,
    and then a settlement proves value verdicts only, never a timeout)."""
    validate_params(params)
    if len(time_source) not in (0, 32):
        raise ValueError(f"a time source key is 32 bytes, got {len(time_source)}")
    return State(
        params=params,
        seed=seed.hex(),
        time_source=bytes(time_source).hex(),
        emission=EmissionState(per_epoch=params.initial_emission, inflation_bps=params.initial_inflation_bps),
    )


def copy_state(state: State) -> State:
    """An independent deep copy: the explicit snapshot (transitions themselves never copy)."""
    return copy.deepcopy(state)
