"""A compact CNN with a CTC head: convolutions read the glyphs, a 1-D convolution reads context
along the width, and every width step emits logits over the charset plus the CTC blank.

Only ops with builtin TFLite kernels (conv, pool, dense, reshape), so tflite-runtime runs it."""

from __future__ import annotations

import keras
from keras import layers


def _conv_block(x, filters: int, name: str):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


# filters of the four convolution blocks, and the width of the column and context layers. "medium"
# (the general model's) has twice the weights of "small"; what each costs to train on 2 cores is
# measured by bench/throughput.py (BENCHMARKS.md, "Training throughput").
MODEL_SIZES = {"small": ((32, 64, 96, 96), 128), "medium": ((48, 96, 128, 128), 192)}


def build_model(height: int, width: int, num_classes: int, size: str = "small") -> keras.Model:
    """(height, width, 1) image in [0, 1] -> (width // 4, num_classes) logits. Layer names do not
    depend on `size`, so a backbone transfers to any model whose shapes match (pretrained.py)."""
    if height % 16 or width % 4:
        raise ValueError("input height must be a multiple of 16 and width a multiple of 4")
    filters, columns = MODEL_SIZES[size]
    image = keras.Input((height, width, 1), name="image")
    x = _conv_block(image, filters[0], "b1")
    x = layers.MaxPooling2D(2, name="pool1")(x)
    x = _conv_block(x, filters[1], "b2")
    x = layers.MaxPooling2D(2, name="pool2")(x)
    x = _conv_block(x, filters[2], "b3")
    x = layers.MaxPooling2D((2, 1), name="pool3")(x)
    x = _conv_block(x, filters[3], "b4")
    x = layers.MaxPooling2D((2, 1), name="pool4")(x)
    # (h/16, w/4, c) -> one feature vector per width step
    x = layers.Permute((2, 1, 3), name="width_first")(x)
    x = layers.Reshape((width // 4, (height // 16) * filters[3]), name="columns")(x)
    x = layers.Dense(columns, activation="relu", name="column_dense")(x)
    x = layers.Dropout(0.2, name="dropout")(x)
    x = layers.Conv1D(columns, 3, padding="same", activation="relu", name="context")(x)
    logits = layers.Dense(num_classes, name="logits")(x)
    return keras.Model(image, logits, name="captcha_ctc")
