"""A GPT-style decoder on the descriptions of scikit-learn's bundled data sets (characters).

A pinpoint task file: plain PyTorch, trainable with an ordinary loop. Causal
`F.scaled_dot_product_attention`, LayerNorm, GELU (tanh form), tied input/output embeddings,
dropout; AdamW with a linear warm-up and cosine decay, gradient clipping at norm 1.
"""

import importlib.resources
import math

import torch
import torch.nn.functional as F
from torch import nn

SIZE = "small"  # small | mid
D_MODEL, HEADS, LAYERS, CONTEXT = {"small": (32, 2, 1, 16), "mid": (256, 8, 4, 128)}[SIZE]
DROPOUT = 0.1
WARMUP, TOTAL = 10, 1000  # steps of linear warm-up; steps of the cosine schedule
batch_size = {"small": 4, "mid": 16}[SIZE]
grad_clip = 1.0
protocol_init = True  # s_0 drawn by pinpoint's portable generator (a plain loop ignores this)


def read_text() -> str:
    folder = importlib.resources.files("sklearn.datasets") / "descr"
    parts = sorted((entry.name, entry.read_text(encoding="utf-8")) for entry in folder.iterdir() if entry.name.endswith(".rst"))
    return "\n".join(text for _, text in parts)


VOCABULARY = sorted(set(read_text()))


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(D_MODEL)
        self.qkv = nn.Linear(D_MODEL, 3 * D_MODEL)
        self.proj = nn.Linear(D_MODEL, D_MODEL)
        self.ln2 = nn.LayerNorm(D_MODEL)
        self.fc = nn.Linear(D_MODEL, 4 * D_MODEL)
        self.fc_out = nn.Linear(4 * D_MODEL, D_MODEL)
        self.dropout = nn.Dropout(DROPOUT)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.size()
        q, k, v = self.qkv(self.ln1(x)).view(B, T, 3, HEADS, C // HEADS).permute(2, 0, 3, 1, 4)  # 3 x [B, H, T, hd]
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=DROPOUT if self.training else 0.0)
        x = x + self.dropout(self.proj(y.transpose(1, 2).reshape(B, T, C)))
        return x + self.dropout(self.fc_out(F.gelu(self.fc(self.ln2(x)), approximate="tanh")))


class GPT(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.tokens = nn.Embedding(len(VOCABULARY), D_MODEL)
        self.positions = nn.Embedding(CONTEXT, D_MODEL)
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
        self.ln = nn.LayerNorm(D_MODEL)
        self.dropout = nn.Dropout(DROPOUT)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:  # idx: [B, T] -> logits [B, T, vocab]
        x = self.dropout(self.tokens(idx) + self.positions(torch.arange(idx.shape[1], device=idx.device)))
        for block in self.blocks:
            x = block(x)
        return self.ln(x) @ self.tokens.weight.t()  # tied embeddings


def build_model() -> nn.Module:
    return GPT()


def build_optimizer(params):
    return torch.optim.AdamW(params, lr=3e-3, betas=(0.9, 0.95), weight_decay=0.1)


def build_scheduler(optimizer):
    def factor(step: int) -> float:
        if step < WARMUP:
            return (step + 1) / WARMUP
        return 0.5 * (1.0 + math.cos(math.pi * min(step - WARMUP, TOTAL) / TOTAL))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def load_data() -> dict[str, torch.Tensor]:
    index = {char: i for i, char in enumerate(VOCABULARY)}
    tokens = torch.tensor([index[char] for char in read_text()], dtype=torch.int64)
    windows = tokens.shape[0] // (CONTEXT + 1)
    return {"tokens": tokens[: windows * (CONTEXT + 1)].reshape(windows, CONTEXT + 1)}


def compute_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    tokens = batch["tokens"]
    logits = model(tokens[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
