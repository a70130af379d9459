"""The stock PyTorch models a job can train: plain `nn.Module`s, nothing pinpoint-specific inside.

`build_model(config)` constructs one from its config under a fixed seed, so every party of a job
builds bit-identical initial parameters.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from protocol.ops.random import compute_initial_values


@dataclass(frozen=True)
class MLPConfig:
    """A multi-layer perceptron classifier (scikit-learn's digits: 64 features, 10 classes)."""

    in_features: int = 64  # pixels of an 8x8 digit
    hidden: int = 64  # width of each hidden layer
    layers: int = 2  # hidden layers
    classes: int = 10


class MLP(nn.Module):
    """Linear → ReLU blocks, then a linear read-out; returns logits [B, classes]."""

    def __init__(self, config: MLPConfig) -> None:
        super().__init__()
        widths = [config.in_features] + [config.hidden] * config.layers
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:], strict=False))
        self.out = nn.Linear(widths[-1], config.classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, in_features]
        for layer in self.hidden:
            x = F.relu(layer(x))
        return self.out(x)


@dataclass(frozen=True)
class TransformerConfig:
    """A decoder-only character language model (pre-LayerNorm, learned positions)."""

    vocab: int = 96  # characters of the training text
    d_model: int = 64  # residual width
    heads: int = 4  # attention heads; d_model must divide evenly
    layers: int = 2  # transformer blocks
    d_ff: int = 256  # width of each block's MLP
    context: int = 32  # tokens per sequence
    dropout: float = 0.1  # on attention weights and residual branches


class Block(nn.Module):
    """LayerNorm → causal multi-head self-attention → LayerNorm → GELU MLP, each with a residual."""

    causal: torch.Tensor  # [context, context] bool, lower triangular

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.heads = config.heads
        self.ln1 = nn.LayerNorm(config.d_model)
        self.qkv = nn.Linear(config.d_model, 3 * config.d_model)
        self.proj = nn.Linear(config.d_model, config.d_model)
        self.ln2 = nn.LayerNorm(config.d_model)
        self.fc = nn.Linear(config.d_model, config.d_ff)
        self.fc_out = nn.Linear(config.d_ff, config.d_model)
        self.dropout = nn.Dropout(config.dropout)
        mask = torch.ones(config.context, config.context, dtype=torch.bool).tril()
        self.register_buffer("causal", mask, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        hd = C // self.heads
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q = q.view(B, T, self.heads, hd).transpose(1, 2)  # [B, H, T, hd]
        k = k.view(B, T, self.heads, hd).transpose(1, 2)
        v = v.view(B, T, self.heads, hd).transpose(1, 2)
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))  # [B, H, T, T]
        scores = scores.masked_fill(~self.causal[:T, :T], float("-inf"))
        weights = self.dropout(F.softmax(scores, dim=-1))
        y = (weights @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.dropout(self.proj(y))
        return x + self.dropout(self.fc_out(F.gelu(self.fc(self.ln2(x)))))


class TransformerLM(nn.Module):
    """Token and position embeddings, `layers` blocks, a final LayerNorm and a linear head."""

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.tokens = nn.Embedding(config.vocab, config.d_model)
        self.positions = nn.Embedding(config.context, config.d_model)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.ln = nn.LayerNorm(config.d_model)
        self.head = nn.Linear(config.d_model, config.vocab)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:  # idx: [B, T] int64 → logits [B, T, vocab]
        B, T = idx.size()
        positions = torch.arange(T, device=idx.device)
        x = self.dropout(self.tokens(idx) + self.positions(positions))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


ModelConfig = MLPConfig | TransformerConfig


def build_model(config: ModelConfig, seed: int, meta: bool = False) -> nn.Module:
    """The model with its initial parameters drawn from protocol's counter-based generator.

    torch's own initialisers are replaced (see `initialize_parameters`), so s_0 depends only on the
    job's seed and the parameters' names and shapes, never on a torch build's random number code.
    With `meta`, the parameters are meta tensors: shapes only, nothing drawn."""
    with torch.device("meta" if meta else "cpu"):
        model: nn.Module = MLP(config) if isinstance(config, MLPConfig) else TransformerLM(config)
    if not meta:
        initialize_parameters(model, seed)
    return model


def initialize_parameters(model: nn.Module, seed: int) -> None:
    """Overwrite every parameter with the job's deterministic initial values, in place.

    The scales follow torch's defaults: a Linear layer's weight and bias are uniform in
    ±1/sqrt(in_features); an Embedding is uniform in ±sqrt(3) (unit variance, where torch draws a
    unit normal); LayerNorm starts at weight 1, bias 0. Values come from
    `protocol.ops.random.compute_initial_values`, keyed by the parameter's name."""
    with torch.no_grad():
        for module_name, module in model.named_modules():
            prefix = f"{module_name}." if module_name else ""
            if isinstance(module, nn.Linear):
                bound = 1.0 / math.sqrt(module.in_features)
                for name, param in module.named_parameters(recurse=False):
                    param.copy_(compute_initial_values(seed, prefix + name, tuple(param.shape), bound))
            elif isinstance(module, nn.Embedding):
                module.weight.copy_(compute_initial_values(seed, prefix + "weight", tuple(module.weight.shape), math.sqrt(3.0)))
            elif isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.fill_(0.0)
