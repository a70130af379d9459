"""Transcripts: written atomically, re-verified offline from the file alone, and rejected after any
single-field tampering; `verify_transcript` never raises, whatever it is given."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.game import Role
from protocol.game.transcript import compute_transcript_json, parse_transcript_json
from verifier.game import (
    HonestStrategy,
    Strategy,
    read_transcript,
    verify_transcript,
    verify_transcript_file,
    write_transcript,
)
from verifier.game.adversaries import CATALOGUE, Scenario
from verifier.game.toy import ToyConfig, ToyFault, ToyMachine, ToyProvider, ToyReferee

from .game_support import KEYS, game_settings, get_toy, play, play_honest_against

CONFIG = ToyConfig(steps=4, num_ops=5, num_state=3, width=1)


def _transcript(name: str) -> dict[str, Any]:
    """A real transcript: the honest worker against one adversary (or an honest twin for no dispute)."""
    machine, provider = get_toy(CONFIG)
    if name == "no-dispute":
        result = play(HonestStrategy(provider, KEYS[Role.WORKER]), HonestStrategy(provider, KEYS[Role.CHALLENGER]),
                      machine)
    elif name == "toy-fault":
        liar = HonestStrategy(ToyProvider(machine, ToyFault("value", 1, 4)), KEYS[Role.CHALLENGER])
        result = play_honest_against(liar, Role.WORKER, machine, provider)
    else:
        adversary: Strategy = CATALOGUE[name].build(provider, KEYS[Role.CHALLENGER], Scenario(step=2, node=3, at_round=1))
        result = play_honest_against(adversary, Role.WORKER, machine, provider)
    return compute_transcript_json(result.transcript)


TRANSCRIPTS = ["no-dispute", "toy-fault", "impersonator", "equivocator", "silent", "wrong-state-count"]
REFEREE = ToyReferee(get_toy(CONFIG)[0])


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_real_transcripts_verify_from_the_file(name: str, tmp_path: Path) -> None:
    value = _transcript(name)
    path = write_transcript(tmp_path / "game.json", parse_transcript_json(value))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["game.json"]  # no temporary file left behind
    assert json.loads(path.read_bytes()) == value
    assert compute_transcript_json(read_transcript(path)) == value
    result = verify_transcript_file(path, ToyReferee(ToyMachine(CONFIG)))  # a fresh referee of the same job
    assert result.valid, result.reason
    assert result.verdict is not None and result.verdict == parse_transcript_json(value).verdict


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths to every scalar, and to every empty list or object, of a JSON value."""
    if isinstance(value, dict) and value:
        for key in value:
            yield from _leaves(value[key], (*path, key))
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from _leaves(item, (*path, index))
    else:
        yield path


def _tampered(value: Any) -> Any:
    """A different value of the same JSON type (an empty container gains an element)."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, float):
        return value + 0.5
    if isinstance(value, str):
        if value and all(c in "0123456789abcdef" for c in value):
            return ("1" if value[0] == "0" else "0") + value[1:]
        return value + "x"
    if value is None:
        return 0
    if isinstance(value, list):
        return [0]
    return {"x": 0}


def _set(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copied = copy.deepcopy(value)
    target = copied
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = new
    return copied


def _get(value: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        value = value[key]
    return value


@pytest.mark.parametrize("name", TRANSCRIPTS)
def test_every_single_field_tampering_is_rejected(name: str) -> None:
    value = _transcript(name)
    assert verify_transcript(value, REFEREE).valid
    paths = list(_leaves(value))
    assert len(paths) > 20
    for path in paths:
        tampered = _set(value, path, _tampered(_get(value, path)))
        result = verify_transcript(tampered, REFEREE)
        assert not result.valid, (path, _get(value, path))


@pytest.mark.parametrize("name", ["toy-fault", "impersonator", "silent"])
def test_dropped_reordered_and_added_events_are_rejected(name: str) -> None:
    value = _transcript(name)
    events = value["events"]
    variants = [events[:i] + events[i + 1:] for i in range(len(events))]
    variants += [events[:i] + [events[i + 1], events[i]] + events[i + 2:] for i in range(len(events) - 1)
                 if events[i] != events[i + 1]]
    variants.append(events + [events[-1]])
    variants.append(events + [{"at": events[-1]["at"] + 1.0, "clock": True}])
    for new_events in variants:
        assert not verify_transcript({**value, "events": new_events}, REFEREE).valid


def test_a_referee_of_another_job_does_not_confirm() -> None:
    value = _transcript("toy-fault")
    other = ToyReferee(ToyMachine(ToyConfig(steps=4, num_ops=5, num_state=3, width=1, seed=5)))
    assert not verify_transcript(value, other).valid


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 70), 1 << 70) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)


@game_settings(200)
@given(JSON)
def test_verify_never_raises_on_junk(junk: Any) -> None:
    assert not verify_transcript(junk, REFEREE).valid


@game_settings(100)
@given(st.data())
def test_verify_never_raises_on_junk_inside_a_real_transcript(data: st.DataObject) -> None:
    value = _transcript_cached()
    path = data.draw(st.sampled_from(list(_leaves(value))))
    junk = data.draw(JSON)
    tampered = _set(value, path, junk)
    result = verify_transcript(tampered, REFEREE)
    assert result.valid == (json.dumps(tampered, sort_keys=True) == json.dumps(value, sort_keys=True))


_CACHE: dict[str, Any] = {}


def _transcript_cached() -> Any:
    if "impersonator" not in _CACHE:
        _CACHE["impersonator"] = _transcript("impersonator")
    return _CACHE["impersonator"]


def test_unreadable_files_are_invalid(tmp_path: Path) -> None:
    assert not verify_transcript_file(tmp_path / "missing.json", REFEREE).valid
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert not verify_transcript_file(bad, REFEREE).valid
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    assert not verify_transcript_file(deep, REFEREE).valid
