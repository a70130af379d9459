"""Queries the game asks, the moves that answer them, and the signed envelope every move travels in.

Each round the game asks one query of both parties (they answer independently, each from its own
commitments); a move answers the query of the current round and is signed with the game id and the
round's sequence number:

    query                                   move body (JSON)
    NodesQuery(tree, height, index, depth)  {"type": "nodes", "hashes": [2**depth × hex32]}
    StatesQuery(i)                          {"type": "states", "state": hex32, "previous": hex32|null,
                                             "proof": [hex32…]|null}      previous+proof iff i >= 1
    TraceQuery(t)                           {"type": "trace", "commitment": {…}, "signature": hex64}
    LeafQuery(tree, index)                  {"type": "leaf", "leaf": hex}
    EvidenceQuery(requests)                 {"type": "evidence", "items": [item…]}, items are
        {"kind": "op_leaf", "index": i, "leaf": hex, "proof": [hex32…]}
        {"kind": "state_before_leaf", "index": k, "leaf": hex, "proof": [hex32…]}
        {"kind": "tensor", "digest": hex32, "data": hex}

    envelope  {"seq": n, "sender": role, "move": body, "signature": hex}
              the signature is Ed25519 over statement kind "game-move" of {game_id, prev, seq, sender,
              move}, where a tensor item's data is replaced by {"blake3": digest of its canonical JSON},
              and prev is the game's history digest when query n was asked (the digest of every event
              before it: a hash chain); the game id and prev are signed but not sent: a message of another
              game, or of another course of this one, fails the signature check
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeAlias

import blake3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from protocol.game.codec import (
    ParseError,
    is_json_value,
    parse_hex,
    parse_int,
    parse_list,
    parse_object,
    parse_proof,
    parse_str,
)
from protocol.game.commitments import (
    TraceCommitment,
    compute_trace_commitment_json,
    parse_trace_commitment_json,
)
from protocol.game.constants import GameConfig
from protocol.game.enums import ROLES, Role, TreeKind
from protocol.game.evidence import EvidenceRequest, OpLeafRequest, StateLeafRequest, TensorRequest
from protocol.game.wire import encode_wire, is_hex
from protocol.signing import compute_canonical_json, sign_statement, verify_statement
from protocol.types import DIGEST_SIZE, Root, SignatureBytes, StepIndex

GAME_MOVE_KIND = "game-move"
MAX_SEQ = 1 << 32  # far beyond any game's rounds


class MessageEncodingError(TypeError):
    """A message whose fields do not have the envelope's types (a bug of whoever built it)."""


# Queries --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodesQuery:
    """Reveal the 2**depth descendants, at height - depth, of node (height, index) of `tree`."""

    tree: TreeKind
    height: int
    index: int
    depth: int


@dataclass(frozen=True)
class StatesQuery:
    """Reveal s_i (the preimage of chain leaf i) and, for i >= 1, s_{i-1} with its inclusion proof."""

    leaf_index: int


@dataclass(frozen=True)
class TraceQuery:
    """Sign and reveal a trace commitment for step t."""

    step: StepIndex


@dataclass(frozen=True)
class LeafQuery:
    """Reveal the bytes of the first differing leaf of `tree`."""

    tree: TreeKind
    index: int


@dataclass(frozen=True)
class EvidenceQuery:
    """Supply what you can of the referee's requests."""

    requests: tuple[EvidenceRequest, ...]


Query: TypeAlias = NodesQuery | StatesQuery | TraceQuery | LeafQuery | EvidenceQuery


# Moves ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodesReveal:
    hashes: tuple[Root, ...]


@dataclass(frozen=True)
class StatesReveal:
    state: Root  # s_i
    previous: Root | None  # s_{i-1}, None when i == 0
    proof: tuple[Root, ...] | None  # inclusion proof of s_{i-1} at leaf i-1 of the party's chain


@dataclass(frozen=True)
class TraceReveal:
    commitment: TraceCommitment
    signature: SignatureBytes  # the party's signature of kind "trace-commitment"


@dataclass(frozen=True)
class LeafReveal:
    leaf: bytes


@dataclass(frozen=True)
class OpLeafItem:
    index: int
    leaf: bytes
    proof: tuple[Root, ...]


@dataclass(frozen=True)
class StateLeafItem:
    index: int
    leaf: bytes
    proof: tuple[Root, ...]


@dataclass(frozen=True)
class TensorItem:
    digest: Root
    data: bytes  # canonical tensor encoding


EvidenceItem: TypeAlias = OpLeafItem | StateLeafItem | TensorItem


@dataclass(frozen=True)
class EvidenceSupply:
    items: tuple[EvidenceItem, ...]


Move: TypeAlias = NodesReveal | StatesReveal | TraceReveal | LeafReveal | EvidenceSupply


def get_item_request(item: EvidenceItem) -> EvidenceRequest:
    """The request an evidence item answers."""
    if isinstance(item, OpLeafItem):
        return OpLeafRequest(item.index)
    if isinstance(item, StateLeafItem):
        return StateLeafRequest(item.index)
    return TensorRequest(item.digest)


def _hexes(values: tuple[bytes, ...]) -> list[str]:
    return [bytes(value).hex() for value in values]


def compute_item_json(item: EvidenceItem) -> dict[str, Any]:
    if isinstance(item, OpLeafItem):
        return {"kind": "op_leaf", "index": item.index, "leaf": item.leaf.hex(), "proof": _hexes(item.proof)}
    if isinstance(item, StateLeafItem):
        return {"kind": "state_before_leaf", "index": item.index, "leaf": item.leaf.hex(),
                "proof": _hexes(item.proof)}
    return {"kind": "tensor", "digest": bytes(item.digest).hex(), "data": item.data.hex()}


def compute_move_json(move: Move) -> dict[str, Any]:
    """The JSON body of a move (what is signed, sent and recorded)."""
    if isinstance(move, NodesReveal):
        return {"type": "nodes", "hashes": _hexes(move.hashes)}
    if isinstance(move, StatesReveal):
        return {
            "type": "states",
            "state": bytes(move.state).hex(),
            "previous": None if move.previous is None else bytes(move.previous).hex(),
            "proof": None if move.proof is None else _hexes(move.proof),
        }
    if isinstance(move, TraceReveal):
        return {"type": "trace", "commitment": compute_trace_commitment_json(move.commitment),
                "signature": bytes(move.signature).hex()}
    if isinstance(move, LeafReveal):
        return {"type": "leaf", "leaf": move.leaf.hex()}
    return {"type": "evidence", "items": [compute_item_json(item) for item in move.items]}


def _parse_item(value: Any, what: str, config: GameConfig) -> EvidenceItem:
    if not isinstance(value, dict):
        raise ParseError(f"{what} must be an object")
    kind = parse_str(value.get("kind"), f"{what}.kind", choices=("op_leaf", "state_before_leaf", "tensor"))
    if kind == "tensor":
        body = parse_object(value, ("kind", "digest", "data"), what)
        return TensorItem(
            digest=Root(parse_hex(body["digest"], f"{what}.digest", size=DIGEST_SIZE)),
            data=parse_hex(body["data"], f"{what}.data", max_size=config.max_tensor_bytes),
        )
    body = parse_object(value, ("kind", "index", "leaf", "proof"), what)
    index = parse_int(body["index"], f"{what}.index", low=0, high=config.max_tree_leaves)
    leaf = parse_hex(body["leaf"], f"{what}.leaf", max_size=config.max_leaf_bytes)
    proof = tuple(Root(h) for h in parse_proof(body["proof"], f"{what}.proof"))
    return OpLeafItem(index, leaf, proof) if kind == "op_leaf" else StateLeafItem(index, leaf, proof)


def parse_move(query: Query, body: Any, config: GameConfig) -> Move:
    """The move a JSON body states in answer to `query`; ParseError if it is not a well-formed answer."""
    if not isinstance(body, dict):
        raise ParseError(f"a move must be an object, got {type(body).__name__}")
    if isinstance(query, NodesQuery):
        fields = parse_object(body, ("type", "hashes"), "nodes move")
        parse_str(fields["type"], "type", choices=("nodes",))
        width = 1 << query.depth
        items = parse_list(fields["hashes"], "hashes", max_length=width)
        if len(items) != width:
            raise ParseError(f"expected {width} hashes, got {len(items)}")
        return NodesReveal(tuple(Root(parse_hex(h, f"hashes[{i}]", size=DIGEST_SIZE)) for i, h in enumerate(items)))
    if isinstance(query, StatesQuery):
        fields = parse_object(body, ("type", "state", "previous", "proof"), "states move")
        parse_str(fields["type"], "type", choices=("states",))
        state = Root(parse_hex(fields["state"], "state", size=DIGEST_SIZE))
        if query.leaf_index == 0:
            if fields["previous"] is not None or fields["proof"] is not None:
                raise ParseError("s_0 has no previous state: previous and proof must be null")
            return StatesReveal(state, None, None)
        previous = Root(parse_hex(fields["previous"], "previous", size=DIGEST_SIZE))
        proof = tuple(Root(h) for h in parse_proof(fields["proof"], "proof"))
        return StatesReveal(state, previous, proof)
    if isinstance(query, TraceQuery):
        fields = parse_object(body, ("type", "commitment", "signature"), "trace move")
        parse_str(fields["type"], "type", choices=("trace",))
        commitment = parse_trace_commitment_json(fields["commitment"], max_leaves=config.max_tree_leaves)
        return TraceReveal(commitment, SignatureBytes(parse_hex(fields["signature"], "signature", size=64)))
    if isinstance(query, LeafQuery):
        fields = parse_object(body, ("type", "leaf"), "leaf move")
        parse_str(fields["type"], "type", choices=("leaf",))
        return LeafReveal(parse_hex(fields["leaf"], "leaf", max_size=config.max_leaf_bytes))
    fields = parse_object(body, ("type", "items"), "evidence move")
    parse_str(fields["type"], "type", choices=("evidence",))
    raw_items = parse_list(fields["items"], "items", max_length=len(query.requests))
    return EvidenceSupply(tuple(_parse_item(item, f"items[{i}]", config) for i, item in enumerate(raw_items)))


# The signed envelope --------------------------------------------------------------------------------


@dataclass(frozen=True)
class SignedMove:
    """A move as it travels: bound to one game (whose id it does not repeat) and one query by the signature."""

    seq: int  # the sequence number of the query it answers (rounds are numbered from 0)
    sender: str  # a role's name; a plain string so that a message naming no role can still be recorded
    move: Any  # the move's JSON body; any JSON value (a malformed one costs a validly signing sender)
    signature: bytes


def compute_move_statement(game_id: bytes, prev: bytes, seq: int, sender: str, move: Any) -> dict[str, Any]:
    """The statement a move's signature covers: the game, the history digest `prev` at which its query was
    asked, the query's number, the sender, and the move with each tensor item's data replaced by the
    BLAKE3 digest of its canonical JSON (`compute_signed_body`)."""
    return {"game_id": bytes(game_id).hex(), "prev": bytes(prev).hex(), "seq": seq, "sender": sender,
            "move": compute_signed_body(move)}


def compute_signed_body(move: Any) -> Any:
    """What is signed of a move body. Tensor data can be megabytes; signing its digest instead costs
    one hash rather than canonical JSON and SHA-512 over the hex. The replacement is applied to the
    "data" of every object of kind "tensor" in a top-level "items" list, whatever its type, so two
    bodies that differ anywhere still have different statements (short of a BLAKE3 collision)."""
    if not isinstance(move, dict) or not isinstance(move.get("items"), list):
        return move
    items = []
    for item in move["items"]:
        if isinstance(item, dict) and item.get("kind") == "tensor" and "data" in item:
            data = blake3.blake3(compute_canonical_json(item["data"]), max_threads=blake3.blake3.AUTO).hexdigest()
            item = dict(item, data={"blake3": data})
        items.append(item)
    return dict(move, items=items)


def sign_move(key: Ed25519PrivateKey, game_id: bytes, seq: int, sender: Role, move: Move | Any, *,
              prev: bytes) -> SignedMove:
    """Sign a move (a `Move`, or any JSON body) as `sender`'s answer to query `seq`, asked when the game's
    history digest was `prev` (`GameState.round_histories[seq]`)."""
    body = compute_move_json(move) if isinstance(move, NodesReveal | StatesReveal | TraceReveal | LeafReveal |
                                                  EvidenceSupply) else move
    if not is_json_value(body):
        raise MessageEncodingError("a move body must be a JSON value")
    statement = compute_move_statement(game_id, prev, seq, str(sender), body)
    return SignedMove(seq, str(sender), body, sign_statement(key, GAME_MOVE_KIND, statement))


def is_valid_move_signature(public_key: bytes, game_id: bytes, prev: bytes, message: SignedMove) -> bool:
    """True when `public_key` signed this envelope for game `game_id` at history `prev`; never raises."""
    try:
        statement = compute_move_statement(game_id, prev, message.seq, message.sender, message.move)
    except (TypeError, ValueError, AttributeError):
        return False
    return verify_statement(public_key, GAME_MOVE_KIND, statement, message.signature)


def compute_message_json(message: SignedMove) -> dict[str, Any]:
    """The envelope as JSON; MessageEncodingError when a field has the wrong type."""
    if not isinstance(message.signature, bytes):
        raise MessageEncodingError("signature must be bytes")
    if type(message.seq) is not int or not 0 <= message.seq <= MAX_SEQ:
        raise MessageEncodingError(f"seq must be an integer in [0, {MAX_SEQ}]")
    if not isinstance(message.sender, str) or not is_json_value(message.move):
        raise MessageEncodingError("sender must be a string and move a JSON value")
    return {"seq": message.seq, "sender": message.sender, "move": message.move,
            "signature": message.signature.hex()}


def parse_message_json(value: Any) -> SignedMove:
    """An envelope from JSON (any sender name, any move body: those are judged by the rules)."""
    body = parse_object(value, ("seq", "sender", "move", "signature"), "message")
    if not is_json_value(body["move"]):
        raise ParseError("message.move is not a JSON value")
    return SignedMove(
        seq=parse_int(body["seq"], "message.seq", low=0, high=MAX_SEQ),
        sender=parse_str(body["sender"], "message.sender"),
        move=body["move"],
        signature=parse_hex(body["signature"], "message.signature", max_size=1024),
    )


def compute_message_sizes(message_json: dict[str, Any]) -> tuple[int, int]:
    """(bytes on the wire, of which tensor evidence): the length of the message's binary wire
    encoding (protocol.game.wire), and the raw bytes of the tensor items' data in it."""
    total = len(encode_wire(message_json))
    tensors = 0
    move = message_json.get("move")
    items = move.get("items") if isinstance(move, dict) else None
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and item.get("kind") == "tensor" and isinstance(item.get("data"), str):
                data = item["data"]
                tensors += len(data) // 2 if is_hex(data) else len(data.encode())
    return total, tensors


def get_sender_role(message: SignedMove) -> Role | None:
    """The role a message names, or None."""
    for role in ROLES:
        if message.sender == role.value:
            return role
    return None
