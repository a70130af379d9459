"""Recurrent modules inside a step run the protocol's cell math: torch's values, one operator graph
on CPU and meta tensors, and a clear error for packed sequences."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence
from torch.utils._python_dispatch import TorchDispatchMode

from protocol.rnn import PackedSequenceUnsupported, protocol_rnn

LAYERS = [
    (nn.LSTM, {"num_layers": 2, "bidirectional": True, "batch_first": True}),
    (nn.LSTM, {"proj_size": 3, "bias": False}),
    (nn.GRU, {"num_layers": 2}),
    (nn.GRU, {"bidirectional": True, "batch_first": True}),
    (nn.RNN, {"nonlinearity": "relu"}),
    (nn.RNN, {"num_layers": 2, "nonlinearity": "tanh", "bidirectional": True}),
]


class _Ops(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.ops: list[str] = []

    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        self.ops.append(str(func))
        return func(*args, **(kwargs or {}))


def _outputs(result: Any) -> list[torch.Tensor]:
    output, hidden = result
    return [output, *(hidden if isinstance(hidden, tuple) else (hidden,))]


@pytest.mark.parametrize(("cls", "options"), LAYERS)
def test_cell_math_matches_torch_and_is_one_graph_on_every_device(cls: type[nn.Module], options: dict[str, Any]) -> None:
    torch.manual_seed(0)
    module = cls(4, 6, **options)
    x = torch.randn(3, 5, 4)
    expected = _outputs(module(x))
    with protocol_rnn():
        got = _outputs(module(x))
        cpu, meta = _Ops(), _Ops()
        with cpu:
            module(x)
        on_meta, x_meta = module.to("meta"), x.to("meta")
        with meta:
            on_meta(x_meta)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(expected, got, strict=True))
    assert cpu.ops == meta.ops and len(cpu.ops) > 0


def test_packed_sequences_are_refused_clearly() -> None:
    packed = pack_padded_sequence(torch.randn(5, 3, 4), [5, 4, 2])
    for module in (nn.LSTM(4, 6), nn.GRU(4, 6)):
        with protocol_rnn(), pytest.raises(PackedSequenceUnsupported, match="pad the batch"):
            module(packed)


def test_the_module_is_restored() -> None:
    import torch.nn.modules.rnn as rnn

    original = rnn._VF
    with pytest.raises(RuntimeError), protocol_rnn():
        raise RuntimeError("restored on errors too")
    assert rnn._VF is original
