"""Committee verdicts against real BLS (py_ecc) and real games: registration with proofs of possession,
the stake-weighted draw, attestations accepted at 2/3 of stake and refused under it or forged, and every
fault proven by its evidence.

py_ecc signs in ~0.2 s and verifies in ~0.4 s, so the keys and the members' shares are made once per
module and shared; the tests that need no pairing (weights, formats, the draw) make none.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, replace

import pytest

from protocol.committee import (
    MINIMAL,
    AbsenceProof,
    Attestation,
    BLSError,
    Candidate,
    Committee,
    EquivocationProof,
    FaultKind,
    Registration,
    RoundClose,
    VerdictStatement,
    WrongVerdictProof,
    aggregate_signatures,
    check_absence,
    check_equivocation,
    check_wrong_verdict,
    compute_attestation,
    compute_attestation_json,
    compute_committee,
    compute_committee_root,
    compute_slashes,
    compute_statement_json,
    compute_transcript_statement,
    compute_verdict_statement,
    generate_secret_key,
    get_bls_public_key,
    get_registration_problem,
    is_valid_aggregate,
    is_valid_public_key,
    is_valid_share,
    parse_attestation_json,
    prove_possession,
    sign_round_close,
    sign_verdict,
    verify_attestation,
)
from protocol.committee.bls import BLSPublicKey, BLSSecretKey, BLSSignature
from protocol.game import Outcome, Reason, Role
from protocol.signing import private_key_from_bytes
from protocol.types import Root, Seconds
from tests.game.game_support import KEYS, get_toy, play_honest_against
from verifier.game import HonestStrategy
from verifier.game.driver import GameResult
from verifier.game.toy import ToyConfig, ToyFault, ToyProvider, ToyReferee

SEED = bytes(range(100, 132))
TOY = ToyConfig(steps=6, num_ops=8, num_state=4, seed=3)
TIME_SOURCE = private_key_from_bytes(bytes(range(64, 96)))


@dataclass(frozen=True)
class Arena:
    """Four referees of equal stake on one committee, a decided toy game, and every BLS value the tests
    share: the honest statement's shares of seats 0 … 3, and the liar's (seat 3) share of a false one."""

    secrets: tuple[BLSSecretKey, ...]
    keys: tuple[BLSPublicKey, ...]
    committee: Committee
    game: GameResult
    referee: ToyReferee
    statement: VerdictStatement  # the true one
    lie: VerdictStatement  # the winner swapped
    shares: dict[int, BLSSignature]  # seat → its signature of `statement`
    lie_share: BLSSignature  # seat 3's signature of `lie`
    attestation: Attestation  # seats 0 … 3 on `statement`


@pytest.fixture(scope="module")
def arena() -> Arena:
    secrets = tuple(generate_secret_key(bytes([i]) * 32) for i in range(4))
    keys = tuple(get_bls_public_key(secret) for secret in secrets)
    candidates = [Candidate(f"referee-{i}", keys[i], 1_000) for i in range(4)]
    committee = compute_committee(5, SEED, candidates, MINIMAL.size)
    machine, provider = get_toy(TOY)
    game = play_honest_against(HonestStrategy(ToyProvider(machine, ToyFault("value", 2, 3)), KEYS[Role.WORKER]),
                               Role.CHALLENGER, machine, provider)
    assert game.verdict.reason is Reason.WRONG_LEAF and game.verdict.winner is not None
    referee = ToyReferee(machine)
    statement = compute_verdict_statement(game.state, referee)
    lie = replace(statement, winner=Role.WORKER, losers=(Role.CHALLENGER,))
    seats = {bytes(member.key): seat for seat, member in enumerate(committee.members)}
    shares = {seats[bytes(keys[i])]: sign_verdict(secrets[i], statement) for i in range(4)}
    liar = 3
    lie_share = sign_verdict(secrets[keys.index(committee.members[liar].key)], lie)
    attestation = compute_attestation(committee, statement, shares)
    return Arena(secrets, keys, committee, game, referee, statement, lie, shares, lie_share, attestation)


def attest(arena: Arena, seats: tuple[int, ...], statement: VerdictStatement | None = None) -> Attestation:
    """An attestation of the true statement by `seats`, aggregated from the shared shares (no signing)."""
    return compute_attestation(arena.committee, statement or arena.statement, {seat: arena.shares[seat] for seat in seats})


# --- registration -------------------------------------------------------------------------------------


def test_registration_needs_a_proof_of_possession_of_its_own_key(arena: Arena) -> None:
    proof = prove_possession(arena.secrets[0])
    assert get_registration_problem(Registration("referee-0", arena.keys[0], proof)) is None
    # a rogue registrant copies a member's proof onto another key: refused
    problem = get_registration_problem(Registration("rogue", arena.keys[1], proof))
    assert problem is not None and "proof of possession" in problem
    # malformed keys and proofs never reach a pairing
    for key in (b"", arena.keys[0][:47], bytes(48), b"\xc0" + bytes(47), b"\xff" * 48):
        problem = get_registration_problem(Registration("rogue", BLSPublicKey(key), proof))
        assert problem is not None and "not a valid BLS public key" in problem
    assert not is_valid_public_key(BLSPublicKey(b"\xc0" + bytes(47)))  # the identity point: refused
    problem = get_registration_problem(Registration("referee-0", arena.keys[0], proof[:95]))
    assert problem is not None and "proof of possession" in problem


def test_key_material_shorter_than_32_bytes_is_refused() -> None:
    with pytest.raises(BLSError, match="at least 32 bytes"):
        generate_secret_key(bytes(31))


# --- acceptance ---------------------------------------------------------------------------------------


def test_a_quorum_attestation_is_accepted_with_one_pairing_check(arena: Arena) -> None:
    attestation = attest(arena, (0, 1, 2))  # three of four equal stakes: 3/4 >= 2/3
    check = verify_attestation(attestation, arena.committee, MINIMAL, game_id=arena.game.state.game_id)
    assert check.valid, check.reason
    assert check.statement == arena.statement
    assert (check.signed_stake, check.total_stake) == (3_000, 4_000)
    # its JSON round-trips and verifies the same (the checked bytes are the parsed ones)
    text = compute_attestation_json(attestation)
    assert parse_attestation_json(text, max_members=MINIMAL.max_members) == attestation


def test_an_under_weight_attestation_is_refused_before_any_pairing(arena: Arena) -> None:
    attestation = attest(arena, (0, 1))  # 2/4 < 2/3
    check = verify_attestation(attestation, arena.committee, MINIMAL)
    assert not check.valid and check.reason.startswith("under-weight") and check.signed_stake == 2_000
    # the weight is stake, not seats: one member holding 3/4 of the stake is a quorum alone
    heavy = Committee(arena.committee.epoch, arena.committee.seed, tuple(
        dataclasses.replace(member, stake=6_000 if seat == 0 else 1_000)
        for seat, member in enumerate(arena.committee.members)))
    lone = replace(attest(arena, (0,)), committee=compute_committee_root(heavy))
    assert verify_attestation(lone, heavy, MINIMAL).valid  # 6000/9000 = 2/3 exactly


def test_forged_attestations_are_refused(arena: Arena) -> None:
    honest = attest(arena, (0, 1, 2))
    # claims a fourth signer whose signature it does not hold
    padded = replace(honest, signers=(0, 1, 2, 3))
    assert verify_attestation(padded, arena.committee, MINIMAL).reason.startswith("the aggregate signature does not verify")
    # the signature of the true statement does not carry over to the lie
    flipped = replace(honest, statement=arena.lie)
    assert not verify_attestation(flipped, arena.committee, MINIMAL).valid
    reasons = {
        "about game": verify_attestation(honest, arena.committee, MINIMAL, game_id=bytes(32)).reason,
        "epoch": verify_attestation(replace(honest, epoch=6), arena.committee, MINIMAL).reason,
        "committee root": verify_attestation(replace(honest, committee=Root(bytes(32))), arena.committee, MINIMAL).reason,
        "increasing order": verify_attestation(replace(honest, signers=(2, 1, 0)), arena.committee, MINIMAL).reason,
        "outside": verify_attestation(replace(honest, signers=(0, 1, 2, 7)), arena.committee, MINIMAL).reason,
        "no signer": verify_attestation(replace(honest, signers=()), arena.committee, MINIMAL).reason,
        "96 bytes": verify_attestation(replace(honest, signature=BLSSignature(bytes(95))), arena.committee, MINIMAL).reason,
    }
    for needle, reason in reasons.items():
        assert needle in reason, (needle, reason)
    # a signature that is not a point of G2 is refused without an exception
    not_a_point = replace(honest, signature=BLSSignature(b"\xff" * 96))
    assert not verify_attestation(not_a_point, arena.committee, MINIMAL).valid
    assert not is_valid_aggregate([], b"message", honest.signature)


def test_hostile_attestation_json_is_refused_with_a_reason(arena: Arena) -> None:
    good = compute_attestation_json(attest(arena, (0, 1, 2)))
    bad = [
        None, [], {**good, "extra": 1}, {**good, "signers": "0,1,2"}, {**good, "signers": [0, 1, True]},
        {**good, "signature": good["signature"].upper()}, {**good, "epoch": -1},
        {**good, "statement": {**good["statement"], "winner": "referee"}},
        {**good, "statement": {**good["statement"], "leaves": [good["statement"]["history"]]}},
        {**good, "statement": {**good["statement"], "outputs": ["00"]}},
        {**good, "statement": {**good["statement"], "losers": ["worker", "worker"]}},
        {**good, "signers": list(range(MINIMAL.max_members + 1))},
    ]
    for value in bad:
        check = verify_attestation(value, arena.committee, MINIMAL)
        assert not check.valid and check.reason.startswith("malformed attestation"), (value, check.reason)


def test_two_thirds_honest_reach_the_true_verdict_whatever_a_third_does(arena: Arena) -> None:
    """Seat 3 lies: its share of the false statement is no quorum, and the honest three are one without it."""
    lie = compute_attestation(arena.committee, arena.lie, {3: arena.lie_share})
    assert verify_attestation(lie, arena.committee, MINIMAL).reason.startswith("under-weight")
    assert is_valid_share(arena.committee, 3, arena.lie, arena.lie_share)  # it did sign it
    # silent or lying, the honest three attest alone (accepted in the quorum test above)
    assert verify_attestation(attest(arena, (0, 1, 2)), arena.committee, MINIMAL).signed_stake == 3_000


# --- faults -------------------------------------------------------------------------------------------


def test_equivocation_is_proven_by_the_two_statements(arena: Arena) -> None:
    lie = compute_attestation(arena.committee, arena.lie, {3: arena.lie_share})
    check = check_equivocation(EquivocationProof(arena.attestation, lie), arena.committee)
    assert check.valid and check.kind is FaultKind.EQUIVOCATION and check.offenders == (3,), check.reason
    assert compute_slashes(arena.committee, check, MINIMAL) == ((arena.committee.members[3].account, 1_000),)
    # not proofs: the same statement twice, no common signer, other games, a forged second signature
    assert not check_equivocation(EquivocationProof(arena.attestation, arena.attestation), arena.committee).valid
    assert "no seat signed both" in check_equivocation(EquivocationProof(attest(arena, (0, 1, 2)), lie), arena.committee).reason
    other_game = replace(lie, statement=replace(arena.lie, game_id=bytes(32)))
    assert "different games" in check_equivocation(EquivocationProof(arena.attestation, other_game), arena.committee).reason
    framed = replace(lie, signers=(2,))  # seat 2 never signed the lie
    assert "does not verify" in check_equivocation(EquivocationProof(arena.attestation, framed), arena.committee).reason


def test_a_verdict_the_transcript_refutes_is_proven_by_the_transcript(arena: Arena) -> None:
    transcript = arena.game.transcript
    lie = compute_attestation(arena.committee, arena.lie, {3: arena.lie_share})
    check = check_wrong_verdict(WrongVerdictProof(lie, transcript), arena.committee, arena.referee)
    assert check.valid and check.kind is FaultKind.WRONG_VERDICT and check.offenders == (3,), check.reason
    assert "losers" in check.reason and "winner" in check.reason
    # the true statement is not refuted, and a transcript of another game or a doctored one refutes nothing
    assert "nothing to refute" in check_wrong_verdict(WrongVerdictProof(arena.attestation, transcript),
                                                      arena.committee, arena.referee).reason
    doctored = replace(transcript, events=transcript.events[:-1])
    assert "does not verify" in check_wrong_verdict(WrongVerdictProof(lie, doctored), arena.committee,
                                                    arena.referee).reason
    elsewhere = replace(lie, statement=replace(arena.lie, game_id=bytes(32)))
    assert "another game" in check_wrong_verdict(WrongVerdictProof(elsewhere, transcript), arena.committee,
                                                 arena.referee).reason
    unwitnessed = replace(transcript, setup=replace(transcript.setup, time_source=None))
    assert "no time source" in check_wrong_verdict(WrongVerdictProof(lie, unwitnessed), arena.committee,
                                                   arena.referee).reason


def _close(arena: Arena, signed: tuple[int, ...], seconds: float = 60.0) -> RoundClose:
    return RoundClose(arena.statement.game_id, arena.committee.epoch, compute_committee_root(arena.committee),
                      Seconds(1000.0), Seconds(1000.0 + seconds), signed)


def test_members_silent_past_the_timeout_are_proven_absent_by_the_time_source(arena: Arena) -> None:
    witness = TIME_SOURCE.public_key().public_bytes_raw()
    close = _close(arena, (0, 1, 3))
    check = check_absence(AbsenceProof(close, sign_round_close(TIME_SOURCE, close)), arena.committee, MINIMAL, witness)
    assert check.valid and check.kind is FaultKind.ABSENCE and check.offenders == (2,), check.reason
    assert compute_slashes(arena.committee, check, MINIMAL) == ((arena.committee.members[2].account, 10),)
    early = _close(arena, (0, 1, 3), seconds=59.0)
    assert "before the signing timeout" in check_absence(AbsenceProof(early, sign_round_close(TIME_SOURCE, early)),
                                                         arena.committee, MINIMAL, witness).reason
    full = _close(arena, (0, 1, 2, 3))
    assert "every seat signed" in check_absence(AbsenceProof(full, sign_round_close(TIME_SOURCE, full)),
                                                arena.committee, MINIMAL, witness).reason
    forged = AbsenceProof(close, sign_round_close(private_key_from_bytes(bytes(32)), close))
    assert "not the time source's" in check_absence(forged, arena.committee, MINIMAL, witness).reason
    unsorted = _close(arena, (3, 0))
    assert "increasing order" in check_absence(AbsenceProof(unsorted, sign_round_close(TIME_SOURCE, unsorted)),
                                               arena.committee, MINIMAL, witness).reason


# --- the statement ------------------------------------------------------------------------------------


def test_the_statement_is_what_the_transcript_proves(arena: Arena) -> None:
    statement = compute_transcript_statement(arena.game.transcript, arena.referee)
    assert statement == arena.statement
    assert statement.outcome is Outcome.DECIDED and statement.winner is Role.CHALLENGER
    assert statement.leaves is not None and statement.expected_leaf is not None
    assert statement.expected_leaf == statement.leaves[1]  # the winner's leaf is the one the referee recomputed
    assert statement.outputs is None  # toy leaves are not pinpoint's node format
    body = compute_statement_json(statement)
    assert body["step"] == 2 and body["tree"] == "ops" and body["history"] == arena.game.verdict.history.hex()


def test_aggregating_refuses_what_is_not_a_signature() -> None:
    with pytest.raises(BLSError, match="nothing"):
        aggregate_signatures([])
    with pytest.raises(BLSError, match="96 bytes"):
        aggregate_signatures([bytes(95)])


def test_importing_the_bls_backend_keeps_the_recursion_limit() -> None:
    """py_ecc raises the process's recursion limit on import; the committee's import puts it back, so the
    limit still refuses hostile nesting elsewhere (a fresh interpreter: this one has imported it already)."""
    import subprocess
    import sys

    code = "import sys; before = sys.getrecursionlimit(); import protocol.committee; print(before == sys.getrecursionlimit())"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "True"
