"""Portable initial parameters: the layers pinpoint knows, redrawn from the protocol's generator.

A task's own initialisation draws from torch's generator, whose bits are not guaranteed to be the
same on every CPU, device or torch build. A task that sets `protocol_init = True` has the parameters
of the layers below redrawn from `protocol.ops.random.compute_initial_values` (a counter-based hash
keyed by the job's seed and the parameter's name), with torch's default scales, so s_0 depends only
on the job and is the same everywhere. Parameters of other layers keep the task's own values; the
job binds s_0's root either way.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from protocol.ops.random import compute_initial_values

RECURRENT = (nn.LSTM, nn.GRU, nn.RNN)
NORMS = (nn.LayerNorm, nn.RMSNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase)


def _fan_in(weight: torch.Tensor) -> int:
    """Inputs per output unit: in_features for Linear, in_channels/groups × kernel size for Conv."""
    return int(math.prod(weight.shape[1:])) if weight.dim() > 1 else int(weight.shape[0])


def initialize_parameters(model: nn.Module, seed: int) -> None:
    """Overwrite the parameters of known layers with the job's deterministic initial values, in place.

    - Linear, Conv1d/2d/3d: weight and bias uniform in ±1/sqrt(fan_in) (torch's default bound);
    - Embedding: uniform in ±sqrt(3) (unit variance, where torch draws a unit normal);
    - LSTM, GRU, RNN: every weight and bias uniform in ±1/sqrt(hidden_size);
    - LayerNorm, RMSNorm, GroupNorm, BatchNorm: weight 1, bias 0 (their buffers start as torch sets them).
    Values come from `compute_initial_values(seed, name, shape, bound)`, keyed by the parameter's name."""
    with torch.no_grad():
        for module_name, module in model.named_modules():
            prefix = f"{module_name}." if module_name else ""
            own = list(module.named_parameters(recurse=False))
            if isinstance(module, nn.Linear | nn.modules.conv._ConvNd):
                bound = 1.0 / math.sqrt(max(_fan_in(module.weight), 1))
                for name, param in own:
                    param.copy_(compute_initial_values(seed, prefix + name, tuple(param.shape), bound))
            elif isinstance(module, nn.Embedding):
                module.weight.copy_(compute_initial_values(seed, prefix + "weight", tuple(module.weight.shape), math.sqrt(3.0)))
            elif isinstance(module, RECURRENT):
                bound = 1.0 / math.sqrt(module.hidden_size)
                for name, param in own:
                    param.copy_(compute_initial_values(seed, prefix + name, tuple(param.shape), bound))
            elif isinstance(module, NORMS):
                for name, param in own:
                    param.fill_(1.0 if name == "weight" else 0.0)
