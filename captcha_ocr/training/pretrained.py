"""Start a user's model from a trained model's backbone (the synthetic or the general model's)
instead of random weights.

CTC models trained from scratch on a few hundred images sit for a long time on the plateau where
they predict nothing ("accuracy stuck at 0"). The convolutions and the context layer of the
synthetic model already know strokes and alignment, and their shapes depend neither on the input
width nor on the charset, so they carry over. A backbone saved with its charset carries its output
layer too: each character the new charset shares with it (and the CTC blank) starts from its
column, so the new model reads from its first step what the backbone's model reads of them, and
only characters the backbone never learned start fresh. The weights are stored as float16 (an
initialisation, fine-tuned afterwards, needs no more precision).
"""

from __future__ import annotations

from pathlib import Path

import keras
import numpy as np

from captcha_ocr.training.settings import BACKBONES

# --init's choices (settings.BACKBONES): the one-style synthetic model's backbone (the small
# network), the general model's (the medium one: docs/general-model.md)
BACKBONE = BACKBONES["synthetic"]


OUTPUT_LAYER = "logits"  # model.build_model's: one column per character, then the CTC blank
CHARSET_KEY = "charset"  # the output layer's characters, stored beside it


def save_backbone(model: keras.Model, path: Path = BACKBONE, charset: str | None = None) -> Path:
    """Every layer's weights; the output layer's only with the `charset` its columns stand for."""
    arrays = {f"{layer.name}/{index}": weight.astype(np.float16)
              for layer in model.layers if charset is not None or layer.name != OUTPUT_LAYER
              for index, weight in enumerate(layer.get_weights())}
    if charset is not None:
        arrays[CHARSET_KEY] = np.array(charset)
    np.savez_compressed(path, **arrays)
    return path


def transfer_backbone(model: keras.Model, path: Path = BACKBONE, charset: str | None = None) -> list[str]:
    """Copy every stored layer whose weight shapes match, and, given the model's `charset` and a
    backbone saved with its own, the output columns of the characters both share and of the blank.
    Returns the names of the layers copied (the output layer's with how many characters it kept)."""
    stored = np.load(path)
    by_layer: dict[str, dict[int, np.ndarray]] = {}
    for key in stored.files:
        if key != CHARSET_KEY:
            name, index = key.rsplit("/", 1)
            by_layer.setdefault(name, {})[int(index)] = stored[key]
    copied = []
    for layer in model.layers:
        weights = by_layer.get(layer.name)
        current = layer.get_weights()
        if layer.name == OUTPUT_LAYER or not weights or len(weights) != len(current):
            continue
        candidate = [weights[i].astype(current[i].dtype) for i in range(len(current))]
        if all(c.shape == w.shape for c, w in zip(candidate, current)):
            layer.set_weights(candidate)
            copied.append(layer.name)
    # the output columns mean something only on the features the backbone's own layers make
    every_layer = set(by_layer) - {OUTPUT_LAYER} <= set(copied)
    if charset is not None and CHARSET_KEY in stored.files and OUTPUT_LAYER in by_layer and every_layer:
        shared = _transfer_output(model.get_layer(OUTPUT_LAYER), by_layer[OUTPUT_LAYER], str(stored[CHARSET_KEY]),
                                  charset)
        copied.append(f"{OUTPUT_LAYER} ({shared} of {len(charset)} characters, and the blank)")
    return copied


def _transfer_output(layer: keras.layers.Layer, stored: dict[int, np.ndarray], stored_charset: str,
                     charset: str) -> int:
    """The stored columns of the characters in both charsets, and the blank's (each charset's last
    class); the others keep their fresh weights. Returns how many characters were shared. (Every
    other layer was copied, so the columns' inputs, the context layer's outputs, match in width.)"""
    kernel, bias = layer.get_weights()
    stored_kernel, stored_bias = stored[0], stored[1]
    pairs = [(i, stored_charset.index(char)) for i, char in enumerate(charset) if char in stored_charset]
    pairs.append((len(charset), len(stored_charset)))  # blank to blank
    for new, old in pairs:
        kernel[:, new], bias[new] = stored_kernel[:, old], stored_bias[old]
    layer.set_weights([kernel, bias])
    return len(pairs) - 1
