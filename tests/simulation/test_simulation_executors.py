"""Sweeps on executors: a local process pool and a Dask distributed cluster give the table a serial
run gives (results come back in run order, whatever order they finish in)."""

from __future__ import annotations

import dataclasses
from concurrent.futures import ThreadPoolExecutor

import pandas as pd
import pytest

from pinpoint.simulation import (
    ConfigError,
    Experiment,
    SweepError,
    compute_experiment,
    local_executor,
    run_serial,
    run_sweep,
)
from pinpoint.simulation.report import build_table
from tests.simulation.configs import MIXED, table

SMALL = table(MIXED, run=dict(MIXED["run"], epochs=12, repetitions=2),
              sweep={"challengers.fixed.verify_probability": [0.2, 0.8]})


def _table(results: list, experiment: Experiment) -> pd.DataFrame:
    return build_table(results, [k for k, _ in experiment.sweep])


def test_local_process_pool_matches_serial() -> None:
    experiment = compute_experiment(SMALL)
    serial = _table(run_serial(experiment.runs), experiment)
    done: list[int] = []
    with local_executor(2) as pool:
        pooled = _table(run_sweep(experiment.runs, pool, lambda r: done.append(r.index)), experiment)
    assert pooled.equals(serial)
    assert sorted(done) == list(range(len(experiment.runs)))


def test_dask_local_cluster_matches_serial() -> None:
    distributed = pytest.importorskip("dask.distributed")
    experiment = compute_experiment(SMALL)
    serial = _table(run_serial(experiment.runs), experiment)
    with distributed.LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        clustered = _table(run_sweep(experiment.runs, client.get_executor()), experiment)
    assert clustered.equals(serial)


def test_a_failing_run_is_named() -> None:
    """A config built in code skips file validation; the engine still refuses a worker that cannot
    bond its stake, and the sweep names the run that failed."""
    experiment = compute_experiment(SMALL)
    spec = experiment.runs[1]
    poor = dataclasses.replace(spec.config.workers["honest"], initial_balance=5)
    config = dataclasses.replace(spec.config, workers=dict(spec.config.workers, honest=poor))
    runs = [experiment.runs[0], dataclasses.replace(spec, config=config)]
    with ThreadPoolExecutor(1) as pool, pytest.raises(SweepError) as caught:
        run_sweep(runs, pool)
    message = str(caught.value)
    assert "run 1 (scenario base, challengers.fixed.verify_probability=0.2, repetition 1" in message
    assert "honest0 cannot afford the stake to register at genesis" in message


def test_config_refuses_workers_who_cannot_afford_the_stake() -> None:
    with pytest.raises(ConfigError, match=r"workers.poor.initial_balance: 5 tokens cannot bond the entry stake, up to 100"):
        compute_experiment(table(SMALL, workers={"poor": {"count": 1, "initial_balance": 5}}))
