"""An MLP classifier on scikit-learn's 8x8 handwritten digits (1,797 examples, 10 classes).

A pinpoint task file: plain PyTorch, trainable with an ordinary loop. `pinpoint train --model mlp`
uses this file with OPTIMIZER and SIZE set from the command line.
"""

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

OPTIMIZER = "sgd"  # sgd | adam | adamw
SIZE = "small"  # small | mid
HIDDEN, LAYERS = {"small": (64, 2), "mid": (256, 3)}[SIZE]
batch_size = {"small": 32, "mid": 64}[SIZE]
protocol_init = True  # s_0 drawn by pinpoint's portable generator (a plain loop ignores this)


class MLP(nn.Module):
    """Linear -> ReLU blocks, then a linear read-out; logits [B, 10]."""

    def __init__(self, in_features: int = 64, hidden: int = HIDDEN, layers: int = LAYERS, classes: int = 10) -> None:
        super().__init__()
        widths = [in_features] + [hidden] * layers
        self.hidden = nn.ModuleList(nn.Linear(a, b) for a, b in zip(widths, widths[1:], strict=False))
        self.out = nn.Linear(widths[-1], classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 64]
        for layer in self.hidden:
            x = F.relu(layer(x))
        return self.out(x)


def build_model() -> nn.Module:
    return MLP()


def build_optimizer(params):
    if OPTIMIZER == "sgd":
        return torch.optim.SGD(params, lr=0.05, momentum=0.9, foreach=False)
    if OPTIMIZER == "adam":
        return torch.optim.Adam(params, lr=1e-3, foreach=False)
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01, foreach=False)


def load_data() -> dict[str, torch.Tensor]:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float64).div(16.0).to(torch.float32)  # pixels in [0, 1]
    return {"x": x, "y": torch.tensor(digits.target, dtype=torch.int64)}


def compute_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.cross_entropy(model(batch["x"]), batch["y"])
