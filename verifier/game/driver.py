"""The driver: plays a game between two strategies on a simulated clock and records its transcript.

The driver is the only part with a notion of time passing: it asks each strategy once per query, delivers
the messages they return in order of arrival (the query's time plus each message's delay), lets the
clock run out when nobody speaks before a flag falls, and records every event. All decisions are the
pure rules' (`protocol.game.rules`); wall-clock seconds spent in the strategies and in the referee are
measured on the side. Every event is posted to the game's time source first, which gives it its time
and a receipt. A party whose code fails to produce an answer is silent (`compute_party_actions`).
"""

from __future__ import annotations

import heapq
import itertools
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from protocol.game.constants import GameConfig
from protocol.game.enums import ROLES, Pair, Role
from protocol.game.evidence import Evidence, EvidenceRequest, LeafDispute, MissingEvidence, StepStructure
from protocol.game.interfaces import Referee
from protocol.game.messages import SignedMove, compute_message_json
from protocol.game.rules import create_game, get_next_deadline, get_owing_roles, process_clock, process_move
from protocol.game.state import GameSetup, GameState, Verdict
from protocol.game.timesource import TimeSource
from protocol.game.transcript import Transcript, TranscriptEvent
from protocol.types import Root, Seconds, StepIndex
from verifier.game.clock import LocalTimeSource
from verifier.game.strategy import Send, Strategy
from verifier.game.transcript import write_transcript

Observer = Callable[[GameState, GameState | None], None]
MAX_FAILURE_TEXT = 2_000  # characters of a party's error kept in its failure record
"""Called as observer(state, previous) after game creation (previous None) and after every event."""


class DriverError(RuntimeError):
    """A game that does not end within the driver's event budget (a strategy flooding it)."""


class TimedReferee:
    """A referee that records the wall-clock seconds spent inside each call."""

    def __init__(self, referee: Referee) -> None:
        self.referee = referee
        self.seconds = 0.0
        self.calls = 0

    def _timed(self, call: Callable[[], Any]) -> Any:
        start = time.perf_counter()
        try:
            return call()
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1

    def compute_initial_state_root(self, job_id: bytes) -> Root:
        result: Root = self._timed(lambda: self.referee.compute_initial_state_root(job_id))
        return result

    def is_valid_hint(self, job_id: bytes, state_before: Root, hint: bytes) -> bool:
        result: bool = self._timed(lambda: self.referee.is_valid_hint(job_id, state_before, hint))
        return result

    def compute_structure(self, job_id: bytes, step: StepIndex, state_before: Root, hints: Pair[bytes]) -> StepStructure:
        result: StepStructure = self._timed(lambda: self.referee.compute_structure(job_id, step, state_before, hints))
        return result

    def get_evidence_requests(self, dispute: LeafDispute) -> Sequence[EvidenceRequest]:
        result: Sequence[EvidenceRequest] = self._timed(lambda: self.referee.get_evidence_requests(dispute))
        return result

    def compute_expected_leaf(self, dispute: LeafDispute, evidence: Evidence) -> bytes | MissingEvidence:
        result: bytes | MissingEvidence = self._timed(lambda: self.referee.compute_expected_leaf(dispute, evidence))
        return result


@dataclass(frozen=True)
class PartyFailure:
    """A party that could not produce its answer to query `seq`: its code raised, or it returned something
    that is not a message. The driver delivers nothing for it, so the rules decide its silence on its clock."""

    role: Role
    seq: int
    error: str  # the exception's type and message, one line

    def to_json(self) -> dict[str, Any]:
        return {"role": self.role.value, "seq": self.seq, "error": self.error}


def describe_failure(error: BaseException) -> str:
    text = " ".join(f"{type(error).__name__}: {error}".split())
    return text if len(text) <= MAX_FAILURE_TEXT else text[: MAX_FAILURE_TEXT - 1] + "…"


def compute_party_actions(strategy: Strategy, state: GameState, role: Role) -> tuple[list[Send], PartyFailure | None]:
    """What `strategy` sends in answer to the current query, or its failure. Every failure to produce an
    answer (missing, corrupt or inconsistent data, a bug, a malformed return value) is that party's
    silence: the game never aborts because one party cannot answer."""
    try:
        actions = list(strategy.compute_actions(state, role))
        for action in actions:
            if not isinstance(action, Send) or not isinstance(action.message, SignedMove):
                raise TypeError(f"a strategy returns Sends of SignedMoves, got {type(action).__name__}")
            compute_message_json(action.message)  # a message the rules cannot even encode is no answer
            if not isinstance(action.delay, int | float) or not math.isfinite(action.delay):
                raise TypeError(f"a delay is a finite number of seconds, got {action.delay!r}")
        return actions, None
    except Exception as error:  # the party's failure is its silence, whatever raised
        return [], PartyFailure(role, state.seq, describe_failure(error))


@dataclass(frozen=True)
class GameResult:
    """A finished game: its verdict, final state and transcript, and where the wall-clock time went."""

    verdict: Verdict
    state: GameState
    transcript: Transcript
    referee_seconds: float  # inside referee calls
    strategy_seconds: float  # inside both strategies (regenerating steps, building and signing answers)
    total_seconds: float
    failures: tuple[PartyFailure, ...] = ()  # queries a party could not answer (it was silent instead)


def play_game(worker: Strategy, challenger: Strategy, referee: Referee, config: GameConfig, *,
              started_at: float = 0.0, context: Any = None, observer: Observer | None = None,
              transcript_path: str | os.PathLike[str] | None = None, max_events: int = 100_000,
              dispute_id: bytes | None = None, time_source: TimeSource | Literal["local"] | None = "local",
              ) -> GameResult:
    """Play one game to its verdict, on a simulated clock starting at `started_at` seconds; `context` (any
    JSON) is bound into the game id and the transcript, e.g. to say how to rebuild the referee. Writes the
    transcript to `transcript_path` when given. Raises GameSetupError when the run commitments cannot
    start a game.

    `dispute_id` is the id the dispute was issued when it was opened (a ledger's); by default a fresh
    random nonce, so that no two games share an id. Every event is posted to `time_source`, whose
    receipts the transcript carries: by default a `LocalTimeSource` with a fresh key; None plays without
    a witness (the transcript then proves value verdicts, never timeouts)."""
    start = time.perf_counter()
    timed = TimedReferee(referee)
    strategies = (worker, challenger)
    strategy_seconds = 0.0
    witness: TimeSource | None = LocalTimeSource() if time_source == "local" else time_source  # type: ignore[assignment]
    clock = time.perf_counter()
    setup = GameSetup(worker.get_run_commitment(), challenger.get_run_commitment(), config,
                      Seconds(float(started_at)), context,
                      dispute_id=os.urandom(32) if dispute_id is None else bytes(dispute_id),
                      time_source=None if witness is None else witness.get_time_source_key())
    strategy_seconds += time.perf_counter() - clock
    state = create_game(setup)
    if witness is not None:
        witness.open_game(state.game_id, setup.started_at)

    def stamp(body: dict[str, Any], requested: float) -> tuple[Seconds, bytes | None]:
        """The event's time and receipt from the time source (the requested time when there is none)."""
        if witness is None:
            return Seconds(requested), None
        stamped = witness.post_event(state.game_id, body, Seconds(requested))
        if stamped.index != len(events) or stamped.prev != state.history:
            raise DriverError(f"the time source stamped event {stamped.index} after another history than the game's")
        return stamped.at, stamped.receipt
    if observer is not None:
        observer(state, None)
    events: list[TranscriptEvent] = []
    pending: list[tuple[float, int, SignedMove]] = []  # (arrival time, order of sending, message)
    order = itertools.count()
    asked = -1  # the last query the strategies were asked about
    failures: list[PartyFailure] = []
    while state.verdict is None:
        if state.seq != asked:
            asked = state.seq
            for role, strategy in zip(ROLES, strategies, strict=True):
                if role in get_owing_roles(state):
                    clock = time.perf_counter()
                    actions, failure = compute_party_actions(strategy, state, role)
                    strategy_seconds += time.perf_counter() - clock
                    if failure is not None:
                        failures.append(failure)
                    for action in actions:
                        arrival = state.round_started_at + max(0.0, float(action.delay))
                        heapq.heappush(pending, (arrival, next(order), action.message))
        deadline = get_next_deadline(state)
        assert deadline is not None  # a live game always waits for someone
        previous = state
        if pending and pending[0][0] < deadline:
            arrival, _, message = heapq.heappop(pending)
            at, receipt = stamp({"message": compute_message_json(message)}, max(arrival, state.now))
            if at >= deadline:
                raise DriverError(f"the time source stamped a message at {at}, after a flag fell at {deadline}")
            state = process_move(state, message, at, timed)
            events.append(TranscriptEvent(at, message, receipt))
        else:
            at, receipt = stamp({"clock": True}, deadline)
            state = process_clock(state, at)
            events.append(TranscriptEvent(at, None, receipt))
        if observer is not None:
            observer(state, previous)
        if len(events) > max_events:
            raise DriverError(f"no verdict after {max_events} events")
    assert state.verdict is not None
    transcript = Transcript(setup, state.game_id, tuple(events), state.verdict)
    if transcript_path is not None:
        write_transcript(transcript_path, transcript)
    return GameResult(state.verdict, state, transcript, timed.seconds, strategy_seconds, time.perf_counter() - start,
                      tuple(failures))
