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
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from captcha_ocr.answers import answer
from captcha_ocr.config import ModelConfig
from captcha_ocr.events import query_event
from captcha_ocr.labelled import list_labelled_files
from captcha_ocr.runtime import Recognizer

CONFIDENCE_THRESHOLDS = (0.5, 0.9, 0.95, 0.99)


def sequence_accuracy(predicted: list[str], truth: list[str]) -> float:
    return float(np.mean([p == t for p, t in zip(predicted, truth)])) if truth else 0.0


def tflite_predictions(config: ModelConfig, model_dir: Path, images: np.ndarray) -> list[str]:
    """What the handler would answer for each tensor (its decoding included)."""
    recognizer = Recognizer(config, Path(model_dir), check_sha256=False)
    return [recognizer.recognize(image).text for image in images]


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
    """Every labelled image of a folder, read the way `train --data` reads it."""
    items, _ = list_labelled_files(Path(directory))
    return [Labelled(label, path.read_bytes(), path.name) for path, label in items]


def latency_summary(times_ms: list[float] | np.ndarray) -> dict[str, float]:
    """Median and p99 of latencies in ms: the one way every report and benchmark computes them."""
    times = np.asarray(times_ms, dtype=np.float64)
    return {"median_ms": float(np.median(times)), "p99_ms": float(np.percentile(times, 99))}


def edit_distance(a: str, b: str) -> int:
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
    return row[-1]


def handler_report(handle: Callable[[dict, Any], dict], samples: list[Labelled],
                   ignore_case: bool = False) -> dict[str, Any]:
    """Send every sample through the SCF handler as a GET API Gateway event and score the replies;
    `ignore_case`: compare lower-cased (labels written in one case of glyphs drawn in both, or a
    peer that reads one case)."""
    rows, latencies = [], []
    for sample in samples:
        event = query_event({"base64Image": base64.b64encode(sample.data).decode()})
        started = time.perf_counter()
        reply = handle(event, None)
        latencies.append((time.perf_counter() - started) * 1000)
        body = json.loads(reply["body"])
        text = body.get("text", "") if body.get("ok") else ""
        truth = sample.text.lower() if ignore_case else sample.text
        text = text.lower() if ignore_case else text
        row = {"name": sample.name, "truth": truth, "predicted": text,
               "confidence": body.get("confidence", 0.0), "status": reply["statusCode"]}
        if "answer" in body:  # an arithmetic model: its answer is scored too, against the label's
            row.update(answer=body["answer"], true_answer=answer(sample.text).value)
        rows.append(row)
    return summarize(rows, latencies)


def character_stats(rows: list[dict[str, Any]]) -> tuple[dict[str, dict], list[dict]]:
    """Per-character accuracy and confused pairs, from predictions of the right length (aligned by
    position); a prediction of another length counts every character of its truth as missed."""
    per_char: dict[str, list[int]] = {}
    confusions: Counter[tuple[str, str]] = Counter()
    for row in rows:
        aligned = len(row["predicted"]) == len(row["truth"])
        for position, char in enumerate(row["truth"]):
            hit = aligned and row["predicted"][position] == char
            per_char.setdefault(char, [0, 0])[0] += hit
            per_char[char][1] += 1
            if aligned and not hit:
                confusions[(char, row["predicted"][position])] += 1
    accuracy = {c: {"accuracy": right / total, "count": total} for c, (right, total) in sorted(per_char.items())}
    pairs = [{"truth": t, "predicted": p, "count": n} for (t, p), n in confusions.most_common(10)]
    return accuracy, pairs


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
    by_length = {}
    for length in sorted({len(r["truth"]) for r in rows}):
        picked = [r["predicted"] == r["truth"] for r in rows if len(r["truth"]) == length]
        by_length[str(length)] = {"accuracy": float(np.mean(picked)), "count": len(picked)}
    per_character, confused = character_stats(rows)
    return {
        "images": len(rows),
        "sequence_accuracy": float(correct.mean()) if rows else 0.0,
        "character_accuracy": 1 - errors / characters if characters else 0.0,
        "by_length": by_length,
        "per_character": per_character,
        "confused_pairs": confused,
        "thresholds": thresholds,
        "errors": [r for r in rows if r["predicted"] != r["truth"]],
        "latency_ms": latency_summary(latencies_ms) if latencies_ms else {},
        **answer_accuracy(rows),
    }


def answer_accuracy(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """For an arithmetic model: how often the answer is right, over every image and over the images
    whose text was read right (where a wrong answer would be the parser's fault, not the model's)."""
    scored = [r for r in rows if "answer" in r and r["true_answer"] is not None]
    if not scored:
        return {}
    text_right = [r for r in scored if r["predicted"] == r["truth"]]
    return {"answer_accuracy": float(np.mean([r["answer"] == r["true_answer"] for r in scored])),
            "answer_accuracy_where_text_right": float(np.mean([r["answer"] == r["true_answer"] for r in text_right]))
            if text_right else None}


def format_report(report: dict[str, Any], title: str) -> str:
    lines = [
        f"{title}: {report['images']} images",
        f"  full-sequence accuracy  {report['sequence_accuracy'] * 100:7.2f}%",
        f"  character accuracy      {report['character_accuracy'] * 100:7.2f}%  (1 - edit distance / characters)",
    ]
    if "answer_accuracy" in report:
        where = report["answer_accuracy_where_text_right"]
        lines.append(f"  answer accuracy         {report['answer_accuracy'] * 100:7.2f}%  (right where the text was: "
                     + ("-" if where is None else f"{where * 100:.2f}%") + ")")
    if report["latency_ms"]:
        lines.append(f"  handler latency         {report['latency_ms']['median_ms']:7.2f} ms median, "
                     f"{report['latency_ms']['p99_ms']:.2f} ms p99 (base64 event -> reply)")
    lines.append("  label length  images  accuracy")
    for length, row in report["by_length"].items():
        lines.append(f"  {length:>12}  {row['count']:>6}  {row['accuracy'] * 100:7.2f}%")
    worst = sorted(report["per_character"].items(), key=lambda item: item[1]["accuracy"])[:5]
    lines.append("  weakest characters: " + ", ".join(f"{c!r} {v['accuracy'] * 100:.1f}% of {v['count']}"
                                                      for c, v in worst))
    if report["confused_pairs"]:
        lines.append("  most confused (truth -> predicted): " + ", ".join(
            f"{p['truth']}->{p['predicted']} x{p['count']}" for p in report["confused_pairs"][:8]))
    lines.append("  confidence >=  coverage  accuracy")
    for row in report["thresholds"]:
        accuracy = "   -" if row["accuracy"] is None else f"{row['accuracy'] * 100:7.2f}%"
        lines.append(f"  {row['threshold']:>12}  {row['coverage'] * 100:7.2f}%  {accuracy}")
    for error in report["errors"][:10]:
        lines.append(f"  wrong: {error['name']}: truth {error['truth']!r}, got {error['predicted']!r} "
                     f"(confidence {error['confidence']:.3f})")
    return "\n".join(lines)
