"""The data sets a job can train on; both ship with installed packages, nothing is downloaded.

- "digits": scikit-learn's 8x8 handwritten digits, pixels scaled to [0, 1] as float32 [1797, 64],
  labels int64 [1797].
- "sklearn-text": the concatenated descriptions of scikit-learn's bundled data sets, as a character
  stream; tokens int64 [N] index into the sorted set of characters that occur.
"""

from __future__ import annotations

import importlib.resources
from functools import cache

import torch


class DataError(ValueError):
    """An unknown data set."""


@cache
def load_text() -> str:
    folder = importlib.resources.files("sklearn.datasets") / "descr"
    parts = sorted((entry.name, entry.read_text(encoding="utf-8")) for entry in folder.iterdir() if entry.name.endswith(".rst"))
    return "\n".join(text for _, text in parts)


def get_vocabulary() -> list[str]:
    return sorted(set(load_text()))


def load_data(name: str) -> dict[str, torch.Tensor]:
    """The data set's named tensors (as they appear in every state, under 'data/')."""
    if name == "digits":
        from sklearn.datasets import load_digits

        digits = load_digits()
        x = torch.tensor(digits.data, dtype=torch.float64).div(16.0).to(torch.float32)
        return {"data/x": x, "data/y": torch.tensor(digits.target, dtype=torch.int64)}
    if name == "sklearn-text":
        vocabulary = {char: i for i, char in enumerate(get_vocabulary())}
        return {"data/tokens": torch.tensor([vocabulary[char] for char in load_text()], dtype=torch.int64)}
    raise DataError(f"unknown data set {name!r}; choose digits or sklearn-text")
