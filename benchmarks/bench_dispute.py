# ruff: noqa: I001
"""Dispute costs: rounds against T and k, wall time against a training step, bytes, referee time.

Run as pytest-benchmark suites (`make bench`) or as a script that prints the tables and writes them
as JSON: `python benchmarks/bench_dispute.py [--out FILE] [--quick]`.

- rounds for T = 16 … 1024 steps and k = 2, 4, 16 (the toy machine plays the same game rules with a
  step of as many operators as the mid-size transformer, so T can reach 1024 quickly);
- a real dispute between an honest and a cheating run of the small transformer and of the MLP:
  wall time against one training step, bytes exchanged with and without the tensors handed to the
  referee, referee seconds;
- the referee's time for the largest operator of the mid-size transformer's step, re-executed from
  the reference definition.
"""

from __future__ import annotations

import prover  # noqa: F401  (first: sets the OpenMP wait policy before torch loads)
import argparse
import json
import math
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_referee import make_state  # noqa: E402
from harness import measure  # noqa: E402

from pinpoint.demo import get_tamperable_nodes  # noqa: E402
from prover.run import TamperError  # noqa: E402
from pinpoint.presets import make_job, resolve_task  # noqa: E402
from protocol.game.enums import Role  # noqa: E402
from protocol.hint import compute_structure_hint  # noqa: E402
from protocol.ops import execute  # noqa: E402
from protocol.signing import generate_private_key  # noqa: E402
from protocol.encoding import compute_digest  # noqa: E402
from protocol.state import compute_state_root, get_sorted_names  # noqa: E402
from protocol.recording import (  # noqa: E402
    ReproducibleMode,
    RngContext,
    Tamper,  # noqa: E402
)
from prover.run import get_primitives_for, restore_session, trace_step, train  # noqa: E402
from protocol.session import Session  # noqa: E402
from verifier.dispute import dispute_runs, make_game_config  # noqa: E402
from verifier.game.driver import play_game  # noqa: E402
from verifier.game.strategy import HonestStrategy  # noqa: E402
from verifier.game.toy import ToyConfig, ToyFault, ToyMachine, ToyProvider, ToyReferee  # noqa: E402
from verifier.referee import TraceReferee  # noqa: E402

TRANSFORMER_MID_OPS = 1222  # operators in one step of the mid-size transformer with AdamW


def measure_rounds(steps_list: list[int], arities: list[int], num_ops: int) -> list[dict[str, Any]]:
    rows = []
    keys = {role: generate_private_key() for role in Role}
    for steps in steps_list:
        machine = ToyMachine(ToyConfig(steps=steps, num_ops=num_ops, num_state=6, width=2))
        honest = ToyProvider(machine)
        liar = ToyProvider(machine, ToyFault("value", step=steps - 1, node=num_ops - 1))
        for arity in arities:
            result = play_game(HonestStrategy(liar, keys[Role.WORKER]), HonestStrategy(honest, keys[Role.CHALLENGER]),
                               ToyReferee(machine), make_game_config(arity))
            v = result.verdict
            rows.append({"T": steps, "k": arity, "N": num_ops, "rounds_chain": v.rounds_chain, "rounds_trace": v.rounds_trace,
                         "rounds": v.rounds_chain + v.rounds_trace, "bytes_without_tensors": v.bytes_without_tensors,
                         "winner": v.winner.role.value if v.winner else None})
    return rows


def real_dispute(model: str, optimizer: str, steps: int, tamper: str, folder: Path, arity: int = 4, size: str = "small",
                 checkpoint_every: int = 2, repeats: int = 1) -> dict[str, Any]:
    job = make_job(model, optimizer, steps, seed=3, size=size)
    name = f"{model}-{size}"
    honest = train(job, folder / f"{name}-T{steps}-honest", checkpoint_every=checkpoint_every)
    wanted = Tamper.parse(tamper)
    # the first node at or after the wanted one whose fault changes the state (train refuses views,
    # copies, dead values and faults later roundings absorb)
    for node in (j for j in get_tamperable_nodes(job, wanted.step) if j >= wanted.node):
        try:
            train(job, folder / f"{name}-T{steps}-cheat", checkpoint_every=checkpoint_every,
                  tamper=Tamper("output", wanted.step, node))
            break
        except TamperError:
            continue
    else:
        raise AssertionError(f"no node at or after {tamper} changes the run")
    step_seconds = _warm_step_seconds(honest)
    # Repeated, and the median reported: a single dispute on a 2-core machine varies by a third.
    reports = [dispute_runs(folder / f"{name}-T{steps}-cheat", folder / f"{name}-T{steps}-honest", arity=arity)
               for _ in range(repeats)]
    critical = sorted((r.result.strategy_seconds / 2 + r.result.referee_seconds) / step_seconds for r in reports if r.result)
    report = sorted(reports, key=lambda r: r.seconds)[len(reports) // 2]
    assert report.result is not None
    verdict = report.to_json()
    strategy = report.result.strategy_seconds
    return {
        "repeats": repeats, "critical_path_vs_step_range": [critical[0], critical[-1]],
        "model": name, "T": steps, "k": arity,
        "winner": verdict["winner"]["role"], "step": verdict["step"], "node": verdict["node"], "op": verdict["op"],
        "rounds": verdict["rounds"], "bytes": verdict["bytes"], "bytes_without_tensors": verdict["bytes_without_tensors"],
        "seconds_total": report.seconds, "seconds_parties": strategy, "seconds_referee": report.result.referee_seconds,
        "seconds_one_step": step_seconds, "total_vs_step": report.seconds / step_seconds,
        # the two parties are separate machines: the critical path is one party plus the referee
        "critical_path_vs_step": critical[len(critical) // 2],  # the median over the repeats
        "referee_meta_steps": report.referee_meta_steps,
    }



def referee_scaling(steps_list: list[int]) -> list[dict[str, Any]]:
    """The referee's skeleton of step t for the mid-size transformer: replayed from s_0 (linear in t)
    against one meta step from an agreed structure hint (constant)."""
    job = make_job("transformer", "adamw", max(steps_list) + 1, seed=3, size="mid")
    rows = []
    for t in steps_list:
        state = make_state(job, t)
        hint = compute_structure_hint(state)
        root = compute_state_root({name: compute_digest(tensor) for name, tensor in state.items()})
        start = time.perf_counter()
        replayed = TraceReferee(job, resolve_task(job)).replay_skeleton(t)
        middle = time.perf_counter()
        hinted = TraceReferee(job, resolve_task(job)).get_skeleton(t, root, (hint, hint))
        end = time.perf_counter()
        assert hinted == replayed
        rows.append({"t": t, "replay_seconds": middle - start, "hinted_seconds": end - middle})
    return rows


def _warm_step_seconds(run: Any) -> float:
    """Seconds of one reproducible training step of the run's job, kernels compiled and warm."""
    session = restore_session(run, 0)
    primitives_for = get_primitives_for()

    def step() -> None:
        with ReproducibleMode(RngContext(run.job.seed, int(session.step)), primitives_for):
            session.run_step()

    step()
    return measure({"step": step}, rounds=3, target_seconds=0.3)["step"]["median"]


def largest_operator_time(repeats: int = 3) -> dict[str, Any]:
    job = make_job("transformer", "adamw", 4, seed=0, size="mid")
    skeleton = TraceReferee(job, resolve_task(job)).replay_skeleton(1)
    session = Session(job, resolve_task(job), meta=True)
    trace_step(session, skeleton=True)  # now at s_1, whose tensors step 1 reads
    state = session.state_tensors()
    state_shapes = [list(state[name].shape) for name in get_sorted_names(state)]

    best, best_flops, best_shapes = None, -1, None
    for j, node in enumerate(skeleton.nodes):
        if node.op not in ("aten::mm.default", "aten::addmm.default", "aten::bmm.default"):
            continue
        shapes = _input_shapes(skeleton, j, state_shapes)
        k = shapes[-1][-2]  # the inner dimension: rows of the right-hand matrix
        total = 2 * math.prod(node.outputs[0].shape) * k
        if total > best_flops:
            best, best_flops, best_shapes = j, total, shapes
    assert best is not None and best_shapes is not None
    node = skeleton.nodes[best]
    generator = torch.Generator().manual_seed(0)
    inputs = [torch.randn(shape, generator=generator) for shape in best_shapes]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        execute(node.op, node.args, [t.clone() for t in inputs])
        times.append(time.perf_counter() - start)
    return {"node": best, "op": node.op, "input_shapes": best_shapes, "gflop": best_flops / 1e9, "seconds": min(times)}


def _input_shapes(skeleton: Any, index: int, state_shapes: list[list[int]]) -> list[list[int]]:
    """Shapes of a node's inputs, from the producers' output metadata or s_t's tensors."""
    shapes = []
    for ref in skeleton.nodes[index].inputs:
        if ref[0] == "n":
            shapes.append(list(skeleton.nodes[ref[1]].outputs[ref[2]].shape))
        else:
            shapes.append(state_shapes[ref[1]])
    return shapes


def run_all(quick: bool) -> dict[str, Any]:
    folder = Path(tempfile.mkdtemp(prefix="pinpoint-bench-dispute-"))
    steps_list = [16, 64] if quick else [16, 64, 256, 1024]
    report: dict[str, Any] = {
        "rounds": measure_rounds(steps_list, [2, 4, 16], TRANSFORMER_MID_OPS),
        "disputes": [
            real_dispute("mlp", "sgd", 8, "output@6:40", folder),
            real_dispute("transformer", "adamw", 4, "output@2:300", folder),
        ],
    }
    if not quick:
        report["disputes"].append(real_dispute("transformer", "adamw", 4, "output@2:600", folder, size="mid", repeats=5))
        report["disputes"].append(real_dispute("transformer", "adamw", 12, "output@10:600", folder, size="mid", checkpoint_every=5,
                                                  repeats=5))
        report["largest_operator"] = largest_operator_time()
        report["referee_scaling"] = referee_scaling([1, 4, 16, 64])
    return report


def print_report(report: dict[str, Any]) -> None:
    print(f"rounds (phase 1 + phase 2), N = {TRANSFORMER_MID_OPS} operators per step")
    for row in report["rounds"]:
        print(f"  T={row['T']:5d} k={row['k']:3d}  {row['rounds_chain']:3d} + {row['rounds_trace']:3d} = {row['rounds']:3d}"
              f"  bytes w/o tensors {row['bytes_without_tensors']}")
    for d in report["disputes"]:
        print(f"{d['model']:12s} T={d['T']} k={d['k']}: {d['winner']} wins at step {d['step']} node {d['node']} ({d['op']});"
              f" total {d['seconds_total']:.2f} s = {d['total_vs_step']:.1f} steps, critical path {d['critical_path_vs_step']:.1f} steps"
              f" ({d['critical_path_vs_step_range'][0]:.1f}–{d['critical_path_vs_step_range'][1]:.1f} over {d['repeats']} runs);"
              f" referee {d['seconds_referee']:.3f} s ({d['referee_meta_steps']} meta step(s));"
              f" bytes {d['bytes']} ({d['bytes_without_tensors']} w/o tensors)")
    for row in report.get("referee_scaling", []):
        print(f"referee skeleton of step {row['t']:3d} (mid transformer): replayed from s_0 {row['replay_seconds']:.2f} s,"
              f" from an agreed hint {row['hinted_seconds']:.2f} s")
    if "largest_operator" in report:
        op = report["largest_operator"]
        print(f"largest operator of the mid transformer step: {op['op']} {op['input_shapes']} ({op['gflop']:.2f} GFLOP):"
              f" referee {op['seconds']:.2f} s")


def plot_rounds(rows: list[dict[str, Any]], path: Path) -> None:
    """Rounds against T, one line per arity, with the bound ⌈log_k(T+1)⌉ + ⌈log_k N⌉ + 5 dashed."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6, 4))
    for arity in sorted({row["k"] for row in rows}):
        mine = [row for row in rows if row["k"] == arity]
        steps = [row["T"] for row in mine]
        line = axes.plot(steps, [row["rounds"] for row in mine], marker="o", label=f"k = {arity}")[0]
        depth = arity.bit_length() - 1
        bound = [math.ceil((t).bit_length() / depth) + math.ceil((mine[0]["N"] - 1).bit_length() / depth) + 5 for t in steps]
        axes.plot(steps, bound, linestyle="--", color=line.get_color(), alpha=0.5)
    axes.set_xscale("log", base=2)
    axes.set_xlabel("steps T")
    axes.set_ylabel("rounds (both phases)")
    axes.set_title(f"Dispute rounds, N = {rows[0]['N']} ops per step (dashed: the bound; equal here)")
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


@pytest.mark.benchmark(group="dispute")
def test_mlp_dispute(benchmark: Any, tmp_path: Path) -> None:
    job = make_job("mlp", "sgd", 8, seed=3)
    train(job, tmp_path / "honest", checkpoint_every=2)
    train(job, tmp_path / "cheat", checkpoint_every=2, tamper=Tamper.parse("output@6:40"))
    benchmark.pedantic(lambda: dispute_runs(tmp_path / "cheat", tmp_path / "honest", arity=4), rounds=3)


@pytest.mark.benchmark(group="dispute")
def test_toy_rounds_t1024(benchmark: Any) -> None:
    benchmark.pedantic(lambda: measure_rounds([1024], [4], TRANSFORMER_MID_OPS), rounds=1)


if __name__ == "__main__":
    from prover.process import tune_process

    tune_process()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--quick", action="store_true")
    options = parser.parse_args()
    result = run_all(options.quick)
    print_report(result)
    if options.out is not None:
        options.out.write_text(json.dumps(result, indent=2, default=str) + "\n")
        plot_rounds(result["rounds"], options.out.with_suffix(".png"))
