"""The binary wire format round-trips every JSON value and is what the game counts."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.game.messages import compute_message_sizes
from protocol.game.wire import WORDS, WireError, decode_wire, encode_wire

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20) | st.binary(max_size=40).map(bytes.hex) | st.sampled_from(WORDS),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=8) | st.sampled_from(WORDS), children, max_size=5),
    max_leaves=30,
)


@given(json_values)
def test_wire_round_trips_every_json_value(value: object) -> None:
    encoded = encode_wire(value)
    decoded = decode_wire(encoded)
    assert json.dumps(decoded, sort_keys=True) == json.dumps(value, sort_keys=True)
    assert encode_wire(decoded) == encoded


@given(json_values, st.data())
def test_truncated_or_padded_wire_is_rejected(value: object, data: st.DataObject) -> None:
    encoded = encode_wire(value)
    cut = data.draw(st.integers(0, len(encoded) - 1))
    with pytest.raises(WireError):
        decode_wire(encoded[:cut])
    with pytest.raises(WireError):
        decode_wire(encoded + b"\x00")


def test_hashes_travel_as_raw_bytes() -> None:
    message = {"seq": 3, "sender": "worker", "move": {"type": "nodes", "hashes": ["ab" * 32, "cd" * 32]}, "signature": "ef" * 64}
    assert len(encode_wire(message)) < 170 < len(json.dumps(message)) / 2
    tensor = {"seq": 9, "sender": "challenger", "signature": "00" * 64,
              "move": {"type": "evidence", "items": [{"kind": "tensor", "digest": "11" * 32, "data": "22" * 1000}]}}
    total, tensors = compute_message_sizes(tensor)
    assert tensors == 1000 and 1000 < total < 1200
