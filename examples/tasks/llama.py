"""A Llama-style block stack on the descriptions of scikit-learn's bundled data sets (characters).

A pinpoint task file: plain PyTorch, trainable with an ordinary loop. RMSNorm, SwiGLU (SiLU),
rotary position embeddings, grouped-query attention; Adam with AMSGrad and gradient accumulation
over two micro-batches.
"""

import importlib.resources

import torch
import torch.nn.functional as F
from torch import nn

SIZE = "small"  # small | mid
D_MODEL, HEADS, KV_HEADS, LAYERS, CONTEXT = {"small": (32, 4, 2, 1, 16), "mid": (256, 8, 2, 4, 128)}[SIZE]
HEAD_DIM = D_MODEL // HEADS
batch_size = {"small": 2, "mid": 8}[SIZE]
accumulation_steps = 2
protocol_init = True  # s_0 drawn by pinpoint's portable generator (a plain loop ignores this)


def read_text() -> str:
    folder = importlib.resources.files("sklearn.datasets") / "descr"
    parts = sorted((entry.name, entry.read_text(encoding="utf-8")) for entry in folder.iterdir() if entry.name.endswith(".rst"))
    return "\n".join(text for _, text in parts)


VOCABULARY = sorted(set(read_text()))


def rotary_tables(length: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin [length, dim] of the rotary embedding (base 10000), computed once in float64."""
    inverse = 1.0 / (10000.0 ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim))
    angles = torch.outer(torch.arange(length, dtype=torch.float64), inverse)
    angles = torch.cat([angles, angles], dim=-1)
    return angles.cos().to(torch.float32), angles.sin().to(torch.float32)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


class Attention(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.q = nn.Linear(D_MODEL, HEADS * HEAD_DIM, bias=False)
        self.kv = nn.Linear(D_MODEL, 2 * KV_HEADS * HEAD_DIM, bias=False)
        self.o = nn.Linear(HEADS * HEAD_DIM, D_MODEL, bias=False)
        cos, sin = rotary_tables(CONTEXT, HEAD_DIM)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, _ = x.size()
        q = self.q(x).view(B, T, HEADS, HEAD_DIM).transpose(1, 2)  # [B, H, T, hd]
        k, v = self.kv(x).view(B, T, 2, KV_HEADS, HEAD_DIM).permute(2, 0, 3, 1, 4)  # 2 x [B, Hkv, T, hd]
        cos, sin = self.cos[:T], self.sin[:T]
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        k = k.repeat_interleave(HEADS // KV_HEADS, dim=1)  # grouped-query attention
        v = v.repeat_interleave(HEADS // KV_HEADS, dim=1)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        return self.o(y.transpose(1, 2).reshape(B, T, HEADS * HEAD_DIM))


class FeedForward(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.gate = nn.Linear(D_MODEL, 3 * D_MODEL, bias=False)
        self.up = nn.Linear(D_MODEL, 3 * D_MODEL, bias=False)
        self.down = nn.Linear(3 * D_MODEL, D_MODEL, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(F.silu(self.gate(x)) * self.up(x))  # SwiGLU


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.attention_norm = nn.RMSNorm(D_MODEL)
        self.attention = Attention()
        self.ffn_norm = nn.RMSNorm(D_MODEL)
        self.ffn = FeedForward()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x))
        return x + self.ffn(self.ffn_norm(x))


class Llama(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.tokens = nn.Embedding(len(VOCABULARY), D_MODEL)
        self.blocks = nn.ModuleList(Block() for _ in range(LAYERS))
        self.norm = nn.RMSNorm(D_MODEL)
        self.output = nn.Linear(D_MODEL, len(VOCABULARY), bias=False)

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        x = self.tokens(idx)
        for block in self.blocks:
            x = block(x)
        return self.output(self.norm(x))


def build_model() -> nn.Module:
    return Llama()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=1e-3, amsgrad=True)


def load_data() -> dict[str, torch.Tensor]:
    index = {char: i for i, char in enumerate(VOCABULARY)}
    tokens = torch.tensor([index[char] for char in read_text()], dtype=torch.int64)
    windows = tokens.shape[0] // (CONTEXT + 1)
    return {"tokens": tokens[: windows * (CONTEXT + 1)].reshape(windows, CONTEXT + 1)}


def compute_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    tokens = batch["tokens"]
    logits = model(tokens[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
