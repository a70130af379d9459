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


def build_model(config: ModelConfig, seed: int) -> nn.Module:
    """The model with its initial parameters drawn from torch's CPU generator seeded with `seed`.

    Initialisation runs on the CPU in float32 with torch's own (sequential, thread-independent)
    generator, so every party of a job gets bit-identical parameters; move the model afterwards.
    """
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(seed)
        with torch.device("cpu"):
            model: nn.Module = MLP(config) if isinstance(config, MLPConfig) else TransformerLM(config)
    finally:
        torch.random.set_rng_state(generator_state)
    return model
