"""A canonical JSON form of the state, for snapshots, digests and test vectors.

`encode_state` turns the containers into JSON values (dataclasses as objects, enums as their
values, integer keys as decimal strings); `decode_state` rebuilds them from the type hints and
rejects anything that does not fit exactly. `compute_state_root` is SHA-256 over the canonical
encoding (sorted keys, no whitespace): two replicas hold the same state iff their roots match.
"""

from __future__ import annotations

import dataclasses
import hashlib
import types
import typing
from enum import Enum
from functools import cache
from typing import Any

from protocol.economy.params import Params, compute_params_problems
from protocol.economy.state import State
from protocol.signing import compute_canonical_json
from protocol.types import Root


class StateEncodingError(ValueError):
    """Encoded data does not describe a well-formed state."""


def encode_value(value: Any) -> Any:
    """A JSON-compatible form of a container, enum, dict, list or scalar."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict):
        return {str(k): encode_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encode_value(v) for v in value]
    if value is None or isinstance(value, bool | int | str):
        return value
    raise StateEncodingError(f"cannot encode {type(value).__name__}")


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def decode_value(hint: Any, data: Any, where: str = "state") -> Any:
    """Rebuild a value of type `hint` from its JSON form; StateEncodingError on any mismatch."""
    supertype = getattr(hint, "__supertype__", None)
    if supertype is not None:
        return decode_value(supertype, data, where)
    origin = typing.get_origin(hint)
    if origin is typing.Union or origin is types.UnionType:
        for arm in typing.get_args(hint):
            try:
                return decode_value(arm, data, where)
            except StateEncodingError:
                continue
        raise StateEncodingError(f"{where}: {data!r} fits none of {hint}")
    if origin is dict:
        key_type, value_type = typing.get_args(hint)
        if not isinstance(data, dict):
            raise StateEncodingError(f"{where}: expected an object")
        return {
            _decode_key(key_type, k, where): decode_value(value_type, v, f"{where}[{k}]")
            for k, v in data.items()
        }
    if origin is list:
        (item_type,) = typing.get_args(hint)
        if not isinstance(data, list):
            raise StateEncodingError(f"{where}: expected a list")
        return [decode_value(item_type, v, f"{where}[{i}]") for i, v in enumerate(data)]
    if hint is type(None):
        if data is not None:
            raise StateEncodingError(f"{where}: expected null")
        return None
    if isinstance(hint, type) and issubclass(hint, Enum):
        try:
            return hint(data)
        except ValueError as exc:
            raise StateEncodingError(f"{where}: {exc}") from None
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        if not isinstance(data, dict):
            raise StateEncodingError(f"{where}: expected an object for {hint.__name__}")
        names = {f.name for f in dataclasses.fields(hint)}
        if set(data) != names:
            raise StateEncodingError(f"{where}: {hint.__name__} fields differ: {sorted(set(data) ^ names)}")
        hints = _hints(hint)
        return hint(**{name: decode_value(hints[name], data[name], f"{where}.{name}") for name in names})
    if hint in (int, str, bool):
        if type(data) is not hint:
            raise StateEncodingError(f"{where}: expected {hint.__name__}, got {type(data).__name__}")
        return data
    raise StateEncodingError(f"{where}: cannot decode type {hint}")


def _decode_key(key_type: Any, key: str, where: str) -> Any:
    if key_type is int or getattr(key_type, "__supertype__", None) is int:
        if not (key.isdigit() and str(int(key)) == key):
            raise StateEncodingError(f"{where}: bad integer key {key!r}")
        return int(key)
    return key


def encode_state(state: State) -> dict[str, Any]:
    return encode_value(state)


def decode_state(data: Any) -> State:
    """The state `data` encodes, with a valid parameter table; StateEncodingError otherwise."""
    state = decode_value(State, data)
    problems = compute_params_problems(state.params)
    if problems:
        raise StateEncodingError("; ".join(problems))
    return state


def encode_params(params: Params) -> dict[str, Any]:
    return encode_value(params)


def decode_params(data: Any) -> Params:
    params = decode_value(Params, data, "params")
    problems = compute_params_problems(params)
    if problems:
        raise StateEncodingError("; ".join(problems))
    return params


def compute_state_root(state: State) -> Root:
    """SHA-256 of the canonical JSON encoding of `state`."""
    return Root(hashlib.sha256(compute_canonical_json(encode_state(state))).digest())
