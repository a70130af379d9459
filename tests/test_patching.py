"""A step's replacements of library attributes apply to the threads running a step and to no other,
whatever the order in which steps start and end, and the originals come back when the last step ends."""

from __future__ import annotations

import math
import threading

import torch
import torch.nn.modules.rnn

from protocol.autocast import protocol_autocast
from protocol.rnn import protocol_rnn
from protocol.scalar_mode import ProtocolFloat, protocol_items, protocol_math

ORIGINALS = (torch.Tensor.item, math.cos, torch.nn.modules.rnn._VF, torch.autocast.__enter__)


def _step_contexts() -> list:
    return [protocol_items(), protocol_math(), protocol_rnn(), protocol_autocast()]


def test_overlapping_steps_in_two_threads_leave_every_other_thread_alone_and_restore_the_originals() -> None:
    a_inside, b_inside, a_left, b_checked = (threading.Event() for _ in range(4))
    seen: dict[str, object] = {}

    def first() -> None:
        contexts = _step_contexts()
        for context in contexts:
            context.__enter__()
        seen["a"] = type(torch.tensor(0.5).item())
        a_inside.set()
        b_inside.wait(5)
        for context in reversed(contexts):  # the first step ends while the second still runs
            context.__exit__(None, None, None)
        a_left.set()

    def second() -> None:
        a_inside.wait(5)
        contexts = _step_contexts()
        for context in contexts:
            context.__enter__()
        b_inside.set()
        a_left.wait(5)
        seen["b"] = type(torch.tensor(0.5).item())  # still the step's, though the other step ended
        with torch.autocast("cpu", dtype=torch.bfloat16):
            seen["b_autocast"] = torch.is_autocast_enabled("cpu")  # the protocol's regions: torch's stays off
        b_checked.wait(5)
        for context in reversed(contexts):
            context.__exit__(None, None, None)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    a_inside.wait(5)
    seen["bystander"] = type(torch.tensor(0.5).item())  # this thread runs no step
    with torch.autocast("cpu", dtype=torch.bfloat16):
        seen["bystander_autocast"] = torch.is_autocast_enabled("cpu")  # torch's own autocast
    b_checked.set()
    for thread in threads:
        thread.join(10)
    assert seen == {"a": ProtocolFloat, "b": ProtocolFloat, "bystander": float, "b_autocast": False,
                    "bystander_autocast": True}
    assert (torch.Tensor.item, math.cos, torch.nn.modules.rnn._VF, torch.autocast.__enter__) == ORIGINALS


def test_a_nested_step_context_in_one_thread_keeps_the_replacement_until_the_outer_one_ends() -> None:
    with protocol_items():
        with protocol_items():
            assert isinstance(torch.tensor(1.5).item(), ProtocolFloat)
        assert isinstance(torch.tensor(1.5).item(), ProtocolFloat)
    assert type(torch.tensor(1.5).item()) is float and torch.Tensor.item is ORIGINALS[0]
