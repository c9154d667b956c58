"""Keras model -> four TFLite files, plus config.json naming the one to serve:
- `model_dynamic.tflite`: int8 weights, activations quantized per image as it runs (dynamic
  range). About the int8 file's size and speed, and, measured, the float model's accuracy: the
  first choice.
- `model_quantized.tflite`: full int8 (uint8 image in, float logits out, per-channel weights,
  activation ranges calibrated on the user's own training images). On hard styles its fixed
  activation ranges cost accuracy (tjsp_captchas: 2 of 406 unseen images).
- `model_float16.tflite` and `model.tflite` (float32): the float model, twice and four times the size.

Every file is scored on the held-out images by the serving runtime itself, so the table shows
what users will get, and the served file is the first of PREFERENCE within MAX_QUANTIZATION_LOSS
of the best.
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
MAX_QUANTIZATION_LOSS = 0.002  # held-out accuracy a smaller file may lose against the best one
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
        models[DYNAMIC_FILE] = converter.convert()
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
        models[FLOAT16_FILE] = converter.convert()
    return models


def choose_served(accuracies: dict[str, float]) -> str:
    """The first file of PREFERENCE whose held-out accuracy is within MAX_QUANTIZATION_LOSS of the best."""
    best = max(accuracies.values())
    return next(file for file in PREFERENCE if accuracies[file] >= best - MAX_QUANTIZATION_LOSS - 1e-12)


def export(
    model: keras.Model, config: ModelConfig, out_dir: Path, representative: np.ndarray, evaluation: Dataset
) -> ModelConfig:
    """Write both models and config.json into out_dir; print and return the size/accuracy table."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = {}
    for file, flatbuffer in convert(model, config.height, config.width, representative).items():
        (out_dir / file).write_bytes(flatbuffer)
        variant = dataclasses.replace(config, model_file=file)
        rows[file] = {"bytes": len(flatbuffer), "accuracy": sequence_accuracy(
            tflite_predictions_isolated(variant, out_dir, evaluation.images), evaluation.texts)}
    served = choose_served({file: row["accuracy"] for file, row in rows.items()})
    print(f"\n{'model':<24}{'size (KB)':>12}{'accuracy':>12}   ({len(evaluation)} held-out images)")
    for file, row in rows.items():
        mark = "   <- served" if file == served else ""
        print(f"{file:<24}{row['bytes'] / 1024:>12.1f}{row['accuracy'] * 100:>11.2f}%{mark}")
    costs = ", ".join(f"{file} {(rows[FLOAT_FILE]['accuracy'] - rows[file]['accuracy']) * 100:.2f}"
                      for file in (DYNAMIC_FILE, QUANTIZED_FILE))
    print(f"points lost against float32 here: {costs}; config.json serves {served} (the first of "
          f"{', '.join(PREFERENCE)} within {MAX_QUANTIZATION_LOSS * 100:.1f} points of the best)")
    final = dataclasses.replace(
        config,
        model_file=served,
        sha256=file_sha256(out_dir / served),
        metrics={**config.metrics, "export": rows, "export_eval_images": len(evaluation)},
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
    (state.json), calibrated on 500 training images and scored on the validation set."""
    run = settings.run_dir
    config = ModelConfig(
        name=name or run.name, charset=settings.charset, lengths=settings.lengths,
        height=settings.height, width=settings.width, gray=settings.gray,
        source_sizes=common_sizes(train_set.source_sizes),
        metrics={"training": json.loads((run / "state.json").read_text())},
    )
    exported = export(model, config, run / "export", train_set.images[:500], validation)
    print(f"\nexported to {run / 'export'}: serve it beside the others with `captcha-ocr models add "
          f"{run / 'export'} --name NAME`, or alone with CAPTCHA_OCR_MODEL_DIR={run / 'export'}")
    return exported
