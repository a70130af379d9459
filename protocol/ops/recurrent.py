"""Operator definitions: recurrent layers (see protocol.ops.table for the conventions).

On CPU, `nn.LSTM` (without `proj_size`) runs one `aten::mkldnn_rnn_layer` per layer and direction,
and autograd runs one `aten::mkldnn_rnn_layer_backward` for each. Both are defined here as the LSTM
cell stepped over time with the primitives of `protocol.ops.prims`. `nn.GRU`, `nn.RNN` and an LSTM
with `proj_size` do not come here: torch decomposes them into generic operators (addmm, sigmoid_,
tanh_, unsafe_split, …) defined with the other elementwise and structural operators.

One layer, one direction. Shapes: T steps, B sequences, I input features, H hidden units.

    input [T, B, I]   time-major whatever `batch_first` says (torch transposes before the call)
    w_ih [4H, I], w_hh [4H, H], b_ih [4H], b_hh [4H]   gate blocks in torch's order i, f, g, o
    hx, cx [B, H]     the state before the first step taken

The steps are taken at t = 0, 1, …, T-1, or T-1, …, 0 when `reverse`; `output[t]` is the h computed
at time index t either way, and (hy, cy) is the state after the last step taken. `batch_first`,
`num_layers`, `bidirectional` and `train` do not change a layer's values (torch passes them for its
own buffer layout). `mode` must be 2 (LSTM) and `batch_sizes` empty (no packed sequences).

The forward, with every `fl(·)` one float32 rounding:

    bias    = fl(b_ih + b_hh)                                   (no bias term when not has_biases)
    xw      = fl(mm(input as [T*B, I], w_ih^T) + bias)          one matrix product for all steps
    gates_t = fl(xw_t + mm(h_prev, w_hh^T))                     [B, 4H]
    i, f, o = sigmoid of their blocks, g = tanh(block g)        sigmoid(z) = fl(1 / fl(1 + exp(-z)))
    c_t     = fl(fl(f * c_prev) + fl(i * g))
    h_t     = fl(o * tanh(c_t))

`exp`, `tanh` and `mm` are the primitives. mm accumulates over k in ascending order, so each
element of a product is its own dot product: a sequence's results do not depend on the other
sequences of the batch, and computing a product's columns in separate products changes no bit. The
code uses the second fact to compute the sigmoid gates (i, f, o) and g in separate contiguous
blocks; the values are those of the formulas above.

Every NaN of every output is the canonical NaN (0x7FC00000): an invalid operation's NaN has a sign
that differs between processors, so no NaN reaches a digest as it came out.

The workspace output is an empty uint8 tensor, as torch's meta kernel describes it: the backward
needs nothing beyond its other inputs. It recomputes the gates of every step at once from the saved
outputs (h_prev of each step is an `output` row or hx), bit for bit as the forward computed them,
then the cell states step by step, then backpropagates through time (see `_lstm_layer_backward`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from protocol.ops.prims import Primitives
from protocol.ops.table import Outputs, UnsupportedOperator, _require_float, _scalar, defines
from protocol.semantics.floats import canonicalize_nan

Tensor = torch.Tensor

LSTM_MODE = 2  # torch's code for LSTM in the `mode` argument (0 RNN_RELU, 1 RNN_TANH, 2 LSTM, 3 GRU)
LSTM_GATES = 4  # i, f, g, o


# --- the cell's pieces ----------------------------------------------------------------------------


def _sigmoid(prims: Primitives, z: Tensor) -> Tensor:
    """fl(1 / fl(1 + exp(-z))) elementwise (negation is exact). Saturates to 0 where exp overflows,
    to 1 where it underflows; NaN stays NaN. float32, any shape."""
    one = _scalar(1.0, z)
    return torch.div(one, one + prims.exp(-z))


def compute_sigmoid_slope(s: Tensor) -> Tensor:
    """d sigmoid / dz from s = sigmoid(z): fl(s * fl(1 - s))."""
    return s * (_scalar(1.0, s) - s)


def compute_tanh_slope(y: Tensor) -> Tensor:
    """d tanh / dz from y = tanh(z): fl(1 - fl(y * y))."""
    return _scalar(1.0, y) - y * y


def _gate_rows(w: Tensor, hidden: int) -> tuple[Tensor, Tensor]:
    """Rows of a [4H, ·] gate tensor (weights or bias) split as (i, f, o) [3H, ·] and g [H, ·]."""
    return torch.cat([w[: 2 * hidden], w[3 * hidden :]]), w[2 * hidden : 3 * hidden]


@dataclass(frozen=True)
class LstmLayer:
    """One layer and direction of an LSTM: its weights (also split by gate kind) and direction."""

    w_ih: Tensor  # [4H, I], gate blocks i, f, g, o
    w_hh: Tensor  # [4H, H]
    w_ih_sig: Tensor  # [3H, I]: the rows of i, f, o
    w_ih_g: Tensor  # [H, I]
    w_hh_sig_t: Tensor  # [H, 3H]: (rows of i, f, o of w_hh)^T, contiguous
    w_hh_g_t: Tensor  # [H, H]
    bias_sig: Tensor | None  # [3H] of fl(b_ih + b_hh); None without biases
    bias_g: Tensor | None  # [H]
    reverse: bool

    @property
    def hidden_size(self) -> int:
        return int(self.w_hh.shape[1])


def compute_layer(w_ih: Tensor, w_hh: Tensor, bias: Tensor | None, reverse: bool) -> LstmLayer:
    """The layer of weights w_ih [4H, I], w_hh [4H, H] and bias [4H] = fl(b_ih + b_hh) (or None)."""
    hidden = int(w_hh.shape[1])
    w_ih_sig, w_ih_g = _gate_rows(w_ih, hidden)
    w_hh_sig, w_hh_g = _gate_rows(w_hh, hidden)
    bias_sig, bias_g = _gate_rows(bias, hidden) if bias is not None else (None, None)
    return LstmLayer(
        w_ih, w_hh, w_ih_sig, w_ih_g.contiguous(), w_hh_sig.t().contiguous(), w_hh_g.t().contiguous(), bias_sig, bias_g, reverse
    )


def get_time_order(steps: int, reverse: bool) -> list[int]:
    """The time indices in the order the steps are taken."""
    return list(range(steps - 1, -1, -1)) if reverse else list(range(steps))


def compute_input_projection(prims: Primitives, layer: LstmLayer, x: Tensor) -> tuple[Tensor, Tensor]:
    """xw = fl(mm(x, w_ih^T) + bias) for every step at once, x [T, B, I] → ([T, B, 3H] of the
    sigmoid gates i, f, o, [T, B, H] of g)."""
    steps, batch, features = x.shape
    rows = x.reshape(steps * batch, features)
    xw_sig = prims.mm(rows, layer.w_ih_sig.t())
    xw_g = prims.mm(rows, layer.w_ih_g.t())
    if layer.bias_sig is not None and layer.bias_g is not None:
        xw_sig, xw_g = xw_sig + layer.bias_sig, xw_g + layer.bias_g
    return xw_sig.reshape(steps, batch, -1), xw_g.reshape(steps, batch, -1)


def _get_layer(name: str, a: dict[str, Any], weights: tuple[str, str, str, str]) -> LstmLayer:
    """Check a call's arguments and collect its layer; `weights` names w_ih, w_hh, b_ih, b_hh."""
    if a["mode"] != LSTM_MODE:
        raise UnsupportedOperator(name, f"mode {a['mode']} (only LSTM, mode {LSTM_MODE}, is defined)")
    if a["batch_sizes"]:
        raise UnsupportedOperator(name, "packed sequences (batch_sizes)")
    w_ih, w_hh, b_ih, b_hh = (a[key] for key in weights)
    _require_float(name, a["input"], w_ih, w_hh, b_ih, b_hh)
    if a["input"].dim() != 3:
        raise UnsupportedOperator(name, f"input of {a['input'].dim()} dimensions (expected [T, B, I])")
    bias = b_ih + b_hh if a["has_biases"] else None  # fl(b_ih + b_hh)
    return compute_layer(w_ih, w_hh, bias, bool(a["reverse"]))


# --- forward --------------------------------------------------------------------------------------


def compute_lstm_layer(prims: Primitives, layer: LstmLayer, x: Tensor, hx: Tensor, cx: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """The forward of the module docstring: x [T, B, I], hx, cx [B, H] → (output [T, B, H], hy, cy)."""
    steps, batch, _ = x.shape
    hidden = layer.hidden_size
    xw_sig, xw_g = (xw.unbind(0) for xw in compute_input_projection(prims, layer, x))  # by time index
    output = torch.empty((steps, batch, hidden), dtype=x.dtype, device=x.device)
    output_steps = output.unbind(0)
    h, c = hx.contiguous(), cx.contiguous()
    for t in get_time_order(steps, layer.reverse):
        sig = _sigmoid(prims, prims.mm(h, layer.w_hh_sig_t).add_(xw_sig[t]))  # of fl(xw_t + mm(h, w_hh^T))
        g = prims.tanh(prims.mm(h, layer.w_hh_g_t).add_(xw_g[t]))
        i, f, o = sig[:, :hidden], sig[:, hidden : 2 * hidden], sig[:, 2 * hidden :]
        c = torch.add(f * c, i * g)  # fl(fl(f * c) + fl(i * g))
        h = torch.mul(o, prims.tanh(c), out=output_steps[t])
    return output, h.clone(), c.clone() if steps == 0 else c  # hy apart from output; never an input


@defines("mkldnn_rnn_layer.default")
def _mkldnn_rnn_layer(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # (output, hy, cy, workspace): see the module docstring; workspace is empty uint8.
    name = "aten::mkldnn_rnn_layer"
    layer = _get_layer(name, a, ("weight0", "weight1", "weight2", "weight3"))
    _require_float(name, a["hx_"], a["cx_"])
    output, hy, cy = compute_lstm_layer(prims, layer, a["input"], a["hx_"], a["cx_"])
    workspace = torch.empty((0,), dtype=torch.uint8, device=output.device)
    return canonicalize_nan(output), canonicalize_nan(hy), canonicalize_nan(cy), workspace


# --- backward -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ForwardValues:
    """What the forward computed at every step, by time index: each [T, B, H]."""

    h_prev: Tensor
    i: Tensor
    f: Tensor
    g: Tensor
    o: Tensor
    c_prev: Tensor
    c: Tensor


def get_previous_hidden(output: Tensor, hx: Tensor, reverse: bool) -> Tensor:
    """h_prev of every step by time index, [T, B, H]: the output of the step taken before, or hx."""
    if output.shape[0] == 0:
        return output.contiguous()
    if reverse:
        return torch.cat([output[1:], hx.unsqueeze(0)])
    return torch.cat([hx.unsqueeze(0), output[:-1]])


def compute_forward_values(prims: Primitives, layer: LstmLayer, x: Tensor, hx: Tensor, cx: Tensor, output: Tensor) -> ForwardValues:
    """The forward's gate activations and cell states from its saved output: the gates of all steps
    at once (bit-equal to the forward's, element by element), then the cell states step by step."""
    steps, batch, _ = x.shape
    hidden = layer.hidden_size
    rows = steps * batch
    h_prev = get_previous_hidden(output, hx, layer.reverse)
    h_rows = h_prev.reshape(rows, hidden)
    xw_sig, xw_g = compute_input_projection(prims, layer, x)
    sig = _sigmoid(prims, prims.mm(h_rows, layer.w_hh_sig_t).add_(xw_sig.reshape(rows, -1))).reshape(steps, batch, -1)
    g = prims.tanh(prims.mm(h_rows, layer.w_hh_g_t).add_(xw_g.reshape(rows, -1))).reshape(steps, batch, hidden)
    i, f, o = sig[..., :hidden], sig[..., hidden : 2 * hidden], sig[..., 2 * hidden :]
    c_all = torch.empty_like(g)
    c_prev_all = torch.empty_like(g)
    c = cx.contiguous()
    for t in get_time_order(steps, layer.reverse):
        c_prev_all[t] = c
        c = torch.add(f[t] * c, i[t] * g[t], out=c_all[t])  # fl(fl(f * c) + fl(i * g)), as in the forward
    return ForwardValues(h_prev, i, f, g, o, c_prev_all, c_all)


def _lstm_layer_backward(
    prims: Primitives,
    layer: LstmLayer,
    x: Tensor,
    hx: Tensor,
    cx: Tensor,
    output: Tensor,
    grad_output: Tensor | None,
    grad_hy: Tensor | None,
    grad_cy: Tensor | None,
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Backpropagation through time. Returns (grad_input, grad_w_ih, grad_w_hh, grad_bias, grad_hx,
    grad_cx). Absent incoming gradients are zeros. From `compute_forward_values` (h_prev, i, f, g, o,
    c_prev, c of every step) and tc = tanh(c), over the steps in the reverse of the order they were
    taken, with dh_rec = grad_hy and dc = grad_cy at the start:

        dh       = fl(grad_output_t + dh_rec)           (dh_rec alone without grad_output)
        dc       = fl(dc + fl(fl(dh * o) * fl(1 - fl(tc * tc))))
        d_i, d_f, d_g, d_o = fl(dc * g), fl(dc * c_prev), fl(dc * i), fl(dh * tc)
        dgates_t = fl(d_gate * slope) per block, [B, 4H] in the order i, f, g, o: slope
                   fl(s * fl(1 - s)) of a sigmoid gate s, fl(1 - fl(g * g)) of g
        dc       = fl(dc * f);   dh_rec = mm(dgates_t, w_hh)        [B, 4H] @ [4H, H]

    grad_hx = dh_rec and grad_cx = dc after the last of these steps. With dgates as [T*B, 4H], rows in
    time-index order (t, then b): grad_input = mm(dgates, w_ih); grad_w_ih = mm(dgates^T, x);
    grad_w_hh = mm(dgates^T, h_prev); grad_bias = rowsum(dgates^T). The sums over time and batch are
    those of mm (sequential, ascending row index t * B + b) and rowsum (pairwise over the same order).
    """
    steps, batch, features = x.shape
    hidden = layer.hidden_size
    rows = steps * batch
    r = compute_forward_values(prims, layer, x, hx, cx, output)
    tc = prims.tanh(r.c)
    tc_slope = compute_tanh_slope(tc)
    slopes = torch.cat(
        [compute_sigmoid_slope(r.i), compute_sigmoid_slope(r.f), compute_tanh_slope(r.g), compute_sigmoid_slope(r.o)], dim=2
    )  # [T, B, 4H]
    d_act = torch.empty_like(slopes)
    dgates = torch.empty_like(slopes)
    # views by time index (unbinding once is cheaper than indexing at every step)
    i, f, g, o, c_prev, tc_steps, tc_slopes = (v.unbind(0) for v in (r.i, r.f, r.g, r.o, r.c_prev, tc, tc_slope))
    slope_steps, dgate_steps = slopes.unbind(0), dgates.unbind(0)
    d_blocks = [d_act[..., k * hidden : (k + 1) * hidden].unbind(0) for k in range(LSTM_GATES)]
    incoming = grad_output.unbind(0) if grad_output is not None else None
    w_hh = layer.w_hh.contiguous()
    dh_rec = grad_hy.contiguous() if grad_hy is not None else torch.zeros_like(hx)
    dc = grad_cy.contiguous() if grad_cy is not None else torch.zeros_like(cx)
    for t in reversed(get_time_order(steps, layer.reverse)):
        dh = incoming[t] + dh_rec if incoming is not None else dh_rec
        dc = dc + (dh * o[t]) * tc_slopes[t]
        torch.mul(dc, g[t], out=d_blocks[0][t])
        torch.mul(dc, c_prev[t], out=d_blocks[1][t])
        torch.mul(dc, i[t], out=d_blocks[2][t])
        torch.mul(dh, tc_steps[t], out=d_blocks[3][t])
        torch.mul(d_act[t], slope_steps[t], out=dgate_steps[t])
        dc = dc * f[t]
        dh_rec = prims.mm(dgate_steps[t], w_hh)
    flat = dgates.reshape(rows, LSTM_GATES * hidden)
    grad_input = prims.mm(flat, layer.w_ih).reshape(steps, batch, features)
    grad_w_ih = prims.mm(flat.t(), x.reshape(rows, features))
    grad_w_hh = prims.mm(flat.t(), r.h_prev.reshape(rows, hidden))
    grad_bias = prims.colsum(flat)
    if steps == 0:
        dh_rec, dc = dh_rec.clone(), dc.clone()  # fresh tensors, never an input returned
    return grad_input, grad_w_ih, grad_w_hh, grad_bias, dh_rec, dc


@defines("mkldnn_rnn_layer_backward.default")
def _mkldnn_rnn_layer_backward(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # (grad_input, grad_weight_ih, grad_weight_hh, grad_bias_ih, grad_bias_hh, grad_hx, grad_cx):
    # see _lstm_layer_backward. Both bias gradients are the gradient of the gates' bias (two equal
    # tensors, not one shared), [4H] even without biases, as torch returns them.
    name = "aten::mkldnn_rnn_layer_backward"
    layer = _get_layer(name, a, ("weight1", "weight2", "weight3", "weight4"))
    hx, cx, output = a["hx_"], a["cx_tmp"], a["output"]
    grad_output, grad_hy, grad_cy = a["grad_output"], a["grad_hy"], a["grad_cy"]
    _require_float(name, hx, cx, output, grad_output, grad_hy, grad_cy)
    grad_input, grad_w_ih, grad_w_hh, grad_bias, grad_hx, grad_cx = _lstm_layer_backward(
        prims, layer, a["input"], hx, cx, output, grad_output, grad_hy, grad_cy
    )
    grad_bias = canonicalize_nan(grad_bias)
    return tuple(canonicalize_nan(grad) for grad in (grad_input, grad_w_ih, grad_w_hh)) + (
        grad_bias,
        grad_bias.clone(),
        canonicalize_nan(grad_hx),
        canonicalize_nan(grad_cx),
    )
