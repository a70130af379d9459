"""Transcripts forged by someone who holds no key but their own, and frame-ups spliced from two games.

2. A forger drops the honest party's answer, appends a clock event at its deadline and recomputes the
   verdict ("the honest party lost by timeout"), or writes a game of no messages ("both lose"): without
   the time source's receipts no timeout is accepted, and a time source of the forger's own is named
   (and refused by whoever pins the one it trusts).
3. A challenger plays two games between the same two commitments and splices the honest worker's
   answer to query n from one into the other, to claim equivocation: the answer signs its game's id and
   the history its query was asked at, so it is refused as unattributable, never taken as equivocation.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.game import MINIMAL, Outcome, Reason, Role, create_game, process_clock, process_move
from protocol.game.messages import parse_message_json
from protocol.game.rules import get_deadline
from protocol.game.state import compute_verdict_json, parse_setup_json
from protocol.game.transcript import compute_transcript_json
from protocol.signing import generate_private_key, private_key_from_bytes
from verifier.game import HonestStrategy, play_game, verify_transcript
from verifier.game.clock import LocalTimeSource
from verifier.game.providers import EditedProvider, edit_leaf
from verifier.game.toy import ToyConfig, ToyFault, ToyProvider, ToyReferee

from .game_support import KEYS, check_every_event, game_settings, get_toy

CONFIG = ToyConfig(steps=6, num_ops=12)


def _game(challenger_provider: Any, **kw: Any) -> dict[str, Any]:
    machine, provider = get_toy(CONFIG)
    result = play_game(HonestStrategy(provider, KEYS[Role.WORKER]), HonestStrategy(challenger_provider, KEYS[Role.CHALLENGER]),
                       ToyReferee(machine), MINIMAL, observer=check_every_event, **kw)
    return compute_transcript_json(result.transcript)


def _liar(node: int = 3) -> ToyProvider:
    return ToyProvider(get_toy(CONFIG)[0], ToyFault("value", 2, node))


def _recompute_verdict(value: dict[str, Any], events: list[dict[str, Any]]) -> dict[str, Any]:
    """What a forger does: replay its events through the pure rules (no receipts checked) and write the
    verdict they reach, so that the transcript is consistent except for its witness."""
    state = create_game(parse_setup_json(value["setup"]))
    referee = ToyReferee(get_toy(CONFIG)[0])
    for event in events:
        if "clock" in event:
            state = process_clock(state, event["at"])
        else:
            state = process_move(state, parse_message_json(event["message"]), event["at"], referee)
    assert state.verdict is not None
    return {**value, "events": events, "verdict": compute_verdict_json(state.verdict)}


def _strip_receipts(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: item for key, item in event.items() if key != "receipt"} for event in events]


def _honest_dropped(value: dict[str, Any]) -> list[dict[str, Any]]:
    """The events without the worker's last answer (the challenger's to that query kept), and a clock
    event at the worker's deadline."""
    events = _strip_receipts(value["events"])
    last = max(i for i, event in enumerate(events) if event.get("message", {}).get("sender") == "worker")
    seq = events[last]["message"]["seq"]
    kept = [event for i, event in enumerate(events)
            if i < last or (i > last and event.get("message", {}).get("seq") == seq)]
    state = create_game(parse_setup_json(value["setup"]))
    referee = ToyReferee(get_toy(CONFIG)[0])
    for event in kept:
        state = (process_clock(state, event["at"]) if "clock" in event else
                 process_move(state, parse_message_json(event["message"]), event["at"], referee))
    deadline = get_deadline(state, Role.WORKER)
    assert deadline is not None
    return [*kept, {"at": deadline, "clock": True}]


def test_dropping_the_honest_answer_to_forge_a_timeout_is_rejected() -> None:
    value = _game(_liar())
    referee = ToyReferee(get_toy(CONFIG)[0])
    honest = verify_transcript(value, referee)
    assert honest.valid and honest.verdict is not None and honest.verdict.winner.role is Role.WORKER  # type: ignore[union-attr]
    forged = _recompute_verdict(value, _honest_dropped(value))
    assert forged["verdict"]["reason"] == Reason.TIMEOUT.value and forged["verdict"]["winner"]["role"] == "challenger"
    result = verify_transcript(forged, referee)  # the receipts are gone: the events are not the witnessed ones
    assert not result.valid and "receipt" in result.reason
    # keep the receipts the forger has: the clock event still has none, and its deadline moved nothing
    kept = value["events"][: len(forged["events"]) - 1]
    result = verify_transcript({**forged, "events": [*kept, forged["events"][-1]]}, referee)
    assert not result.valid and "no receipt" in result.reason


def test_a_game_without_a_time_source_proves_value_verdicts_never_timeouts() -> None:
    value = _game(_liar(), time_source=None)
    referee = ToyReferee(get_toy(CONFIG)[0])
    result = verify_transcript(value, referee)
    assert result.valid and result.time_source is None and "proves no timeout" in result.reason
    forged = _recompute_verdict(value, _honest_dropped(value))
    result = verify_transcript(forged, referee)
    assert not result.valid and "proves no timeout" in result.reason
    nothing = _recompute_verdict(value, [{"at": MINIMAL.clock_seconds, "clock": True}])
    assert nothing["verdict"]["outcome"] == Outcome.BOTH_LOSE.value
    result = verify_transcript(nothing, referee)
    assert not result.valid and "proves no timeout" in result.reason


def test_a_forgers_own_time_source_is_named_and_refused_when_another_is_trusted() -> None:
    """A forger can witness a game of its own making (no honest move in it): the result names its key, and
    a verifier that pins the time source it trusts (the ledger's) refuses it."""
    trusted = LocalTimeSource()
    value = _game(_liar(), time_source=trusted)
    referee = ToyReferee(get_toy(CONFIG)[0])
    key = bytes(trusted.get_time_source_key())
    assert verify_transcript(value, referee, time_source=key).valid
    forger = LocalTimeSource(generate_private_key())
    setup = copy.deepcopy(value["setup"])
    setup["time_source"] = bytes(forger.get_time_source_key()).hex()
    parsed = parse_setup_json(setup)
    state = create_game(parsed)
    forger.open_game(state.game_id, parsed.started_at)
    stamp = forger.post_event(state.game_id, {"clock": True}, MINIMAL.clock_seconds)
    events = [{"at": stamp.at, "clock": True, "receipt": bytes(stamp.receipt).hex()}]
    made_up = {**_recompute_verdict({**value, "setup": setup}, _strip_receipts(events)), "events": events,
               "game_id": state.game_id.hex()}
    result = verify_transcript(made_up, referee)
    assert result.valid and result.time_source == bytes(forger.get_time_source_key())  # named, for whoever reads it
    result = verify_transcript(made_up, referee, time_source=key)
    assert not result.valid and "trusted time source" in result.reason


def _splice(value: dict[str, Any], other: dict[str, Any]) -> tuple[dict[str, Any], int]:
    """Game `value` with the worker's answer to the first query whose worker answers differ in `other`
    inserted right after its own answer: the frame-up's transcript (events after it dropped)."""
    def worker_answers(game: dict[str, Any]) -> dict[int, tuple[int, dict[str, Any]]]:
        return {event["message"]["seq"]: (i, event) for i, event in enumerate(game["events"])
                if event.get("message", {}).get("sender") == "worker"}

    ours, theirs = worker_answers(value), worker_answers(other)
    seq = min(n for n in ours if n in theirs and ours[n][1]["message"]["move"] != theirs[n][1]["message"]["move"])
    index, event = ours[seq]
    spliced = {"at": event["at"], "message": theirs[seq][1]["message"]}
    return {**value, "events": _strip_receipts([*value["events"][: index + 1], spliced])}, seq


@pytest.mark.parametrize("same_id", [False, True])
def test_a_frame_up_spliced_from_another_game_is_rejected(same_id: bool) -> None:
    """Two games between the same two commitments (the challenger's second trace commitment differs, so the
    honest worker is asked other things under the same query numbers). With ids issued per dispute the
    answer is of another game; even with the very same id, it signs another course of the game."""
    witness_key = generate_private_key()
    shared: dict[str, Any] = {"dispute_id": bytes(32)} if same_id else {}
    first = _game(_liar(), time_source=LocalTimeSource(witness_key), **shared)
    second_liar = EditedProvider(_liar(), step=2, ops=edit_leaf(1))  # same chain, another ops tree of step 2
    second = _game(second_liar, time_source=LocalTimeSource(witness_key) if same_id else "local", **shared)
    assert (first["game_id"] == second["game_id"]) is same_id
    assert first["setup"]["challenger"] == second["setup"]["challenger"]
    spliced, seq = _splice(first, second)
    state = create_game(parse_setup_json(first["setup"]))
    referee = ToyReferee(get_toy(CONFIG)[0])
    for event in spliced["events"]:
        state = process_move(state, parse_message_json(event["message"]), event["at"], referee)
    assert state.verdict is None  # not an equivocation: the spliced answer is nobody's in this game
    assert state.rejected[-1].reason == "bad signature" and state.rejected[-1].seq == seq
    claimed = copy.deepcopy(first)
    claimed["events"] = spliced["events"]
    claimed["verdict"].update(reason=Reason.EQUIVOCATION.value, outcome="decided",
                              detail=f"the worker signed two different answers to query {seq}")
    assert not verify_transcript(claimed, referee).valid


def test_a_real_equivocation_is_still_proven() -> None:
    """Two different answers signed inside one game, at one history, are equivocation."""
    machine, provider = get_toy(CONFIG)
    from verifier.game.adversaries import CATALOGUE, Scenario

    liar = CATALOGUE["flip-past-answer"].build(provider, KEYS[Role.CHALLENGER], Scenario(step=2, node=3, at_round=3))
    result = play_game(HonestStrategy(provider, KEYS[Role.WORKER]), liar, ToyReferee(machine), MINIMAL,
                       observer=check_every_event)
    assert result.verdict.reason is Reason.EQUIVOCATION and result.verdict.winner.role is Role.WORKER  # type: ignore[union-attr]
    assert verify_transcript(compute_transcript_json(result.transcript), ToyReferee(machine)).valid


@game_settings(15)
@given(drop=st.integers(0, 1 << 16), seed=st.integers(0, 1 << 16))
def test_no_single_event_can_be_dropped_or_retimed_once_witnessed(drop: int, seed: int) -> None:
    """Property: dropping any event, or moving any event's time, breaks a receipt or a signature."""
    value = _transcript_cached()
    referee = ToyReferee(get_toy(CONFIG)[0])
    events = value["events"]
    index = drop % len(events)
    dropped = {**value, "events": events[:index] + events[index + 1:]}
    assert not verify_transcript(dropped, referee).valid
    retimed = copy.deepcopy(value)
    retimed["events"][index]["at"] += 0.25 + (seed % 7)
    assert not verify_transcript(retimed, referee).valid


_CACHE: dict[str, Any] = {}


def _transcript_cached() -> dict[str, Any]:
    if "value" not in _CACHE:
        _CACHE["value"] = _game(_liar(), time_source=LocalTimeSource(private_key_from_bytes(bytes(range(64, 96)))))
    return _CACHE["value"]
