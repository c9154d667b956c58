"""Start a user's model from a trained model's backbone (the synthetic or the general model's)
instead of random weights.

CTC models trained from scratch on a few hundred images sit for a long time on the plateau where
they predict nothing ("accuracy stuck at 0"). The convolutions and the context layer of the
synthetic model already know strokes and alignment, and their shapes depend neither on the input
width nor on the charset, so they carry over; only the output layer starts fresh. The weights are
stored as float16 (an initialisation, fine-tuned afterwards, needs no more precision).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from captcha_ocr.training.settings import BACKBONES

# --init's choices (settings.BACKBONES): the one-style synthetic model's backbone (the small
# network), the general model's (the medium one: docs/general-model.md)
BACKBONE = BACKBONES["synthetic"]


def save_backbone(model: keras.Model, path: Path = BACKBONE) -> Path:
    arrays = {f"{layer.name}/{index}": weight.astype(np.float16)
              for layer in model.layers if layer.name != "logits"
              for index, weight in enumerate(layer.get_weights())}
    np.savez_compressed(path, **arrays)
    return path


def transfer_backbone(model: keras.Model, path: Path = BACKBONE) -> list[str]:
    """Copy every stored layer whose weight shapes match; returns the names of the layers copied."""
    stored = np.load(path)
    by_layer: dict[str, dict[int, np.ndarray]] = {}
    for key in stored.files:
        name, index = key.rsplit("/", 1)
        by_layer.setdefault(name, {})[int(index)] = stored[key]
    copied = []
    for layer in model.layers:
        weights = by_layer.get(layer.name)
        current = layer.get_weights()
        if not weights or len(weights) != len(current):
            continue
        candidate = [weights[i].astype(current[i].dtype) for i in range(len(current))]
        if all(c.shape == w.shape for c, w in zip(candidate, current)):
            layer.set_weights(candidate)
            copied.append(layer.name)
    return copied
