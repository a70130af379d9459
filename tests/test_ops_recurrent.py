"""Recurrent layers: the LSTM layer operators (protocol/ops/recurrent.py) give fast == reference bit
for bit, stay close to torch's oneDNN kernels and autograd, have the layout of torch's meta kernels,
and do not depend on the other sequences of a batch; a recurrent language model (Embedding → LSTM →
GRU → Linear) trains with the same bits at one and two threads, and every node of a traced LSTM step
re-executes from the reference to its recorded digest.

Inside a reproducible step the recurrent modules run the protocol's cell math (`protocol.rnn`, the
same operator graph on CPU and meta tensors), so a step's skeleton equals its real trace. The layer
operators stay defined for code that calls them directly."""

from __future__ import annotations

import copy
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from protocol.encoding import compute_digest
from protocol.ops import UnsupportedOperator, execute
from protocol.ops.canonical import canonicalize_call
from protocol.ops.prims import REFERENCE, Primitives
from protocol.recording import Recorder, ReproducibleMode, RngContext
from protocol.rnn import protocol_rnn
from protocol.trace import TraceNode
from protocol.types import Root
from prover.fast import FAST
from tests.referee_replay import assert_nodes_re_execute

aten = torch.ops.aten
LSTM_MODE = 2


def same_bits(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.dtype == b.dtype and a.shape == b.shape and compute_digest(a) == compute_digest(b)


def run_op(func: Any, *args: Any, prims: Primitives = REFERENCE) -> tuple[torch.Tensor | None, ...]:
    """The operator by its definition, on copies of its tensor inputs (as the referee runs it)."""
    call = canonicalize_call(func, args, {})
    return execute(call.op, call.args, tuple(t.clone() for t in call.inputs), prims)


def _layer(steps: int, batch: int, features: int, hidden: int, seed: int, scale: float = 1.0) -> dict[str, torch.Tensor]:
    """Inputs of one LSTM layer: input [T, B, I], w_ih [4H, I], w_hh [4H, H], biases [4H], hx, cx [B, H]."""
    gen = torch.Generator().manual_seed(seed)

    def draw(*shape: int, s: float) -> torch.Tensor:
        return torch.randn(*shape, generator=gen) * s * scale

    return {
        "x": draw(steps, batch, features, s=1.0),
        "w_ih": draw(4 * hidden, features, s=0.4),
        "w_hh": draw(4 * hidden, hidden, s=0.4),
        "b_ih": draw(4 * hidden, s=0.2),
        "b_hh": draw(4 * hidden, s=0.2),
        "hx": draw(batch, hidden, s=0.5),
        "cx": draw(batch, hidden, s=0.5),
        "grad_output": draw(steps, batch, hidden, s=1.0),
        "grad_hy": draw(batch, hidden, s=1.0),
        "grad_cy": draw(batch, hidden, s=1.0),
    }


def _forward_args(v: dict[str, torch.Tensor], reverse: bool, bias: bool) -> tuple[Any, ...]:
    hidden = v["w_hh"].shape[1]
    b_ih = v["b_ih"] if bias else torch.zeros_like(v["w_ih"])  # what torch passes without biases
    b_hh = v["b_hh"] if bias else torch.zeros_like(v["w_hh"])
    return (v["x"], v["w_ih"], v["w_hh"], b_ih, b_hh, v["hx"], v["cx"], reverse, [], LSTM_MODE, hidden, 1, bias, False, False, True)


def _backward_args(
    v: dict[str, torch.Tensor], reverse: bool, bias: bool, forward: tuple[torch.Tensor | None, ...], grads: str
) -> tuple[Any, ...]:
    """`grads` names the incoming gradients present: a subset of 'o' (output), 'h' (hy), 'c' (cy)."""
    x, w_ih, w_hh, b_ih, b_hh, hx, cx = _forward_args(v, reverse, bias)[:7]
    hidden = w_hh.shape[1]
    output, hy, cy, workspace = forward
    incoming = (
        v["grad_output"] if "o" in grads else None,
        v["grad_hy"] if "h" in grads else None,
        v["grad_cy"] if "c" in grads else None,
    )
    return (x, w_ih, w_hh, b_ih, b_hh, hx, cx, output, hy, cy, *incoming, reverse, LSTM_MODE, hidden, 1, bias, True, False, [], False, workspace)


CASES = [(reverse, bias, grads) for reverse in (False, True) for bias in (True, False) for grads in ("ohc", "o", "h", "c")]


# --- the operators --------------------------------------------------------------------------------


@given(
    shape=st.tuples(st.integers(1, 5), st.integers(1, 4), st.integers(1, 6), st.integers(1, 5)),
    seed=st.integers(0, 2**16),
    reverse=st.booleans(),
    bias=st.booleans(),
    grads=st.sampled_from(["ohc", "o", "h", "c", "oc", ""]),
)
@settings(max_examples=25, deadline=None)
def test_lstm_layer_fast_equals_reference(shape: tuple[int, int, int, int], seed: int, reverse: bool, bias: bool, grads: str) -> None:
    """Both operators, every output, over generated sizes (T, B, I, H), directions and incoming gradients."""
    steps, batch, features, hidden = shape
    v = _layer(steps, batch, features, hidden, seed)
    forward = _forward_args(v, reverse, bias)
    reference = run_op(aten.mkldnn_rnn_layer.default, *forward)
    fast = run_op(aten.mkldnn_rnn_layer.default, *forward, prims=FAST)
    assert all(same_bits(r, f) for r, f in zip(reference, fast, strict=True))
    backward = _backward_args(v, reverse, bias, reference, grads)
    reference_grads = run_op(aten.mkldnn_rnn_layer_backward.default, *backward)
    fast_grads = run_op(aten.mkldnn_rnn_layer_backward.default, *backward, prims=FAST)
    assert len(reference_grads) == 7
    assert all(same_bits(r, f) for r, f in zip(reference_grads, fast_grads, strict=True))


def test_lstm_layer_fast_equals_reference_on_saturating_and_special_values() -> None:
    """Pre-activations far beyond the sigmoid's and tanh's saturation (exp overflows to inf), with an
    infinity and a NaN in the input: both backends agree, NaNs come out canonical."""
    v = _layer(steps=3, batch=4, features=5, hidden=3, seed=7, scale=60.0)
    v["x"][0, 1, 2] = float("inf")
    v["x"][1, 2, 0] = float("nan")
    forward = _forward_args(v, False, True)
    reference = run_op(aten.mkldnn_rnn_layer.default, *forward)
    fast = run_op(aten.mkldnn_rnn_layer.default, *forward, prims=FAST)
    assert all(same_bits(r, f) for r, f in zip(reference, fast, strict=True))
    output = reference[0]
    assert output is not None and bool(output.isnan().any()) and bool(output.isfinite().any())
    nan_bits = output.contiguous().view(torch.int32)[output.isnan()]
    assert bool((nan_bits == 0x7FC00000).all())
    backward = _backward_args(v, False, True, reference, "ohc")
    reference_grads = run_op(aten.mkldnn_rnn_layer_backward.default, *backward)
    fast_grads = run_op(aten.mkldnn_rnn_layer_backward.default, *backward, prims=FAST)
    assert all(same_bits(r, f) for r, f in zip(reference_grads, fast_grads, strict=True))


@pytest.mark.parametrize(("reverse", "bias", "grads"), CASES)
def test_lstm_layer_is_close_to_torchs_kernels(reverse: bool, bias: bool, grads: str) -> None:
    """Same outputs, shapes and dtypes as torch's oneDNN kernels, within float32 rounding; the
    workspace is empty (as torch's meta kernel describes it)."""
    v = _layer(steps=5, batch=3, features=4, hidden=7, seed=11 + len(grads))
    forward = _forward_args(v, reverse, bias)
    mine = run_op(aten.mkldnn_rnn_layer.default, *forward, prims=FAST)
    theirs = aten.mkldnn_rnn_layer.default(*forward)
    for m, t in zip(mine[:3], theirs[:3], strict=True):
        assert m is not None and m.shape == t.shape and m.dtype == t.dtype
        torch.testing.assert_close(m, t, rtol=1e-5, atol=1e-6)
    workspace = mine[3]
    assert workspace is not None and workspace.dtype == torch.uint8 and workspace.shape == (0,)
    mine_grads = run_op(aten.mkldnn_rnn_layer_backward.default, *_backward_args(v, reverse, bias, mine, grads), prims=FAST)
    their_grads = aten.mkldnn_rnn_layer_backward.default(*_backward_args(v, reverse, bias, theirs, grads))
    for m, t in zip(mine_grads, their_grads, strict=True):
        assert m is not None and m.shape == t.shape and m.dtype == t.dtype
        torch.testing.assert_close(m, t, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("bias", [True, False])
def test_lstm_layer_outputs_have_the_layout_of_torchs_meta_kernels(bias: bool) -> None:
    """A skeleton records what the meta kernels return (dtype and shape of every output, the empty
    uint8 workspace included): the definitions must return the same."""
    v = _layer(steps=3, batch=2, features=4, hidden=5, seed=1)
    forward = _forward_args(v, False, bias)
    mine = run_op(aten.mkldnn_rnn_layer.default, *forward, prims=FAST)
    meta = aten.mkldnn_rnn_layer.default(*(a.to("meta") if isinstance(a, torch.Tensor) else a for a in forward))
    backward = _backward_args(v, False, bias, mine, "o")
    mine_grads = run_op(aten.mkldnn_rnn_layer_backward.default, *backward, prims=FAST)
    meta_grads = aten.mkldnn_rnn_layer_backward.default(*(a.to("meta") if isinstance(a, torch.Tensor) else a for a in backward))
    for m, t in zip((*mine, *mine_grads), (*meta, *meta_grads), strict=True):
        assert m is not None and (m.dtype, m.shape) == (t.dtype, t.shape)
        assert m.is_contiguous()


def test_one_sequence_alone_equals_the_same_sequence_inside_a_batch() -> None:
    """Outputs, final states and the gradients of input and initial state of sequence b do not
    depend on the batch's other sequences (the weight gradients sum over the batch, so they do)."""
    v = _layer(steps=6, batch=5, features=4, hidden=5, seed=3)
    for reverse in (False, True):
        batched = run_op(aten.mkldnn_rnn_layer.default, *_forward_args(v, reverse, True), prims=FAST)
        batched_grads = run_op(aten.mkldnn_rnn_layer_backward.default, *_backward_args(v, reverse, True, batched, "ohc"), prims=FAST)
        for b in (0, 3):
            alone_v = dict(v)
            for key in ("x", "grad_output"):
                alone_v[key] = v[key][:, b : b + 1].clone()
            for key in ("hx", "cx", "grad_hy", "grad_cy"):
                alone_v[key] = v[key][b : b + 1].clone()
            alone = run_op(aten.mkldnn_rnn_layer.default, *_forward_args(alone_v, reverse, True), prims=FAST)
            alone_grads = run_op(aten.mkldnn_rnn_layer_backward.default, *_backward_args(alone_v, reverse, True, alone, "ohc"), prims=FAST)
            output, hy, cy = batched[:3]
            assert output is not None and hy is not None and cy is not None
            assert same_bits(output[:, b : b + 1].contiguous(), alone[0])
            assert same_bits(hy[b : b + 1].contiguous(), alone[1])
            assert same_bits(cy[b : b + 1].contiguous(), alone[2])
            grad_input, grad_hx, grad_cx = batched_grads[0], batched_grads[5], batched_grads[6]
            assert grad_input is not None and grad_hx is not None and grad_cx is not None
            assert same_bits(grad_input[:, b : b + 1].contiguous(), alone_grads[0])
            assert same_bits(grad_hx[b : b + 1].contiguous(), alone_grads[5])
            assert same_bits(grad_cx[b : b + 1].contiguous(), alone_grads[6])


def _relaid(t: torch.Tensor) -> torch.Tensor:
    """The same values in another memory layout (dimensions reversed in memory)."""
    order = list(range(t.dim()))[::-1]
    return t.permute(order).contiguous().permute(order)


def test_lstm_layer_bits_do_not_depend_on_memory_layout() -> None:
    v = _layer(steps=4, batch=3, features=5, hidden=4, seed=9)
    relaid = {key: _relaid(value) for key, value in v.items()}
    assert not relaid["x"].is_contiguous()

    def run(values: dict[str, torch.Tensor]) -> tuple[torch.Tensor | None, ...]:
        call = canonicalize_call(aten.mkldnn_rnn_layer.default, _forward_args(values, True, True), {})
        forward = execute(call.op, call.args, call.inputs, FAST)  # inputs as laid out, not copied
        backward = canonicalize_call(aten.mkldnn_rnn_layer_backward.default, _backward_args(values, True, True, forward, "ohc"), {})
        return forward + execute(backward.op, backward.args, backward.inputs, FAST)

    assert all(same_bits(a, b) for a, b in zip(run(v), run(relaid), strict=True))


def test_float64_lstm_layers_are_defined_and_gru_mode_is_not() -> None:
    v = _layer(steps=2, batch=2, features=3, hidden=2, seed=0)
    wide = {key: value.double() for key, value in v.items()}
    (double, *_) = run_op(aten.mkldnn_rnn_layer.default, *_forward_args(wide, False, True))
    (single, *_) = run_op(aten.mkldnn_rnn_layer.default, *_forward_args(v, False, True))
    assert double is not None and single is not None and double.dtype == torch.float64
    torch.testing.assert_close(double.float(), single, rtol=1e-5, atol=1e-6)
    gru_mode = list(_forward_args(v, False, True))
    gru_mode[9] = 3
    with pytest.raises(UnsupportedOperator, match="mode 3"):
        run_op(aten.mkldnn_rnn_layer.default, *gru_mode)


@pytest.mark.parametrize(
    "config",
    [
        {"num_layers": 2, "bidirectional": True, "batch_first": True},
        {"num_layers": 1, "bias": False},
        {"num_layers": 2, "dropout": 0.5, "batch_first": False},
        {"num_layers": 2, "proj_size": 4},
    ],
    ids=["two-layers-bidirectional-batch-first", "no-bias", "dropout-eval", "projections-decomposed"],
)
@pytest.mark.filterwarnings("ignore:LSTM with projections is not supported with oneDNN")
def test_nn_lstm_in_the_mode_is_close_to_torch_forward_and_backward(config: dict[str, Any]) -> None:
    """The whole module (layers, directions, layouts, initial states given) under the reproducible mode
    against torch's own forward and autograd backward. With projections torch does not call the
    oneDNN layer but decomposes the cell (sigmoid_, tanh, mm, …): those operators must be defined too."""
    torch.manual_seed(0)
    lstm = nn.LSTM(5, 6, **config)
    if "dropout" in config:
        lstm.eval()  # torch's dropout masks come from its own generator: compared without them
    layers = lstm.num_layers * (2 if lstm.bidirectional else 1)
    x = torch.randn(3, 7, 5, requires_grad=True)  # [B, T, I] when batch_first, else [T, B, I]
    batch = 3 if lstm.batch_first else 7
    h0 = torch.randn(layers, batch, lstm.proj_size or 6, requires_grad=True)
    c0 = torch.randn(layers, batch, 6, requires_grad=True)
    leaves = [x, h0, c0, *lstm.parameters()]

    def forward_backward() -> list[torch.Tensor]:
        y, (h, c) = lstm(x, (h0, c0))
        loss = y.pow(2).mean() + (h * 0.5).sum() + (c * 0.25).sum()
        return [y.detach(), h.detach(), c.detach(), *torch.autograd.grad(loss, leaves)]

    expected = forward_backward()
    with ReproducibleMode(RngContext(0, 0), lambda device: FAST):
        got = forward_backward()
    for g, e in zip(got, expected, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-5)


# --- a recurrent language model trains reproducibly ----------------------------------------------

VOCAB, WIDTH, HIDDEN = 11, 6, 8  # tokens, embedding width, recurrent width
BATCH, SEQUENCE = 3, 5


class RecurrentLM(nn.Module):
    """Embedding → LSTM (2 layers, bidirectional) → GRU → Linear: next-token logits [B, T, VOCAB].
    Without the GRU (`gru=False`) the LSTM's output goes to the head directly."""

    def __init__(self, gru: bool = True) -> None:
        super().__init__()
        self.embed = nn.Embedding(VOCAB, WIDTH)
        self.lstm = nn.LSTM(WIDTH, HIDDEN, num_layers=2, bidirectional=True, batch_first=True)
        self.gru = nn.GRU(2 * HIDDEN, HIDDEN, batch_first=True) if gru else None
        self.head = nn.Linear(HIDDEN if gru else 2 * HIDDEN, VOCAB)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h, _ = self.lstm(self.embed(tokens))  # [B, T, 2H]
        if self.gru is not None:
            h, _ = self.gru(h)  # [B, T, H]
        return self.head(h)


def _tokens() -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(5)
    tokens = torch.randint(0, VOCAB, (BATCH, SEQUENCE + 1), generator=gen)
    return tokens[:, :-1].contiguous(), tokens[:, 1:].contiguous()


def _lm_step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> None:
    """One step as a Session runs it: recurrent modules through the protocol's cell math."""
    with protocol_rnn():
        loss = F.cross_entropy(model(x).reshape(-1, VOCAB), y.reshape(-1))
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _sgd(model: nn.Module) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9, foreach=False)


def _train_lm(threads: int, steps: int = 2) -> list[bytes]:
    """Digests of the parameters and momentum buffers after `steps` reproducible steps."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        model = RecurrentLM()
        optimizer = _sgd(model)
        x, y = _tokens()
        for t in range(steps):
            with ReproducibleMode(RngContext(0, t), lambda device: FAST):
                _lm_step(model, optimizer, x, y)
        buffers = [v for entry in optimizer.state.values() for v in entry.values() if isinstance(v, torch.Tensor)]
        return [compute_digest(p.detach()) for p in [*model.state_dict().values(), *buffers]]
    finally:
        torch.set_num_threads(previous)


def test_recurrent_language_model_trains_with_the_same_bits_at_one_and_two_threads() -> None:
    one = _train_lm(threads=1)
    assert one == _train_lm(threads=2)
    torch.manual_seed(0)
    initial = [compute_digest(p) for p in RecurrentLM().state_dict().values()]
    trained = one[: len(initial)]
    assert all(a != b for a, b in zip(trained, initial, strict=True))  # every parameter was trained


def _traced_lm_step(skeleton: bool, gru: bool) -> tuple[list[TraceNode], dict[str, Root], dict[bytes, torch.Tensor], list[str]]:
    """Step 1 of the language model (after one untraced step, so SGD has momentum), recorded."""
    torch.manual_seed(0)
    model = RecurrentLM(gru)
    optimizer = _sgd(model)
    x, y = _tokens()
    with ReproducibleMode(RngContext(0, 0), lambda device: FAST):
        _lm_step(model, optimizer, x, y)
    if skeleton:
        meta_model = copy.deepcopy(model).to("meta")
        meta_optimizer = _sgd(meta_model)
        meta_optimizer.load_state_dict(optimizer.state_dict())
        model, optimizer, x, y = meta_model, meta_optimizer, x.to("meta"), y.to("meta")
    names_of = {id(p): n for n, p in model.named_parameters()}
    state: dict[str, torch.Tensor] = {f"param/{n}": p for n, p in model.named_parameters()}
    for param, entry in optimizer.state.items():
        state.update({f"optim/{names_of[id(param)]}/{k}": v for k, v in entry.items() if isinstance(v, torch.Tensor)})
    state.update({"data/x": x, "data/y": y})
    names = sorted(state, key=str.encode)
    digests = {} if skeleton else {name: compute_digest(state[name]) for name in names}
    recorder = Recorder(skeleton=skeleton, keep_tensors=not skeleton)
    recorder.bind_state(names, state)
    with ReproducibleMode(RngContext(0, 1), lambda device: FAST, recorder=recorder):
        _lm_step(model, optimizer, x, y)
    return recorder.nodes, digests, recorder.tensors, names


@pytest.mark.parametrize("gru", [False, True], ids=["lstm", "lstm-gru"])
def test_every_node_of_a_recurrent_step_re_executes_from_the_reference(gru: bool) -> None:
    """The cell math splits gate products into chunks: views of one storage that share no element,
    which the recorder keeps valid across in-place writes to their neighbours."""
    nodes, state_digests, tensors, names = _traced_lm_step(skeleton=False, gru=gru)
    ops = {node.structure.op for node in nodes}
    assert "aten::mkldnn_rnn_layer.default" not in ops and "aten::sigmoid.default" in ops
    assert_nodes_re_execute(nodes, [state_digests[name] for name in names], tensors)


def test_skeleton_of_an_lstm_step_equals_its_real_trace() -> None:
    """The skeleton on meta tensors has the real trace's structure (the empty workspace included)."""
    real, _, _, _ = _traced_lm_step(skeleton=False, gru=False)
    meta, _, _, _ = _traced_lm_step(skeleton=True, gru=False)
    assert [n.structure for n in meta] == [n.structure for n in real]
