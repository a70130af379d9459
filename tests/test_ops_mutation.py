"""Operators that write arguments: foreach lists, batch norm's running statistics, `out=`.

Each foreach element equals its single-tensor operator bit for bit; batch norm is close to torch,
fast == reference, and independent of memory layout; a BatchNorm model trains under every optimizer
in both forms with the same bits at 1 and 2 threads; and every node of a traced step re-executes
from the reference to its recorded digests."""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from protocol.encoding import compute_digest
from protocol.ops import UnsupportedOperator, execute, is_supported
from protocol.ops.canonical import canonicalize_call, get_mutation
from protocol.ops.prims import REFERENCE, Primitives
from protocol.recording import Recorder, ReproducibleMode, RngContext
from protocol.trace import TraceNode
from protocol.types import Root
from prover.fast import FAST
from tests.referee_replay import assert_nodes_re_execute

aten = torch.ops.aten

OTHERS = frozenset(
    f"aten::{name}"
    for name in ("maximum.default", "minimum.default", "reciprocal.default", "linalg_vector_norm.default", "clamp.default", "sign.default")
)
"""Operators defined in protocol/ops/activations.py by someone else: a test that needs one before it
lands is skipped, naming it."""


def _skip_if_other(error: UnsupportedOperator) -> None:
    if error.op in OTHERS:
        pytest.skip(f"needs {error.op} (protocol/ops/activations.py)")
    raise error


def _same(a: torch.Tensor | None, b: torch.Tensor | None) -> bool:
    if a is None or b is None:
        return a is b
    return a.dtype == b.dtype and a.shape == b.shape and compute_digest(a) == compute_digest(b)


def _run(func: Any, *args: Any, prims: Primitives = REFERENCE, **kwargs: Any) -> tuple[torch.Tensor | None, ...]:
    """`execute` on copies of the call's inputs (the referee owns the tensors it writes)."""
    call = canonicalize_call(func, args, kwargs)
    return execute(call.op, call.args, [t.clone() for t in call.inputs], prims)


# --- foreach == the single-tensor operator on each element ------------------------------------------

G = torch.Generator().manual_seed(0)
SHAPES = [(3, 5), (7,), (), (2, 1, 4)]
XS = [torch.randn(s, generator=G) for s in SHAPES]
YS = [torch.randn(s, generator=G) for s in SHAPES]
ZS = [torch.rand(s, generator=G) + 0.5 for s in SHAPES]  # positive: sqrt and division stay finite
SCALARS = [0.1, -3.0, 1.0, 1e-3]
ONE = torch.tensor(0.7)

Single = Callable[[int], tuple[Any, tuple[Any, ...], dict[str, Any]]]
FOREACH_CASES: list[tuple[str, Any, tuple[Any, ...], dict[str, Any], Single]] = [
    ("add.List", aten._foreach_add.List, (XS, YS), {"alpha": -0.3}, lambda i: (aten.add.Tensor, (XS[i], YS[i]), {"alpha": -0.3})),
    ("add_.List", aten._foreach_add_.List, (XS, YS), {"alpha": 2.0}, lambda i: (aten.add_.Tensor, (XS[i], YS[i]), {"alpha": 2.0})),
    ("add_.Scalar", aten._foreach_add_.Scalar, (XS, 1e-8), {}, lambda i: (aten.add_.Scalar, (XS[i], 1e-8), {})),
    ("add_.ScalarList", aten._foreach_add_.ScalarList, (XS, SCALARS), {}, lambda i: (aten.add.Scalar, (XS[i], SCALARS[i]), {})),
    ("add_.Tensor", aten._foreach_add_.Tensor, (XS, ONE), {"alpha": 1.0}, lambda i: (aten.add_.Tensor, (XS[i], ONE), {})),
    ("sub.List", aten._foreach_sub.List, (XS, YS), {}, lambda i: (aten.sub.Tensor, (XS[i], YS[i]), {})),
    ("mul_.Scalar", aten._foreach_mul_.Scalar, (XS, 0.9), {}, lambda i: (aten.mul_.Scalar, (XS[i], 0.9), {})),
    ("mul_.Tensor", aten._foreach_mul_.Tensor, (XS, ONE), {}, lambda i: (aten.mul_.Tensor, (XS[i], ONE), {})),
    ("mul.ScalarList", aten._foreach_mul.ScalarList, (XS, SCALARS), {}, lambda i: (aten.mul.Scalar, (XS[i], SCALARS[i]), {})),
    ("mul_.ScalarList", aten._foreach_mul_.ScalarList, (XS, SCALARS), {}, lambda i: (aten.mul.Scalar, (XS[i], SCALARS[i]), {})),
    ("div_.ScalarList", aten._foreach_div_.ScalarList, (XS, SCALARS), {}, lambda i: (aten.div_.Scalar, (XS[i], SCALARS[i]), {})),
    ("div_.List", aten._foreach_div_.List, (XS, ZS), {}, lambda i: (aten.div_.Tensor, (XS[i], ZS[i]), {})),
    ("sqrt", aten._foreach_sqrt.default, (ZS,), {}, lambda i: (aten.sqrt.default, (ZS[i],), {})),
    ("sqrt_", aten._foreach_sqrt_.default, (ZS,), {}, lambda i: (aten.sqrt_.default, (ZS[i],), {})),
    ("neg", aten._foreach_neg.default, (XS,), {}, lambda i: (aten.neg.default, (XS[i],), {})),
    ("sign", aten._foreach_sign.default, (XS,), {}, lambda i: (aten.sign.default, (XS[i],), {})),
    ("zero_", aten._foreach_zero_.default, (XS,), {}, lambda i: (aten.zero_.default, (XS[i],), {})),
    ("lerp_.Scalar", aten._foreach_lerp_.Scalar, (XS, YS, 0.1), {}, lambda i: (aten.lerp_.Scalar, (XS[i], YS[i], 0.1), {})),
    ("lerp_.ScalarList", aten._foreach_lerp_.ScalarList, (XS, YS, SCALARS), {}, lambda i: (aten.lerp.Scalar, (XS[i], YS[i], SCALARS[i]), {})),
    ("addcmul.Scalar", aten._foreach_addcmul.Scalar, (XS, YS, ZS, -1.0), {}, lambda i: (aten.addcmul.default, (XS[i], YS[i], ZS[i]), {"value": -1.0})),
    ("addcmul_.Scalar", aten._foreach_addcmul_.Scalar, (XS, YS, YS, 0.001), {}, lambda i: (aten.addcmul_.default, (XS[i], YS[i], YS[i]), {"value": 0.001})),
    ("addcdiv_.Scalar", aten._foreach_addcdiv_.Scalar, (XS, YS, ZS, -0.01), {}, lambda i: (aten.addcdiv_.default, (XS[i], YS[i], ZS[i]), {"value": -0.01})),
    ("addcdiv_.ScalarList", aten._foreach_addcdiv_.ScalarList, (XS, YS, ZS, SCALARS), {}, lambda i: (aten.addcdiv_.default, (XS[i], YS[i], ZS[i]), {"value": SCALARS[i]})),
    ("addcdiv_.Tensor", aten._foreach_addcdiv_.Tensor, (XS, YS, ZS, torch.tensor(SCALARS)), {}, lambda i: (aten.addcdiv_.default, (XS[i], YS[i], ZS[i]), {"value": float(torch.tensor(SCALARS)[i])})),
    ("add.List_out", aten._foreach_add.List_out, (XS, YS), {"alpha": 0.5, "out": [torch.empty_like(x) for x in XS]}, lambda i: (aten.add.Tensor, (XS[i], YS[i]), {"alpha": 0.5})),
    ("addcmul.Tensor", aten._foreach_addcmul.Tensor, (XS, YS, ZS, torch.tensor(SCALARS)), {}, lambda i: (aten.addcmul.default, (XS[i], YS[i], ZS[i]), {"value": float(torch.tensor(SCALARS)[i])})),
    ("copy_", aten._foreach_copy_.default, (XS, YS), {}, lambda i: (aten.copy_.default, (XS[i], YS[i]), {})),
    ("maximum_.List", aten._foreach_maximum_.List, (XS, YS), {}, lambda i: (aten.maximum.default, (XS[i], YS[i]), {})),
    ("reciprocal_", aten._foreach_reciprocal_.default, (ZS,), {}, lambda i: (aten.reciprocal.default, (ZS[i],), {})),
    ("norm.Scalar", aten._foreach_norm.Scalar, (XS, 2), {}, lambda i: (aten.linalg_vector_norm.default, (XS[i], 2), {})),
]  # fmt: skip


@pytest.mark.parametrize(("label", "func", "args", "kwargs", "single"), FOREACH_CASES, ids=[case[0] for case in FOREACH_CASES])
def test_foreach_element_equals_the_single_tensor_operator(label: str, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], single: Single) -> None:
    try:
        for prims in (REFERENCE, FAST):
            outputs = _run(func, *args, prims=prims, **kwargs)
            assert len(outputs) == len(XS), label  # n outputs: the returned list, or self written
            for i, output in enumerate(outputs):
                single_func, single_args, single_kwargs = single(i)
                (expected,) = _run(single_func, *single_args, prims=prims, **single_kwargs)[:1]
                assert _same(output, expected), (label, i)
    except UnsupportedOperator as error:
        _skip_if_other(error)


def test_foreach_in_place_writes_every_element_under_the_mode() -> None:
    """Under the mode, `_foreach_addcdiv_` writes each tensor of `self` with the single operator's
    bits and records one node whose outputs are the n written tensors (the operator returns nothing)."""
    xs = [x.clone() for x in XS]
    recorder = Recorder()
    recorder.bind_state([f"x{i}" for i in range(len(xs))] + [f"y{i}" for i in range(4)] + [f"z{i}" for i in range(4)],
                        {**{f"x{i}": x for i, x in enumerate(xs)}, **{f"y{i}": y for i, y in enumerate(YS)}, **{f"z{i}": z for i, z in enumerate(ZS)}})  # fmt: skip
    with ReproducibleMode(RngContext(0, 0), lambda device: FAST, recorder=recorder):
        torch._foreach_addcdiv_(xs, YS, ZS, SCALARS)
        after = [x + 0 for x in xs]  # reads the written tensors: refs to the foreach node
    (node, *reads) = recorder.nodes
    assert len(node.structure.outputs) == len(xs) and [r.structure.inputs[0] for r in reads] == [("n", 0, i) for i in range(len(xs))]
    for i, x in enumerate(xs):
        (expected,) = _run(aten.addcdiv_.default, XS[i], YS[i], ZS[i], value=SCALARS[i])
        assert expected is not None and _same(x, expected) and _same(after[i], expected) and node.digests[i] == compute_digest(expected)


def test_mutation_rule_reads_written_arguments_from_the_schema() -> None:
    assert get_mutation("aten::add_.Tensor").self_only
    assert get_mutation("aten::add.Tensor").writes is False
    foreach = get_mutation("aten::_foreach_add_.List")
    assert foreach.returned == () and foreach.extra == ("self",)
    batch_norm = get_mutation("aten::native_batch_norm.default")  # the schema omits (a!): UNDECLARED_WRITES
    assert batch_norm.returned == (None, None, None) and batch_norm.extra == ("running_mean", "running_var")
    out = get_mutation("aten::maximum.out")
    assert out.returned == ("out",) and out.resizable == frozenset({"out"})


# --- batch norm ------------------------------------------------------------------------------------


def _bn_inputs(shape: tuple[int, ...], affine: bool = True, seed: int = 0) -> tuple[torch.Tensor, ...]:
    g = torch.Generator().manual_seed(seed)
    c = shape[1]
    x = torch.randn(shape, generator=g) * 3 + 1
    weight = torch.rand(c, generator=g) + 0.5 if affine else None
    bias = torch.randn(c, generator=g) if affine else None
    return x, weight, bias, torch.randn(c, generator=g) * 0.1, torch.rand(c, generator=g) + 0.5  # type: ignore[return-value]


@pytest.mark.parametrize("shape", [(6, 3), (4, 3, 5), (3, 4, 5, 5), (8, 2, 16, 16)])
@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("affine", [True, False])
def test_batch_norm_is_close_to_torch_and_fast_equals_reference(shape: tuple[int, ...], training: bool, affine: bool) -> None:
    x, weight, bias, running_mean, running_var = _bn_inputs(shape, affine)
    args = (x, weight, bias, running_mean, running_var, training, 0.1, 1e-5)
    ours = _run(aten.native_batch_norm.default, *args)
    assert len(ours) == 5  # out, save_mean, save_invstd, then the written running_mean, running_var
    assert all(_same(r, f) for r, f in zip(ours, _run(aten.native_batch_norm.default, *args, prims=FAST), strict=True))
    mean_t, var_t = running_mean.clone(), running_var.clone()
    theirs = aten.native_batch_norm.default(x, weight, bias, mean_t, var_t, training, 0.1, 1e-5)
    assert ours[0] is not None and ours[3] is not None and ours[4] is not None
    torch.testing.assert_close(ours[0], theirs[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(ours[3], mean_t, rtol=1e-5, atol=1e-6)  # the momentum update, unbiased variance
    torch.testing.assert_close(ours[4], var_t, rtol=1e-5, atol=1e-6)
    if training:
        torch.testing.assert_close(ours[1], theirs[1], rtol=1e-5, atol=1e-6)
        torch.testing.assert_close(ours[2], theirs[2], rtol=1e-5, atol=1e-5)
    else:
        assert _same(ours[3], running_mean) and _same(ours[4], running_var)  # eval leaves them unchanged
    grad = torch.randn(shape, generator=torch.Generator().manual_seed(9))
    save_mean, save_invstd = (ours[1], ours[2]) if training else (theirs[1], theirs[2])
    backward = (grad, x, weight, running_mean, running_var, ours[1], ours[2], training, 1e-5, [True, affine, affine])
    ours_b = _run(aten.native_batch_norm_backward.default, *backward)
    assert all(_same(r, f) for r, f in zip(ours_b, _run(aten.native_batch_norm_backward.default, *backward, prims=FAST), strict=True))
    theirs_b = aten.native_batch_norm_backward.default(grad, x, weight, running_mean, running_var, save_mean, save_invstd, training, 1e-5, [True, affine, affine])
    for o, t in zip(ours_b, theirs_b, strict=True):
        assert (o is None) == (t is None)
        if o is not None:
            torch.testing.assert_close(o, t, rtol=1e-4, atol=1e-4)


@given(st.data())
@settings(max_examples=20, deadline=None)
def test_batch_norm_fast_equals_reference_on_generated_inputs(data: st.DataObject) -> None:
    shape = tuple(data.draw(st.lists(st.integers(1, 7), min_size=2, max_size=4), label="shape"))
    numel = math.prod(shape)
    finite = st.floats(-1e3, 1e3, width=32) | st.sampled_from([0.0, -0.0, 1e-38, 3.0])
    x = torch.tensor(data.draw(st.lists(finite, min_size=numel, max_size=numel)), dtype=torch.float32).reshape(shape)
    _, weight, bias, running_mean, running_var = _bn_inputs(shape, affine=data.draw(st.booleans()))
    training = data.draw(st.booleans()) and numel // shape[1] > 1
    args = (x, weight, bias, running_mean, running_var, training, 0.1, 1e-5)
    forward = _run(aten.native_batch_norm.default, *args)
    assert all(_same(r, f) for r, f in zip(forward, _run(aten.native_batch_norm.default, *args, prims=FAST), strict=True))
    backward = (x.flip(0), x, weight, running_mean, running_var, forward[1], forward[2], training, 1e-5, [True, True, True])
    grads = _run(aten.native_batch_norm_backward.default, *backward)
    assert all(_same(r, f) for r, f in zip(grads, _run(aten.native_batch_norm_backward.default, *backward, prims=FAST), strict=True))


def test_batch_norm_bits_do_not_depend_on_memory_layout() -> None:
    x, weight, bias, running_mean, running_var = _bn_inputs((3, 4, 5, 5))
    channels_last = x.to(memory_format=torch.channels_last)
    grad = torch.randn(x.shape, generator=torch.Generator().manual_seed(3))
    for training in (True, False):
        plain = _run(aten.native_batch_norm.default, x, weight, bias, running_mean, running_var, training, 0.1, 1e-5, prims=FAST)
        other = _run(aten.native_batch_norm.default, channels_last, weight, bias, running_mean, running_var, training, 0.1, 1e-5, prims=FAST)
        assert all(_same(p, o) for p, o in zip(plain, other, strict=True))
        backward = [plain[1], plain[2], training, 1e-5, [True, True, True]]
        g_plain = _run(aten.native_batch_norm_backward.default, grad, x, weight, running_mean, running_var, *backward, prims=FAST)
        g_other = _run(aten.native_batch_norm_backward.default, grad.to(memory_format=torch.channels_last), channels_last,
                       weight, running_mean, running_var, *backward, prims=FAST)  # fmt: skip
        assert all(_same(p, o) for p, o in zip(g_plain, g_other, strict=True))


def test_batch_norm_legit_variants_agree_with_native_batch_norm() -> None:
    x, weight, bias, running_mean, running_var = _bn_inputs((4, 3, 5))
    native = _run(aten.native_batch_norm.default, x, weight, bias, running_mean, running_var, True, 0.1, 1e-5)
    legit = _run(aten._native_batch_norm_legit.default, x, weight, bias, running_mean, running_var, True, 0.1, 1e-5)
    assert all(_same(a, b) for a, b in zip(native, legit, strict=True))
    no_stats = _run(aten._native_batch_norm_legit.no_stats, x, weight, bias, True, 0.1, 1e-5)
    assert all(_same(a, b) for a, b in zip(native[:3], no_stats, strict=True))
    evaluation = _run(aten.native_batch_norm.default, x, weight, bias, running_mean, running_var, False, 0.1, 1e-5)
    no_training = _run(aten._native_batch_norm_legit_no_training.default, x, weight, bias, running_mean, running_var, 0.1, 1e-5)
    assert all(_same(a, b) for a, b in zip(evaluation[:3], no_training, strict=True))


def test_out_overload_writes_and_returns_out() -> None:
    x, y = XS[0], YS[0]
    out = torch.empty(0)
    try:
        (result,) = execute(*_canonical(aten.maximum.out, x, y, out=out))
        (expected,) = _run(aten.maximum.default, x, y)
    except UnsupportedOperator as error:
        _skip_if_other(error)
    assert _same(result, expected)


def _canonical(func: Any, *args: Any, **kwargs: Any) -> tuple[str, dict[str, Any], list[torch.Tensor]]:
    call = canonicalize_call(func, args, kwargs)
    return call.op, call.args, [t.clone() for t in call.inputs]


# --- training: every optimizer, both forms ----------------------------------------------------------

OPTIMIZERS: dict[str, Callable[[Any, bool], torch.optim.Optimizer]] = {
    "sgd": lambda p, foreach: torch.optim.SGD(p, lr=0.1, momentum=0.9, nesterov=True, weight_decay=1e-2, foreach=foreach),
    "adam": lambda p, foreach: torch.optim.Adam(p, lr=1e-2, amsgrad=True, weight_decay=1e-2, foreach=foreach),
    "adamw": lambda p, foreach: torch.optim.AdamW(p, lr=1e-2, foreach=foreach),
    "rmsprop": lambda p, foreach: torch.optim.RMSprop(p, lr=1e-2, centered=True, momentum=0.9, weight_decay=1e-2, foreach=foreach),
    "adagrad": lambda p, foreach: torch.optim.Adagrad(p, lr=1e-2, weight_decay=1e-2, foreach=foreach),
    "nadam": lambda p, foreach: torch.optim.NAdam(p, lr=1e-2, weight_decay=1e-2, foreach=foreach),
    "radam": lambda p, foreach: torch.optim.RAdam(p, lr=1e-2, weight_decay=1e-2, foreach=foreach),
}


class SmallNet(nn.Module):
    """[B, 2, 6, 6] images → 3 classes, through a BatchNorm2d and a BatchNorm1d."""

    def __init__(self) -> None:
        super().__init__()
        self.bn_in = nn.BatchNorm2d(2)
        self.fc = nn.Linear(72, 8)
        self.bn = nn.BatchNorm1d(8)
        self.head = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.bn_in(x).flatten(1)  # [B, 72]
        return self.head(F.relu(self.bn(self.fc(h))))


def _data() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    return torch.randn(6, 2, 6, 6, generator=g), torch.tensor([0, 1, 2, 1, 0, 2])


def _step(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, clip: bool | None) -> None:
    model.train()
    optimizer.zero_grad(set_to_none=True)
    F.cross_entropy(model(x), y).backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), 0.5, foreach=clip)
    optimizer.step()


def _train(optimizer_name: str, foreach: bool, threads: int, clip: bool | None = None, steps: int = 3) -> list[bytes]:
    """Digests of the model's parameters, buffers and optimizer state after `steps` steps."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(0)
        model = SmallNet()
        optimizer = OPTIMIZERS[optimizer_name](model.parameters(), foreach)
        x, y = _data()
        for t in range(steps):
            with ReproducibleMode(RngContext(0, t), lambda device: FAST):
                _step(model, optimizer, x, y, clip)
        state = [v for entry in optimizer.state.values() for v in entry.values() if isinstance(v, torch.Tensor)]
        return [compute_digest(t.detach()) for t in [*model.state_dict().values(), *state]]
    finally:
        torch.set_num_threads(previous)


@pytest.mark.parametrize("foreach", [False, True], ids=["for-loop", "foreach"])
@pytest.mark.parametrize("optimizer", list(OPTIMIZERS))
def test_batch_norm_model_trains_with_the_same_bits_at_one_and_two_threads(optimizer: str, foreach: bool) -> None:
    try:
        one = _train(optimizer, foreach, threads=1)
    except UnsupportedOperator as error:
        _skip_if_other(error)
    assert one == _train(optimizer, foreach, threads=2)


@pytest.mark.parametrize("foreach", [False, True], ids=["for-loop", "foreach"])
def test_clip_grad_norm_trains_with_the_same_bits_at_one_and_two_threads(foreach: bool) -> None:
    try:
        one = _train("adamw", True, threads=1, clip=foreach)
    except UnsupportedOperator as error:
        _skip_if_other(error)
    assert one == _train("adamw", True, threads=2, clip=foreach)


def test_optimizers_whose_torch_forms_compute_alike_give_equal_bits_in_both_forms() -> None:
    """Where torch's foreach and for-loop algorithms round the same operations (SGD, AdamW, RMSprop),
    the two forms give the same bits, since each foreach element is the single-tensor operator.
    (Adagrad, NAdam and RAdam's two forms order their roundings differently in torch itself.)"""
    for name in ("sgd", "adamw", "rmsprop"):
        assert _train(name, False, threads=1) == _train(name, True, threads=1), name


# --- a traced step re-executes node by node -------------------------------------------------------


def _state(model: nn.Module, optimizer: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor) -> dict[str, torch.Tensor]:
    tensors: dict[str, torch.Tensor] = {f"param/{n}": p for n, p in model.named_parameters()}
    tensors.update({f"buffer/{n}": b for n, b in model.named_buffers()})
    names = {id(p): n for n, p in model.named_parameters()}
    for param, entry in optimizer.state.items():
        tensors.update({f"optim/{names[id(param)]}/{k}": v for k, v in entry.items() if isinstance(v, torch.Tensor)})
    tensors.update({"data/x": x, "data/y": y})
    return tensors


def _traced_step(
    optimizer_name: str, foreach: bool, skeleton: bool = False, clip: bool | None = None, defer: bool = False
) -> tuple[list[TraceNode], dict[str, Root], dict[bytes, torch.Tensor], list[str]]:
    """Step 1 (after one untraced step, so the optimizer has state) of SmallNet, recorded."""
    torch.manual_seed(0)
    model = SmallNet()
    optimizer = OPTIMIZERS[optimizer_name](model.parameters(), foreach)
    x, y = _data()
    with ReproducibleMode(RngContext(0, 0), lambda device: FAST):
        _step(model, optimizer, x, y, None)
    if skeleton:
        meta_model = copy.deepcopy(model).to("meta")
        meta_optimizer = OPTIMIZERS[optimizer_name](meta_model.parameters(), foreach)
        meta_optimizer.load_state_dict(optimizer.state_dict())
        for real_param, meta_param in zip(model.parameters(), meta_model.parameters(), strict=True):
            for key, value in optimizer.state[real_param].items():  # one-element tensors stay real (.item() reads)
                if isinstance(value, torch.Tensor) and value.numel() == 1:
                    meta_optimizer.state[meta_param][key] = value.clone()
        model, optimizer, x, y = meta_model, meta_optimizer, x.to("meta"), y.to("meta")
    state = _state(model, optimizer, x, y)
    names = sorted(state, key=str.encode)
    digests = {} if skeleton else {name: compute_digest(state[name]) for name in names}
    recorder = Recorder(skeleton=skeleton, keep_tensors=not skeleton, defer=defer)
    recorder.bind_state(names, state)
    with ReproducibleMode(RngContext(0, 1), lambda device: FAST, recorder=recorder):
        _step(model, optimizer, x, y, clip)
    recorder.finish()
    return recorder.nodes, digests, recorder.tensors, names


TRACED = [(name, foreach, None) for name in OPTIMIZERS for foreach in (False, True)] + [("adamw", True, False), ("sgd", False, True)]


@pytest.mark.parametrize(("optimizer", "foreach", "clip"), TRACED, ids=[f"{o}-{'foreach' if f else 'for-loop'}-clip={c}" for o, f, c in TRACED])
def test_every_node_of_a_batch_norm_step_re_executes_from_the_reference(optimizer: str, foreach: bool, clip: bool | None) -> None:
    """What the referee does, for every node (mirrors tests/test_ops.py for MLP steps): written
    arguments are outputs, so later reads and the referee see their new values."""
    try:
        nodes, state_digests, tensors, names = _traced_step(optimizer, foreach, clip=clip)
    except UnsupportedOperator as error:
        _skip_if_other(error)
    structures = [node.structure for node in nodes]
    ops = {s.op for s in structures}
    assert "aten::native_batch_norm.default" in ops and "aten::native_batch_norm_backward.default" in ops
    assert not foreach or any(op.startswith("aten::_foreach_") for op in ops)
    assert_nodes_re_execute(nodes, [state_digests[name] for name in names], tensors)
    batch_norm = next(n for n in nodes if n.structure.op == "aten::native_batch_norm.default")
    assert len(batch_norm.structure.outputs) == 5


@pytest.mark.parametrize(("optimizer", "foreach"), [("adamw", True), ("rmsprop", False)])
def test_deferred_digests_are_taken_before_every_write(optimizer: str, foreach: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """With every output's digest deferred to the step's end, the writes that follow (the optimizer's
    foreach lists, batch norm's running statistics) must first have the digests of what they overwrite
    computed: the trace and the kept tensors are those of hashing each output at once."""
    import protocol.recording

    at_once, _, kept, _ = _traced_step(optimizer, foreach)
    monkeypatch.setattr(protocol.recording, "DEFERRED_HASH_BYTES", 0)
    monkeypatch.setattr(protocol.recording, "POOL_BYTES", 0)  # the hashing threads, whatever the size
    deferred, _, kept_deferred, _ = _traced_step(optimizer, foreach, defer=True)
    assert deferred == at_once
    assert kept.keys() == kept_deferred.keys()
    assert all(torch.equal(kept[digest], kept_deferred[digest]) for digest in kept)


@pytest.mark.parametrize("foreach", [False, True], ids=["for-loop", "foreach"])
@pytest.mark.parametrize("optimizer", ["sgd", "adamw", "rmsprop", "nadam"])
def test_skeleton_on_meta_tensors_equals_the_real_trace(optimizer: str, foreach: bool) -> None:
    """The meta path handles written arguments (foreach lists, running statistics) as the real one."""
    real, _, _, _ = _traced_step(optimizer, foreach)
    meta, _, _, _ = _traced_step(optimizer, foreach, skeleton=True)
    assert [n.structure for n in meta] == [n.structure for n in real]


def test_supported_by_the_table() -> None:
    for name in ("_foreach_add_.List", "_foreach_norm.Scalar", "_foreach_lerp_.Scalar", "_foreach_addcdiv_.Tensor", "_foreach_add.List_out", "maximum.out"):
        assert is_supported(f"aten::{name}"), name
