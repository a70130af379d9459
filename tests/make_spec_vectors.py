"""Regenerate the test vectors of docs/spec.md: `python tests/make_spec_vectors.py`.

Every value is computed by the protocol's own functions and written to tests/vectors/spec.json;
the `key = value` lines of the page's vector blocks are rewritten from the same values, so the
page, the JSON and the code cannot drift apart silently (tests/test_spec.py checks all three, and
checks the values again against an independent implementation written from the page alone).
Regenerate only for a deliberate change of the protocol's formats.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import blake3
import torch

from protocol.encoding import compute_data_hash, compute_digest, encode_tensor
from protocol.game.commitments import (
    RUN_COMMITMENT_KIND,
    TRACE_COMMITMENT_KIND,
    RunCommitment,
    TraceCommitment,
    compute_run_commitment_json,
    compute_trace_commitment_json,
    sign_run_commitment,
    sign_trace_commitment,
)
from protocol.game.constants import MINIMAL
from protocol.game.enums import Role
from protocol.game.messages import (
    GAME_MOVE_KIND,
    EvidenceSupply,
    NodesReveal,
    TensorItem,
    compute_move_json,
    compute_move_statement,
    sign_move,
)
from protocol.game.rules import compute_game_id, compute_history
from protocol.game.state import GameSetup
from protocol.game.timesource import RECEIPT_KIND, compute_receipt_statement, sign_receipt
from protocol.hint import compute_structure_hint
from protocol.job import JobSpec, compute_data_root, compute_job_id, compute_task_digest
from protocol.merkle import EMPTY, compute_subtree_root, compute_tree, hash_leaf, hash_node
from protocol.ops.canonical import canonicalize_call, compute_written_outputs, get_mutation
from protocol.ops.random import (
    compute_batch_indices,
    compute_bernoulli,
    compute_initial_values,
    compute_mix32_int,
    compute_random_bits,
    compute_stream_key,
    compute_uniform,
)
from protocol.signing import (
    compute_canonical_json,
    compute_signing_payload,
    get_public_key_bytes,
    private_key_from_bytes,
)
from protocol.state import compute_chain_tree, compute_state_leaf, compute_state_tree, get_sorted_names
from protocol.trace import DERIVED, NodeStructure, OutputMeta, TraceNode, compute_trace_root, encode_node
from protocol.types import Root, SignatureBytes

ROOT = Path(__file__).resolve().parent.parent
JSON_PATH = ROOT / "tests" / "vectors" / "spec.json"
PAGE_PATH = ROOT / "docs" / "spec.md"
FORMAT = "pinpoint-spec-vectors/1"

# dtype name → (torch dtype, bytes per element); the names are those of the trace's {"dtype": …}
DTYPES: dict[str, tuple[torch.dtype, int]] = {
    "float32": (torch.float32, 4),
    "float64": (torch.float64, 8),
    "float16": (torch.float16, 2),
    "bfloat16": (torch.bfloat16, 2),
    "int64": (torch.int64, 8),
    "int32": (torch.int32, 4),
    "int16": (torch.int16, 2),
    "int8": (torch.int8, 1),
    "uint8": (torch.uint8, 1),
    "bool": (torch.bool, 1),
}
_SAME_WIDTH_INT = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}

# Tensors given by the bit pattern of each element (big-endian hex, as one writes a number), so
# that non-canonical NaNs can be stated exactly.
TENSORS: dict[str, tuple[str, list[int], str]] = {
    # name: (dtype, shape, element bit patterns)
    "f32_specials": ("float32", [2, 4], "3fc00000 80000000 00000000 ffc00000 7fc00001 7f800000 ff800000 00000001"),
    "f32_scalar": ("float32", [], "40490fdb"),
    "f32_empty": ("float32", [0, 3], ""),
    "f64_nan": ("float64", [3], "3ff0000000000000 fff8000000000001 8000000000000000"),
    "f16_nan": ("float16", [3], "3c00 fe01 8000"),
    "bf16_nan": ("bfloat16", [3], "3f80 ffc1 8000"),
    "i64_vector": ("int64", [3], "0000000000000001 ffffffffffffffff 8000000000000000"),
    "i32_vector": ("int32", [2], "00000007 fffffff9"),
    "i16_vector": ("int16", [2], "1234 ffff"),
    "i8_vector": ("int8", [2], "7f 80"),
    "u8_vector": ("uint8", [2], "00 ff"),
    "bool_matrix": ("bool", [2, 2], "01 00 00 01"),
}


def tensor_from_bits(dtype_name: str, shape: list[int], bits: str) -> torch.Tensor:
    dtype, width = DTYPES[dtype_name]
    values = [int(word, 16) for word in bits.split()]
    signed = [v - (1 << 8 * width) if width > 1 and v >= 1 << (8 * width - 1) else v for v in values]
    raw = torch.tensor(signed, dtype=_SAME_WIDTH_INT[width])
    return raw.view(dtype).reshape(shape)


def float32_bits(tensor: torch.Tensor) -> str:
    return " ".join(f"{int(v) & 0xFFFFFFFF:08x}" for v in tensor.reshape(-1).view(torch.int32).tolist())


def build_json() -> dict[str, Any]:
    sample = {"z": [1, -2, 18446744073709551616], "a": "caf\u00e9 \U0001f600\n\"\\\x7f", "m": {"y": True, "x": None},
              "f": [0.5, 1e16, 1e-05, 2.0, -0.0], "\u00e9": 0, "B": "upper before lower"}
    canonical = compute_canonical_json(sample)
    return {"input": json.dumps(sample), "text": canonical.decode(), "hex": canonical.hex()}


def build_tensors() -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, (dtype, shape, bits) in TENSORS.items():
        tensor = tensor_from_bits(dtype, shape, bits)
        out[name] = {
            "dtype": dtype,
            "shape": " ".join(map(str, shape)) or "scalar",
            "bits": bits or "none",
            "encoding": encode_tensor(tensor).hex(),
            "data_hash": compute_data_hash(tensor).hex(),
            "digest": compute_digest(tensor).hex(),
        }
    return out


def build_rejected() -> dict[str, Any]:
    """Byte strings a decoder must refuse, each next to the canonical encoding it was made from."""
    one = encode_tensor(torch.tensor([1.0], dtype=torch.float32))
    return {
        "f32_nan_payload": (one[:-4] + bytes.fromhex("0100c07f")).hex(),
        "f32_negative_nan": (one[:-4] + bytes.fromhex("0000c0ff")).hex(),
        "f64_signalling_nan": (encode_tensor(torch.zeros(1, dtype=torch.float64))[:-8]
                               + bytes.fromhex("010000000000f07f")).hex(),
        "f16_nan_payload": (encode_tensor(torch.zeros(1, dtype=torch.float16))[:-2] + bytes.fromhex("017e")).hex(),
        "bf16_negative_nan": (encode_tensor(torch.zeros(1, dtype=torch.bfloat16))[:-2] + bytes.fromhex("c0ff")).hex(),
        "bool_two": (encode_tensor(torch.tensor([True]))[:-1] + b"\x02").hex(),
        "trailing_byte": (one + b"\x00").hex(),
        "missing_byte": one[:-1].hex(),
        "dtype_code_0": (one[:4] + b"\x00" + one[5:]).hex(),
        "dtype_code_11": (one[:4] + b"\x0b" + one[5:]).hex(),
        "bad_magic": (b"PPT2" + one[4:]).hex(),
        "ndim_65": (b"PPT1\x01\x41").hex(),
        "dimension_2_pow_63": (b"PPT1\x01\x02" + (0).to_bytes(8, "little") + (1 << 63).to_bytes(8, "little")).hex(),
    }


def build_merkle() -> dict[str, Any]:
    leaves = [b"leaf 0", b"leaf 1", b"leaf 2"]
    tree = compute_tree(leaves)
    empties = [EMPTY]
    for _ in range(3):
        empties.append(hash_node(empties[-1], empties[-1]))
    return {
        "leaves": [leaf.hex() for leaf in leaves],
        "leaf_hashes": [hash_leaf(leaf).hex() for leaf in leaves],
        "empty": EMPTY.hex(),
        "empty_roots": [e.hex() for e in empties],
        "node_1_0": tree.node(1, 0).hex(),
        "node_1_1": tree.node(1, 1).hex(),
        "root": tree.root.hex(),
        "proof_2": [h.hex() for h in tree.prove(2)],
        "reveal_2_0_depth_2": [h.hex() for h in tree.children(2, 0, 2)],
        "reveal_fold": compute_subtree_root(tree.children(2, 0, 2)).hex(),
    }


def state_digests() -> dict[str, Root]:
    return {
        "step": compute_digest(torch.tensor(3, dtype=torch.int64)),
        "param/w": compute_digest(torch.tensor([[1.0, 2.0], [3.0, 4.0]], dtype=torch.float32)),
    }


def build_state() -> dict[str, Any]:
    digests = state_digests()
    tree = compute_state_tree(digests)
    roots = [tree.root, Root(bytes(32)), Root(bytes([0xFF]) * 32)]
    chain = compute_chain_tree(roots)
    return {
        "names": ["step", "param/w"],
        "digests": {name: digests[name].hex() for name in ("step", "param/w")},
        "leaf_0": compute_state_leaf("param/w", digests["param/w"]).hex(),
        "leaf_1": compute_state_leaf("step", digests["step"]).hex(),
        "root": tree.root.hex(),
        "chain_state_roots": [r.hex() for r in roots],
        "chain_root": chain.root.hex(),
        "chain_proof_1": [h.hex() for h in chain.prove(1)],
    }


def data_tensors() -> dict[str, torch.Tensor]:
    return {"data/y": torch.tensor([0, 1, 1], dtype=torch.int64), "data/x": torch.tensor([[0.5], [-1.0], [2.0]])}


def job_spec(data_root: Root, initial: Root, task: Root) -> JobSpec:
    return JobSpec(task=task.hex(), data=data_root.hex(), initial=initial.hex(), steps=10, seed=7, batch_size=2,
                   torch_version="2.13.0", posting="caf\u00e9 #1")


def build_job() -> dict[str, Any]:
    task_bytes = b"print('task')\n"
    task = compute_task_digest(task_bytes)
    data = {name: compute_digest(t) for name, t in data_tensors().items()}
    data_root = compute_data_root(data)
    initial = compute_state_tree(state_digests()).root
    spec = job_spec(data_root, initial, task)
    return {
        "task_bytes": task_bytes.hex(),
        "task_digest": task.hex(),
        "data_encodings": {name: encode_tensor(t).hex() for name, t in data_tensors().items()},
        "data_root": data_root.hex(),
        "spec": spec.to_json(),
        "canonical": compute_canonical_json(spec.to_json()).decode(),
        "id": compute_job_id(spec).hex(),
    }


SEED_KEY = bytes(range(32))
SECOND_KEY = bytes(range(32, 64))
TIME_SOURCE_KEY = bytes(range(64, 96))
DISPUTE_ID = bytes([0x11] * 32)


def build_signing(job: dict[str, Any], state: dict[str, Any], trace: dict[str, Any], hint: str,
                  availability: dict[str, Any]) -> dict[str, Any]:
    key = private_key_from_bytes(SEED_KEY)
    public = key.public_key().public_bytes_raw()
    job_id = bytes.fromhex(job["id"])
    run = RunCommitment(job_id, 10, Root(bytes.fromhex(state["chain_root"])), public,  # type: ignore[arg-type]
                        Root(bytes.fromhex(availability["run_root"])))
    signed = sign_run_commitment(key, run)
    body = compute_run_commitment_json(run)
    trace_commitment = TraceCommitment(
        job_id=job_id, step=3,  # type: ignore[arg-type]
        state_before=Root(bytes.fromhex(trace["state_before"])), state_after=Root(bytes.fromhex(trace["state_after"])),
        ops_root=Root(bytes.fromhex(trace["ops_root"])), num_ops=trace["num_ops"], num_state_after=2,
        hint=bytes.fromhex(hint),
    )
    trace_body = compute_trace_commitment_json(trace_commitment)
    other = private_key_from_bytes(SECOND_KEY)
    other_run = RunCommitment(job_id, 10, Root(bytes(32)), other.public_key().public_bytes_raw())  # type: ignore[arg-type]
    witness = private_key_from_bytes(TIME_SOURCE_KEY)
    setup = GameSetup(signed, sign_run_commitment(other, other_run), MINIMAL, 1000.5,  # type: ignore[arg-type]
                      dispute_id=DISPUTE_ID, time_source=get_public_key_bytes(witness))
    game_id = compute_game_id(setup)
    nodes = NodesReveal((EMPTY, Root(bytes(32))))
    move = sign_move(key, game_id, 0, Role.WORKER, nodes, prev=game_id)
    evidence = EvidenceSupply((TensorItem(Root(bytes(32)), bytes.fromhex("50505431")),))
    evidence_statement = compute_move_statement(game_id, bytes(32), 5, "worker", compute_move_json(evidence))
    event = {"at": 1001.25, "message": {"seq": 0, "sender": "worker", "move": move.move, "signature": move.signature.hex()}}
    history = compute_history(game_id, event)
    receipt = compute_receipt_statement(game_id, 0, event, game_id)
    return {
        "seed": SEED_KEY.hex(),
        "public_key": public.hex(),
        "run": {
            "body": body,
            "statement": statement(RUN_COMMITMENT_KIND, body),
            "signature": signed.signature.hex(),
        },
        "trace": {
            "body": trace_body,
            "statement": statement(TRACE_COMMITMENT_KIND, trace_body),
            "signature": bytes(sign_trace_commitment(key, trace_commitment)).hex(),
        },
        "game": {
            "challenger_seed": SECOND_KEY.hex(),
            "setup": compute_canonical_json(_setup_json(setup)).decode(),
            "id": game_id.hex(),
            "time_source_seed": TIME_SOURCE_KEY.hex(),
            "move_statement": statement(GAME_MOVE_KIND, compute_move_statement(game_id, game_id, 0, "worker", move.move)),
            "move_signature": SignatureBytes(move.signature).hex(),
            "evidence_statement": compute_canonical_json(evidence_statement).decode(),
            "history_1": history.hex(),
            "receipt_statement": statement(RECEIPT_KIND, receipt),
            "receipt_signature": bytes(sign_receipt(witness, game_id, 0, event, game_id)).hex(),
        },
    }


def statement(kind: str, body: Any) -> str:
    """The canonical JSON a signature of `kind` covers, after the prefix `pinpoint/v1/<kind>\\n`."""
    payload = compute_signing_payload(kind, body)
    prefix = b"pinpoint/v1/" + kind.encode() + b"\n"
    assert payload.startswith(prefix)
    return payload[len(prefix) :].decode()


def _setup_json(setup: GameSetup) -> Any:
    from protocol.game.state import compute_setup_json

    return compute_setup_json(setup)


def hint_tensors() -> dict[str, torch.Tensor]:
    return {
        "param/w": torch.arange(9, dtype=torch.float32).reshape(3, 3),
        "optim/w/step": torch.tensor(3.0),
        "seed": torch.tensor(7, dtype=torch.int64),
        "step": torch.tensor(3, dtype=torch.int64),
    }


def build_hint() -> dict[str, Any]:
    tensors = hint_tensors()
    names = get_sorted_names(tensors)
    entries = [compute_structure_hint({name: tensors[name]}) for name in names]
    hint = compute_structure_hint(tensors)
    assert hint == b"".join(entries)
    return {
        "names": names,
        "entries": [entry.hex() for entry in entries],
        "state_root": compute_state_tree({name: compute_digest(t) for name, t in tensors.items()}).root.hex(),
        "hint": hint.hex(),
    }


# --- trace -----------------------------------------------------------------------------------------


A = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
B = torch.tensor([[5.0, 6.0], [7.0, 8.0]])


def trace_nodes() -> list[tuple[str, TraceNode]]:
    """Seven nodes of a made-up step over s_t = {param/w: A, step: 3} (ref ["s", 0] is param/w)."""
    aten = torch.ops.aten
    product = A @ B
    nodes: list[tuple[str, TraceNode]] = []

    def add(label: str, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any], refs: list[Any],
            outputs: list[torch.Tensor], derived: bool = False) -> None:
        call = canonicalize_call(func, args, kwargs)
        metas = tuple(OutputMeta(encode_tensor(o)[4], tuple(o.shape)) for o in outputs)
        structure = NodeStructure(call.op, call.args, tuple(tuple(r) for r in refs), metas)
        digests = tuple(DERIVED if derived else compute_digest(o) for o in outputs)
        nodes.append((label, TraceNode(structure, digests)))

    one = torch.tensor(1.0)
    add("mm", aten.mm.default, (A, B), {}, [["s", 0], ["c", encode_tensor(B).hex()]], [product])
    add("mul", aten.mul.Tensor, (product, 0.5), {}, [["n", 0, 0]], [product * 0.5])
    add("add", aten.add.Tensor, (product, one), {}, [["n", 0, 0], ["c", encode_tensor(one).hex()]], [product + 1])
    add("view", aten.view.default, (product, [4]), {}, [["n", 0, 0]], [product.reshape(4)], derived=True)
    add("to_copy", aten._to_copy.default, (product,), {"dtype": torch.float64, "device": torch.device("cpu")},
        [["n", 0, 0]], [product.double()])
    first, second = product.clone(), (product + 1).clone()
    mutation = get_mutation(aten._foreach_mul_.Scalar)
    call = canonicalize_call(aten._foreach_mul_.Scalar, ([first, second], 0.5), {})
    written = compute_written_outputs(mutation, {"self": [first * 0.5, second * 0.5], "scalar": 0.5})
    add("foreach_mul", aten._foreach_mul_.Scalar, ([first, second], 0.5), {}, [["n", 0, 0], ["n", 2, 0]],
        [t for t in written if t is not None])
    assert call.op == "aten::_foreach_mul_.Scalar"
    halved = product * 0.5
    mask = compute_bernoulli(0.3, 7, 3, 4, (2, 2), torch.float32)
    call = canonicalize_call(aten.bernoulli_.float, (halved, 0.3), {})
    call.args["pinpoint.rng"] = {"seed": 7, "step": 3, "offset": 4}  # as the executing mode adds it
    structure = NodeStructure(call.op, call.args, (("n", 1, 0),), (OutputMeta(1, (2, 2)),))
    nodes.append(("bernoulli", TraceNode(structure, (compute_digest(mask),))))
    return nodes


def build_trace(state: dict[str, Any]) -> dict[str, Any]:
    nodes = trace_nodes()
    leaves = [encode_node(node) for _, node in nodes]
    tree = compute_tree(leaves)
    before = bytes.fromhex(state["root"])
    after = bytes.fromhex(state["chain_state_roots"][2])
    return {
        "nodes": {label: {"leaf": leaf.decode(), "leaf_hash": hash_leaf(leaf).hex()}
                  for (label, _), leaf in zip(nodes, leaves, strict=True)},
        "ops_root": tree.root.hex(),
        "num_ops": len(leaves),
        "state_before": before.hex(),
        "state_after": after.hex(),
        "trace_root": compute_trace_root(before, after, tree.root, len(leaves)).hex(),
    }


# --- randomness -------------------------------------------------------------------------------------


def build_random() -> dict[str, Any]:
    mix_inputs = [0, 1, 0x7FFFFFFF, 0xFFFFFFFF, 0x12345678]
    bound = 1 / math.sqrt(3)
    initial = compute_initial_values(7, "fc.weight", (2, 3), bound)
    return {
        "mix32": {f"{x:08x}": f"{compute_mix32_int(x):08x}" for x in mix_inputs},
        "stream_key_seed_7_step_3": f"{compute_stream_key(7, 3):08x}",
        "bits_seed_7_step_3": " ".join(f"{int(v):08x}" for v in compute_random_bits(7, 3, 0, 8).tolist()),
        "uniform_seed_7_step_3": float32_bits(compute_uniform(7, 3, 0, (8,))),
        "bernoulli_p_0_3_seed_7_step_3_offset_4": " ".join(
            str(int(v)) for v in compute_bernoulli(0.3, 7, 3, 4, (8,), torch.float32).tolist()),
        "batch_seed_7_step_0_size_10": " ".join(str(int(v)) for v in compute_batch_indices(7, 0, 10, 8).tolist()),
        "batch_seed_7_step_1_size_10": " ".join(str(int(v)) for v in compute_batch_indices(7, 1, 10, 8).tolist()),
        "initial_name_key": f"{int.from_bytes(blake3.blake3(b'fc.weight').digest()[:4], 'little'):08x}",
        "initial_bound": bound.hex(),
        "initial_seed_7_fc_weight": float32_bits(initial),
        "initial_digest": compute_digest(initial).hex(),
    }


SEAL_SALT = bytes([0x22] * 32)
DRAW_SEED = bytes(range(8))


def build_economy(signing: dict[str, Any]) -> dict[str, Any]:
    """A seal over the signed run commitment of section 6 and the forced-error draw it takes part in."""
    from protocol.economy import compute_seal
    from protocol.economy.helpers import compute_is_forced_error

    signed = {"commitment": signing["run"]["body"], "signature": signing["run"]["signature"]}
    statement = compute_canonical_json(signed).decode()
    digest = hashlib.sha256(b"pinpoint/v1/forced-error\n" + DRAW_SEED + SEAL_SALT + (7).to_bytes(8, "big")).digest()
    return {
        "salt": SEAL_SALT.hex(),
        "sealed_statement": statement,
        "seal": compute_seal(statement, SEAL_SALT.hex()),
        "draw_seed": DRAW_SEED.hex(),
        "draw_job": 7,
        "draw_value": int.from_bytes(digest[:8], "big") % 10_000,
        "forced_at_2000_bps": compute_is_forced_error(DRAW_SEED.hex(), SEAL_SALT.hex(), 7, 2_000),
        "forced_at_9000_bps": compute_is_forced_error(DRAW_SEED.hex(), SEAL_SALT.hex(), 7, 9_000),
    }


# --- committees and availability ---------------------------------------------------------------------


BLS_MATERIAL = bytes(range(96, 128))


def build_committee() -> dict[str, Any]:
    """One member's BLS key, proof of possession and signature of a verdict statement (three pairing-free
    operations: the vectors stay fast to make), a two-seat draw, and on the ledger: the committee seed of
    epoch 1 from the economy's seed "beacon-1", and the attestation of the statement by the one-seat
    committee that key forms there with stake 100."""
    from protocol.committee import (
        Candidate,
        VerdictStatement,
        compute_attestation,
        compute_attestation_json,
        compute_beacon_commitment,
        compute_committee,
        compute_committee_root,
        compute_epoch_seed,
        compute_statement_json,
        generate_secret_key,
        get_bls_public_key,
        prove_possession,
        sign_verdict,
    )
    from protocol.economy import compute_committee_seed
    from protocol.game import Outcome, Reason, TreeKind

    secret = generate_secret_key(BLS_MATERIAL)
    public = get_bls_public_key(secret)
    statement = VerdictStatement(
        job_id=bytes([0x22] * 32), game_id=bytes([0x33] * 32), worker=bytes([0x44] * 32),  # type: ignore[arg-type]
        challenger=bytes([0x55] * 32), outcome=Outcome.DECIDED, reason=Reason.WRONG_LEAF,  # type: ignore[arg-type]
        winner=Role.CHALLENGER, losers=(Role.WORKER,), step=3, tree=TreeKind.OPS, index=5,  # type: ignore[arg-type]
        leaves=(Root(bytes([0x66] * 32)), Root(bytes([0x77] * 32))), expected_leaf=Root(bytes([0x77] * 32)),
        outputs=(Root(bytes([0x88] * 32)), Root(b""), None), history=Root(bytes([0x99] * 32)))
    keys = [bytes([i]) * 48 for i in range(1, 4)]
    secrets = [bytes([0x10 + i]) * 32 for i in range(1, 4)]
    commitments = {key: compute_beacon_commitment(7, key, sec) for key, sec in zip(keys, secrets, strict=True)}
    seed = compute_epoch_seed(7, commitments, dict(zip(keys, secrets, strict=True)))
    committee = compute_committee(7, seed, [Candidate(f"r{i}", key, 100 * (i + 1))  # type: ignore[arg-type]
                                            for i, key in enumerate(keys)], 2)
    signature = sign_verdict(secret, statement)
    economy_seed = compute_committee_seed(1, b"beacon-1".hex())
    alone = compute_committee(1, economy_seed, [Candidate("r0", public, 100)], 4)
    attestation = compute_attestation(alone, statement, {0: signature})
    return {
        "key_material": BLS_MATERIAL.hex(),
        "secret_key": f"{int(secret):064x}",
        "public_key": bytes(public).hex(),
        "proof_of_possession": bytes(prove_possession(secret)).hex(),
        "statement": compute_canonical_json(compute_statement_json(statement)).decode(),
        "signature": bytes(signature).hex(),
        "beacon_commitment_1": commitments[keys[0]].hex(),
        "seed": seed.hex(),
        "members": [member.account for member in committee.members],
        "committee_root": compute_committee_root(committee).hex(),
        "economy_seed_1": economy_seed.hex(),
        "one_seat_root": compute_committee_root(alone).hex(),
        "attestation": compute_canonical_json(compute_attestation_json(attestation)).decode(),
    }


def build_availability() -> dict[str, Any]:
    from protocol.availability import (
        compute_availability_commitment,
        compute_challenge_index,
        compute_commitment_id,
        compute_commitment_json,
        compute_run_availability_tree,
        compute_shard_tree,
    )
    from protocol.economy.storage import compute_sample_position

    blob = b"pinpoint checkpoint availability"
    commitment, shards = compute_availability_commitment(bytes([0x22] * 32), 3, bytes([0x33] * 32), blob, 3, 5)
    commitment_id = compute_commitment_id(commitment)
    run_tree = compute_run_availability_tree(10, [commitment])  # a run of T = 10 keeping one coded checkpoint, of s_3
    return {
        "blob": blob.hex(),
        "shards": [row.tobytes().hex() for row in shards],
        "commitment": compute_canonical_json(compute_commitment_json(commitment)).decode(),
        "shards_root": compute_shard_tree(shards).root.hex(),
        "commitment_id": commitment_id.hex(),
        "challenges_seed_0": " ".join(str(compute_challenge_index(bytes(32), commitment_id, i, 5)) for i in range(8)),
        "run_root": run_tree.root.hex(),
        "run_proof_3": [node.hex() for node in run_tree.prove(3)],
        # the ledger's sampling: the positions among 5 stored commitments of epoch 7's challenges 0 … 7, seed 44×32
        "sample_positions_epoch_7": " ".join(str(compute_sample_position(7, bytes([0x44] * 32), j, 5)) for j in range(8)),
    }


def build() -> dict[str, Any]:
    state = build_state()
    job = build_job()
    hint = build_hint()
    trace = build_trace(state)
    availability = build_availability()
    vectors = {
        "json": build_json(),
        "tensor": build_tensors(),
        "reject": build_rejected(),
        "merkle": build_merkle(),
        "state": state,
        "job": job,
        "hint": hint,
        "trace": trace,
        "signing": build_signing(job, state, trace, hint["hint"], availability),
        "random": build_random(),
        "committee": build_committee(),
        "availability": availability,
    }
    vectors["economy"] = build_economy(vectors["signing"])
    return {"format": FORMAT, "vectors": vectors}


# --- the page ---------------------------------------------------------------------------------------


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """`key = value` pairs of the page: nested keys joined by dots, list items by their index."""
    if isinstance(value, dict):
        out: dict[str, str] = {}
        for key, item in value.items():
            out.update(flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return out
    if isinstance(value, list):
        out = {}
        for index, item in enumerate(value):
            out.update(flatten(item, f"{prefix}.{index}"))
        return out
    if isinstance(value, bool):
        return {prefix: "true" if value else "false"}
    return {prefix: str(value)}


LINE = re.compile(r"^(?P<key>[a-z][A-Za-z0-9_]*(?:\.[^ ]+)+) =(?: (?P<value>.*))?$")


def read_page_vectors(text: str) -> dict[str, str]:
    """The `key = value` lines inside the page's fenced blocks."""
    found: dict[str, str] = {}
    inside = False
    for line in text.splitlines():
        if line.startswith("```"):
            inside = not inside
            continue
        match = LINE.match(line) if inside else None
        if match:
            found[match["key"]] = match["value"] or ""
    return found


def update_page(text: str, values: dict[str, str]) -> str:
    """Rewrite the value of every vector line the page has (new keys are added by hand)."""
    lines = []
    inside = False
    for line in text.splitlines():
        if line.startswith("```"):
            inside = not inside
        match = LINE.match(line) if inside else None
        if match and match["key"] in values:
            line = f"{match['key']} = {values[match['key']]}".rstrip()
        lines.append(line)
    return "\n".join(lines) + "\n"


def main() -> None:
    data = build()
    JSON_PATH.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    values = flatten(data["vectors"])
    if PAGE_PATH.exists():
        PAGE_PATH.write_text(update_page(PAGE_PATH.read_text(), values))
        missing = sorted(set(values) - set(read_page_vectors(PAGE_PATH.read_text())))
        for key in missing:
            print(f"not on the page: {key} = {values[key]}")


if __name__ == "__main__":
    main()
