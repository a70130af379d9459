"""Mixed precision: a small attention classifier on scikit-learn's digits, its forward pass under
`torch.autocast` with bfloat16.

A pinpoint task file: plain PyTorch, trainable with an ordinary loop. Each 8x8 image is a sequence of
eight rows; a convolution stem, a pre-norm attention block (scaled dot-product attention, GELU MLP) and
a linear head. Inside the autocast region the matrix products, convolutions and attention run in
bfloat16 on bfloat16 casts of the float32 parameters; the loss runs in float32. AdamW, clipping.
"""

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

WIDTH = 32
HEADS = 4
batch_size = 32
grad_clip = 1.0
protocol_init = True  # s_0 drawn by pinpoint's portable generator (a plain loop ignores this)


class RowAttention(nn.Module):
    """images [B, 64] → logits [B, 10]."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv1d(8, WIDTH, kernel_size=3, padding=1)
        self.norm1 = nn.LayerNorm(WIDTH)
        self.qkv = nn.Linear(WIDTH, 3 * WIDTH)
        self.out = nn.Linear(WIDTH, WIDTH)
        self.norm2 = nn.LayerNorm(WIDTH)
        self.mlp = nn.Sequential(nn.Linear(WIDTH, 2 * WIDTH), nn.GELU(), nn.Linear(2 * WIDTH, WIDTH))
        self.head = nn.Linear(WIDTH, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        rows = images.view(-1, 8, 8)  # [B, row, pixel]
        h = self.stem(rows.transpose(1, 2)).transpose(1, 2)  # [B, row, WIDTH]
        q, k, v = self.qkv(self.norm1(h)).view(h.shape[0], 8, 3, HEADS, WIDTH // HEADS).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(h.shape)
        h = h + self.out(attended)
        h = h + self.mlp(self.norm2(h))
        return self.head(h.mean(dim=1))


def build_model() -> nn.Module:
    return RowAttention()


def build_optimizer(params):
    return torch.optim.AdamW(params, lr=2e-3, weight_decay=0.01)


def load_data() -> dict[str, torch.Tensor]:
    digits = load_digits()
    return {"x": torch.tensor(digits.data, dtype=torch.float32) / 16.0, "y": torch.tensor(digits.target, dtype=torch.int64)}


def compute_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = model(batch["x"])
    return F.cross_entropy(logits.float(), batch["y"])
