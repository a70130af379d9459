"""Settlement that checks its evidence, and one honest challenger always suffices.

Commitments are signed run commitments checked on entry; every dispute is settled only by the
transcript of its own game, replayed with the job's referee; forged, truncated and mismatched
transcripts are refused and change nothing; a colluding challenger who opens first and stalls or throws
its game never saves a cheater from an honest challenger, whatever the order of arrival.
"""

from __future__ import annotations

import copy
import itertools
from typing import Any

import pytest

from protocol.economy import (
    BOTH_WRONG,
    CHALLENGER_WRONG,
    WORKER_WRONG,
    ChallengeWindowClosed,
    DisputeAlreadyOpen,
    DuplicatePosting,
    InvalidCommitment,
    InvalidEvidence,
    JobAlreadySettled,
    JobStatus,
    NoReferee,
    NothingToDispute,
    check_invariants,
    copy_state,
    process_epoch,
    process_post_job,
    process_settle_dispute,
    process_settle_job,
)
from protocol.signing import private_key_from_bytes
from verifier.game.clock import LocalTimeSource
from verifier.game.toy import ToyConfig, ToyMachine

from .actors import expect_unchanged
from .settlement_support import (
    FAULT,
    Market,
    get_machine,
    make_party,
    make_settlement_market,
    toy_referees,
)

CONFIG = ToyConfig(steps=6, num_ops=8, num_state=4, width=2, seed=1)
OTHER = ToyConfig(steps=6, num_ops=8, num_state=4, width=2, seed=2)


def advance(market: Market, epochs: int) -> None:
    for _ in range(epochs):
        process_epoch(market.state, b"tick")
        check_invariants(market.state)


# -- commitments on the ledger --------------------------------------------------------------------


def test_commitments_are_checked_on_entry_and_bound_to_one_posting() -> None:
    market = make_settlement_market()
    s, machine = market.state, get_machine(CONFIG)
    cheater = make_party("alice", machine, FAULT)
    job = process_post_job(s, "user", 100, 10, machine.job_id.hex())
    expect_unchanged(s, DuplicatePosting, process_post_job, "user", 100, 10, machine.job_id.hex())
    expect_unchanged(s, InvalidCommitment, process_post_job, "user", 100, 10, "AB" * 32)
    from protocol.economy import process_bid, process_close_auction, process_submit_commitment

    process_bid(s, "alice", job, 100)
    process_close_auction(s, job)
    other = make_party("alice", get_machine(OTHER))  # signed for another training job: a replay
    expect_unchanged(s, InvalidCommitment, process_submit_commitment, "alice", job, other.commitment_json())
    forged = cheater.commitment_json()
    forged["signature"] = ("0" if forged["signature"][0] != "0" else "1") + forged["signature"][1:]
    expect_unchanged(s, InvalidCommitment, process_submit_commitment, "alice", job, forged)
    expect_unchanged(s, InvalidCommitment, process_submit_commitment, "alice", job, {"commitment": "ab" * 32})
    process_submit_commitment(s, "alice", job, cheater.commitment_json())
    assert s.jobs[job].commitment == bytes(cheater.commitment.commitment.chain_root).hex()
    check_invariants(s)
    same = make_party("honest", machine, FAULT)  # agrees with the worker: nothing to dispute
    from protocol.economy import process_open_dispute

    expect_unchanged(s, NothingToDispute, process_open_dispute, "honest", job, same.commitment_json())
    expect_unchanged(s, InvalidCommitment, process_open_dispute, "honest", job,
                     make_party("honest", get_machine(OTHER)).commitment_json())


def test_signed_commitments_must_be_the_senders_own() -> None:
    """For accounts named by their key (every account that signs transactions), a commitment signed by
    another key is refused: nobody registers someone else's commitment as its own."""
    from protocol.economy import apply_action, get_required_worker_stake, sign_transaction
    from protocol.game.commitments import (
        RunCommitment,
        compute_signed_run_commitment_json,
        sign_run_commitment,
    )
    from protocol.signing import get_public_key_bytes

    market = make_settlement_market()
    s, machine = market.state, get_machine(CONFIG)
    key, stranger = private_key_from_bytes(bytes([40]) * 32), private_key_from_bytes(bytes([41]) * 32)
    name = get_public_key_bytes(key).hex()
    from protocol.economy import process_genesis_allocation

    process_genesis_allocation(s, name, 1_000)
    nonce = iter(range(100))
    apply_action(s, sign_transaction(key, "stake", next(nonce), amount=int(get_required_worker_stake(s))))
    apply_action(s, sign_transaction(key, "register_worker", next(nonce)))
    job = process_post_job(s, "user", 100, 10, machine.job_id.hex())
    apply_action(s, sign_transaction(key, "bid", next(nonce), job_id=job, price=100))
    from protocol.economy import process_close_auction

    process_close_auction(s, job)
    root = make_party("alice", machine).commitment.commitment.chain_root
    theirs = sign_run_commitment(stranger, RunCommitment(machine.job_id, CONFIG.steps, root, get_public_key_bytes(stranger)))
    before = copy_state(s)
    with pytest.raises(InvalidCommitment, match="not by the sender"):
        apply_action(s, sign_transaction(key, "submit_commitment", 3, job_id=job,
                                         commitment=compute_signed_run_commitment_json(theirs)))
    assert s == before
    mine = sign_run_commitment(key, RunCommitment(machine.job_id, CONFIG.steps, root, get_public_key_bytes(key)))
    apply_action(s, sign_transaction(key, "submit_commitment", 3, job_id=job,
                                     commitment=compute_signed_run_commitment_json(mine)))
    assert s.jobs[job].status == JobStatus.COMMITTED


# -- settlement checks its evidence ---------------------------------------------------------------


def _forgeries(market: Market, transcript: dict[str, Any], other_dispute: dict[str, Any]) -> list[tuple[str, Any]]:
    """Transcripts a settlement must refuse, each with what is wrong with it."""
    out: list[tuple[str, Any]] = []
    truncated = copy.deepcopy(transcript)
    truncated["events"] = truncated["events"][:-1]
    out.append(("truncated", truncated))
    swapped = copy.deepcopy(transcript)
    verdict = swapped["verdict"]
    verdict["winner"], verdict["losers"] = ({"role": "worker", "key": swapped["setup"]["worker"]["commitment"]["worker_key"]},
                                            [{"role": "challenger", "key": swapped["setup"]["challenger"]["commitment"]["worker_key"]}])
    out.append(("verdict rewritten", swapped))
    out.append(("another dispute's game", other_dispute))
    retimed = copy.deepcopy(transcript)
    retimed["events"][-1]["at"] = retimed["events"][-1]["at"] + 1.0
    out.append(("an event re-timed", retimed))
    dropped = copy.deepcopy(transcript)
    del dropped["events"][len(dropped["events"]) // 2]
    out.append(("an event dropped", dropped))
    out.append(("not a transcript", {"format": "pinpoint-game-transcript/2"}))
    out.append(("garbage", {"events": [[[[]]]]}))
    unwitnessed = copy.deepcopy(transcript)
    for event in unwitnessed["events"]:
        event.pop("receipt", None)
    unwitnessed["setup"]["time_source"] = None
    out.append(("no receipts", unwitnessed))
    return out


def test_forged_truncated_and_mismatched_transcripts_change_nothing() -> None:
    market = make_settlement_market()
    machine = get_machine(CONFIG)
    cheater = make_party("alice", machine, FAULT)
    honest = make_party("honest", machine)
    griefer = make_party("griefer", machine, fabricated=bytes(32))
    job = market.post_toy_job(CONFIG, cheater)
    first = market.open(job, honest)
    second = market.open(job, griefer)
    transcript = market.play(CONFIG, cheater, honest, first)
    other = market.play(CONFIG, cheater, griefer, second)
    for what, forged in _forgeries(market, transcript, other):
        before = copy_state(market.state)
        with pytest.raises(InvalidEvidence):
            market.settle(first, forged)
        assert market.state == before, what
    # a game witnessed by another time source proves nothing here, even played honestly
    elsewhere = Market(market.state, LocalTimeSource(private_key_from_bytes(bytes([7]) * 32)))
    foreign = elsewhere.play(CONFIG, cheater, honest, first)
    expect_unchanged(market.state, InvalidEvidence, process_settle_dispute, "carol", first.number, foreign, toy_referees)
    # the context must name the ledger job's own training job: a transcript cannot choose its judge
    judged_elsewhere = copy.deepcopy(transcript)
    judged_elsewhere["setup"]["context"] = {"toy": dict(OTHER.__dict__)}
    expect_unchanged(market.state, InvalidEvidence, process_settle_dispute, "carol", first.number, judged_elsewhere,
                     toy_referees)
    # nothing is taken on trust: without a referee the genuine transcript is refused too
    expect_unchanged(market.state, NoReferee, process_settle_dispute, "carol", first.number, transcript, None)
    result = market.settle(first, transcript)
    assert result.outcome == WORKER_WRONG and result.kind == "worker-slashed"
    check_invariants(market.state)


def test_both_lose_settles_with_both_slashed() -> None:
    market = make_settlement_market()
    machine = get_machine(CONFIG)
    worker = make_party("alice", machine, FAULT, behaviour="silent")
    challenger = make_party("griefer", machine, fabricated=bytes(32), behaviour="silent")
    job = market.post_toy_job(CONFIG, worker)
    opened = market.open(job, challenger)
    s = market.state
    stake, balance = s.stakes["alice"], s.accounts["griefer"].balance
    burned = s.burned
    result = market.settle(opened, market.play(CONFIG, worker, challenger, opened))
    assert result.outcome == BOTH_WRONG and result.kind == "both-slashed"
    assert s.stakes["alice"] < stake and s.accounts["griefer"].balance == balance  # the bond is not returned
    assert s.burned - burned == result.slashed and result.winner_reward == 0
    assert s.jobs[job].status == JobStatus.SLASHED and s.jobs[job].proven_wrong
    check_invariants(s)


# -- one honest challenger suffices ---------------------------------------------------------------


def _run_order(order: tuple[str, ...], colluder_mode: str) -> tuple[Market, list[str]]:
    """The cheater alice, its colluder and one honest challenger, events in `order`; invariants after every
    transition. The colluder opens with the true root and throws its game by silence ("throws"), or with
    a root it cannot back and never brings its transcript ("stalls") or plays and loses ("loses")."""
    market = make_settlement_market()
    machine = get_machine(CONFIG)
    cheater = make_party("alice", machine, FAULT)
    colluder = make_party("colluder", machine, behaviour="silent" if colluder_mode == "throws" else "honest",
                          fabricated=None if colluder_mode == "throws" else b"\x01" * 32)
    honest = make_party("honest", machine)
    job = market.post_toy_job(CONFIG, cheater)
    opened: dict[str, Any] = {}
    slashed: list[str] = []  # accounts slashed for a dispute (an epoch's report clears its slash events)
    for step in order:
        who, action = step.split(":")
        party = colluder if who == "colluder" else honest
        if action == "open":
            try:
                opened[who] = market.open(job, party)
            except (ChallengeWindowClosed, JobAlreadySettled):
                assert who == "colluder" or market.state.jobs[job].status == JobStatus.SLASHED
        elif action == "settle" and who in opened:
            if who == "colluder" and colluder_mode == "stalls":
                continue  # it never brings its transcript
            market.settle(opened[who], market.play(CONFIG, cheater, party, opened[who]))
        elif action == "tick":
            slashed += [e.account for e in market.state.slash_events if e.reason == "dispute"]
            process_epoch(market.state, b"tick")
        check_invariants(market.state)
    return market, slashed + [e.account for e in market.state.slash_events if e.reason == "dispute"]


EVENTS = ("colluder:open", "colluder:settle", "honest:open", "honest:settle", "any:tick")


def _orders() -> list[tuple[str, ...]]:
    """Every order of the five events in which each party opens before it settles."""
    found = []
    for order in itertools.permutations(EVENTS):
        if order.index("colluder:open") < order.index("colluder:settle") and order.index("honest:open") < order.index(
            "honest:settle"
        ):
            found.append(order)
    return found


@pytest.mark.parametrize("colluder_mode", ["throws", "stalls", "loses"])
def test_a_colluding_challenger_never_saves_the_cheater(colluder_mode: str) -> None:
    """For every order of arrival (the window is two epochs; one tick passes somewhere in between), the
    cheater ends slashed exactly once and never paid, the honest challenger is paid from the slash, and
    the colluder gains nothing."""
    orders = _orders()
    assert len(orders) == 30
    for order in orders:
        market, slashed = _run_order(order, colluder_mode)
        s = market.state
        job = s.jobs[0]
        assert job.status == JobStatus.SLASHED and job.proven_wrong, order
        assert slashed == ["alice"], order
        assert s.accounts["honest"].balance > 3_000, order  # its bond back plus its share of the slash
        assert s.accounts["colluder"].balance <= 3_000, order
        advance(market, 4)
        expect_unchanged(s, JobAlreadySettled, process_settle_job, 0)


def test_the_window_stays_open_while_a_dispute_runs() -> None:
    """The colluder opens on the window's last epoch and stalls; the honest challenger arrives after the
    window would have closed and still wins; the job cannot settle while a dispute is open."""
    market = make_settlement_market()
    machine = get_machine(CONFIG)
    cheater = make_party("alice", machine, FAULT)
    colluder = make_party("colluder", machine, fabricated=b"\x02" * 32)
    honest = make_party("honest", machine)
    job = market.post_toy_job(CONFIG, cheater)
    advance(market, market.state.params.challenge_window_epochs - 1)
    stalled = market.open(job, colluder)
    advance(market, 3)
    expect_unchanged(market.state, DisputeAlreadyOpen, process_settle_job, job)
    opened = market.open(job, honest)
    result = market.settle(opened, market.play(CONFIG, cheater, honest, opened))
    assert result.kind == "worker-slashed"
    # the stalled game still settles, later, by anyone holding its transcript: the colluder's root was
    # wrong too, so its bond is lost, and the proven cheater gets no share of it
    late = market.settle(stalled, market.play(CONFIG, cheater, colluder, stalled), settler="user")
    assert late.kind == "challenger-slashed" and late.winner_reward == 0 and not market.state.disputes
    check_invariants(market.state)


def test_an_honest_worker_is_paid_whatever_griefers_do() -> None:
    """Griefers open losing disputes (a wrong commitment played honestly, or one that stalls): each
    loses its bond once its transcript is in (the worker brings it), and the worker is then paid."""
    market = make_settlement_market()
    machine = get_machine(CONFIG)
    worker = make_party("bob", machine)
    liar = make_party("griefer", machine, FAULT)
    staller = make_party("colluder", machine, fabricated=b"\x03" * 32, behaviour="silent")
    job = market.post_toy_job(CONFIG, worker)
    disputes = [(market.open(job, liar), liar), (market.open(job, staller), staller)]
    advance(market, 4)
    expect_unchanged(market.state, DisputeAlreadyOpen, process_settle_job, job)
    for opened, party in disputes:
        result = market.settle(opened, market.play(CONFIG, worker, party, opened), settler="bob")
        assert result.outcome == CHALLENGER_WRONG and result.winner_reward > 0
    balance = market.state.accounts["bob"].balance
    assert process_settle_job(market.state, job) == 100
    assert market.state.accounts["bob"].balance > balance and market.state.jobs[job].status == JobStatus.SETTLED
    check_invariants(market.state)


def test_a_secret_forced_error_pays_the_first_catch_once_opened() -> None:
    """Real games against a sealed job's public, forced-wrong commitment: while the window runs nobody can
    tell it from a fault, so the first winner is the catcher pending the seal; the opening shows the forced
    error, pays the catcher the jackpot and leaves the worker unpunished; later catches get their bond."""
    from protocol.economy import process_open_seal

    from .actors import find_salt

    market = make_settlement_market(forced_error_rate_bps=5_000)
    machine = get_machine(CONFIG)
    true, forced = make_party("alice", machine), make_party("alice", machine, FAULT)
    salt = find_salt(b"draw", 0, 5_000, forced=True)
    job = market.post_sealed_toy_job(CONFIG, true, forced, salt, b"draw")
    first, second = make_party("honest", machine), make_party("carol", machine)
    a, b = market.open(job, first), market.open(job, second)
    stake = market.state.stakes["alice"]
    caught = market.settle(a, market.play(CONFIG, forced, first, a))
    again = market.settle(b, market.play(CONFIG, forced, second, b))
    assert caught.kind == "caught-pending-seal" and again.kind == "bond-refunded"
    advance(market, market.state.params.challenge_window_epochs)
    jackpot = market.state.jackpot
    opened = process_open_seal(market.state, "alice", job, true.commitment_json(), salt)
    assert opened.forced and opened.jackpot_paid == jackpot // 2 > 0 and market.state.stakes["alice"] == stake
    # the true result stands a window of its own: a challenge to it loses its game
    liar = make_party("griefer", machine, fabricated=b"\x05" * 32)
    c = market.open(job, liar)
    assert market.state.disputes[c.number].against_true
    assert market.settle(c, market.play(CONFIG, true, liar, c)).kind == "challenger-slashed"
    advance(market, market.state.params.challenge_window_epochs)
    assert process_settle_job(market.state, job) == 100
    check_invariants(market.state)


def test_machines_differ() -> None:
    assert ToyMachine(CONFIG).job_id != ToyMachine(OTHER).job_id


@pytest.mark.parametrize("replicas", [2, 3, 4])
def test_replicated_job_with_one_honest_worker_pays_the_honest_one(replicas: int) -> None:
    """Verde's "at least one honest": N workers on one training job, one honest; the others commit a
    faulty run, a fabricated root, or agree among themselves on a wrong one. Disagreeing replicas cannot
    be paid; the honest worker's real games against each other root remove them, and the liars' games
    against it fail, so the honest worker is paid and every other replica is slashed or unpaid."""
    from protocol.economy import (
        ReplicasDisagree,
        get_required_worker_stake,
        process_bid,
        process_close_auction,
        process_post_job,
        process_register_worker,
        process_stake,
        process_submit_commitment,
    )

    market = make_settlement_market()
    s, machine = market.state, get_machine(CONFIG)
    names = ["alice", "bob", "carol", "griefer"][: replicas - 1]
    for name in names[2:]:
        process_stake(s, name, get_required_worker_stake(s))
        process_register_worker(s, name)
    process_stake(s, "honest", get_required_worker_stake(s))
    process_register_worker(s, "honest")
    liars = [make_party(name, machine, FAULT) if i % 2 == 0 else make_party(name, machine, fabricated=b"\x07" * 32)
             for i, name in enumerate(names)]
    honest = make_party("honest", machine)
    parties = {p.name: p for p in [*liars, honest]}
    first = process_post_job(s, "user", 100, 10, machine.job_id.hex(), replicas=replicas)
    order = list(parties)
    for job_id, name in zip(range(first, first + replicas), order, strict=True):
        process_bid(s, name, job_id, 100)
        process_close_auction(s, job_id)
        process_submit_commitment(s, name, job_id, parties[name].commitment_json())
    job_of = {s.jobs[j].worker: j for j in range(first, first + replicas)}
    advance(market, s.params.challenge_window_epochs)
    expect_unchanged(s, ReplicasDisagree, process_settle_job, job_of["honest"])
    for liar in liars:  # each liar challenges the honest replica and loses; the honest one challenges back
        attack = market.open(job_of["honest"], liar)
        assert market.settle(attack, market.play(CONFIG, honest, liar, attack)).kind == "challenger-slashed"
        defence = market.open(job_of[liar.name], honest)
        assert market.settle(defence, market.play(CONFIG, liar, honest, defence)).kind == "worker-slashed"
        check_invariants(s)
    assert process_settle_job(s, job_of["honest"]) == 100
    assert all(s.jobs[job_of[liar.name]].status == JobStatus.SLASHED for liar in liars)
    check_invariants(s)
