"""Hand-edited run directories: what a party that lies about its own files leaves on disk.

Each function copies a real run and edits its files the way a cheater (or a careless party) could,
without `--tamper`: roots re-signed that the checkpoints do not produce, checkpoints deleted or taken
from another step. The edited run is signed with a fresh key, as a second party's would be.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import torch

from protocol.game.commitments import RunCommitment, compute_signed_run_commitment_json, sign_run_commitment
from protocol.recording import ReproducibleMode, RngContext
from protocol.signing import generate_private_key, get_public_key_bytes, private_key_to_bytes
from protocol.state import compute_chain_tree, compute_state_root
from protocol.types import Root
from prover.presets import resolve_task
from prover.run import (
    checkpoint_path,
    compute_state_digests,
    default_key_path,
    get_primitives_for,
    load_run,
    restore_session,
    write_checkpoint,
)


def copy_run(source: Path, target: Path) -> Path:
    """A copy of a run under a fresh key (commitment re-signed, nothing else changed)."""
    shutil.copytree(source, target)
    resign(target, load_run(source).roots)
    return target


def resign(run: Path, roots: list[Root]) -> None:
    """Write `roots` as the run's roots and sign a commitment to them with a fresh key (kept beside the
    run, where `pinpoint dispute` looks for it)."""
    key = generate_private_key()
    default_key_path(run).write_text(private_key_to_bytes(key).hex() + "\n")
    job_id = bytes.fromhex(json.loads((run / "run.json").read_text())["job_id"])
    commitment = RunCommitment(job_id, len(roots) - 1, compute_chain_tree(roots).root, get_public_key_bytes(key))
    (run / "roots.json").write_text(json.dumps([bytes(root).hex() for root in roots]))
    (run / "commitment.json").write_text(json.dumps(compute_signed_run_commitment_json(sign_run_commitment(key, commitment))))


def set_random_root(run: Path, step: int) -> Path:
    """s_step replaced by bytes no state has, every other root kept, re-signed."""
    roots = list(load_run(run).roots)
    roots[step] = Root(bytes(range(32)))
    resign(run, roots)
    return run


def ulp_edit_forward(run: Path, step: int) -> Path:
    """s_step with one parameter element moved by one ulp, trained forward from there: checkpoints and
    roots of s_step … s_T are those of the edited state (consistent from step on), re-signed; the
    checkpoints before step are the honest ones, which do not produce s_step."""
    loaded = load_run(run)
    session = restore_session(loaded, step, task=resolve_task(loaded.job))
    name = next(name for name in session.state_tensors() if name.startswith("param/"))
    with torch.no_grad():
        flat = session.state_tensors()[name].view(-1)
        flat[0] = torch.nextafter(flat[0], torch.tensor(math.inf, dtype=flat.dtype))
    roots = list(loaded.roots)
    for t in range(step, loaded.job.steps + 1):
        if t > step:
            with ReproducibleMode(RngContext(loaded.job.seed, t - 1), get_primitives_for()):
                session.run_step()
        roots[t] = compute_state_root(compute_state_digests(session.state_tensors()))
        write_checkpoint(run, t, session.state_tensors(), roots[t])
    resign(run, roots)
    return run


def delete_checkpoints(run: Path) -> Path:
    shutil.rmtree(run / "checkpoints")
    return run


def move_checkpoint(run: Path, step: int, other: int) -> Path:
    """The checkpoint file of `step` holds the state of step `other`; the checkpoints after `other` up to
    `step` are gone, so that the misplaced one is what restoring s_step reads."""
    data = checkpoint_path(run, other).read_bytes()
    for path in (run / "checkpoints").glob("step-*.safetensors"):
        if other < int(path.stem.split("-")[1]) <= step:
            path.unlink()
    checkpoint_path(run, step).write_bytes(data)
    return run
