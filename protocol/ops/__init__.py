"""Operator semantics: the reference definition of every reproducible operator.

`execute` is how the referee (or anyone) runs one committed operator from its canonical form; the
prover's dispatch mode runs the same definitions with fast primitives.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from protocol.ops.canonical import (
    bind_arguments,
    compute_written_outputs,
    get_mutation,
    process_writes,
    rebuild_call,
)
from protocol.ops.prims import REFERENCE, Primitives
from protocol.ops.table import OpKind, UnsupportedOperator, get_definition, is_supported

__all__ = ["execute", "flatten_outputs", "is_supported", "UnsupportedOperator", "OpKind", "get_definition"]


def flatten_outputs(result: Any) -> tuple[torch.Tensor | None, ...]:
    """An operator's return value as a flat tuple of tensors (None where an output is absent)."""
    if result is None:
        return ()
    if isinstance(result, torch.Tensor):
        return (result,)
    if isinstance(result, list | tuple):
        flat: list[torch.Tensor | None] = []
        for item in result:
            if item is None or isinstance(item, torch.Tensor):
                flat.append(item)
            else:
                raise TypeError(f"operator returned a {type(item).__name__} among its outputs")
        return tuple(flat)
    raise TypeError(f"operator returned a {type(result).__name__}")


def execute(
    name: str, args: dict[str, Any], inputs: Sequence[torch.Tensor], prims: Primitives = REFERENCE
) -> tuple[torch.Tensor | None, ...]:
    """Run one operator from its canonical form and return the node's outputs (protocol.trace's
    rule: the returns flattened, then each written argument not returned, in schema order).
    Operators that write arguments write them into the given `inputs` (callers pass tensors they own)."""
    definition = get_definition(name)
    mutation = get_mutation(name)
    bound = bind_arguments(args, inputs)
    if definition.kind is OpKind.NATIVE:
        result = rebuild_call(name, args, inputs)()
    else:
        assert definition.compute is not None
        result = process_writes(mutation, definition.compute(prims, bound), bound)
    outputs = flatten_outputs(result)
    return outputs + compute_written_outputs(mutation, bound) if mutation.extra else outputs


from protocol.ops import activations as _activations  # noqa: E402,F401  (activations, losses, reductions)
from protocol.ops import attention as _attention  # noqa: E402,F401  (scaled dot-product attention)
from protocol.ops import convolution as _convolution  # noqa: E402,F401  (conv and pooling)
from protocol.ops import custom as _custom  # noqa: E402,F401  (registers pinpoint's own operators)
from protocol.ops import mutation as _mutation  # noqa: E402,F401  (foreach, batch norm, optimizers' ops)
from protocol.ops import recurrent as _recurrent  # noqa: E402,F401  (LSTM and GRU layers)
