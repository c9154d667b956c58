"""Keras model -> four TFLite files, plus config.json naming the one to serve:
- `model_dynamic.tflite`: int8 weights (per channel in convolutions, per tensor in dense layers,
  so that every supported runtime loads it), activations quantized per image as it runs (dynamic
  range). About the int8 file's size and speed, and, measured, the float model's accuracy: the
  first choice.
- `model_quantized.tflite`: full int8 (uint8 image in, float logits out, per-channel weights,
  activation ranges calibrated on the user's own training images). On hard styles its fixed
  activation ranges cost accuracy (tjsp_captchas: 2 of 406 unseen images).
- `model_float16.tflite` and `model.tflite` (float32): the float model, twice and four times the size.

Every file reads the held-out images and up to AGREEMENT_TRAINING_IMAGES training images in the
serving runtime itself, decoding included. The table shows each file's held-out accuracy and how
many readings differ from float32's; the served file is the first of PREFERENCE that differs on
at most MAX_DISAGREEMENT of them. A file can lose at most one right reading per difference, so
this bounds what quantization costs, and with ten times the images of the held-out set alone it
is not decided by one or two of them (on tjsp_captchas, 162 held-out images ranked the files
by noise: BENCHMARKS.md, "Which model file is served").
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
from collections import Counter
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from captcha_ocr.answers import is_question
from captcha_ocr.config import ModelConfig, file_sha256
from captcha_ocr.evaluation import sequence_accuracy, tflite_predictions_isolated
from captcha_ocr.training.data import Dataset
from captcha_ocr.training.settings import TrainSettings

FLOAT_FILE = "model.tflite"
QUANTIZED_FILE = "model_quantized.tflite"
FLOAT16_FILE = "model_float16.tflite"
DYNAMIC_FILE = "model_dynamic.tflite"
# int8 weights first (the smallest and the fastest; dynamic ranges before fixed ones, which lose
# more), then the float ones
PREFERENCE = (DYNAMIC_FILE, QUANTIZED_FILE, FLOAT16_FILE, FLOAT_FILE)
MAX_DISAGREEMENT = 0.002  # share of readings a file may change against float32's, at most
AGREEMENT_TRAINING_IMAGES = 2000  # training images read beside the held-out ones
DECLARED_SIZE_SHARE = 0.1  # config.json declares the image sizes at least this share of the training images have


def _saved_model(model: keras.Model, directory: Path, height: int, width: int) -> None:
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve",
        lambda image: model(image, training=False),
        input_signature=[tf.TensorSpec((1, height, width, 1), tf.float32, name="image")],
    )
    archive.write_out(str(directory), verbose=False)


def convert(model: keras.Model, height: int, width: int, representative: np.ndarray) -> dict[str, bytes]:
    """Each file's flatbuffer; only builtin ops, so no Flex delegate is needed."""
    with tempfile.TemporaryDirectory() as tmp:
        _saved_model(model, Path(tmp), height, width)
        models = {FLOAT_FILE: tf.lite.TFLiteConverter.from_saved_model(tmp).convert()}
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image[np.newaxis]] for image in representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.float32
        models[QUANTIZED_FILE] = converter.convert()
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]  # no calibration set: dynamic range
        # per-channel dense weights make FULLY_CONNECTED version 12, which tflite-runtime 2.14 (a
        # supported runtime) cannot load; per-tensor ones keep an older version every runtime has
        converter._experimental_disable_per_channel_quantization_for_dense_layers = True
        models[DYNAMIC_FILE] = converter.convert()
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
        models[FLOAT16_FILE] = converter.convert()
    return models


def choose_served(differences: dict[str, int], images: int) -> str:
    """The first file of PREFERENCE whose readings differ from float32's on at most
    MAX_DISAGREEMENT of `images` (float32 itself never differs)."""
    return next(file for file in PREFERENCE if differences[file] <= MAX_DISAGREEMENT * images)


def export(
    model: keras.Model, config: ModelConfig, out_dir: Path, representative: np.ndarray, evaluation: Dataset,
    training_images: np.ndarray,
) -> ModelConfig:
    """Write every file and config.json into out_dir; print and return the size/accuracy table.
    `evaluation` is the held-out set; `training_images` only add readings to compare."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    images = np.concatenate([evaluation.images, training_images[:AGREEMENT_TRAINING_IMAGES]])
    readings = {}
    for file, flatbuffer in convert(model, config.height, config.width, representative).items():
        (out_dir / file).write_bytes(flatbuffer)
        readings[file] = tflite_predictions_isolated(dataclasses.replace(config, model_file=file), out_dir, images)
    rows = {file: {"bytes": (out_dir / file).stat().st_size,
                   "accuracy": sequence_accuracy(texts[:len(evaluation)], evaluation.texts),
                   "differs": sum(a != b for a, b in zip(texts, readings[FLOAT_FILE]))}
            for file, texts in readings.items()}
    served = choose_served({file: row["differs"] for file, row in rows.items()}, len(images))
    print(f"\n{'model':<24}{'size (KB)':>12}{'held-out':>10}{'differs from float32':>24}")
    for file in PREFERENCE:
        row, mark = rows[file], "   <- served" if file == served else ""
        print(f"{file:<24}{row['bytes'] / 1024:>12.1f}{row['accuracy'] * 100:>9.2f}%"
              f"{row['differs']:>10} of {len(images)} readings{mark}")
    print(f"({len(evaluation)} held-out images; readings of those and {len(images) - len(evaluation)} training "
          f"images.) config.json serves {served}: the first of the files above whose readings differ from "
          f"float32's on at most {MAX_DISAGREEMENT:.1%} of them, so it loses at most that much accuracy")
    final = dataclasses.replace(
        config,
        model_file=served,
        sha256=file_sha256(out_dir / served),
        metrics={**config.metrics, "export": rows, "export_eval_images": len(evaluation),
                 "export_compared_readings": len(images)},
    )
    final.save(out_dir)
    return final


def common_sizes(sizes: list[tuple[int, int]] | None) -> tuple[tuple[int, int], ...]:
    """The (width, height) sizes common in a training folder: a function serving several models sends
    an image of such a size, naming no model, to this one (when no other model declares it too)."""
    counts = Counter(sizes or [])
    return tuple(sorted(size for size, count in counts.items() if count >= DECLARED_SIZE_SHARE * len(sizes or [])))


def export_run(settings: TrainSettings, model: keras.Model, train_set: Dataset, validation: Dataset,
               name: str | None = None) -> ModelConfig:
    """A finished run -> run/export/: the model contract from the run's settings and its history
    (state.json), calibrated on 500 training images, scored on the validation set and compared with
    float32 on those and the training images."""
    run = settings.run_dir
    config = ModelConfig(
        name=name or run.name, charset=settings.charset, lengths=settings.lengths,
        height=settings.height, width=settings.width, gray=settings.gray, views=settings.views,
        # arithmetic when every label is a question with an answer: replies then carry the answer
        task="arithmetic" if train_set.texts and all(map(is_question, train_set.texts)) else "text",
        source_sizes=common_sizes(train_set.source_sizes),
        metrics={"training": json.loads((run / "state.json").read_text())},
    )
    exported = export(model, config, run / "export", train_set.images[:500], validation, train_set.images)
    print(f"\nexported to {run / 'export'}: serve it beside the others with `captcha-ocr models add "
          f"{run / 'export'} --name NAME`, or alone with CAPTCHA_OCR_MODEL_DIR={run / 'export'}")
    return exported
