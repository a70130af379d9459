"""A game's transcript: the setup, every event in order, and the verdict.

    {"format": "pinpoint-game-transcript/2",
     "game_id": hex32,                       compute_game_id(setup)
     "setup": {worker, challenger, config, started_at, context, dispute_id, time_source},
     "events": [{"at": seconds, "message": envelope, "receipt": hex64}    a message delivered at `at`
                | {"at": seconds, "clock": true, "receipt": hex64}, …],   the clock processed at `at`
     "verdict": {…}}                                                      see state.compute_verdict_json

Replaying the events through the same pure rules must end in exactly the recorded verdict, and only at
the last event. The verdict carries the history digest over every event, so no field of a transcript
can change without the replay disagreeing with it. Every move signs the history at which its query was
asked, so no event before a move can be dropped, reordered or re-timed without breaking its signature.

Times are only as good as their witness. When the setup names a time source, every event carries its
receipt (`protocol.game.timesource`) and the replay checks each one: then a clock event proves that
nothing else had arrived by its time. Without a time source events carry no receipt, and a transcript
can prove value verdicts but never a timeout: a clock event is refused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from protocol.game.codec import ParseError, parse_float, parse_hex, parse_list, parse_object
from protocol.game.interfaces import Referee
from protocol.game.messages import SignedMove, compute_message_json, parse_message_json
from protocol.game.rules import GameError, create_game, process_clock, process_move
from protocol.game.state import (
    GameSetup,
    GameState,
    Verdict,
    compute_setup_json,
    compute_verdict_json,
    parse_setup_json,
    parse_verdict_json,
)
from protocol.game.timesource import is_valid_receipt
from protocol.types import Seconds

TRANSCRIPT_FORMAT = "pinpoint-game-transcript/2"
MAX_EVENTS = 1 << 20  # far beyond any game; bounds the work a hostile file can ask for


@dataclass(frozen=True)
class TranscriptEvent:
    at: Seconds
    message: SignedMove | None  # None: the clock was processed at `at`
    receipt: bytes | None = None  # the time source's signature of the event's receipt, when there is one


@dataclass(frozen=True)
class Transcript:
    setup: GameSetup
    game_id: bytes
    events: tuple[TranscriptEvent, ...]
    verdict: Verdict


def compute_event_body(event: TranscriptEvent) -> dict[str, Any]:
    """The event as the history digest and the receipt cover it (without the receipt)."""
    if event.message is None:
        return {"at": float(event.at), "clock": True}
    return {"at": float(event.at), "message": compute_message_json(event.message)}


def compute_event_json(event: TranscriptEvent) -> dict[str, Any]:
    body = compute_event_body(event)
    return body if event.receipt is None else {**body, "receipt": bytes(event.receipt).hex()}


def compute_transcript_json(transcript: Transcript) -> dict[str, Any]:
    return {
        "format": TRANSCRIPT_FORMAT,
        "game_id": transcript.game_id.hex(),
        "setup": compute_setup_json(transcript.setup),
        "events": [compute_event_json(event) for event in transcript.events],
        "verdict": compute_verdict_json(transcript.verdict),
    }


def _parse_event(value: Any, what: str) -> TranscriptEvent:
    receipted = isinstance(value, dict) and "receipt" in value
    extra = ("receipt",) if receipted else ()
    receipt = parse_hex(value["receipt"], f"{what}.receipt", size=64) if receipted else None
    if isinstance(value, dict) and "clock" in value:
        body = parse_object(value, ("at", "clock", *extra), what)
        if body["clock"] is not True:
            raise ParseError(f"{what}.clock must be true")
        return TranscriptEvent(Seconds(parse_float(body["at"], f"{what}.at")), None, receipt)
    body = parse_object(value, ("at", "message", *extra), what)
    return TranscriptEvent(Seconds(parse_float(body["at"], f"{what}.at")), parse_message_json(body["message"]),
                           receipt)


def get_receipt_problem(state: GameState, index: int, event: TranscriptEvent) -> str | None:
    """Why event `index` is not witnessed as its setup requires, given the state before it; None if it is."""
    time_source = state.setup.time_source
    if time_source is None:
        if event.receipt is not None:
            return f"event {index} carries a receipt, but the game names no time source"
        if event.message is None:
            return (f"event {index} is a clock event, but the game names no time source: without its receipts "
                    "a transcript proves no timeout")
        return None
    if event.receipt is None:
        return f"event {index} has no receipt from the time source"
    if not is_valid_receipt(time_source, state.game_id, index, compute_event_body(event), state.history,
                            event.receipt):
        return f"event {index}'s receipt is not the time source's signature of it, in this place of this game"
    return None


def parse_transcript_json(value: Any) -> Transcript:
    """A transcript from its JSON; ParseError on any deviation from the format."""
    body = parse_object(value, ("format", "game_id", "setup", "events", "verdict"), "transcript")
    if body["format"] != TRANSCRIPT_FORMAT:
        raise ParseError(f"unknown transcript format {body['format']!r}")
    events = parse_list(body["events"], "events", max_length=MAX_EVENTS)
    return Transcript(
        setup=parse_setup_json(body["setup"]),
        game_id=parse_hex(body["game_id"], "game_id", size=32),
        events=tuple(_parse_event(event, f"events[{i}]") for i, event in enumerate(events)),
        verdict=parse_verdict_json(body["verdict"]),
    )


def replay_transcript(transcript: Transcript, referee: Referee,
                      observer: Callable[[GameState, GameState], None] | None = None) -> GameState:
    """Feed every event through the rules; GameError if an event cannot be applied (e.g. after the
    verdict) or is not witnessed as the setup requires (receipts). `observer(before, after)` sees every step."""
    state = create_game(transcript.setup)
    if state.game_id != transcript.game_id:
        raise GameError("the transcript's game id is not the id of its setup")
    for index, event in enumerate(transcript.events):
        if state.verdict is not None:
            raise GameError("the transcript has events after its verdict")
        problem = get_receipt_problem(state, index, event)
        if problem is not None:
            raise GameError(problem)
        before = state
        if event.message is None:
            state = process_clock(state, event.at)
        else:
            state = process_move(state, event.message, event.at, referee)
        if observer is not None:
            observer(before, state)
    return state
