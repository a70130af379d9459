"""Checkpoint availability: a systematic Reed–Solomon code over GF(2^8), its Merkle commitment, recovery
from any k shards, and availability sampling.

**The field** is GF(2^8) = GF(2)[x] / (x^8 + x^4 + x^3 + x^2 + 1) (0x11d), bytes as polynomials (bit i the
coefficient of x^i); addition is XOR. `EXP[i] = 2^i` and `LOG` are its tables (2 generates the group).

**The code.** A blob of L bytes (a checkpoint file, opaque here) is cut into k data shards of
S = max(1, ceil(L / k)) bytes, the last padded with zero bytes. The n shards are `G · D`, byte position by
byte position, where D stacks the k data shards and G is the n × k matrix whose first k rows are the
identity (the code is systematic: shard i < k *is* data shard i) and whose row k + i is the Cauchy row
`G[k+i][j] = 1 / ((k + i) xor j)`. Every square submatrix of a Cauchy matrix is invertible, so any k rows
of G are: any k shards determine the blob (1 <= k < n <= 256).

**The commitment** (`AvailabilityCommitment`, signed by the worker as kind `checkpoint-availability`)
names the job, the step and state root of the checkpoint, L, H("pinpoint/v1/availability-data\\n" ||
blob), k, n, S and `shards_root`: the Merkle root (`protocol.merkle`) over the n shards as leaves. A shard
is accepted only with its inclusion proof against that root; one that fails is discarded and its holder
named. k valid shards that decode to anything but the committed blob (padding included) prove the
encoder's fault (`Recovery.fraud`): the shards with their proofs are the evidence.

**A run's checkpoints.** The worker codes every checkpoint it keeps with k = `CHECKPOINT_K` of
n = `CHECKPOINT_N` shards and its signed run commitment carries `availability_root`: the Merkle root over
T + 1 leaves, leaf t the 32-byte id of s_t's checkpoint commitment, or `NO_CHECKPOINT` (32 zero bytes)
when no checkpoint of s_t is kept. The leaf's index is the step, so one inclusion proof against the
signed root shows both that a checkpoint commitment is the worker's and which state it is of; and each
commitment names its state root, which must be s_t of the run's chain.

**Sampling.** Each epoch, `compute_challenges` draws shard indices from the epoch's seed; the holder of
each must answer with the shard and its proof by the deadline. The time source's record that a challenge
closed unanswered (kind `availability-close`) proves the holder's fault. A holder who dropped a fraction f
of the shards it holds is caught by c challenges of its shards with probability 1 - (1 - f)^c.

Everything here is the reference: numpy lookups in the field's tables. `prover.erasure` is a faster
encoder and decoder with the same results.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import blake3
import numpy as np
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.game.codec import ParseError, parse_float, parse_hex, parse_int, parse_object, parse_str
from protocol.merkle import MerkleTree, compute_tree, hash_leaf, verify_inclusion
from protocol.signing import compute_canonical_json, sign_statement, verify_statement
from protocol.types import DIGEST_SIZE, Root, Seconds, SignatureBytes, StepIndex

POLYNOMIAL = 0x11D
MAX_SHARDS = 256  # n: the Cauchy rows need k + i < 256
MAX_BLOB = 1 << 40  # bytes: far beyond any checkpoint
COMMITMENT_KIND = "checkpoint-availability"
CLOSE_KIND = "availability-close"
DATA_DOMAIN = b"pinpoint/v1/availability-data\n"
ID_DOMAIN = b"pinpoint/v1/availability-id\n"
CHALLENGE_DOMAIN = b"pinpoint/v1/availability-challenge\n"
CHECKPOINT_K = 4  # shards that recover a checkpoint: each holder keeps a quarter of it
CHECKPOINT_N = 8  # shards of a checkpoint: rate 1/2 (twice the checkpoint in storage) survives any 4 of 8
#                   holders lost, and costs n - k = 4 field multiply-adds per checkpoint byte to encode
NO_CHECKPOINT = Root(bytes(DIGEST_SIZE))  # the run-tree leaf of a state whose checkpoint is not kept


class AvailabilityError(ValueError):
    """Parameters no code can have, or shards that cannot be decoded."""


# --- the field ----------------------------------------------------------------------------------------


def _compute_tables() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    exp = np.zeros(512, dtype=np.uint8)
    log = np.zeros(256, dtype=np.int64)
    x = 1
    for i in range(255):
        exp[i] = x
        log[x] = i
        x <<= 1
        if x & 0x100:
            x ^= POLYNOMIAL
    exp[255:510] = exp[:255]
    mul = np.zeros((256, 256), dtype=np.uint8)
    nonzero = np.arange(1, 256)
    for a in range(1, 256):
        mul[a, 1:] = exp[(log[a] + log[nonzero]) % 255]
    return exp, log, mul


EXP, LOG, MUL = _compute_tables()
"""EXP[i] = 2^i (i < 510), LOG[2^i] = i, MUL[a, b] = a·b: the field's tables."""


def gf_mul(a: int, b: int) -> int:
    return int(MUL[a, b])


def gf_inv(a: int) -> int:
    if not 0 < a < 256:
        raise AvailabilityError(f"{a} has no inverse in GF(2^8)")
    return int(EXP[(255 - int(LOG[a])) % 255])


# --- the code -----------------------------------------------------------------------------------------


def check_code(k: int, n: int) -> None:
    if type(k) is not int or type(n) is not int or not 1 <= k < n <= MAX_SHARDS:
        raise AvailabilityError(f"a code needs 1 <= k < n <= {MAX_SHARDS}, got k={k!r}, n={n!r}")


@lru_cache(maxsize=64)
def compute_generator(k: int, n: int) -> np.ndarray:
    """G, n × k bytes: the identity over the Cauchy rows 1 / ((k + i) xor j)."""
    check_code(k, n)
    matrix = np.zeros((n, k), dtype=np.uint8)
    matrix[:k] = np.eye(k, dtype=np.uint8)
    for i in range(n - k):
        for j in range(k):
            matrix[k + i, j] = gf_inv((k + i) ^ j)
    matrix.setflags(write=False)
    return matrix


def compute_inverse(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a square matrix over GF(2^8), by Gauss–Jordan elimination; AvailabilityError if singular."""
    size = matrix.shape[0]
    work = np.concatenate([matrix.astype(np.uint8), np.eye(size, dtype=np.uint8)], axis=1)
    for column in range(size):
        pivots = np.nonzero(work[column:, column])[0]
        if len(pivots) == 0:
            raise AvailabilityError("the matrix is singular")
        pivot = column + int(pivots[0])
        if pivot != column:
            work[[column, pivot]] = work[[pivot, column]]
        work[column] = MUL[gf_inv(int(work[column, column]))][work[column]]
        factors = work[:, column].copy()
        factors[column] = 0
        for row in np.nonzero(factors)[0]:
            work[row] ^= MUL[factors[row]][work[column]]
    return work[:, size:]


def compute_product(matrix: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """matrix · rows over GF(2^8): (a × b) · (b × S) → (a × S), one table lookup per coefficient and byte."""
    out = np.zeros((matrix.shape[0], rows.shape[1]), dtype=np.uint8)
    for i in range(matrix.shape[0]):
        for j in range(matrix.shape[1]):
            coefficient = int(matrix[i, j])
            if coefficient == 1:
                out[i] ^= rows[j]
            elif coefficient:
                out[i] ^= MUL[coefficient][rows[j]]
    return out


def compute_shard_size(size: int, k: int) -> int:
    """S = max(1, ceil(L / k))."""
    return max(1, -(-size // k))


def compute_data_shards(blob: bytes, k: int) -> np.ndarray:
    """D: the blob cut into k rows of S bytes, zero-padded."""
    shard_size = compute_shard_size(len(blob), k)
    padded = np.zeros(k * shard_size, dtype=np.uint8)
    padded[: len(blob)] = np.frombuffer(blob, dtype=np.uint8)
    return padded.reshape(k, shard_size)


Encoder = Callable[[bytes, int, int], np.ndarray]
"""encode(blob, k, n) → the n × S shards."""
Decoder = Callable[[Mapping[int, bytes], int, int], bytes]
"""decode({index: shard}, k, n) → the k data shards, concatenated (k·S bytes), from exactly k shards."""


Product = Callable[[np.ndarray, np.ndarray], np.ndarray]
"""matrix · rows over GF(2^8): `compute_product` here, a compiled one in the prover (same bytes)."""


def encode_shards(blob: bytes, k: int, n: int, product: Product = compute_product) -> np.ndarray:
    """The n shards of the blob (n × S bytes; the first k rows are the data)."""
    check_code(k, n)
    data = compute_data_shards(bytes(blob), k)
    return np.concatenate([data, product(compute_generator(k, n)[k:], data)])


def compute_decoding_matrix(indices: Sequence[int], k: int, n: int) -> np.ndarray:
    """The k × k matrix that takes the shards at `indices` (k distinct, in that order) back to the data."""
    check_code(k, n)
    if len(indices) != k or len(set(indices)) != k or not all(0 <= i < n for i in indices):
        raise AvailabilityError(f"decoding needs {k} distinct shard indices below {n}")
    return compute_inverse(compute_generator(k, n)[list(indices)])


def decode_shards(shards: Mapping[int, bytes], k: int, n: int, product: Product = compute_product) -> bytes:
    """The k data shards, concatenated (the blob and its padding), from k shards by index. Data shards
    present are copied; the others are recomputed with the rows of the inverse that yield them."""
    indices = sorted(shards)
    shard_size = len(shards[indices[0]]) if indices else 0
    if len(indices) != k or shard_size == 0 or any(len(shards[i]) != shard_size for i in indices):
        raise AvailabilityError(f"decoding needs {k} shards of one non-zero size")
    rows = np.stack([np.frombuffer(bytes(shards[i]), dtype=np.uint8) for i in indices])
    data = np.zeros((k, shard_size), dtype=np.uint8)
    missing = [j for j in range(k) if j not in shards]
    for j in range(k):
        if j in shards:
            data[j] = rows[indices.index(j)]
    if missing:
        data[missing] = product(compute_decoding_matrix(indices, k, n)[missing], rows)
    return data.tobytes()


# --- the commitment -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AvailabilityCommitment:
    job_id: bytes
    step: StepIndex  # the checkpoint is of s_step
    state_root: Root  # s_step
    size: int  # L, bytes of the blob
    data_digest: Root  # H(DATA_DOMAIN || blob)
    k: int
    n: int
    shard_size: int  # S
    shards_root: Root  # Merkle root over the n shards


def compute_data_digest(blob: bytes) -> Root:
    return Root(blake3.blake3(DATA_DOMAIN + bytes(blob)).digest())


def compute_shard_tree(shards: np.ndarray) -> MerkleTree:
    return compute_tree([row.tobytes() for row in shards])


def compute_availability_commitment(job_id: bytes, step: int, state_root: bytes, blob: bytes, k: int, n: int,
                                    encode: Encoder = encode_shards) -> tuple[AvailabilityCommitment, np.ndarray]:
    """The commitment to a checkpoint and its n shards."""
    shards = encode(bytes(blob), k, n)
    commitment = AvailabilityCommitment(bytes(job_id), StepIndex(step), Root(bytes(state_root)), len(blob),
                                        compute_data_digest(blob), k, n, int(shards.shape[1]),
                                        compute_shard_tree(shards).root)
    return commitment, shards


def compute_commitment_json(c: AvailabilityCommitment) -> dict[str, Any]:
    return {"job_id": bytes(c.job_id).hex(), "step": c.step, "state_root": bytes(c.state_root).hex(), "size": c.size,
            "data_digest": bytes(c.data_digest).hex(), "k": c.k, "n": c.n, "shard_size": c.shard_size,
            "shards_root": bytes(c.shards_root).hex()}


def parse_commitment_json(value: Any) -> AvailabilityCommitment:
    """A commitment from its JSON; ParseError on any deviation, including sizes that do not fit together."""
    body = parse_object(value, ("job_id", "step", "state_root", "size", "data_digest", "k", "n", "shard_size",
                                "shards_root"), "availability commitment")
    c = AvailabilityCommitment(
        job_id=parse_hex(body["job_id"], "availability.job_id", size=DIGEST_SIZE),
        step=StepIndex(parse_int(body["step"], "availability.step", low=0, high=1 << 48)),
        state_root=Root(parse_hex(body["state_root"], "availability.state_root", size=DIGEST_SIZE)),
        size=parse_int(body["size"], "availability.size", low=0, high=MAX_BLOB),
        data_digest=Root(parse_hex(body["data_digest"], "availability.data_digest", size=DIGEST_SIZE)),
        k=parse_int(body["k"], "availability.k", low=1, high=MAX_SHARDS - 1),
        n=parse_int(body["n"], "availability.n", low=2, high=MAX_SHARDS),
        shard_size=parse_int(body["shard_size"], "availability.shard_size", low=1, high=MAX_BLOB),
        shards_root=Root(parse_hex(body["shards_root"], "availability.shards_root", size=DIGEST_SIZE)),
    )
    problem = get_commitment_problem(c)
    if problem is not None:
        raise ParseError(problem)
    return c


def get_commitment_problem(c: AvailabilityCommitment) -> str | None:
    """Why the commitment's numbers do not fit together (None when they do)."""
    if not 1 <= c.k < c.n <= MAX_SHARDS:
        return f"a code needs 1 <= k < n <= {MAX_SHARDS}"
    if c.shard_size != compute_shard_size(c.size, c.k):
        return f"shard_size must be max(1, ceil(size / k)) = {compute_shard_size(c.size, c.k)}"
    return None


def compute_commitment_id(c: AvailabilityCommitment) -> Root:
    return Root(blake3.blake3(ID_DOMAIN + compute_canonical_json(compute_commitment_json(c))).digest())


def sign_availability_commitment(key: Ed25519PrivateKey, c: AvailabilityCommitment) -> SignatureBytes:
    return sign_statement(key, COMMITMENT_KIND, compute_commitment_json(c))


def is_valid_availability_commitment(public_key: bytes, c: AvailabilityCommitment, signature: bytes) -> bool:
    """`public_key` signed this commitment and its numbers fit together; never raises."""
    try:
        return get_commitment_problem(c) is None and verify_statement(public_key, COMMITMENT_KIND,
                                                                     compute_commitment_json(c), signature)
    except (TypeError, ValueError, AttributeError):
        return False


# --- a run's checkpoints ------------------------------------------------------------------------------


def compute_run_availability_tree(steps: int, commitments: Sequence[AvailabilityCommitment]) -> MerkleTree:
    """The tree under a run commitment's `availability_root`: T + 1 leaves, leaf t the id of the commitment
    to s_t's checkpoint or `NO_CHECKPOINT`. `commitments` are in increasing step order, at most one per step."""
    leaves = [bytes(NO_CHECKPOINT)] * (steps + 1)
    for c in commitments:
        leaves[c.step] = bytes(compute_commitment_id(c))
    return compute_tree(leaves)


def get_run_availability_problem(job_id: bytes, roots: Sequence[bytes], availability_root: bytes,
                                 commitments: Sequence[AvailabilityCommitment]) -> str | None:
    """Why `commitments` are not the checkpoint commitments of a run with state roots `roots` (s_0 … s_T)
    and signed `availability_root` (None when they are): each of this job, of a state of the run, in
    increasing step order, its numbers fitting together, and the tree over them under the signed root.
    Never raises."""
    try:
        steps = len(roots) - 1
        previous = -1
        for c in commitments:
            problem = get_commitment_problem(c)
            if problem is not None:
                return f"the checkpoint commitment of step {c.step}: {problem}"
            if bytes(c.job_id) != bytes(job_id):
                return f"the checkpoint commitment of step {c.step} is of another job"
            if not previous < c.step <= steps:
                return f"checkpoint commitments must be of steps 0 … {steps} in increasing order, got {c.step} after {previous}"
            if bytes(c.state_root) != bytes(roots[c.step]):
                return f"the checkpoint commitment of step {c.step} is not of the run's s_{c.step}"
            previous = c.step
        if compute_run_availability_tree(steps, commitments).root != bytes(availability_root):
            return "the checkpoint commitments are not those under the signed availability root"
        return None
    except Exception as error:  # never raise on bad input (STYLE.md, item 4)
        return f"malformed checkpoint commitments: {type(error).__name__}"


def is_run_checkpoint(availability_root: bytes, steps: int, c: AvailabilityCommitment, proof: Sequence[bytes]) -> bool:
    """`proof` shows `c` as the commitment to s_{c.step}'s checkpoint under a run's `availability_root`
    (the tree of T + 1 leaves); never raises."""
    try:
        leaf = hash_leaf(bytes(compute_commitment_id(c)))
        return verify_inclusion(availability_root, steps + 1, int(c.step), leaf, proof)
    except Exception:
        return False


# --- shards, proofs and recovery ----------------------------------------------------------------------


@dataclass(frozen=True)
class HeldShard:
    """A shard as a holder hands it over."""

    holder: str
    index: int
    shard: bytes
    proof: tuple[bytes, ...]  # inclusion proof against `shards_root`


def get_shard_problem(c: AvailabilityCommitment, index: int, shard: bytes, proof: Sequence[bytes]) -> str | None:
    """Why a shard is not shard `index` of the commitment (None when it is); never raises."""
    try:
        if type(index) is not int or not 0 <= index < c.n:
            return f"shard index {index!r} is outside 0 … {c.n - 1}"
        if not isinstance(shard, bytes | bytearray) or len(shard) != c.shard_size:
            return f"a shard is {c.shard_size} bytes"
        if not verify_inclusion(c.shards_root, c.n, index, hash_leaf(bytes(shard)), proof):
            return f"shard {index} fails its inclusion proof against the shards root"
        return None
    except Exception as error:  # never raise on bad input (STYLE.md, item 4)
        return f"malformed shard: {type(error).__name__}"


@dataclass(frozen=True)
class Discarded:
    holder: str
    index: int
    reason: str


@dataclass(frozen=True)
class Recovery:
    data: bytes | None  # the committed blob, bit for bit; None when it cannot be had
    problem: str | None  # why not
    used: tuple[int, ...] = ()  # the k shard indices decoded
    discarded: tuple[Discarded, ...] = ()  # shards refused, each naming its holder
    fraud: tuple[HeldShard, ...] = ()  # k valid shards that decode to another blob: the encoder's fault


def recover_blob(c: AvailabilityCommitment, held: Sequence[HeldShard], decode: Decoder = decode_shards) -> Recovery:
    """The committed blob from whatever shards the holders hand over: shards failing their proof are
    discarded (their holders named), any k valid ones are decoded, and the result is checked against the
    commitment's digest. Never raises on hostile shards."""
    problem = get_commitment_problem(c)
    if problem is not None:
        return Recovery(None, problem)
    valid: dict[int, HeldShard] = {}
    discarded = []
    for item in held:
        reason = get_shard_problem(c, item.index, item.shard, item.proof)
        if reason is not None:
            discarded.append(Discarded(item.holder, item.index, reason))
        elif item.index not in valid:
            valid[item.index] = item
    if len(valid) < c.k:
        return Recovery(None, f"only {len(valid)} valid shards of the {c.k} needed: the checkpoint is unavailable",
                        discarded=tuple(discarded))
    chosen = sorted(valid)[: c.k]  # data shards first: the fewest rows to recompute
    blob = decode({index: bytes(valid[index].shard) for index in chosen}, c.k, c.n)
    if not is_committed_blob(c, blob):
        return Recovery(None, "the shards decode to another blob than the committed one: the encoding is faulty",
                        tuple(chosen), tuple(discarded), tuple(valid[index] for index in chosen))
    return Recovery(blob[: c.size], None, tuple(chosen), tuple(discarded))


def is_committed_blob(c: AvailabilityCommitment, padded: bytes) -> bool:
    """The decoded data shards are the committed blob followed by zero padding."""
    return (len(padded) == c.k * c.shard_size and not any(padded[c.size:])
            and compute_data_digest(padded[: c.size]) == bytes(c.data_digest))


def is_encoding_fraud(c: AvailabilityCommitment, shards: Sequence[HeldShard], decode: Decoder = decode_shards) -> bool:
    """k shards of the commitment, each with a valid proof, that decode to another blob than the committed
    one: the proof that whoever signed the commitment encoded it wrongly. Never raises."""
    try:
        if get_commitment_problem(c) is not None or len({s.index for s in shards}) != c.k or len(shards) != c.k:
            return False
        if any(get_shard_problem(c, s.index, s.shard, s.proof) is not None for s in shards):
            return False
        return not is_committed_blob(c, decode({s.index: bytes(s.shard) for s in shards}, c.k, c.n))
    except Exception:
        return False


# --- sampling -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Challenge:
    commitment_id: Root
    index: int  # the shard asked for
    holder: str  # who holds it (the placement's)
    issued_at: Seconds
    deadline: Seconds


def compute_challenge_index(seed: bytes, commitment_id: bytes, number: int, n: int) -> int:
    """Index of challenge `number`: H(domain || seed || id || number (8 bytes LE)) mod n (bias < n / 2**256)."""
    digest = blake3.blake3(CHALLENGE_DOMAIN + bytes(seed) + bytes(commitment_id) + number.to_bytes(8, "little")).digest()
    return int.from_bytes(digest, "little") % n


def compute_challenges(seed: bytes, c: AvailabilityCommitment, placement: Sequence[str], count: int,
                       issued_at: Seconds, timeout: Seconds) -> tuple[Challenge, ...]:
    """`count` challenges (with replacement) from an epoch's seed; `placement[i]` holds shard i."""
    if len(placement) != c.n:
        raise AvailabilityError(f"the placement names a holder for each of the {c.n} shards")
    commitment_id = compute_commitment_id(c)
    deadline = Seconds(float(issued_at) + float(timeout))
    return tuple(Challenge(commitment_id, index, placement[index], issued_at, deadline)
                 for index in (compute_challenge_index(seed, commitment_id, number, c.n) for number in range(count)))


def get_response_problem(c: AvailabilityCommitment, challenge: Challenge, shard: bytes, proof: Sequence[bytes],
                         answered_at: Seconds) -> str | None:
    """Why an answer does not meet the challenge (None when it does)."""
    if compute_commitment_id(c) != bytes(challenge.commitment_id):
        return "the challenge is about another commitment"
    if float(answered_at) > float(challenge.deadline):
        return f"answered at {float(answered_at)}, after the deadline {float(challenge.deadline)}"
    return get_shard_problem(c, challenge.index, shard, proof)


def compute_challenge_json(challenge: Challenge) -> dict[str, Any]:
    return {"commitment_id": bytes(challenge.commitment_id).hex(), "index": challenge.index, "holder": challenge.holder,
            "issued_at": float(challenge.issued_at), "deadline": float(challenge.deadline)}


def parse_challenge_json(value: Any) -> Challenge:
    body = parse_object(value, ("commitment_id", "index", "holder", "issued_at", "deadline"), "challenge")
    return Challenge(Root(parse_hex(body["commitment_id"], "challenge.commitment_id", size=DIGEST_SIZE)),
                     parse_int(body["index"], "challenge.index", low=0, high=MAX_SHARDS - 1),
                     parse_str(body["holder"], "challenge.holder"),
                     Seconds(parse_float(body["issued_at"], "challenge.issued_at")),
                     Seconds(parse_float(body["deadline"], "challenge.deadline")))


@dataclass(frozen=True)
class ChallengeClose:
    """The time source's record that a challenge closed, answered or not."""

    challenge: Challenge
    closed_at: Seconds
    answered: bool  # a valid answer arrived by the deadline


def compute_close_json(close: ChallengeClose) -> dict[str, Any]:
    return {"challenge": compute_challenge_json(close.challenge), "closed_at": float(close.closed_at),
            "answered": close.answered}


def sign_challenge_close(key: Ed25519PrivateKey, close: ChallengeClose) -> SignatureBytes:
    return sign_statement(key, CLOSE_KIND, compute_close_json(close))


def get_unavailability_problem(close: ChallengeClose, signature: bytes, time_source: bytes) -> str | None:
    """Why the record does not prove its holder's fault (None when it does: the time source signed that the
    challenge closed unanswered at or after its deadline). Never raises."""
    try:
        if not verify_statement(time_source, CLOSE_KIND, compute_close_json(close), signature):
            return "the record is not the time source's signature"
        if close.answered:
            return "the challenge was answered"
        if float(close.closed_at) < float(close.challenge.deadline):
            return "the challenge closed before its deadline"
        return None
    except Exception as error:
        return f"malformed record: {type(error).__name__}"
