"""What the referee does with a node, for every node of a recorded step: rebuild its inputs from the
recorded producers (hashed tensors by digest, views re-applied on contiguous copies, constants
decoded), re-execute it from the reference definitions, and compare the output digests."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch

from protocol.encoding import compute_digest, decode_tensor
from protocol.ops import execute
from protocol.trace import DERIVED, TraceNode, compute_derivation, compute_derived_value, is_derived


def assert_nodes_re_execute(nodes: Sequence[TraceNode], state_digests: Sequence[bytes], tensors: Mapping[bytes, torch.Tensor]) -> set[str]:
    """Assert that every hashed node re-executes to its recorded digests; `state_digests[k]` is the
    digest of s_t's k-th tensor in canonical name order, `tensors` every recorded tensor by digest.
    Returns the operators re-executed."""
    structures = [node.structure for node in nodes]
    checked: set[str] = set()
    for node in nodes:
        if is_derived(node.structure):
            assert all(d in (None, DERIVED) for d in node.digests), node.structure.op
            continue
        inputs = []
        for ref in node.structure.inputs:
            base, chain = compute_derivation(structures, ref)
            if base[0] == "c":
                value = decode_tensor(bytes.fromhex(base[1]))
            else:
                digest = state_digests[base[1]] if base[0] == "s" else nodes[base[1]].digests[base[2]]
                assert digest is not None and len(digest) == 32
                value = tensors[bytes(digest)].contiguous().clone()  # as the referee decodes it
            inputs.append(compute_derived_value(structures, chain, value))
        outputs = execute(node.structure.op, node.structure.args, inputs)
        assert tuple(None if o is None else compute_digest(o) for o in outputs) == node.digests, node.structure.op
        checked.add(node.structure.op)
    return checked
