"""Agent-based simulation of the economy's incentives, driving the protocol's own transitions.

    pinpoint simulate --config examples/simulations/verifiers-dilemma.toml --out results/dilemma

Parts (radCAD's policy / state-update split, STYLE.md item 12):
- config.py:   the TOML schema (commented dataclasses), validation, scenarios x sweep x repetitions
- agents.py:   policies that return decisions as data (users, workers, challengers, churn, adaptation)
- engine.py:   the epoch loop that carries decisions out through protocol.economy's transitions
- metrics.py:  the per-epoch columns of the results table, the Gini coefficient
- analytic.py: the incentive conditions in closed form
- report.py:   table, per-mechanism summary, measured vs analytic, the phase boundary
- sweep.py:    runs on any concurrent.futures Executor (local processes, Dask distributed)
- output.py, plots.py, cli.py: atomic files, PNG plots, the `simulate` command

Library use:

    experiment = load_experiment("examples/simulations/phase-diagram.toml")
    with local_executor(2) as executor:
        summary = run_experiment(experiment, Path("out"), executor)
"""

from pinpoint.simulation.analytic import (
    compute_cheating_advantage,
    compute_checking_payoff,
    compute_critical_cheat_rate,
    compute_critical_detection_probability,
    compute_critical_slash_fraction,
    compute_detection_probability,
    compute_loss_if_caught,
    compute_mixed_equilibrium,
    compute_steady_jackpot_share,
    is_cheating_deterred,
    is_checking_profitable,
)
from pinpoint.simulation.cli import run_experiment, simulate_command
from pinpoint.simulation.config import (
    ConfigError,
    Experiment,
    RunSpec,
    SimulationConfig,
    build_config,
    compute_experiment,
    derive_seed,
    describe_config,
    load_experiment,
)
from pinpoint.simulation.engine import RunResult, Simulation, execute_run, run_config
from pinpoint.simulation.metrics import EPOCH_COLUMNS, compute_gini
from pinpoint.simulation.report import build_table, compute_summary
from pinpoint.simulation.sweep import SweepError, dask_executor, local_executor, run_serial, run_sweep

__all__ = [
    "EPOCH_COLUMNS", "ConfigError", "Experiment", "RunResult", "RunSpec", "Simulation", "SimulationConfig", "SweepError",
    "build_config", "build_table", "compute_checking_payoff", "compute_cheating_advantage", "compute_critical_cheat_rate",
    "compute_critical_detection_probability", "compute_critical_slash_fraction", "compute_detection_probability",
    "compute_experiment", "compute_gini", "compute_loss_if_caught", "compute_mixed_equilibrium",
    "compute_steady_jackpot_share", "compute_summary", "dask_executor", "derive_seed", "describe_config", "execute_run",
    "is_cheating_deterred", "is_checking_profitable", "load_experiment", "local_executor", "run_config", "run_experiment",
    "run_serial", "run_sweep", "simulate_command",
]
