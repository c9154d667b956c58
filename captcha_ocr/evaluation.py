"""Accuracy of a model: on preprocessed tensors (during export) or end to end through the handler.

No TensorFlow here. Export scores its models in a spawned process: tflite-runtime and TensorFlow
clash when loaded in one process, and a clean process also proves the file loads in the pinned
serving runtime.
"""

from __future__ import annotations

import base64
import json
import multiprocessing
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from captcha_ocr.config import ModelConfig
from captcha_ocr.runtime import Recognizer, greedy_texts

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp"}
CONFIDENCE_THRESHOLDS = (0.5, 0.9, 0.95, 0.99)


def sequence_accuracy(predicted: list[str], truth: list[str]) -> float:
    return float(np.mean([p == t for p, t in zip(predicted, truth)])) if truth else 0.0


def tflite_predictions(config: ModelConfig, model_dir: Path, images: np.ndarray) -> list[str]:
    recognizer = Recognizer(config, Path(model_dir), check_sha256=False)
    return greedy_texts(np.stack([recognizer.logits(image) for image in images]), config.charset)


def tflite_predictions_isolated(config: ModelConfig, model_dir: Path, images: np.ndarray) -> list[str]:
    """Same as tflite_predictions, in a fresh interpreter process."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(tflite_predictions, config, Path(model_dir), images).result()


@dataclass(frozen=True)
class Labelled:
    text: str
    data: bytes  # the encoded image file, exactly as a client would send it
    name: str = ""


def synthetic_samples(count: int, seed: int, charset: str, lengths: tuple[int, ...]) -> list[Labelled]:
    """Fresh captchas under purpose "eval": disjoint from the "train"/"val" streams for any seed."""
    from captcha_ocr.synthetic import derive_seed, synthetic_captcha

    samples = []
    for index in range(count):
        text, png = synthetic_captcha(derive_seed("eval", seed, index), charset, lengths)
        samples.append(Labelled(text, png, f"eval-{seed}-{index}"))
    return samples


def folder_samples(directory: Path) -> list[Labelled]:
    """Images named by their label (`label.png`, `label_anything.png`)."""
    samples = []
    for path in sorted(Path(directory).iterdir()):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            samples.append(Labelled(path.stem.split("_")[0], path.read_bytes(), path.name))
    return samples


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
    return row[-1]


def handler_report(handle: Callable[[dict, Any], dict], samples: list[Labelled]) -> dict[str, Any]:
    """Send every sample through the SCF handler as a GET API Gateway event and score the replies."""
    rows, latencies = [], []
    for sample in samples:
        event = {"httpMethod": "GET", "path": "/", "headers": {},
                 "queryString": {"base64Image": base64.b64encode(sample.data).decode()}}
        started = time.perf_counter()
        reply = handle(event, None)
        latencies.append((time.perf_counter() - started) * 1000)
        body = json.loads(reply["body"])
        text = body.get("text", "") if body.get("ok") else ""
        rows.append({"name": sample.name, "truth": sample.text, "predicted": text,
                     "confidence": body.get("confidence", 0.0), "status": reply["statusCode"]})
    return summarize(rows, latencies)


def summarize(rows: list[dict[str, Any]], latencies_ms: list[float]) -> dict[str, Any]:
    correct = np.array([r["predicted"] == r["truth"] for r in rows])
    confidence = np.array([r["confidence"] for r in rows])
    characters = sum(len(r["truth"]) for r in rows)
    errors = sum(edit_distance(r["predicted"], r["truth"]) for r in rows)
    thresholds = []
    for threshold in CONFIDENCE_THRESHOLDS:
        kept = confidence >= threshold
        thresholds.append({"threshold": threshold, "coverage": float(kept.mean()) if rows else 0.0,
                           "accuracy": float(correct[kept].mean()) if kept.any() else None})
    return {
        "images": len(rows),
        "sequence_accuracy": float(correct.mean()) if rows else 0.0,
        "character_accuracy": 1 - errors / characters if characters else 0.0,
        "errors": [r for r in rows if r["predicted"] != r["truth"]],
        "thresholds": thresholds,
        "latency_ms": {"median": float(np.median(latencies_ms)), "p99": float(np.percentile(latencies_ms, 99))}
        if latencies_ms else {},
    }


def format_report(report: dict[str, Any], title: str) -> str:
    lines = [
        f"{title}: {report['images']} images",
        f"  full-sequence accuracy  {report['sequence_accuracy'] * 100:7.2f}%",
        f"  character accuracy      {report['character_accuracy'] * 100:7.2f}%  (1 - edit distance / characters)",
    ]
    if report["latency_ms"]:
        lines.append(f"  handler latency         {report['latency_ms']['median']:7.2f} ms median, "
                     f"{report['latency_ms']['p99']:.2f} ms p99 (base64 event -> reply)")
    lines.append("  confidence >=  coverage  accuracy")
    for row in report["thresholds"]:
        accuracy = "   -" if row["accuracy"] is None else f"{row['accuracy'] * 100:7.2f}%"
        lines.append(f"  {row['threshold']:>12}  {row['coverage'] * 100:7.2f}%  {accuracy}")
    for error in report["errors"][:10]:
        lines.append(f"  wrong: {error['name']}: truth {error['truth']!r}, got {error['predicted']!r} "
                     f"(confidence {error['confidence']:.3f})")
    return "\n".join(lines)
