"""Playing the dispute game: strategies, the adversary catalogue, the driver, transcripts, a toy machine."""

from verifier.game.driver import DriverError, GameResult, TimedReferee, play_game
from verifier.game.strategy import DEFAULT_DELAY, HonestStrategy, Send, Strategy
from verifier.game.transcript import (
    VerificationResult,
    read_transcript,
    read_transcript_json,
    verify_transcript,
    verify_transcript_file,
    write_transcript,
)

__all__ = [
    "DEFAULT_DELAY", "DriverError", "GameResult", "HonestStrategy", "Send", "Strategy", "TimedReferee",
    "VerificationResult", "play_game", "read_transcript", "read_transcript_json", "verify_transcript",
    "verify_transcript_file", "write_transcript",
]
