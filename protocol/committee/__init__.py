"""Committee verdicts: a staked committee of referees signs a game's verdict with one BLS aggregate.

    bls          the IETF BLS ciphersuite with proof of possession (py_ecc), behind `BLSBackend`
    selection    registration, the commit–reveal seed of an epoch, the stake-weighted draw
    statement    the verdict statement: what a member signs, derived from a verified game
    attestation  an aggregate of a quorum of stake, checked with one pairing
    faults       equivocation, wrong verdicts and absence, each with the evidence that proves it

Pure like the rest of `protocol`: no I/O, no clocks; randomness only from the epoch's beacon.
"""

from protocol.committee.attestation import (
    Attestation,
    AttestationCheck,
    compute_attestation,
    compute_attestation_json,
    get_signed_stake,
    is_quorum,
    is_signed_by,
    is_valid_share,
    parse_attestation_json,
    sign_verdict,
    verify_attestation,
)
from protocol.committee.bls import (
    DEFAULT_BACKEND,
    PY_ECC,
    BLSBackend,
    BLSError,
    BLSPublicKey,
    BLSSecretKey,
    BLSSignature,
    aggregate_signatures,
    generate_secret_key,
    get_bls_public_key,
    is_valid_aggregate,
    is_valid_bls_signature,
    is_valid_possession,
    is_valid_public_key,
    prove_possession,
    sign_bls,
)
from protocol.committee.config import MAINNET, MINIMAL, PRESETS, CommitteeConfig, compute_penalty
from protocol.committee.faults import (
    AbsenceProof,
    EquivocationProof,
    FaultCheck,
    FaultKind,
    RoundClose,
    WrongVerdictProof,
    check_absence,
    check_equivocation,
    check_wrong_verdict,
    compute_slashes,
    sign_round_close,
)
from protocol.committee.selection import (
    Candidate,
    Committee,
    Member,
    Registration,
    SelectionError,
    compute_beacon_commitment,
    compute_committee,
    compute_committee_root,
    compute_epoch_seed,
    compute_missing_reveals,
    get_registration_problem,
)
from protocol.committee.statement import (
    StatementError,
    VerdictStatement,
    compute_statement_json,
    compute_statement_message,
    compute_transcript_statement,
    compute_verdict_statement,
    parse_statement_json,
)

__all__ = [
    "DEFAULT_BACKEND", "MAINNET", "MINIMAL", "PRESETS", "PY_ECC", "AbsenceProof", "Attestation", "AttestationCheck",
    "BLSBackend", "BLSError", "BLSPublicKey", "BLSSecretKey", "BLSSignature", "Candidate", "Committee",
    "CommitteeConfig", "EquivocationProof", "FaultCheck", "FaultKind", "Member", "Registration", "RoundClose",
    "SelectionError", "StatementError", "VerdictStatement", "WrongVerdictProof", "aggregate_signatures",
    "check_absence", "check_equivocation", "check_wrong_verdict", "compute_attestation", "compute_attestation_json",
    "compute_beacon_commitment", "compute_committee", "compute_committee_root", "compute_epoch_seed",
    "compute_missing_reveals", "compute_penalty", "compute_slashes", "compute_statement_json",
    "compute_statement_message", "compute_transcript_statement", "compute_verdict_statement",
    "generate_secret_key", "get_bls_public_key", "get_registration_problem", "get_signed_stake", "is_quorum",
    "is_signed_by", "is_valid_aggregate", "is_valid_bls_signature", "is_valid_possession", "is_valid_public_key",
    "is_valid_share", "parse_attestation_json", "parse_statement_json", "prove_possession", "sign_bls",
    "sign_round_close", "sign_verdict", "verify_attestation",
]
