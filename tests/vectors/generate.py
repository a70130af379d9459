"""Regenerate the fixed vectors in this folder: `python tests/vectors/generate.py`.

The vectors pin the canonical encodings, digests, Merkle roots and proofs, state leaves and signed
statement payloads, so another implementation can check itself against them byte for byte. The test
suite fails if the code stops reproducing them; regenerate only for a deliberate protocol change.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from protocol.encoding import compute_digest, encode_tensor
from protocol.merkle import EMPTY, compute_tree, hash_leaf, hash_node
from protocol.signing import compute_signing_payload
from protocol.state import compute_state_leaf, compute_state_root

HERE = Path(__file__).parent


def tensors() -> dict[str, torch.Tensor]:
    return {
        "f32_scalar": torch.tensor(1.5, dtype=torch.float32),
        "f32_specials": torch.tensor([0.0, -0.0, float("inf"), float("-inf"), float("nan"), 1e-45, 3.4e38], dtype=torch.float32),
        "f32_matrix": torch.arange(6, dtype=torch.float32).reshape(2, 3) / 7,
        "f32_transposed": (torch.arange(6, dtype=torch.float32).reshape(2, 3) / 7).t(),
        "i64_vector": torch.tensor([0, -1, 2**40, -(2**62)], dtype=torch.int64),
        "bool_matrix": torch.tensor([[True, False], [False, True]]),
        "bf16_vector": torch.tensor([1.0, -2.5, 3.25], dtype=torch.bfloat16),
        "f32_empty": torch.zeros(0, 3, dtype=torch.float32),
    }


def build() -> dict[str, object]:
    encodings = {
        name: {"encoding": encode_tensor(t).hex(), "digest": compute_digest(t).hex()} for name, t in tensors().items()
    }
    leaves = [bytes([i]) * (i + 1) for i in range(5)]
    tree = compute_tree(leaves)
    merkle = {
        "empty": EMPTY.hex(),
        "leaf_hash_of_abc": hash_leaf(b"abc").hex(),
        "node_hash_of_zeros": hash_node(bytes(32), bytes(32)).hex(),
        "leaves": [leaf.hex() for leaf in leaves],
        "root": tree.root.hex(),
        "proofs": [[sibling.hex() for sibling in tree.prove(i)] for i in range(len(leaves))],
    }
    digests = {name: compute_digest(t) for name, t in tensors().items()}
    state = {
        "leaf_of_step": compute_state_leaf("step", digests["i64_vector"]).hex(),
        "digests": {name: digest.hex() for name, digest in digests.items()},
        "root": compute_state_root(digests).hex(),
    }
    signing = {
        "payload": compute_signing_payload("run-commitment", {"steps": 3, "chain_root": bytes(32), "x": 0.5}).hex(),
    }
    from protocol.ops.random import compute_initial_values

    initial = compute_digest(compute_initial_values(7, "blocks.0.qkv.weight", (6, 4), 0.5)).hex()
    return {"encodings": encodings, "merkle": merkle, "state": state, "signing": signing, "initial_values_digest": initial}


if __name__ == "__main__":
    (HERE / "commitments.json").write_text(json.dumps(build(), indent=1, sort_keys=True) + "\n")
