"""The two-phase dispute game as a pure state machine (see `protocol.game.rules` for the rules).

Generic over what is computed: the game sees Merkle trees and opaque leaf bytes; a `Referee` is
injected for the questions about values, and honest parties answer from a `TraceProvider`.
"""

from protocol.game.commitments import (
    RunCommitment,
    SignedRunCommitment,
    TraceCommitment,
    is_valid_run_commitment,
    is_valid_trace_signature,
    sign_run_commitment,
    sign_trace_commitment,
)
from protocol.game.constants import MAINNET, MINIMAL, PRESETS, GameConfig
from protocol.game.enums import (
    ROLES,
    Outcome,
    Phase,
    Reason,
    Rejection,
    Role,
    TreeKind,
    get_opponent,
    get_role_index,
)
from protocol.game.evidence import (
    Evidence,
    EvidenceRequest,
    LeafDispute,
    MissingEvidence,
    OpLeafRequest,
    StateLeafRequest,
    StepStructure,
    TensorRequest,
)
from protocol.game.interfaces import Referee, TraceProvider
from protocol.game.invariants import (
    GAME_INVARIANTS,
    TRANSITION_INVARIANTS,
    InvariantViolation,
    check_game_invariants,
)
from protocol.game.messages import (
    EvidenceQuery,
    EvidenceSupply,
    LeafQuery,
    LeafReveal,
    Move,
    NodesQuery,
    NodesReveal,
    OpLeafItem,
    Query,
    SignedMove,
    StateLeafItem,
    StatesQuery,
    StatesReveal,
    TensorItem,
    TraceQuery,
    TraceReveal,
    sign_move,
)
from protocol.game.rules import (
    ClockExpired,
    GameError,
    GameOver,
    GameSetupError,
    InvalidTime,
    RefereeError,
    compute_game_id,
    create_game,
    get_deadline,
    get_next_deadline,
    get_owing_roles,
    process_clock,
    process_move,
)
from protocol.game.state import GameSetup, GameState, PartyRef, Position, Verdict
from protocol.game.transcript import Transcript, TranscriptEvent, replay_transcript

__all__ = [
    "GAME_INVARIANTS", "MAINNET", "MINIMAL", "PRESETS", "ROLES", "TRANSITION_INVARIANTS",
    "ClockExpired", "Evidence", "EvidenceQuery", "EvidenceRequest", "EvidenceSupply", "GameConfig", "GameError",
    "GameOver", "GameSetup", "GameSetupError", "GameState", "InvalidTime", "InvariantViolation", "LeafDispute",
    "LeafQuery", "LeafReveal", "MissingEvidence", "Move", "NodesQuery", "NodesReveal", "OpLeafItem",
    "OpLeafRequest", "Outcome", "PartyRef", "Phase", "Position", "Query", "Reason", "Referee", "RefereeError",
    "Rejection", "Role", "RunCommitment", "SignedMove", "SignedRunCommitment", "StateLeafItem", "StateLeafRequest",
    "StatesQuery", "StatesReveal", "StepStructure", "TensorItem", "TensorRequest", "TraceCommitment",
    "TraceProvider", "TraceQuery", "TraceReveal", "Transcript", "TranscriptEvent", "TreeKind", "Verdict",
    "check_game_invariants", "compute_game_id", "create_game", "get_deadline", "get_next_deadline",
    "get_opponent", "get_owing_roles", "get_role_index", "is_valid_run_commitment", "is_valid_trace_signature",
    "process_clock", "process_move", "replay_transcript", "sign_move", "sign_run_commitment",
    "sign_trace_commitment",
]
