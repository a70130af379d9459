"""Referee committees on the ledger: registration with proofs of possession, one committee per epoch,
settlement by a committee's attestation, and committee faults slashed by transactions.

A real ledger (its own time source witnesses the games), real toy games settled by the economy's own
checks, and real BLS (py_ecc). py_ecc signs in ~0.3 s and verifies in ~0.7 s, so the keys, the games and
the members' shares are made once per module, on a ledger that each test opens a copy of.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pinpoint.ledger import Ledger
from protocol.committee import MINIMAL as COMMITTEE_MINIMAL
from protocol.committee import (
    Attestation,
    Committee,
    VerdictStatement,
    compute_attestation,
    compute_attestation_json,
    compute_committee,
    compute_statement_json,
    compute_transcript_statement,
    generate_secret_key,
    get_bls_public_key,
    prove_possession,
    sign_verdict,
)
from protocol.committee.bls import BLSSecretKey, BLSSignature
from protocol.economy import (
    MINIMAL,
    WORKER_WRONG,
    Action,
    AlreadyRegistered,
    InsufficientStake,
    InvalidEvidence,
    InvalidFaultProof,
    InvalidRegistration,
    NoCommittee,
    NoOpenDispute,
    RefereeRecord,
    State,
    apply_action,
    check_invariants,
    compute_changed_params,
    compute_committee_seed,
    copy_state,
    create_state,
    encode_state,
    get_committee,
    process_committee_rotation,
)
from protocol.game import MINIMAL as GAME_MINIMAL
from protocol.game import Role
from protocol.game.transcript import compute_transcript_json, parse_transcript_json
from protocol.types import Seconds
from verifier.game.driver import play_game
from verifier.game.toy import ToyConfig, ToyReferee

from .settlement_support import FAULT, Party, get_machine, make_party, toy_context, toy_referees

CONFIG = ToyConfig(steps=6, num_ops=8, num_state=4, width=2, seed=1)
REFEREES = ("r0", "r1", "r2", "r3")
STAKE = 100  # each referee's bond: equal stakes, so any three of four are a quorum and two are not
PARAMS = compute_changed_params(MINIMAL, "forced_error_rate_bps", 0)


def act(ledger: Ledger, kind: str, sender: str | None = None, **params: Any) -> Any:
    return ledger.apply(Action(kind, params, sender))


@dataclass
class World:
    """The module's ledger file after: genesis, alice working, four referees registered, epoch 1's committee
    drawn, alice's wrong job challenged twice (by honest and carol, disputes 0 and 1, both opened in epoch 1),
    both games played and witnessed by the ledger. Plus every BLS value the tests share."""

    path: Path
    secrets: dict[str, BLSSecretKey]  # referee -> its BLS secret
    worker: Party
    challengers: tuple[Party, Party]
    transcripts: tuple[dict[str, Any], dict[str, Any]]  # the games of disputes 0 and 1
    statements: tuple[VerdictStatement, VerdictStatement]  # what each transcript proves
    committee: Committee  # epoch 1's
    shares: dict[int, BLSSignature]  # seat -> its signature of statements[0]
    lie: VerdictStatement  # statements[0] with the winner swapped
    lie_share: BLSSignature  # the liar seat's signature of `lie`
    liar: int  # its seat

    def attest(self, seats: tuple[int, ...]) -> dict[str, Any]:
        """The JSON of an attestation of statements[0] by `seats` of epoch 1's committee (no signing)."""
        return compute_attestation_json(compute_attestation(self.committee, self.statements[0],
                                                            {seat: self.shares[seat] for seat in seats}))

    def seat_of(self, account: str) -> int:
        return [member.account for member in self.committee.members].index(account)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    path = tmp_path_factory.mktemp("committee") / "ledger.db"
    ledger = Ledger.create(path, PARAMS, b"genesis", trust_unsigned=True, check_each=True, referees=toy_referees)
    for name in ("user", "alice", "honest", "carol", "rogue", *REFEREES):
        act(ledger, "genesis_allocation", account=name, amount=3_000)
    act(ledger, "stake", "alice", amount=PARAMS.base_worker_stake)
    act(ledger, "register_worker", "alice")
    secrets = {name: generate_secret_key(bytes([0x40 + i]) * 32) for i, name in enumerate(REFEREES)}
    for name, secret in secrets.items():
        act(ledger, "stake", name, amount=STAKE)
        act(ledger, "register_referee", name, key=bytes(get_bls_public_key(secret)).hex(),
            proof=bytes(prove_possession(secret)).hex())
    act(ledger, "epoch", seed=b"beacon-1".hex())
    committee = get_committee(ledger.state, 1)
    assert sorted(member.account for member in committee.members) == list(REFEREES)

    machine = get_machine(CONFIG)
    worker = make_party("alice", machine, FAULT)  # alice commits to a wrong run
    challengers = (make_party("honest", machine), make_party("carol", machine))
    job = act(ledger, "post_job", "user", max_price=100, work_units=10, training_job=machine.job_id.hex())
    act(ledger, "bid", "alice", job_id=job, price=100)
    act(ledger, "close_auction", "alice", job_id=job)
    act(ledger, "submit_commitment", "alice", job_id=job, commitment=worker.commitment_json())
    transcripts = []
    for challenger in challengers:
        opened = act(ledger, "open_dispute", challenger.name, job_id=job, commitment=challenger.commitment_json())
        result = play_game(worker.strategy(), challenger.strategy(), ToyReferee(machine), GAME_MINIMAL,
                           context=toy_context(CONFIG), dispute_id=bytes.fromhex(opened.dispute_id),
                           time_source=ledger)
        transcripts.append(compute_transcript_json(result.transcript))
    ledger.close()

    referee = ToyReferee(machine)
    statements = tuple(compute_transcript_statement(parse_transcript_json(t), referee) for t in transcripts)
    assert statements[0].winner is Role.CHALLENGER
    seats = {member.account: seat for seat, member in enumerate(committee.members)}
    shares = {seats[name]: sign_verdict(secret, statements[0]) for name, secret in secrets.items()}
    liar = seats["r3"]
    lie = replace(statements[0], winner=Role.WORKER, losers=(Role.CHALLENGER,))
    return World(path, secrets, worker, challengers, (transcripts[0], transcripts[1]),
                 (statements[0], statements[1]), committee, shares, lie, sign_verdict(secrets["r3"], lie), liar)


@pytest.fixture
def ledger(world: World, tmp_path: Path) -> Iterator[Ledger]:
    """A fresh copy of the module's ledger, every invariant checked after each transition."""
    copy = tmp_path / "ledger.db"
    shutil.copyfile(world.path, copy)
    with Ledger.open(copy, trust_unsigned=True, check_each=True, referees=toy_referees) as opened:
        yield opened


def expect_refused(ledger: Ledger, error: type[Exception], needle: str, kind: str, **params: Any) -> None:
    """The system action raises `error` naming `needle`, and the ledger, in memory and on disk, is as before."""
    before, sequence = encode_state(ledger.state), ledger.sequence
    with pytest.raises(error) as info:
        act(ledger, kind, **params)
    assert type(info.value) is error and needle in str(info.value), str(info.value)
    assert encode_state(ledger.state) == before and ledger.sequence == sequence


# --- registration and rotation ------------------------------------------------------------------------


def test_referees_register_with_a_proof_of_their_own_key_and_one_role(world: World, ledger: Ledger) -> None:
    key = bytes(get_bls_public_key(world.secrets["r0"])).hex()
    proof = bytes(prove_possession(world.secrets["r0"])).hex()
    act(ledger, "stake", "rogue", amount=STAKE)
    before = encode_state(ledger.state)
    for params, error, needle in [
        ({"key": key, "proof": proof}, InvalidRegistration, "another referee registered this key"),
        ({"key": "zz", "proof": proof}, InvalidRegistration, "hex"),
        ({"key": "c0" + "00" * 47, "proof": proof}, InvalidRegistration, "not a valid BLS public key"),
    ]:
        with pytest.raises(error, match=needle):
            act(ledger, "register_referee", "rogue", **params)
    # a proof of possession of another key does not register this one (one pairing)
    other = bytes(get_bls_public_key(generate_secret_key(bytes([0x77]) * 32))).hex()
    with pytest.raises(InvalidRegistration, match="proof of possession"):
        act(ledger, "register_referee", "rogue", key=other, proof=proof)
    with pytest.raises(AlreadyRegistered, match="active worker"):
        act(ledger, "register_referee", "alice", key=other, proof=proof)
    with pytest.raises(AlreadyRegistered, match="active referee"):
        act(ledger, "register_worker", "r0")
    with pytest.raises(InsufficientStake, match="deregister first"):
        act(ledger, "unbond", "r0", amount=STAKE)
    assert encode_state(ledger.state) == before
    act(ledger, "deregister_referee", "r0")
    act(ledger, "unbond", "r0", amount=STAKE)  # a referee who left may unbond; its stake stays slashable


def test_committees_rotate_every_epoch_and_are_kept_while_needed(ledger: Ledger) -> None:
    state = ledger.state
    first = state.committees[1]
    assert first.seed == compute_committee_seed(1, state.seed).hex() and len(first.seats) == 4
    act(ledger, "deregister_referee", "r2")
    act(ledger, "epoch", seed=b"beacon-2".hex())
    second = state.committees[2]
    assert sorted(seat.account for seat in second.seats) == ["r0", "r1", "r3"]  # r2 left: not drawn again
    assert second.root != first.root
    for epoch in range(3, 3 + PARAMS.committee_retention_epochs + 2):
        act(ledger, "epoch", seed=f"beacon-{epoch}".encode().hex())
    # epoch 2's committee is past retention and gone; epoch 1's stays: its disputes are still open
    assert 1 in state.committees and 2 not in state.committees
    assert {d.opened_epoch for d in state.disputes.values()} == {1}


@settings(max_examples=40, deadline=None)
@given(stakes=st.lists(st.integers(min_value=0, max_value=500), min_size=1, max_size=10), seed=st.binary(max_size=8))
def test_the_draw_seats_eligible_referees_by_stake_from_the_epoch_seed(stakes: list[int], seed: bytes) -> None:
    """Rotation alone (no BLS: the keys are only names to the draw): each committee seats distinct
    referees holding at least the referee stake, as many as the preset's size allows, exactly the
    protocol's draw from the committee seed."""
    state = create_state(PARAMS, seed)
    for i, stake in enumerate(stakes):
        name = f"r{i}"
        state.stakes[name] = stake
        state.referees[name] = RefereeRecord(bytes([i + 1]).hex() * 48, 0)
    state.epoch = 3
    record = process_committee_rotation(state)
    eligible = [f"r{i}" for i, stake in enumerate(stakes) if stake >= PARAMS.referee_stake]
    if not eligible:
        assert record is None and not state.committees
        return
    assert record is not None
    seated = [seat.account for seat in record.seats]
    assert len(seated) == min(4, len(eligible)) and set(seated) <= set(eligible)
    from protocol.committee import Candidate

    drawn = compute_committee(3, compute_committee_seed(3, state.seed), [
        Candidate(name, bytes.fromhex(state.referees[name].key), state.stakes[name])  # type: ignore[arg-type]
        for name in eligible], 4)
    assert seated == [member.account for member in drawn.members]


# --- settlement by attestation --------------------------------------------------------------------------


def test_an_attestation_settles_exactly_as_the_transcript_does(world: World, ledger: Ledger) -> None:
    """Three honest seats of four (the fourth silent) settle dispute 0; the same dispute settled by its
    transcript leaves the very same state: the committee's verdict and the transcript check agree."""
    by_transcript = copy_state(ledger.state)
    expected = apply_action(by_transcript, Action("settle_dispute", {"dispute": 0, "transcript": world.transcripts[0]}),
                            referees=toy_referees)
    honest = tuple(seat for seat in range(4) if seat != world.liar)
    result = act(ledger, "settle_dispute", dispute=0, attestation=world.attest(honest),
                 setup=world.transcripts[0]["setup"])
    assert result == expected and result.outcome == WORKER_WRONG and result.kind == "worker-slashed"
    assert encode_state(ledger.state) == encode_state(by_transcript)
    check_invariants(ledger.state)
    # what the statement says is what the transcript check yields, byte for byte
    assert compute_statement_json(world.statements[0])["winner"] == "challenger"
    # replayed on the settled dispute: there is nothing left to settle
    expect_refused(ledger, NoOpenDispute, "no open dispute", "settle_dispute", dispute=0,
                   attestation=world.attest(honest), setup=world.transcripts[0]["setup"])


def test_a_lying_third_cannot_settle_and_cannot_stop_the_truth(world: World, ledger: Ledger) -> None:
    lie = compute_attestation(world.committee, world.lie, {world.liar: world.lie_share})
    expect_refused(ledger, InvalidEvidence, "under-weight", "settle_dispute", dispute=0,
                   attestation=compute_attestation_json(lie), setup=world.transcripts[0]["setup"])
    act(ledger, "settle_dispute", dispute=0, attestation=world.attest(tuple(s for s in range(4) if s != world.liar)),
        setup=world.transcripts[0]["setup"])


def test_forged_underweight_misdirected_and_replayed_attestations_change_nothing(world: World, ledger: Ledger) -> None:
    setup = world.transcripts[0]["setup"]
    quorum = world.attest((0, 1, 2))
    cases: list[tuple[str, dict[str, Any]]] = [
        ("under-weight", {"dispute": 0, "attestation": world.attest((0, 1)), "setup": setup}),
        # a fourth signer claimed without its signature: the aggregate fails its one pairing
        ("does not verify", {"dispute": 0, "attestation": {**quorum, "signers": [0, 1, 2, 3]}, "setup": setup}),
        # dispute 0's attestation with dispute 1's game: another game id
        ("not this dispute's game", {"dispute": 1, "attestation": quorum, "setup": world.transcripts[1]["setup"]}),
        # dispute 0's attestation and setup submitted for dispute 1: the setup binds another dispute
        ("challenger commitment", {"dispute": 1, "attestation": quorum, "setup": setup}),
        ("another committee", {"dispute": 0, "attestation": {**quorum, "committee": "00" * 32}, "setup": setup}),
        ("nothing else", {"dispute": 0, "attestation": quorum, "setup": setup, "transcript": world.transcripts[0]}),
        ("nothing else", {"dispute": 0, "attestation": quorum}),
        ("not a committee attestation", {"dispute": 0, "attestation": {"statement": 1}, "setup": setup}),
        ("not a game setup", {"dispute": 0, "attestation": quorum, "setup": {"worker": None}}),
    ]
    for needle, params in cases:
        expect_refused(ledger, InvalidEvidence, needle, "settle_dispute", **params)
    # the committee of a later epoch does not judge a dispute opened in epoch 1, even with the same members
    act(ledger, "epoch", seed=b"beacon-2".hex())
    later = get_committee(ledger.state, 2)
    by_key = {bytes(world.committee.members[seat].key): share for seat, share in world.shares.items()}
    shares = {seat: by_key[bytes(member.key)] for seat, member in enumerate(later.members)}
    other = compute_attestation_json(compute_attestation(later, world.statements[0], shares))
    expect_refused(ledger, InvalidEvidence, "judged by that epoch's committee", "settle_dispute", dispute=0,
                   attestation=other, setup=setup)


# --- faults -------------------------------------------------------------------------------------------


def lie_attestation(world: World) -> Attestation:
    return compute_attestation(world.committee, world.lie, {world.liar: world.lie_share})


def test_equivocation_is_slashed_once_by_a_ledger_transaction(world: World, ledger: Ledger) -> None:
    liar = world.committee.members[world.liar].account
    first = world.attest((0, 1, 2, 3))
    second = compute_attestation_json(lie_attestation(world))
    stake, burned = ledger.state.stakes[liar], ledger.state.burned
    result = act(ledger, "report_equivocation", epoch=1, first=first, second=second)
    assert result.kind == "equivocation" and result.slashed == ((liar, STAKE),)  # all of it (10 000 bps)
    assert ledger.state.stakes.get(liar, 0) == stake - STAKE and ledger.state.burned == burned + STAKE
    assert not ledger.state.referees[liar].active
    expect_refused(ledger, InvalidFaultProof, "slashed for it already", "report_equivocation", epoch=1,
                   first=first, second=second)
    expect_refused(ledger, InvalidFaultProof, "the same", "report_equivocation", epoch=1, first=first, second=first)
    expect_refused(ledger, NoCommittee, "no committee", "report_equivocation", epoch=0, first=first, second=second)


def test_a_verdict_the_transcript_refutes_is_slashed(world: World, ledger: Ledger) -> None:
    liar = world.committee.members[world.liar].account
    lie = compute_attestation_json(lie_attestation(world))
    result = act(ledger, "report_wrong_verdict", epoch=1, attestation=lie, transcript=world.transcripts[0])
    assert result.kind == "wrong verdict" and result.slashed == ((liar, STAKE),)
    # the true statement is not refuted by its own transcript
    expect_refused(ledger, InvalidFaultProof, "nothing to refute", "report_wrong_verdict", epoch=1,
                   attestation=world.attest((0, 1, 2)), transcript=world.transcripts[0])


def test_members_who_never_sign_are_slashed_on_the_ledgers_record_of_the_round(world: World, ledger: Ledger) -> None:
    game_id = bytes(world.statements[0].game_id)
    statement = compute_statement_json(world.statements[0])
    ledger.open_committee_round(game_id, 1, Seconds(100.0))
    silent = world.seat_of("r1")
    signing = [seat for seat in range(4) if seat != silent][:2]  # two members sign, two never do
    for seat in signing:
        ledger.post_committee_share(game_id, seat, statement, world.shares[seat], Seconds(110.0))
    from protocol.game.timesource import TimeSourceError

    with pytest.raises(TimeSourceError, match="does not verify"):  # a share that is another seat's
        ledger.post_committee_share(game_id, silent, statement, world.shares[signing[0]], Seconds(111.0))
    timeout = float(COMMITTEE_MINIMAL.signing_timeout)
    close, signature = ledger.close_committee_round(game_id, Seconds(100.0 + timeout))
    assert close["signed"] == sorted(signing)
    absent = sorted(set(range(4)) - set(signing))
    stakes = {world.committee.members[seat].account: ledger.state.stakes[world.committee.members[seat].account]
              for seat in absent}
    result = act(ledger, "report_absence", epoch=1, close=close, signature=signature)
    penalty = STAKE * 100 // 10_000  # absence costs 1 % of the drawn stake
    assert result.kind == "absence" and dict(result.slashed) == dict.fromkeys(stakes, penalty)
    assert all(ledger.state.referees[account].active for account in stakes)  # absence is no fraud
    expect_refused(ledger, InvalidFaultProof, "slashed for it already", "report_absence", epoch=1, close=close,
                   signature=signature)
    forged = {**close, "signed": []}
    expect_refused(ledger, InvalidFaultProof, "not the time source's signature", "report_absence", epoch=1,
                   close=forged, signature=signature)


def test_evidence_transitions_are_snapshotted_and_recover_without_replay(world: World, ledger: Ledger) -> None:
    act(ledger, "settle_dispute", dispute=0, attestation=world.attest((0, 1, 2)), setup=world.transcripts[0]["setup"])
    state, sequence, path = encode_state(ledger.state), ledger.sequence, ledger.path
    ledger.close()
    with Ledger.open(path) as reopened:  # no referees, nothing to replay: the settlement has its snapshot
        assert encode_state(reopened.state) == state and reopened.sequence == sequence


def test_a_state_without_referees_draws_no_committee() -> None:
    state: State = create_state(PARAMS, b"x")
    apply_action(state, Action("epoch", {"seed": "00"}))
    assert state.committees == {}


# --- checkpoint storage on the ledger ---------------------------------------------------------------------


def test_referees_hold_a_workers_checkpoint_and_the_one_that_drops_it_is_slashed_on_the_ledger(
    world: World, ledger: Ledger
) -> None:
    """Alice stores a coded checkpoint of its job with the four referees, two shards each; every epoch samples
    it; r0 answers every challenge with the shard and its proof, r1 never does and loses stake at each
    deadline; the ledger reopened from disk holds the same storage and challenges."""
    from protocol.availability import (
        CHECKPOINT_K,
        CHECKPOINT_N,
        compute_availability_commitment,
        compute_commitment_json,
    )
    from protocol.economy import get_stake

    job = next(iter(ledger.state.jobs.values()))
    blob = bytes(range(251)) * 9
    commitment, shards = compute_availability_commitment(bytes.fromhex(job.training_job), 2, bytes(32), blob,
                                                         CHECKPOINT_K, CHECKPOINT_N)
    from protocol.availability import compute_shard_tree

    tree = compute_shard_tree(shards)
    placement = [REFEREES[i % len(REFEREES)] for i in range(CHECKPOINT_N)]
    key = act(ledger, "store_checkpoint", "alice", job_id=job.job_id, commitment=compute_commitment_json(commitment),
              placement=placement)
    for name in REFEREES:
        assert act(ledger, "accept_shards", name, commitment_id=key) == 2
    stakes = {name: get_stake(ledger.state, name) for name in REFEREES}
    slashed: dict[str, int] = {}
    for epoch in range(6):  # within the stored checkpoint's retention (8 epochs)
        report = act(ledger, "epoch", seed=f"{epoch:08x}")
        for name, taken in report.sampling.slashed:
            slashed[name] = slashed.get(name, 0) + taken
        for number, challenge in sorted(ledger.state.availability_challenges.items()):
            if challenge.holder != "r1":
                act(ledger, "answer_availability", challenge.holder, challenge=number,
                    shard=bytes(shards[challenge.index]).hex(), proof=[bytes(p).hex() for p in tree.prove(challenge.index)])
    assert slashed.get("r1", 0) > 0 and set(slashed) == {"r1"}
    assert get_stake(ledger.state, "r1") == stakes["r1"] - slashed["r1"]
    assert all(get_stake(ledger.state, name) == stakes[name] for name in REFEREES if name != "r1")
    before = encode_state(ledger.state)
    path = ledger.path
    ledger.close()
    with Ledger.open(path, trust_unsigned=True, check_each=True, referees=toy_referees) as reopened:
        assert encode_state(reopened.state) == before and key in reopened.state.stored
