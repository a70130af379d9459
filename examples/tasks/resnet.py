"""A small ResNet-style CNN on scikit-learn's 8x8 digits, trained with SGD (Nesterov momentum).

A pinpoint task file: plain PyTorch, trainable with an ordinary loop. Conv2d, BatchNorm2d in
training mode (its running statistics are part of every state), MaxPool2d, AdaptiveAvgPool2d,
residual additions; SGD with Nesterov momentum and weight decay, StepLR.
"""

import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from torch import nn

SIZE = "small"  # small | mid
WIDTH, BLOCKS = {"small": (8, 1), "mid": (64, 2)}[SIZE]
batch_size = {"small": 16, "mid": 32}[SIZE]
protocol_init = True  # s_0 drawn by pinpoint's portable generator (a plain loop ignores this)


class Residual(nn.Module):
    """conv -> BN -> ReLU -> conv -> BN, plus the input; then ReLU."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(x + self.bn2(self.conv2(y)))


class ResNet(nn.Module):
    """stem conv -> residual blocks -> 2x2 max pool -> residual blocks -> global average -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, WIDTH, 3, padding=1, bias=False), nn.BatchNorm2d(WIDTH), nn.ReLU())
        self.stage1 = nn.Sequential(*[Residual(WIDTH) for _ in range(BLOCKS)])
        self.pool = nn.MaxPool2d(2)
        self.stage2 = nn.Sequential(*[Residual(WIDTH) for _ in range(BLOCKS)])
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(WIDTH, 10))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # x: [B, 1, 8, 8] -> logits [B, 10]
        return self.head(self.stage2(self.pool(self.stage1(self.stem(x)))))


def build_model() -> nn.Module:
    return ResNet()


def build_optimizer(params):
    return torch.optim.SGD(params, lr=0.05, momentum=0.9, nesterov=True, weight_decay=5e-4)


def build_scheduler(optimizer):
    return torch.optim.lr_scheduler.StepLR(optimizer, step_size=50, gamma=0.5)


def load_data() -> dict[str, torch.Tensor]:
    digits = load_digits()
    x = torch.tensor(digits.data, dtype=torch.float64).div(16.0).to(torch.float32).reshape(-1, 1, 8, 8)
    return {"x": x, "y": torch.tensor(digits.target, dtype=torch.int64)}


def compute_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return F.cross_entropy(model(batch["x"]), batch["y"])
