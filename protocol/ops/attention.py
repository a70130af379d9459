"""Operator definitions: scaled dot-product attention (see protocol.ops.table for the conventions).

How `F.scaled_dot_product_attention` reaches aten on CPU (torch 2.13, float32):

- plain, `is_causal`, `scale`, a bool or float `attn_mask` that needs no gradient, `enable_gqa`:
  `_scaled_dot_product_flash_attention_for_cpu` and its `_backward` (a bool mask is first turned
  into a float one, 0 where kept and -inf where masked, by `where`);
- `dropout_p > 0`, a mask that requires grad, inputs that are not 4-D, or a last dim whose stride is
  not 1: the math decomposition, made of ordinary operators (`mul.Scalar`, `bmm`, `add.Tensor`,
  `_safe_softmax`, `bernoulli_` for dropout — pinpoint's RANDOM stream —, `tril` for a causal mask,
  `unsqueeze`/`expand`/`clone`/`view` for grouped-query heads, `_softmax_backward_data`, …);
- `repeat_interleave(r, dim=1)` with an int count (Llama's `repeat_kv`) decomposes the same way;
- on meta tensors (skeletons) SDPA always takes the math route, even where real tensors take flash.

Not covered here: rotary embeddings in complex form (`view_as_complex`, complex `mul`) and
`repeat_interleave` with a tensor of counts (its backward is `index_add`, which accumulates in the
kernel's order). The real-valued rotary form (`x * cos + rotate_half(x) * sin`) uses defined ops only.

The flash operators are defined as *exactly the math decomposition's sequence*, so the bits of an
attention do not depend on which route torch picks — and torch picks by strides, among others.
For one batch element and query head h (KV head g = h // r, r = H / Hk; q [L,E], k [S,E], v [S,Ev]):

    c    = sqrt(|scale|) in float64, scale = the argument or 1/sqrt(E) (float64, as torch computes it)
    q'   = fl(q * float32(c)), negated factor when scale < 0;   k' = fl(k * float32(c))
    s    = bmm(q', k'^T)                      [L,S], the canonical matmul order (ascending over E)
    s    = fl(s + mask)                       with attn_mask (float32, broadcast to [B,H,L,S])
    s    = fl(s + causal)                     with is_causal: causal[i,j] = 0 if j <= i else -inf
    m    = rowmax(s);  e = exp(fl(s - m));  Σ = rowsum(e);  p = fl(e / Σ)     (table's `_softmax`)
    p    = +0.0 on every row with m == -inf (all keys masked), as torch's `_safe_softmax`
    out  = bmm(p, v)                          [L,Ev]
    lse  = fl(m + log(Σ)); -inf on a fully masked row (log of an empty sum; torch's kernel gives 0)

The backward reads q, k, v (and the mask) and recomputes p bit for bit; `out` and `logsumexp` are
not read, so a wrong `logsumexp` cannot change a gradient:

    dv_h = bmm(p^T, dO)                       [S,Ev], ascending over queries
    dp   = bmm(dO, v^T)                       [L,S], ascending over Ev
    ds   = fl(p * fl(dp - rowsum(fl(dp * p))))                  (table's `_softmax_backward_data`)
    dq   = fl(bmm(ds, k') * float32(±c));     dk_h = fl(bmm(ds^T, q') * float32(c))
    GQA: dk[g], dv[g] = rowsum over the r query heads of group g in head order (pairwise, as the
         `sum.dim_IntList` that ends the `repeat_interleave` route)

Fully masked rows therefore give out = 0 and zero gradients. Every NaN leaving an operator is the
canonical NaN. Outputs take the layouts of torch's kernels (`out` like `empty_like(query)`,
`logsumexp` and the gradients [B,T,H,·] in memory), so traces and skeletons agree on strides.
Dropout inside the flash operator is not defined: torch's CPU kernel rejects it too, and SDPA sends
dropout to the math route, where it comes from pinpoint's `bernoulli_`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from protocol.ops.prims import Primitives
from protocol.ops.table import (
    OPS,
    OpKind,
    Outputs,
    UnsupportedOperator,
    _last_dim_rows,
    _register,
    _require_float,
    _scalar,
    defines,
)
from protocol.semantics.floats import canonicalize_nan

Tensor = torch.Tensor
Compute = Callable[[Primitives, dict[str, Any]], Outputs]

FLASH = "aten::_scaled_dot_product_flash_attention_for_cpu"
FLASH_BACKWARD = "aten::_scaled_dot_product_flash_attention_for_cpu_backward"


def _defines_new(*names: str) -> Callable[[Compute], Compute]:
    """`defines`, refusing a name another module already registered (registering would replace it)."""
    taken = [name for name in names if f"aten::{name}" in OPS]
    if taken:
        raise RuntimeError(f"operators defined twice: {taken}")
    return defines(*names)


# --- native claims: masks built for attention ---------------------------------------------------------

NATIVE_MASK_OPS = "tril.default triu.default"
"""Keep or zero each element by its position: no arithmetic, exact by construction (causal masks;
`tril` is on SDPA's math route with is_causal). Pinned against numpy in tests/test_ops_attention."""

for _short in NATIVE_MASK_OPS.split():
    if f"aten::{_short}" not in OPS:
        _register(f"aten::{_short}", OpKind.NATIVE)


# --- the shared sequence --------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Shapes:
    """B batch, H query heads, Hk key/value heads, r = H / Hk, L queries, S keys, E and Ev head dims."""

    B: int
    H: int
    Hk: int
    L: int
    S: int
    E: int
    Ev: int

    @property
    def r(self) -> int:
        return self.H // self.Hk


def _get_shapes(name: str, query: Tensor, key: Tensor, value: Tensor) -> _Shapes:
    """Check the [B,H,L,E], [B,Hk,S,E], [B,Hk,S,Ev] contract (H a multiple of Hk) and read the sizes."""
    _require_float(name, query, key, value)
    if query.dim() != 4 or key.dim() != 4 or value.dim() != 4:
        raise UnsupportedOperator(name, "query, key and value must be 4-D [B, heads, T, dim]")
    B, H, L, E = query.shape
    Bk, Hk, S, Ek = key.shape
    if Bk != B or Ek != E or tuple(value.shape[:3]) != (B, Hk, S) or Hk == 0 or H % Hk != 0:
        raise UnsupportedOperator(name, f"shapes {tuple(query.shape)}, {tuple(key.shape)}, {tuple(value.shape)}")
    return _Shapes(B, H, Hk, L, S, E, value.shape[3])


def compute_scale_factor(scale: float | None, head_dim: int) -> float:
    """c = sqrt(|scale|) in float64, scale defaulting to 1/sqrt(head_dim) (torch's `calculate_scale`)."""
    softmax_scale = 1.0 / math.sqrt(head_dim) if scale is None else abs(scale)
    return math.sqrt(softmax_scale)


def _query_factor(scale: float | None, c: float) -> float:
    return -c if scale is not None and scale < 0 else c  # torch negates the query's factor only


def _causal_mask(L: int, S: int, like: Tensor) -> Tensor:
    """[L,S] float32: 0 where key j <= query i (top-left aligned, as torch's tril), -inf elsewhere."""
    keep = torch.ones((L, S), dtype=torch.bool, device=like.device).tril()
    return torch.where(keep, _scalar(0.0, like), _scalar(float("-inf"), like))


def _scaled_copy(x: Tensor, factor: float) -> Tensor:
    """fl(x * float32(factor)) written contiguously (one pass, whatever x's strides)."""
    out = torch.empty(x.shape, dtype=x.dtype, device=x.device)
    return torch.mul(x, _scalar(factor, x), out=out)


def _stack_rows(x: Tensor, n: _Shapes) -> Tensor:
    """[B,H,L,·] → [B*Hk, r*L, ·]: the r query heads of one KV head as one block of rows."""
    return x.reshape(n.B * n.Hk, n.r * n.L, x.shape[-1])


def _canonical(x: Tensor) -> Tensor:
    """x with every NaN the canonical NaN. A NaN makes any sum NaN, so a finite sum (in whatever
    order torch adds) proves there is none, and that check is cheaper than the replacement."""
    return x if bool(torch.isfinite(x.sum())) else canonicalize_nan(x)


def _laid_out_by_time(x: Tensor) -> Tensor:
    """x [B,heads,T,·] (or [B,heads,T]) copied into torch's kernel layout: [B,T,heads,·] in memory."""
    shape = (x.shape[0], x.shape[2], x.shape[1], *x.shape[3:])
    return torch.empty(shape, dtype=x.dtype, device=x.device).transpose(1, 2).copy_(x)


def compute_safe_softmax_rows(prims: Primitives, rows: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor | None]:
    """Softmax of each row of [R, n] (n >= 1), zero on rows that are all -inf.

    (p, m, Σ) = softmax_rows(x): m = rowmax(x); e = exp(fl(x - m)); Σ = rowsum(e); p = fl(e / Σ) —
    the sequence of table's `_softmax` — then p = +0.0 on the rows with m == -inf. Returns (p, m, Σ,
    those rows or None)."""
    probs, maxima, sums = prims.softmax_rows(rows)
    masked = maxima == float("-inf")
    if not bool(masked.any()):
        return probs, maxima, sums, None
    return probs.masked_fill_(masked.unsqueeze(1), 0.0), maxima, sums, masked


@dataclass(frozen=True)
class _Forward:
    """What the forward computes and the backward recomputes, rows stacked as [B*Hk, r*L, ·]."""

    q: Tensor  # q' [B*Hk, r*L, E]
    k: Tensor  # k' [B*Hk, S, E]
    probs: Tensor  # p [B*Hk, r*L, S]
    maxima: Tensor  # m [B*H*L]
    sums: Tensor  # Σ [B*H*L]
    masked: Tensor | None  # bool [B*H*L]: rows with every key masked (None when there are none)


def compute_attention_probabilities(prims: Primitives, name: str, a: dict[str, Any], n: _Shapes) -> _Forward:
    """q', k', the scores with masks added and their safe softmax p (the module docstring's sequence)."""
    query, key, mask = a["query"], a["key"], a["attn_mask"]
    if mask is not None:
        _require_float(name, mask)
    if a["dropout_p"] != 0:
        raise UnsupportedOperator(name, f"dropout_p {a['dropout_p']} (SDPA takes the math route for dropout)")
    if n.L == 0 or n.S == 0 or n.E == 0:
        raise UnsupportedOperator(name, "empty sequence or head dimension")
    c = compute_scale_factor(a["scale"], n.E)
    q = _scaled_copy(query, _query_factor(a["scale"], c)).view(n.B * n.Hk, n.r * n.L, n.E)
    k = _scaled_copy(key, c).view(n.B * n.Hk, n.S, n.E)
    scores = prims.bmm(q, k.transpose(1, 2))  # [B*Hk, r*L, S], a fresh tensor: worked on in place
    heads = scores.view(n.B, n.H, n.L, n.S)
    if mask is not None:
        heads.add_(mask)
    if a["is_causal"]:
        heads.add_(_causal_mask(n.L, n.S, heads))
    probs, maxima, sums, masked = compute_safe_softmax_rows(prims, scores.view(-1, n.S))
    return _Forward(q, k, probs.view(scores.shape), maxima, sums, masked)


def _sum_groups(prims: Primitives, x: Tensor, n: _Shapes) -> Tensor:
    """[B*H, S, D] per query head → [B,Hk,S,D]: rowsum over the r heads of each group, in head order."""
    if n.r == 1:
        return x.view(n.B, n.Hk, n.S, x.shape[-1])
    grouped = x.view(n.B, n.Hk, n.r, n.S, x.shape[-1]).movedim(2, -1).contiguous()
    return prims.rowsum(grouped.view(-1, n.r)).view(n.B, n.Hk, n.S, x.shape[-1])


# --- the operators ----------------------------------------------------------------------------------------


@_defines_new("_scaled_dot_product_flash_attention_for_cpu.default")
def _flash_attention(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # (out, logsumexp) of the module docstring
    query, value = a["query"], a["value"]
    n = _get_shapes(FLASH, query, a["key"], value)
    forward = compute_attention_probabilities(prims, FLASH, a, n)
    out = prims.bmm(forward.probs, value.reshape(n.B * n.Hk, n.S, n.Ev)).view(n.B, n.H, n.L, n.Ev)
    lse = forward.maxima + prims.log(forward.sums)
    if forward.masked is not None:
        lse = torch.where(forward.masked, _scalar(float("-inf"), lse), lse)
    laid_out = torch.empty_like(query) if n.Ev == n.E else torch.empty_like(out)
    return laid_out.copy_(out), _laid_out_by_time(_canonical(lse).view(n.B, n.H, n.L))


@_defines_new("_scaled_dot_product_flash_attention_for_cpu_backward.default")
def _flash_attention_backward(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # (grad_query, grad_key, grad_value) of the module docstring; `out` and `logsumexp` are not read
    query, value, grad = a["query"], a["value"], a["grad_out"]
    n = _get_shapes(FLASH_BACKWARD, query, a["key"], value)
    _require_float(FLASH_BACKWARD, grad)
    if tuple(grad.shape) != (n.B, n.H, n.L, n.Ev):
        raise UnsupportedOperator(FLASH_BACKWARD, f"grad_out shape {tuple(grad.shape)}")
    forward = compute_attention_probabilities(prims, FLASH_BACKWARD, a, n)
    c = compute_scale_factor(a["scale"], n.E)
    probs = forward.probs  # [B*Hk, r*L, S]
    grads = _stack_rows(grad, n)  # [B*Hk, r*L, Ev]
    grad_probs = prims.bmm(grads, value.reshape(n.B * n.Hk, n.S, n.Ev).transpose(1, 2))  # fresh: reused
    # fl(p * fl(dp - rowsum(fl(dp * p)))), row by row
    grad_scores = prims.softmax_backward(grad_probs.view(-1, n.S), probs.reshape(-1, n.S)).view(grad_probs.shape)
    grad_query = prims.bmm(grad_scores, forward.k).mul_(_scalar(_query_factor(a["scale"], c), query))
    per_head = (n.B * n.H, n.L)
    grad_key = prims.bmm(grad_scores.view(*per_head, n.S).transpose(1, 2), forward.q.view(*per_head, n.E))
    grad_key.mul_(_scalar(c, grad_key))
    grad_value = prims.bmm(probs.view(*per_head, n.S).transpose(1, 2), grads.reshape(*per_head, n.Ev))
    return (
        _laid_out_by_time(_canonical(grad_query.view(n.B, n.H, n.L, n.E))),
        _laid_out_by_time(_canonical(_sum_groups(prims, grad_key, n))),
        _laid_out_by_time(_sum_groups(prims, grad_value, n)),  # bmm and rowsum results: NaNs canonical
    )


@_defines_new("_safe_softmax.default")
def _safe_softmax(prims: Primitives, a: dict[str, Any]) -> Outputs:
    # softmax over `dim` by compute_safe_softmax_rows: table's `_softmax`, +0.0 on rows all -inf
    x = a["self"]
    if a["dtype"] is not None and a["dtype"] != x.dtype:
        raise UnsupportedOperator("aten::_safe_softmax", f"dtype conversion to {a['dtype']}")
    _require_float("aten::_safe_softmax", x)
    rows, restore = _last_dim_rows(x, a["dim"])
    if rows.shape[1] == 0:
        return restore(rows.clone())
    probs, _, _, _ = compute_safe_softmax_rows(prims, rows)
    return restore(_canonical(probs))
