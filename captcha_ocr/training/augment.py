"""Augmentation for small real datasets: layers that act in training only (never exported).

Small affine jitter, contrast changes, occasional blur, sensor noise and occasional occlusion
lines: the ways one site's captchas differ from each other, so a few hundred samples go further.
They are Keras layers written with `keras.ops`, placed in front of the model while it trains, so
the same code runs on any Keras backend (TensorFlow on a laptop, JAX or PyTorch on a GPU) and on
the accelerator itself, with no input pipeline of its own.
"""

from __future__ import annotations

import keras
from keras import layers, ops

BLUR_PROBABILITY = 0.25
LINE_PROBABILITY = 0.3


@keras.saving.register_keras_serializable(package="captcha_ocr")
class CaptchaNoise(layers.Layer):
    """A thin dark strike-through line, blur, contrast change and sensor noise, each image drawn
    on its own; the identity outside training."""

    def __init__(self, seed: int | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def _uniform(self, shape: tuple, low: float = 0.0, high: float = 1.0):
        return keras.random.uniform(shape, low, high, seed=self.seed_generator)

    def _lines(self, images):
        batch, height, width = ops.shape(images)[0], images.shape[1], images.shape[2]
        rows = ops.reshape(ops.arange(height, dtype="float32"), (1, height, 1))
        cols = ops.reshape(ops.arange(width, dtype="float32"), (1, 1, width))
        start = self._uniform((batch, 1, 1), 0.2 * height, 0.8 * height)
        slope = self._uniform((batch, 1, 1), -0.3, 0.3) * height / width
        distance = ops.abs(rows - (start + slope * cols)) / ops.sqrt(1.0 + slope**2)
        drawn = self._uniform((batch, 1, 1)) < LINE_PROBABILITY
        mask = ops.expand_dims(ops.logical_and(distance < 0.6, drawn), -1)
        return ops.where(mask, self._uniform((batch, 1, 1, 1), 0.0, 0.35), images)

    def _blur(self, images):
        blurred = ops.average_pool(images, 3, strides=1, padding="same")
        chosen = self._uniform((ops.shape(images)[0], 1, 1, 1)) < BLUR_PROBABILITY
        return ops.where(chosen, blurred, images)

    def _contrast_and_noise(self, images):
        batch = ops.shape(images)[0]
        mean = ops.mean(images, axis=(1, 2, 3), keepdims=True)
        factor = self._uniform((batch, 1, 1, 1), 0.6, 1.2)
        noise = keras.random.normal(ops.shape(images), seed=self.seed_generator)
        return mean + (images - mean) * factor + noise * self._uniform((batch, 1, 1, 1), 0.0, 0.05)

    def call(self, images, training: bool | None = None):
        if not training:
            return images
        return ops.clip(self._contrast_and_noise(self._blur(self._lines(images))), 0.0, 1.0)

    def compute_output_shape(self, input_shape: tuple) -> tuple:
        return input_shape

    def get_config(self) -> dict:
        return {**super().get_config(), "seed": self.seed}


def augmentation(seed: int) -> keras.Sequential:
    """Geometry first (as a camera or a renderer would shift it), then the captcha's own noise."""
    return keras.Sequential([
        layers.RandomTranslation(0.08, 0.05, fill_mode="nearest", seed=seed),
        layers.RandomRotation(0.012, fill_mode="nearest", seed=seed + 1),
        layers.RandomZoom((-0.08, 0.08), fill_mode="nearest", seed=seed + 2),
        CaptchaNoise(seed=seed + 3),
    ], name="augmentation")
