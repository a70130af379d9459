"""A market whose disputes are settled by real games: toy jobs (verifier.game.toy) played through the
real driver, witnessed by the economy's time source, and settled only by their checked transcripts.

The toy machine is a real computation with a real referee (one operator re-executed from evidence), so
the economy's settlement check runs end to end in milliseconds: every transcript here is produced by
`play_game`, never written by hand.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.economy import (
    MINIMAL,
    DisputeResult,
    OpenedDispute,
    State,
    compute_changed_params,
    create_state,
    get_required_worker_stake,
    process_bid,
    process_close_auction,
    process_genesis_allocation,
    process_open_dispute,
    process_post_job,
    process_register_worker,
    process_settle_dispute,
    process_stake,
    process_submit_commitment,
)
from protocol.game import MINIMAL as GAME_MINIMAL
from protocol.game.commitments import (
    RunCommitment,
    SignedRunCommitment,
    compute_signed_run_commitment_json,
    sign_run_commitment,
)
from protocol.game.transcript import compute_transcript_json
from protocol.signing import get_public_key_bytes, private_key_from_bytes
from protocol.types import Root
from verifier.game.adversaries import Silent
from verifier.game.clock import LocalTimeSource
from verifier.game.driver import play_game
from verifier.game.strategy import HonestStrategy, Strategy
from verifier.game.toy import ToyConfig, ToyFault, ToyMachine, ToyProvider, ToyReferee

GENESIS = 3_000
ACCOUNTS = ("user", "alice", "bob", "carol", "honest", "colluder", "griefer")
KEYS: dict[str, Ed25519PrivateKey] = {name: private_key_from_bytes(bytes([i + 1]) * 32) for i, name in enumerate(ACCOUNTS)}
TIME_SOURCE = private_key_from_bytes(bytes([99]) * 32)
FAULT = ToyFault("value", step=3, node=5)


def toy_context(config: ToyConfig) -> dict[str, Any]:
    return {"toy": dict(config.__dict__)}


@functools.lru_cache(maxsize=16)
def get_machine(config: ToyConfig) -> ToyMachine:
    return ToyMachine(config)


def toy_referees(training_job: bytes, context: Any) -> ToyReferee:
    """A `RefereeFactory` for toy jobs: the machine the context names, only if it is the ledger job's."""
    if not isinstance(context, dict) or set(context) != {"toy"} or not isinstance(context["toy"], dict):
        raise ValueError("a toy game's context is {\"toy\": config}")
    machine = get_machine(ToyConfig(**context["toy"]))
    if machine.job_id != bytes(training_job):
        raise ValueError("the context's toy job is not the ledger job's training job")
    return ToyReferee(machine)


@dataclass
class Party:
    """A worker or challenger of one toy job: its data (honest or faulty) and its signed commitment."""

    name: str
    provider: ToyProvider
    commitment: SignedRunCommitment
    behaviour: str = "honest"  # "honest" answers from its data; "silent" throws its game

    def strategy(self) -> Strategy:
        key = KEYS[self.name]
        if self.behaviour == "silent":
            return Silent(self.provider, key, commitment=self.commitment)
        return HonestStrategy(self.provider, key, commitment=self.commitment)

    def commitment_json(self) -> dict[str, Any]:
        return compute_signed_run_commitment_json(self.commitment)


def make_party(name: str, machine: ToyMachine, fault: ToyFault | None = None, behaviour: str = "honest",
               fabricated: bytes | None = None) -> Party:
    """`fabricated`: a chain root of the party's choosing (a colluder's commitment to nothing it can back)."""
    provider = ToyProvider(machine, fault)
    root = Root(fabricated) if fabricated is not None else provider.get_chain_tree().root
    key = KEYS[name]
    signed = sign_run_commitment(key, RunCommitment(machine.job_id, provider.get_steps(), root,
                                                    get_public_key_bytes(key)))
    return Party(name, provider, signed, behaviour)


@dataclass
class Market:
    """An economy (MINIMAL, forced errors off unless asked) with a time source, funded accounts, and
    alice and bob registered as workers."""

    state: State
    time_source: LocalTimeSource = field(default_factory=lambda: LocalTimeSource(TIME_SOURCE))
    games: int = 0

    def post_toy_job(self, config: ToyConfig, worker: Party, price: int = 100) -> int:
        machine = get_machine(config)
        job_id = process_post_job(self.state, "user", price, 10, machine.job_id.hex())
        process_bid(self.state, worker.name, job_id, price)
        process_close_auction(self.state, job_id)
        process_submit_commitment(self.state, worker.name, job_id, worker.commitment_json())
        return job_id

    def post_sealed_toy_job(self, config: ToyConfig, true: Party, public: Party, salt: str, seed: bytes,
                            price: int = 100) -> int:
        """A job with forced errors on: the worker seals `true`'s commitment under `salt`, the next epoch's
        `seed` is the draw, and it reveals `public`'s commitment (the same party's key for both)."""
        from protocol.economy import compute_seal, process_epoch, process_seal_result
        from protocol.signing import compute_canonical_json

        machine = get_machine(config)
        job_id = process_post_job(self.state, "user", price, 10, machine.job_id.hex())
        process_bid(self.state, true.name, job_id, price)
        process_close_auction(self.state, job_id)
        sealed = compute_seal(compute_canonical_json(true.commitment_json()).decode(), salt)
        process_seal_result(self.state, true.name, job_id, sealed)
        process_epoch(self.state, seed)
        process_submit_commitment(self.state, public.name, job_id, public.commitment_json())
        return job_id

    def open(self, job_id: int, challenger: Party) -> OpenedDispute:
        return process_open_dispute(self.state, challenger.name, job_id, challenger.commitment_json())

    def play(self, config: ToyConfig, worker: Party, challenger: Party, opened: OpenedDispute,
             started_at: float = 0.0) -> dict[str, Any]:
        """The game of dispute `opened` between the two parties, witnessed by the market's time source;
        returns its transcript's JSON."""
        self.games += 1
        result = play_game(worker.strategy(), challenger.strategy(), ToyReferee(get_machine(config)),
                           GAME_MINIMAL, started_at=started_at, context=toy_context(config),
                           dispute_id=bytes.fromhex(opened.dispute_id), time_source=self.time_source)
        return compute_transcript_json(result.transcript)

    def settle(self, opened: OpenedDispute, transcript: Any, settler: str = "carol") -> DisputeResult:
        return process_settle_dispute(self.state, settler, opened.number, transcript, toy_referees)


def make_settlement_market(**overrides: Any) -> Market:
    params = MINIMAL
    overrides.setdefault("forced_error_rate_bps", 0)
    for name, value in overrides.items():
        params = compute_changed_params(params, name, value)
    state = create_state(params, b"genesis", time_source=bytes(get_public_key_bytes(TIME_SOURCE)))
    for name in ACCOUNTS:
        process_genesis_allocation(state, name, GENESIS)
    for worker in ("alice", "bob"):
        process_stake(state, worker, get_required_worker_stake(state))
        process_register_worker(state, worker)
    return Market(state)
