"""Keras model -> float `model.tflite` and full-integer `model_quantized.tflite`, plus config.json.

Full int8 (uint8 image in, float logits out) is both the smallest and the one tflite-runtime 2.14
loads: TF 2.21's dynamic-range quantization emits FULLY_CONNECTED v12, which that runtime lacks.
Both files are scored by the serving runtime itself, so the table shows what users will get.
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
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


def _saved_model(model: keras.Model, directory: Path, height: int, width: int) -> None:
    archive = keras.export.ExportArchive()
    archive.track(model)
    archive.add_endpoint(
        "serve",
        lambda image: model(image, training=False),
        input_signature=[tf.TensorSpec((1, height, width, 1), tf.float32, name="image")],
    )
    archive.write_out(str(directory), verbose=False)


def convert(model: keras.Model, height: int, width: int, representative: np.ndarray) -> tuple[bytes, bytes]:
    """(float32 flatbuffer, int8 flatbuffer); only builtin ops, so no Flex delegate is needed."""
    with tempfile.TemporaryDirectory() as tmp:
        _saved_model(model, Path(tmp), height, width)
        float_model = tf.lite.TFLiteConverter.from_saved_model(tmp).convert()
        converter = tf.lite.TFLiteConverter.from_saved_model(tmp)
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image[np.newaxis]] for image in representative)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        converter.inference_output_type = tf.float32
        quantized_model = converter.convert()
    return float_model, quantized_model


def export(
    model: keras.Model, config: ModelConfig, out_dir: Path, representative: np.ndarray, evaluation: Dataset
) -> ModelConfig:
    """Write both models and config.json into out_dir; print and return the size/accuracy table."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    float_model, quantized_model = convert(model, config.height, config.width, representative)
    (out_dir / FLOAT_FILE).write_bytes(float_model)
    (out_dir / QUANTIZED_FILE).write_bytes(quantized_model)
    rows = {}
    for file in (FLOAT_FILE, QUANTIZED_FILE):
        variant = dataclasses.replace(config, model_file=file)
        rows[file] = {"bytes": (out_dir / file).stat().st_size, "accuracy": sequence_accuracy(
            tflite_predictions_isolated(variant, out_dir, evaluation.images), evaluation.texts)}
    print(f"\n{'model':<24}{'size (KB)':>12}{'accuracy':>12}   ({len(evaluation)} held-out images)")
    for file, row in rows.items():
        print(f"{file:<24}{row['bytes'] / 1024:>12.1f}{row['accuracy'] * 100:>11.2f}%")
    final = dataclasses.replace(
        config,
        model_file=QUANTIZED_FILE,
        sha256=file_sha256(out_dir / QUANTIZED_FILE),
        metrics={**config.metrics, "export": rows, "export_eval_images": len(evaluation)},
    )
    final.save(out_dir)
    return final


def export_run(settings: TrainSettings, model: keras.Model, train_set: Dataset, validation: Dataset,
               name: str | None = None) -> ModelConfig:
    """A finished run -> run/export/: the model contract from the run's settings and its history
    (state.json), calibrated on 500 training images and scored on the validation set."""
    run = settings.run_dir
    config = ModelConfig(
        name=name or run.name, charset=settings.charset, lengths=settings.lengths,
        height=settings.height, width=settings.width,
        metrics={"training": json.loads((run / "state.json").read_text())},
    )
    exported = export(model, config, run / "export", train_set.images[:500], validation)
    print(f"\nexported to {run / 'export'}: serve it with CAPTCHA_OCR_MODEL_DIR={run / 'export'}")
    return exported
