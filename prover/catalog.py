"""The built-in presets by name: a module without torch, so the command line can offer the choices
(and answer `--help` and argument errors) before it loads anything heavy. `prover.presets` builds them."""

from __future__ import annotations

MODELS = ("mlp", "transformer")
OPTIMIZERS = ("sgd", "adam", "adamw")
SIZES = {"mlp": ("small", "mid"), "transformer": ("tiny", "small", "mid")}
