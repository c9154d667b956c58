"""Augmentation for small real datasets, applied to training batches only (never exported).

Small affine jitter, contrast changes, occasional blur, sensor noise and occasional occlusion
lines: the ways one site's captchas differ from each other, so a few hundred samples go further.
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

BLUR_PROBABILITY = 0.25
LINE_PROBABILITY = 0.3


def _random_lines(images: tf.Tensor) -> tf.Tensor:
    """Draw one thin dark line across some images, like the strike-through lines captchas use."""
    shape = tf.shape(images)
    batch, height, width = shape[0], shape[1], shape[2]
    rows = tf.cast(tf.range(height), tf.float32)[None, :, None]
    cols = tf.cast(tf.range(width), tf.float32)[None, None, :]
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    start = tf.random.uniform((batch, 1, 1), 0.2 * h, 0.8 * h)
    slope = tf.random.uniform((batch, 1, 1), -0.3, 0.3) * h / w
    distance = tf.abs(rows - (start + slope * cols)) / tf.sqrt(1.0 + slope**2)
    drawn = tf.random.uniform((batch, 1, 1)) < LINE_PROBABILITY
    mask = tf.logical_and(distance < 0.6, drawn)[..., None]
    shade = tf.random.uniform((batch, 1, 1, 1), 0.0, 0.35)
    return tf.where(mask, shade, images)


def _blur(images: tf.Tensor) -> tf.Tensor:
    blurred = tf.nn.avg_pool2d(images, ksize=3, strides=1, padding="SAME")
    chosen = tf.random.uniform((tf.shape(images)[0], 1, 1, 1)) < BLUR_PROBABILITY
    return tf.where(chosen, blurred, images)


def _contrast_and_noise(images: tf.Tensor) -> tf.Tensor:
    batch = tf.shape(images)[0]
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    factor = tf.random.uniform((batch, 1, 1, 1), 0.6, 1.2)
    noise = tf.random.normal(tf.shape(images)) * tf.random.uniform((batch, 1, 1, 1), 0.0, 0.05)
    return mean + (images - mean) * factor + noise


def make_augmenter(seed: int):
    """A function (images, labels) -> (augmented images, labels) for tf.data.map."""
    geometry = keras.Sequential([
        keras.layers.RandomTranslation(0.08, 0.05, fill_mode="nearest", seed=seed),
        keras.layers.RandomRotation(0.012, fill_mode="nearest", seed=seed + 1),
        keras.layers.RandomZoom((-0.08, 0.08), fill_mode="nearest", seed=seed + 2),
    ])

    def augment(images: tf.Tensor, labels: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        images = geometry(images, training=True)
        images = _contrast_and_noise(_blur(_random_lines(images)))
        return tf.clip_by_value(images, 0.0, 1.0), labels

    return augment


def training_batches(images: np.ndarray, labels: np.ndarray, batch_size: int, seed: int) -> tf.data.Dataset:
    """Shuffled, augmented batches, reshuffled every epoch."""
    dataset = tf.data.Dataset.from_tensor_slices((images, labels))
    dataset = dataset.shuffle(len(images), seed=seed, reshuffle_each_iteration=True).batch(batch_size)
    return dataset.map(make_augmenter(seed), num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
