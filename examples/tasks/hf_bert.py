"""transformers' BertForSequenceClassification, unchanged, classifying scikit-learn's 8x8 digits read
as sequences of 64 pixel tokens.

A pinpoint task file: plain PyTorch and the `transformers` library's own modelling code (built from
a config: no weights are downloaded). A bidirectional encoder: word, position and token-type
embeddings, attention dropout through scaled dot-product attention, GELU, a pooler and a
classifier; AdamW with a linear warm-up.
"""

import torch
from sklearn.datasets import load_digits
from torch import nn
from transformers import BertConfig, BertForSequenceClassification

batch_size = 8
protocol_init = True  # s_0 drawn by pinpoint's portable generator (a plain loop ignores this)


def build_model() -> nn.Module:
    config = BertConfig(
        vocab_size=17, hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
        max_position_embeddings=64, num_labels=10, attn_implementation="sdpa",
    )
    return BertForSequenceClassification(config)


def build_optimizer(params):
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)


def build_scheduler(optimizer):
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(1.0, (step + 1) / 10))


def load_data() -> dict[str, torch.Tensor]:
    digits = load_digits()
    pixels = torch.tensor(digits.data, dtype=torch.int64)  # intensities 0 … 16: the tokens
    return {"pixels": pixels, "label": torch.tensor(digits.target, dtype=torch.int64)}


def compute_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(input_ids=batch["pixels"], labels=batch["label"]).loss
