"""Regression and classification heads on scikit-learn's diabetes data (442 patients, 10 features).

A pinpoint task file: plain PyTorch, trainable with an ordinary loop. Sigmoid, Softplus,
LeakyReLU and ELU; MSE, L1 and smooth-L1 losses on the disease progression, binary cross-entropy
with logits on "above the median", and cross-entropy with label smoothing and ignore_index on its
tertile (a tenth of the labels are hidden as -100); Adagrad, NAdam or RAdam.
"""

import torch
import torch.nn.functional as F
from sklearn.datasets import load_diabetes
from torch import nn

OPTIMIZER = "nadam"  # adagrad | nadam | radam
HIDDEN = 32
batch_size = 16
protocol_init = True  # s_0 drawn by pinpoint's portable generator (a plain loop ignores this)


class Heads(nn.Module):
    """A trunk of four activations, then three heads: value [B], logit [B], tertile logits [B, 3]."""

    def __init__(self) -> None:
        super().__init__()
        self.trunk = nn.Sequential(
            nn.Linear(10, HIDDEN), nn.Sigmoid(), nn.Linear(HIDDEN, HIDDEN), nn.Softplus(),
            nn.Linear(HIDDEN, HIDDEN), nn.LeakyReLU(0.1), nn.Linear(HIDDEN, HIDDEN), nn.ELU(),
        )
        self.value = nn.Linear(HIDDEN, 1)
        self.above = nn.Linear(HIDDEN, 1)
        self.tertile = nn.Linear(HIDDEN, 3)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        h = self.trunk(x)
        return self.value(h).squeeze(-1), self.above(h).squeeze(-1), self.tertile(h)


def build_model() -> nn.Module:
    return Heads()


def build_optimizer(params):
    if OPTIMIZER == "adagrad":
        return torch.optim.Adagrad(params, lr=0.05)
    if OPTIMIZER == "radam":
        return torch.optim.RAdam(params, lr=3e-3)
    return torch.optim.NAdam(params, lr=3e-3)


def load_data() -> dict[str, torch.Tensor]:
    data = load_diabetes()
    x = torch.tensor(data.data, dtype=torch.float32)
    y = torch.tensor(data.target, dtype=torch.float32)
    value = (y - y.mean()) / y.std()  # standardised progression
    tertile = torch.bucketize(y, torch.quantile(y, torch.tensor([1 / 3, 2 / 3]))).to(torch.int64)
    tertile[::10] = -100  # hidden labels: ignore_index
    return {"x": x, "value": value, "above": (y > y.median()).to(torch.float32), "tertile": tertile}


def compute_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    value, above, tertile = model(batch["x"])
    regression = F.mse_loss(value, batch["value"]) + F.l1_loss(value, batch["value"]) + F.smooth_l1_loss(value, batch["value"])
    binary = F.binary_cross_entropy_with_logits(above, batch["above"])
    classes = F.cross_entropy(tertile, batch["tertile"], label_smoothing=0.1, ignore_index=-100)
    return regression + binary + classes
