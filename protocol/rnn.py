"""nn.LSTM, nn.GRU and nn.RNN inside a step: the cell math, written with ordinary operators.

torch runs these layers through one fused kernel (`_VF.lstm`, …) whose decomposition depends on the
device: on CPU tensors it precomputes the input projections in one product (or calls oneDNN), on the
meta tensors of a skeleton it does not, so a real trace and its skeleton would differ. Inside a
reproducible step (`protocol_rnn()`), `torch.nn.modules.rnn` calls the functions below instead; they
are the same Python on every device and give one operator graph:

    per layer and direction, with x the layer's input [T, B, I] (time-major):
        xw = linear(x, W_ih, b_ih)                                 all steps at once, [T, B, G·H]
        for t in order (reversed for the backward direction):
            LSTM  gates = xw[t] + linear(h, W_hh, b_hh); i, f, g, o = chunk(gates, 4)
                  c = sigmoid(f) * c + sigmoid(i) * tanh(g); h = sigmoid(o) * tanh(c)
                  h = linear(h, W_hr)                              with proj_size
            GRU   r, z, n = chunk(xw[t], 3); hr, hz, hn = chunk(linear(h, W_hh, b_hh), 3)
                  r = sigmoid(r + hr); z = sigmoid(z + hz); n = tanh(n + r * hn)
                  h = (1 - z) * n + z * h
            RNN   h = tanh or relu(xw[t] + linear(h, W_hh, b_hh))
        output = stack of h over time; both directions concatenated on the feature dimension
    dropout(p) on every layer's output but the last, in training.

These are torch's formulas; only the grouping of the input projection is fixed. Packed sequences
are not supported (a clear error).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
import torch.nn.functional as F
import torch.nn.modules.rnn
from torch import Tensor

from protocol.patching import ThreadPatch


class PackedSequenceUnsupported(RuntimeError):
    """A packed sequence reached a recurrent layer inside a reproducible step."""


def _layer_weights(weights: Sequence[Tensor], has_biases: bool, layers: int, directions: int) -> list[list[Tensor | None]]:
    """Per (layer, direction): [W_ih, W_hh, b_ih, b_hh, W_hr] with None for what is absent."""
    per = len(weights) // (layers * directions)
    projections = per - 2 - (2 if has_biases else 0)
    groups = []
    for k in range(layers * directions):
        group = list(weights[k * per : (k + 1) * per])
        w_ih, w_hh = group[0], group[1]
        b_ih, b_hh = (group[2], group[3]) if has_biases else (None, None)
        w_hr = group[-1] if projections == 1 else None
        groups.append([w_ih, w_hh, b_ih, b_hh, w_hr])
    return groups


def _run_direction(mode: str, x: Tensor, h: Tensor, c: Tensor | None, w: list[Tensor | None], reverse: bool) -> tuple[Tensor, Tensor, Tensor | None]:
    w_ih, w_hh, b_ih, b_hh, w_hr = w
    assert w_ih is not None and w_hh is not None
    xw = F.linear(x, w_ih, b_ih)  # [T, B, G·H]
    steps = range(x.shape[0] - 1, -1, -1) if reverse else range(x.shape[0])
    outputs: list[Tensor] = []
    for t in steps:
        if mode == "LSTM":
            assert c is not None
            gates = xw[t] + F.linear(h, w_hh, b_hh)
            i, f, g, o = gates.chunk(4, 1)
            c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
            h = torch.sigmoid(o) * torch.tanh(c)
            if w_hr is not None:
                h = F.linear(h, w_hr)
        elif mode == "GRU":
            r, z, n = xw[t].chunk(3, 1)
            hr, hz, hn = F.linear(h, w_hh, b_hh).chunk(3, 1)
            r = torch.sigmoid(r + hr)
            z = torch.sigmoid(z + hz)
            n = torch.tanh(n + r * hn)
            h = (1 - z) * n + z * h
        else:
            pre = xw[t] + F.linear(h, w_hh, b_hh)
            h = torch.tanh(pre) if mode == "RNN_TANH" else torch.relu(pre)
        outputs.append(h)
    if reverse:
        outputs.reverse()
    return torch.stack(outputs, 0), h, c


def compute_rnn(
    mode: str, x: Tensor, hx: Tensor, cx: Tensor | None, weights: Sequence[Tensor], has_biases: bool, layers: int,
    dropout: float, train: bool, bidirectional: bool, batch_first: bool,
) -> tuple[Tensor, Tensor, Tensor | None]:
    """(output, h_n, c_n) of a recurrent layer stack (see the module docstring); c is LSTM's only."""
    directions = 2 if bidirectional else 1
    groups = _layer_weights(weights, has_biases, layers, directions)
    layer_input = x.transpose(0, 1) if batch_first else x
    last_h: list[Tensor] = []
    last_c: list[Tensor] = []
    for layer in range(layers):
        results = []
        for d in range(directions):
            k = layer * directions + d
            out, h, c = _run_direction(mode, layer_input, hx[k], None if cx is None else cx[k], groups[k], reverse=d == 1)
            results.append(out)
            last_h.append(h)
            if c is not None:
                last_c.append(c)
        layer_input = results[0] if directions == 1 else torch.cat(results, 2)
        if dropout > 0 and train and layer < layers - 1:
            layer_input = F.dropout(layer_input, dropout, training=True)
    output = layer_input.transpose(0, 1) if batch_first else layer_input
    return output, torch.stack(last_h, 0), torch.stack(last_c, 0) if last_c else None


class _ProtocolVF:
    """Stands in for `torch._VF` inside `torch.nn.modules.rnn`: recurrent layers by `compute_rnn`,
    everything else torch's."""

    def __init__(self, original: Any) -> None:
        self._original = original

    def __getattr__(self, name: str) -> Any:
        return getattr(self._original, name)

    @staticmethod
    def _unpacked(args: tuple[Any, ...], hidden_is_pair: bool) -> tuple[Any, ...]:
        # (input, hx, weights, has_biases, layers, dropout, train, bidirectional, batch_first); the
        # packed form has a batch_sizes tensor second and no batch_first.
        packed = isinstance(args[1], Tensor) and (hidden_is_pair or args[1].dtype == torch.int64)
        if len(args) != 9 or packed:
            raise PackedSequenceUnsupported("packed sequences are not supported inside a reproducible step; pad the batch instead")
        return args

    def lstm(self, *args: Any) -> tuple[Tensor, Tensor, Tensor]:
        x, hx, weights, has_biases, layers, dropout, train, bidirectional, batch_first = self._unpacked(args, True)
        output, h, c = compute_rnn("LSTM", x, hx[0], hx[1], weights, has_biases, layers, dropout, train, bidirectional, batch_first)
        assert c is not None
        return output, h, c

    def gru(self, *args: Any) -> tuple[Tensor, Tensor]:
        x, hx, weights, has_biases, layers, dropout, train, bidirectional, batch_first = self._unpacked(args, False)
        output, h, _ = compute_rnn("GRU", x, hx, None, weights, has_biases, layers, dropout, train, bidirectional, batch_first)
        return output, h

    def rnn_tanh(self, *args: Any) -> tuple[Tensor, Tensor]:
        x, hx, weights, has_biases, layers, dropout, train, bidirectional, batch_first = self._unpacked(args, False)
        output, h, _ = compute_rnn("RNN_TANH", x, hx, None, weights, has_biases, layers, dropout, train, bidirectional, batch_first)
        return output, h

    def rnn_relu(self, *args: Any) -> tuple[Tensor, Tensor]:
        x, hx, weights, has_biases, layers, dropout, train, bidirectional, batch_first = self._unpacked(args, False)
        output, h, _ = compute_rnn("RNN_RELU", x, hx, None, weights, has_biases, layers, dropout, train, bidirectional, batch_first)
        return output, h


class _VFDispatch:
    """What `torch.nn.modules.rnn._VF` is while any thread runs a step: `_ProtocolVF` for the threads
    inside one, torch's own `_VF` for every other."""

    def __init__(self, patch: ThreadPatch) -> None:
        self._patch = patch

    def __getattr__(self, name: str) -> Any:
        return getattr(self._patch.current(), name)


_VF_PATCH = ThreadPatch(torch.nn.modules.rnn, "_VF", _ProtocolVF, dispatch=_VFDispatch)


@contextmanager
def protocol_rnn() -> Iterator[None]:
    """Inside (in this thread): torch's recurrent modules run `compute_rnn` (see the module docstring)."""
    with _VF_PATCH.active():
        yield
