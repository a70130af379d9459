"""A game's transcript: the setup, every event in order, and the verdict.

    {"format": "pinpoint-game-transcript/1",
     "game_id": hex32,                       compute_game_id(setup)
     "setup": {worker, challenger, config, started_at, context},
     "events": [{"at": seconds, "message": envelope}      a message delivered at `at`
                | {"at": seconds, "clock": true}, …],     the clock processed at `at` (a flag fell)
     "verdict": {…}}                                       see state.compute_verdict_json

Replaying the events through the same pure rules must end in exactly the recorded verdict, and only at
the last event. The verdict carries the history digest over every event, so no field of a transcript
can change without the replay disagreeing with it.
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
from protocol.types import Seconds

TRANSCRIPT_FORMAT = "pinpoint-game-transcript/1"
MAX_EVENTS = 1 << 20  # far beyond any game; bounds the work a hostile file can ask for


@dataclass(frozen=True)
class TranscriptEvent:
    at: Seconds
    message: SignedMove | None  # None: the clock was processed at `at`


@dataclass(frozen=True)
class Transcript:
    setup: GameSetup
    game_id: bytes
    events: tuple[TranscriptEvent, ...]
    verdict: Verdict


def compute_event_json(event: TranscriptEvent) -> dict[str, Any]:
    if event.message is None:
        return {"at": float(event.at), "clock": True}
    return {"at": float(event.at), "message": compute_message_json(event.message)}


def compute_transcript_json(transcript: Transcript) -> dict[str, Any]:
    return {
        "format": TRANSCRIPT_FORMAT,
        "game_id": transcript.game_id.hex(),
        "setup": compute_setup_json(transcript.setup),
        "events": [compute_event_json(event) for event in transcript.events],
        "verdict": compute_verdict_json(transcript.verdict),
    }


def _parse_event(value: Any, what: str) -> TranscriptEvent:
    if isinstance(value, dict) and "clock" in value:
        body = parse_object(value, ("at", "clock"), what)
        if body["clock"] is not True:
            raise ParseError(f"{what}.clock must be true")
        return TranscriptEvent(Seconds(parse_float(body["at"], f"{what}.at")), None)
    body = parse_object(value, ("at", "message"), what)
    return TranscriptEvent(Seconds(parse_float(body["at"], f"{what}.at")), parse_message_json(body["message"]))


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
    verdict). `observer(before, after)` sees every step."""
    state = create_game(transcript.setup)
    if state.game_id != transcript.game_id:
        raise GameError("the transcript's game id is not the id of its setup")
    for event in transcript.events:
        if state.verdict is not None:
            raise GameError("the transcript has events after its verdict")
        before = state
        if event.message is None:
            state = process_clock(state, event.at)
        else:
            state = process_move(state, event.message, event.at, referee)
        if observer is not None:
            observer(before, state)
    return state
