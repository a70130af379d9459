"""Transcript files and their offline verification.

`write_transcript` writes the JSON of `protocol.game.transcript` atomically (temporary file, fsync,
rename, fsync of the directory). `verify_transcript` replays a transcript through the pure rules with the
verifier's own referee and says whether the recorded verdict follows; it never raises on bad input.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from protocol.game.interfaces import Referee
from protocol.game.state import GameState, Verdict, compute_verdict_json
from protocol.game.transcript import (
    Transcript,
    compute_transcript_json,
    parse_transcript_json,
    replay_transcript,
)
from protocol.signing import compute_canonical_json
from prover.files import read_json, write_atomic

MAX_TRANSCRIPT_BYTES = 1 << 34  # refuse to read a file larger than 16 GiB


@dataclass(frozen=True)
class VerificationResult:
    valid: bool  # the recorded verdict follows from the recorded events
    reason: str  # why (or why not), one line
    verdict: Verdict | None = None  # the verdict the replay reached, when it reached one
    state: GameState | None = None  # the replay's final state (e.g. the disputed leaves, for display)
    time_source: bytes | None = None  # the key whose receipts the times were checked against, if any


def write_transcript(path: str | os.PathLike[str], transcript: Transcript, exclusive: bool = False) -> Path:
    """Write the transcript as canonical JSON, atomically (with `exclusive`, never over an existing
    file: FileExistsError); returns the path written."""
    return write_atomic(path, compute_canonical_json(compute_transcript_json(transcript)) + b"\n", exclusive=exclusive)


def read_transcript_json(path: str | os.PathLike[str]) -> Any:
    """The JSON value in a transcript file (not yet checked); `FileFormatError` (a ValueError) naming
    the file when it is missing, unreadable, not a regular file, too large, too deep or not JSON."""
    return read_json(path, "transcript", MAX_TRANSCRIPT_BYTES)


def read_transcript(path: str | os.PathLike[str]) -> Transcript:
    return parse_transcript_json(read_transcript_json(path))


def verify_transcript(transcript: Transcript | Any, referee: Referee, *,
                      time_source: bytes | None = None) -> VerificationResult:
    """Replay `transcript` (a Transcript or its JSON) and check that it ends, at its last event, in exactly
    the recorded verdict, every event witnessed by the receipts of the time source its setup names.
    `time_source`: the only key trusted as that witness (by default, whichever the setup names: the
    result reports it). Never raises: any malformed input or failed replay is an invalid transcript."""
    try:
        parsed = transcript if isinstance(transcript, Transcript) else parse_transcript_json(transcript)
        named = parsed.setup.time_source
        if time_source is not None and (named is None or bytes(named) != bytes(time_source)):
            return VerificationResult(False, f"the transcript's times are witnessed by "
                                      f"{'no time source' if named is None else bytes(named).hex()}, not by the "
                                      f"trusted time source {bytes(time_source).hex()}")
        state = replay_transcript(parsed, referee)
        if state.verdict is None:
            return VerificationResult(False, "the events end before the game is decided")
        replayed = compute_verdict_json(state.verdict)
        recorded = compute_verdict_json(parsed.verdict)
        if compute_canonical_json(replayed) != compute_canonical_json(recorded):
            fields = sorted(key for key in replayed if compute_canonical_json(replayed[key]) !=
                            compute_canonical_json(recorded.get(key)))
            return VerificationResult(False, f"the recorded verdict does not follow (differs in {', '.join(fields)})",
                                      state.verdict, state, named)
        witness = ("; times witnessed by time source " + bytes(named).hex() if named is not None
                   else "; no time source: it proves no timeout")
        return VerificationResult(True, "the recorded verdict follows from the events" + witness, state.verdict,
                                  state, named)
    except Exception as error:  # never raise on bad input (STYLE.md, item 4)
        return VerificationResult(False, f"{type(error).__name__}: {error}")


def verify_transcript_file(path: str | os.PathLike[str], referee: Referee, *,
                           time_source: bytes | None = None) -> VerificationResult:
    """`verify_transcript` of a file; an unreadable file is an invalid transcript."""
    try:
        value = read_transcript_json(path)
    except (OSError, ValueError, RecursionError) as error:
        return VerificationResult(False, f"cannot read {path}: {error}")
    return verify_transcript(value, referee, time_source=time_source)
