"""A job: everything that determines a training run, and its id.

Two parties given the same `JobSpec` must compute the same chain of state roots; the job id is the
BLAKE3 hash of the spec's canonical JSON, so any change of model, optimizer, hyper-parameter, seed,
step count or data set is a different job.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import blake3

from protocol.signing import compute_canonical_json
from protocol.types import Root

PROTOCOL_VERSION = "pinpoint/v1"
MODELS = ("mlp", "transformer")
OPTIMIZERS = ("sgd", "adam", "adamw")


class JobSpecError(ValueError):
    """A job spec that names an unknown model, optimizer or an impossible size."""


@dataclass(frozen=True)
class OptimizerSpec:
    """torch.optim settings; only the fields of the chosen optimizer are used."""

    name: str = "sgd"  # sgd | adam | adamw
    lr: float = 0.05  # learning rate
    momentum: float = 0.9  # sgd
    betas: tuple[float, float] = (0.9, 0.999)  # adam, adamw
    eps: float = 1e-8  # adam, adamw
    weight_decay: float = 0.0  # adamw decoupled decay (adam: L2)


@dataclass(frozen=True)
class JobSpec:
    """One training job. `model_config` holds the fields of prover.models' config for `model`."""

    model: str
    optimizer: OptimizerSpec
    steps: int  # T: the run commits to s_0 … s_T
    seed: int  # initial parameters, data order and dropout all derive from it
    batch_size: int
    model_config: dict[str, Any] = field(default_factory=dict)
    data: str = ""  # the data set's name; its tensors are part of every state
    torch_version: str = ""  # the operator skeleton is defined by this torch release
    protocol: str = PROTOCOL_VERSION

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise JobSpecError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        if self.optimizer.name not in OPTIMIZERS:
            raise JobSpecError(f"unknown optimizer {self.optimizer.name!r}; choose one of {', '.join(OPTIMIZERS)}")
        if self.steps < 1 or self.batch_size < 1:
            raise JobSpecError("a job has at least one step and a batch of at least one")
        if not 0 <= self.seed < 2**31:
            raise JobSpecError("the seed is an integer in [0, 2**31)")

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["optimizer"]["betas"] = list(self.optimizer.betas)
        return body

    @staticmethod
    def from_json(body: dict[str, Any]) -> JobSpec:
        try:
            optimizer = dict(body["optimizer"])
            optimizer["betas"] = tuple(optimizer["betas"])
            fields = {k: v for k, v in body.items() if k != "optimizer"}
            return JobSpec(optimizer=OptimizerSpec(**optimizer), **fields)
        except (KeyError, TypeError) as error:
            raise JobSpecError(f"malformed job spec: {error}") from error


def compute_job_id(job: JobSpec) -> Root:
    """BLAKE3 of the spec's canonical JSON (floats as exact hex, see protocol.signing)."""

    def exact(value: Any) -> Any:
        if isinstance(value, float):
            return {"f": value.hex()}
        if isinstance(value, dict):
            return {k: exact(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [exact(v) for v in value]
        return value

    return Root(blake3.blake3(b"pinpoint/v1/job\n" + compute_canonical_json(exact(job.to_json()))).digest())
