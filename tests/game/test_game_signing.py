"""What a move's signature covers: tensor data is signed by digest, and no other body shares the statement."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from protocol.game.enums import Role
from protocol.game.messages import SignedMove, compute_signed_body, is_valid_move_signature, sign_move
from protocol.signing import generate_private_key, get_public_key_bytes

KEY = generate_private_key()
GAME = bytes(32)
PREV = bytes(range(32))  # the history at which the query was asked
hexes = st.binary(max_size=64).map(bytes.hex)


def _evidence(data: Any) -> dict[str, Any]:
    return {"type": "evidence", "items": [{"kind": "tensor", "digest": "00" * 32, "data": data}]}


@given(hexes)
def test_tensor_data_is_signed_by_digest(data: str) -> None:
    body = _evidence(data)
    signed = compute_signed_body(body)
    assert signed["items"][0]["data"] != data and set(signed["items"][0]["data"]) == {"blake3"}
    message = sign_move(KEY, GAME, 3, Role.WORKER, body, prev=PREV)
    assert is_valid_move_signature(get_public_key_bytes(KEY), GAME, PREV, message)
    assert not is_valid_move_signature(get_public_key_bytes(KEY), GAME, bytes(32), message)  # another history


@given(hexes, hexes)
def test_no_other_body_shares_the_statement(data: str, other: str) -> None:
    message = sign_move(KEY, GAME, 3, Role.WORKER, _evidence(data), prev=PREV)
    signed_data = compute_signed_body(_evidence(data))["items"][0]["data"]
    forgeries = [_evidence(signed_data), _evidence(signed_data["blake3"]),
                 {"type": "evidence", "items": [{"kind": "op_leaf", "digest": "00" * 32, "data": data}]}]
    if other != data:
        forgeries.append(_evidence(other))
    for body in forgeries:
        forged = SignedMove(message.seq, message.sender, body, message.signature)
        assert not is_valid_move_signature(get_public_key_bytes(KEY), GAME, PREV, forged)
