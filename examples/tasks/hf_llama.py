"""transformers' LlamaForCausalLM, unchanged, as a character model of scikit-learn's data-set texts.

A pinpoint task file: plain PyTorch and the `transformers` library's own modelling code (built from
a config: no weights are downloaded). Rotary embeddings are computed inside the step (sin, cos),
RMSNorm, SwiGLU, grouped-query attention through scaled dot-product attention; AdamW.
"""

import importlib.resources

import torch
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

CONTEXT = 16
batch_size = 4
protocol_init = True  # s_0 drawn by pinpoint's portable generator (a plain loop ignores this)


def read_text() -> str:
    folder = importlib.resources.files("sklearn.datasets") / "descr"
    parts = sorted((entry.name, entry.read_text(encoding="utf-8")) for entry in folder.iterdir() if entry.name.endswith(".rst"))
    return "\n".join(text for _, text in parts)


VOCABULARY = sorted(set(read_text()))


def build_model() -> nn.Module:
    config = LlamaConfig(
        vocab_size=len(VOCABULARY), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=CONTEXT,
        bos_token_id=0, eos_token_id=1, pad_token_id=None, attn_implementation="sdpa",
    )
    return LlamaForCausalLM(config)


def build_optimizer(params):
    return torch.optim.AdamW(params, lr=1e-3, weight_decay=0.01)


def load_data() -> dict[str, torch.Tensor]:
    index = {char: i for i, char in enumerate(VOCABULARY)}
    tokens = torch.tensor([index[char] for char in read_text()], dtype=torch.int64)
    windows = tokens.shape[0] // CONTEXT
    return {"tokens": tokens[: windows * CONTEXT].reshape(windows, CONTEXT)}


def compute_loss(model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    return model(input_ids=batch["tokens"], labels=batch["tokens"]).loss
