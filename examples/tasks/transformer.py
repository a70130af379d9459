"""A decoder-only character language model on the descriptions of scikit-learn's bundled data sets.

A pinpoint task file: plain PyTorch, trainable with an ordinary loop. `pinpoint train --model
transformer` uses this file with OPTIMIZER and SIZE set from the command line. The text depends on
the installed scikit-learn release; the job binds the data set's content root, so two parties with
different texts find out before training, not after.
"""

import importlib.resources
import math

import torch
import torch.nn.functional as F
from torch import nn

OPTIMIZER = "adamw"  # sgd | adam | adamw
SIZE = "small"  # tiny | small | mid
D_MODEL, HEADS, LAYERS, D_FF, CONTEXT = {
    "tiny": (32, 2, 1, 64, 16),  # the test suite's
    "small": (64, 4, 2, 256, 32),  # ~60k parameters
    "mid": (256, 8, 4, 1024, 128),  # the benchmark's: 4 layers, d_model 256, sequence 128
}[SIZE]
DROPOUT = 0.1
batch_size = {"tiny": 4, "small": 8, "mid": 16}[SIZE]
protocol_init = True  # s_0 drawn by pinpoint's portable generator (a plain loop ignores this)


def read_text() -> str:
    folder = importlib.resources.files("sklearn.datasets") / "descr"
    parts = sorted((entry.name, entry.read_text(encoding="utf-8")) for entry in folder.iterdir() if entry.name.endswith(".rst"))
    return "\n".join(text for _, text in parts)


VOCABULARY = sorted(set(read_text()))


class Block(nn.Module):
    """LayerNorm -> causal multi-head self-attention -> LayerNorm -> GELU MLP, each with a residual."""

    def __init__(self) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(D_MODEL)
        self.qkv = nn.Linear(D_MODEL, 3 * D_MODEL)
        self.proj = nn.Linear(D_MODEL, D_MODEL)
        self.ln2 = nn.LayerNorm(D_MODEL)
        self.fc = nn.Linear(D_MODEL, D_FF)
        self.fc_out = nn.Linear(D_FF, D_MODEL)
        self.dropout = nn.Dropout(DROPOUT)
        self.register_buffer("causal", torch.ones(CONTEXT, CONTEXT, dtype=torch.bool).tril(), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        hd = C // HEADS
        q, k, v = self.qkv(self.ln1(x)).split(C, dim=2)
        q = q.view(B, T, HEADS, hd).transpose(1, 2)  # [B, H, T, hd]
        k = k.view(B, T, HEADS, hd).transpose(1, 2)
        v = v.view(B, T, HEADS, hd).transpose(1, 2)
        scores = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hd))  # [B, H, T, T]
        scores = scores.masked_fill(~self.causal[:T, :T], float("-inf"))
        weights = self.dropout(F.softmax(scores, dim=-1))
        y = (weights @ v).transpose(1, 2).reshape(B, T, C)
        x = x + self.dropout(self.proj(y))
        return x + self.dropout(self.fc_out(F.gelu(self.fc(self.ln2(x)))))


class TransformerLM(nn.Module):
    """Token and position embeddings, LAYERS blocks, a final LayerNorm and a linear head."""

    def __init__(self) -> None:
        super().__init__()
        self.tokens = nn.Embedding(len(VOCABULARY), D_MODEL)
        self.positions = nn.Embedding(CONTEXT, D_MODEL)
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
        self.ln = nn.LayerNorm(D_MODEL)
        self.head = nn.Linear(D_MODEL, len(VOCABULARY))
        self.dropout = nn.Dropout(DROPOUT)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:  # idx: [B, T] int64 -> logits [B, T, vocab]
        B, T = idx.size()
        positions = torch.arange(T, device=idx.device)
        x = self.dropout(self.tokens(idx) + self.positions(positions))
        for block in self.blocks:
            x = block(x)
        return self.head(self.ln(x))


def build_model() -> nn.Module:
    return TransformerLM()


def build_optimizer(params):
    if OPTIMIZER == "sgd":
        return torch.optim.SGD(params, lr=0.05, momentum=0.9, foreach=False)
    if OPTIMIZER == "adam":
        return torch.optim.Adam(params, lr=1e-3, foreach=False)
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01, foreach=False)


def load_data() -> dict[str, torch.Tensor]:
    """Non-overlapping windows of CONTEXT + 1 characters: [N, CONTEXT + 1] token ids."""
    index = {char: i for i, char in enumerate(VOCABULARY)}
    tokens = torch.tensor([index[char] for char in read_text()], dtype=torch.int64)
    windows = tokens.shape[0] // (CONTEXT + 1)
    return {"tokens": tokens[: windows * (CONTEXT + 1)].reshape(windows, CONTEXT + 1)}


def compute_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    tokens = batch["tokens"]  # [B, CONTEXT + 1]
    logits = model(tokens[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
