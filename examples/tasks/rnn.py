"""A recurrent character language model (LSTM then GRU) on scikit-learn's data-set descriptions.

A pinpoint task file: plain PyTorch, trainable with an ordinary loop. `nn.LSTM` and `nn.GRU`;
RMSprop, centered, with momentum.
"""

import importlib.resources

import torch
import torch.nn.functional as F
from torch import nn

SIZE = "small"  # small | mid
EMBED, HIDDEN, CONTEXT = {"small": (16, 32, 16), "mid": (64, 128, 32)}[SIZE]
batch_size = {"small": 4, "mid": 16}[SIZE]
protocol_init = True  # s_0 drawn by pinpoint's portable generator (a plain loop ignores this)


def read_text() -> str:
    folder = importlib.resources.files("sklearn.datasets") / "descr"
    parts = sorted((entry.name, entry.read_text(encoding="utf-8")) for entry in folder.iterdir() if entry.name.endswith(".rst"))
    return "\n".join(text for _, text in parts)


VOCABULARY = sorted(set(read_text()))


class RecurrentLM(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(len(VOCABULARY), EMBED)
        self.lstm = nn.LSTM(EMBED, HIDDEN, batch_first=True)
        self.gru = nn.GRU(HIDDEN, HIDDEN, batch_first=True)
        self.head = nn.Linear(HIDDEN, len(VOCABULARY))

    def forward(self, idx: torch.Tensor) -> torch.Tensor:  # idx: [B, T] -> logits [B, T, vocab]
        x, _ = self.lstm(self.embed(idx))
        x, _ = self.gru(x)
        return self.head(x)


def build_model() -> nn.Module:
    return RecurrentLM()


def build_optimizer(params):
    return torch.optim.RMSprop(params, lr=1e-3, centered=True, momentum=0.9)


def load_data() -> dict[str, torch.Tensor]:
    index = {char: i for i, char in enumerate(VOCABULARY)}
    tokens = torch.tensor([index[char] for char in read_text()], dtype=torch.int64)
    windows = tokens.shape[0] // (CONTEXT + 1)
    return {"tokens": tokens[: windows * (CONTEXT + 1)].reshape(windows, CONTEXT + 1)}


def compute_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    tokens = batch["tokens"]
    logits = model(tokens[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tokens[:, 1:].reshape(-1))
