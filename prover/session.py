"""A training session: one job's model, optimizer and named state, and how one step runs.

The state s_t is the set of named tensors that fully determine step t:

    param/<name>             model parameters
    buffer/<name>            model buffers
    optim/<param>/<key>      optimizer state (appears once the optimizer has created it)
    data/<name>              the data set
    seed, step               int64 scalars: the job seed and t
    batch                    int64 [batch_size]: the data indices (or sequence offsets) of step t
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import protocol.ops  # noqa: F401  (registers pinpoint's operators)
from protocol.job import JobSpec
from prover.data import get_vocabulary, load_data
from prover.models import MLPConfig, TransformerConfig, build_model


class StateError(ValueError):
    """A state that does not fit the job: missing, extra or mis-shaped tensors."""


def get_model_config(job: JobSpec) -> MLPConfig | TransformerConfig:
    if job.model == "mlp":
        return MLPConfig(**job.model_config)
    return TransformerConfig(**job.model_config)


def get_data_name(job: JobSpec) -> str:
    return job.data or ("digits" if job.model == "mlp" else "sklearn-text")


def build_optimizer(job: JobSpec, params: list[nn.Parameter]) -> torch.optim.Optimizer:
    """The stock torch.optim optimizer, single-tensor code path (no foreach or fused kernels)."""
    spec = job.optimizer
    if spec.name == "sgd":
        return torch.optim.SGD(params, lr=spec.lr, momentum=spec.momentum, foreach=False)
    if spec.name == "adam":
        return torch.optim.Adam(params, lr=spec.lr, betas=spec.betas, eps=spec.eps, weight_decay=spec.weight_decay, foreach=False)
    return torch.optim.AdamW(params, lr=spec.lr, betas=spec.betas, eps=spec.eps, weight_decay=spec.weight_decay, foreach=False)


class Session:
    """Holds the live tensors of one job on one device and runs its steps."""

    def __init__(self, job: JobSpec, device: str | torch.device = "cpu", meta: bool = False, initialize: bool = True) -> None:
        """A session at s_0 (`initialize`), or with uninitialised parameters for `load_state` to fill;
        with `meta`, every tensor except the one-element counters is a meta tensor (shapes only)."""
        self.job = job
        self.device = torch.device(device)
        self.config = get_model_config(job)
        if isinstance(self.config, TransformerConfig) and self.config.vocab != len(get_vocabulary()):
            raise StateError(f"the text has {len(get_vocabulary())} characters; the model's vocab is {self.config.vocab}")
        model = build_model(self.config, job.seed, meta=meta or not initialize)
        target = torch.device("meta") if meta else self.device
        self.model = model.to(target) if meta or initialize else model.to_empty(device=target)
        self.param_names = {id(p): name for name, p in self.model.named_parameters()}
        self.optimizer = build_optimizer(job, list(self.model.parameters()))
        self.data = {name: t.to(target) for name, t in load_data(get_data_name(job)).items()}
        self.seed = torch.tensor(job.seed, dtype=torch.int64, device=self.device)
        self.step = torch.tensor(0, dtype=torch.int64, device=self.device)
        self.batch = torch.ops.pinpoint.batch_indices(self.seed, self.step, self.dataset_size, job.batch_size)

    @property
    def dataset_size(self) -> int:
        """How many examples (MLP) or sequence start positions (language model) batches draw from."""
        if "data/x" in self.data:
            return int(self.data["data/x"].shape[0])
        assert isinstance(self.config, TransformerConfig)
        return int(self.data["data/tokens"].shape[0]) - self.config.context - 1

    # --- the named state -----------------------------------------------------------------------

    def _optimizer_entries(self) -> Iterator[tuple[str, dict[str, Any], str, Any]]:
        for param in self.model.parameters():
            entry = self.optimizer.state.get(param, {})
            for key, value in entry.items():
                yield f"optim/{self.param_names[id(param)]}/{key}", entry, key, value

    def state_tensors(self) -> dict[str, torch.Tensor]:
        """s_t as name → live tensor (the objects the next step reads and writes)."""
        tensors: dict[str, torch.Tensor] = {}
        for name, param in self.model.named_parameters():
            tensors[f"param/{name}"] = param
        for name, buffer in self.model.named_buffers():
            tensors[f"buffer/{name}"] = buffer
        for name, _, _key, value in self._optimizer_entries():
            if not isinstance(value, torch.Tensor):
                raise StateError(f"optimizer state {name} is a {type(value).__name__}, not a tensor")
            tensors[name] = value
        tensors.update(self.data)
        tensors["seed"] = self.seed
        tensors["step"] = self.step
        tensors["batch"] = self.batch
        return tensors

    def load_state(self, tensors: dict[str, torch.Tensor]) -> None:
        """Make the live state equal to `tensors` (a checkpoint's, data excluded, or a full state)."""
        expected = {name: t for name, t in self.state_tensors().items() if not name.startswith(("optim/", "data/"))}
        for name, live in expected.items():
            if name not in tensors:
                raise StateError(f"state is missing {name}")
            value = tensors[name]
            if value.dtype != live.dtype or value.shape != live.shape:
                raise StateError(f"{name}: expected {live.dtype} {tuple(live.shape)}, got {value.dtype} {tuple(value.shape)}")
        params = dict(self.model.named_parameters())
        optim: dict[torch.Tensor, dict[str, torch.Tensor]] = {}
        for name, value in tensors.items():
            if name.startswith("optim/"):
                param_name, _, key = name[len("optim/") :].rpartition("/")
                if param_name not in params:
                    raise StateError(f"optimizer state {name} names no parameter")
                optim.setdefault(params[param_name], {})[key] = self._place(value)
            elif name not in expected and not name.startswith("data/"):
                raise StateError(f"state has an unexpected tensor {name}")
        with torch.no_grad():
            for name, param in params.items():
                param.copy_(tensors[f"param/{name}"])
            for name, buffer in self.model.named_buffers():
                buffer.copy_(tensors[f"buffer/{name}"])
        self.optimizer.state.clear()
        self.optimizer.state.update(optim)
        self.seed = self._place(tensors["seed"])
        self.step = self._place(tensors["step"])
        self.batch = self._place(tensors["batch"])
        if self.seed.device.type != "meta" and int(self.seed) != self.job.seed:
            raise StateError(f"state seed {int(self.seed)} is not the job's seed {self.job.seed}")

    def _place(self, tensor: torch.Tensor) -> torch.Tensor:
        """A private copy on the session's device (meta tensors, used for skeletons, stay meta)."""
        return tensor if tensor.device.type == "meta" else tensor.to(self.device).clone()

    # --- one step ------------------------------------------------------------------------------

    def loss(self) -> torch.Tensor:
        """The mean cross-entropy of the current batch (run inside the reproducible mode)."""
        if "data/x" in self.data:
            x, y = self.data["data/x"][self.batch], self.data["data/y"][self.batch]
        else:
            assert isinstance(self.config, TransformerConfig)
            positions = torch.arange(self.config.context, device=self.batch.device)
            window = self.batch.unsqueeze(1) + positions.unsqueeze(0)  # [B, context]
            tokens = self.data["data/tokens"]
            x, y = tokens[window], tokens[window + 1]
        logits = self.model(x)
        return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))

    def run_step(self) -> torch.Tensor:
        """One training step: forward, backward, optimizer, then the next step counter and batch.

        Call inside a `ReproducibleMode` for reproducible bits. Returns the loss (detached)."""
        self.model.train()
        loss = self.loss()
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step = self.step + 1
        self.batch = torch.ops.pinpoint.batch_indices(self.seed, self.step, self.dataset_size, self.job.batch_size)
        return loss.detach()
