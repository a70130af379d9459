"""A double-precision network on scikit-learn's diabetes data (442 patients, 10 features).

A pinpoint task file: plain PyTorch, trainable with an ordinary loop. Everything is float64, as in
scientific work where float32's seven digits are not enough: random Fourier features (sin and cos),
a Tanh / GELU / SiLU / Softplus trunk with LayerNorm, a regression head (MSE) and a tertile
classifier (cross-entropy); Adam with weight decay, a cosine schedule and gradient clipping.
"""

import math

import torch
import torch.nn.functional as F
from sklearn.datasets import load_diabetes
from torch import nn

HIDDEN = 32
FEATURES = 16
batch_size = 16
grad_clip = 1.0
protocol_init = True  # s_0 drawn by pinpoint's portable generator (a plain loop ignores this)


class FourierNet(nn.Module):
    """x → [sin(xB), cos(xB)] → trunk → (value [B], tertile logits [B, 3])."""

    def __init__(self) -> None:
        super().__init__()
        self.project = nn.Linear(10, FEATURES, bias=False)
        self.trunk = nn.Sequential(
            nn.Linear(2 * FEATURES, HIDDEN), nn.Tanh(), nn.LayerNorm(HIDDEN),
            nn.Linear(HIDDEN, HIDDEN), nn.GELU(), nn.Linear(HIDDEN, HIDDEN), nn.SiLU(),
            nn.Linear(HIDDEN, HIDDEN), nn.Softplus(),
        )
        self.value = nn.Linear(HIDDEN, 1)
        self.tertile = nn.Linear(HIDDEN, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.project(x) * math.pi
        h = self.trunk(torch.cat([torch.sin(z), torch.cos(z)], dim=-1))
        return self.value(h).squeeze(-1), self.tertile(h)


def build_model() -> nn.Module:
    return FourierNet().double()


def build_optimizer(params):
    return torch.optim.Adam(params, lr=3e-3, weight_decay=1e-4)


def build_scheduler(optimizer):
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=50)


def load_data() -> dict[str, torch.Tensor]:
    data = load_diabetes()
    x = torch.tensor(data.data, dtype=torch.float64)
    y = torch.tensor(data.target, dtype=torch.float64)
    x = (x - x.mean(dim=0)) / x.std(dim=0)
    tertile = torch.bucketize(y, torch.quantile(y, torch.tensor([1 / 3, 2 / 3], dtype=torch.float64)))
    return {"x": x, "value": (y - y.mean()) / y.std(), "tertile": tertile.to(torch.int64)}


def compute_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    value, tertile = model(batch["x"])
    return F.mse_loss(value, batch["value"]) + F.cross_entropy(tertile, batch["tertile"])
