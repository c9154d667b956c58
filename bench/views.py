#!/usr/bin/env python3
"""Which views a model should read each image at (config.json input.views): every image of a set read
whole and narrowed to each share of the width (imaging.narrowed), alone and as the most probable of
a combination (what runtime.Recognizer.recognize does for a model declaring views).

    .venv/bin/python bench/views.py                                  # the general model, ../shared's sets
    .venv/bin/python bench/views.py --model-dir runs/mine/export --data FOLDER
    .venv/bin/python bench/views.py --run runs/mine --data TEST_FOLDER --held-out   # a run's best checkpoint

A model folder is read by the interpreter serving uses (its served file); a run's checkpoint by
Keras (the float model, as bench/learning_curve.py scores runs). Seen-lengths decoding either way;
`--ignore-case` compares lower-cased (the general model's zero-shot rows). Prints a table and writes
bench/results/views.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from captcha_ocr.decoding import Recognition, decode_logits  # noqa: E402
from captcha_ocr.imaging import narrowed, preprocess  # noqa: E402
from captcha_ocr.labelled import list_labelled_files  # noqa: E402

DATASETS = REPO.parent / "shared" / "datasets"
SETS = ("captcha_images_v2", "tjsp_captchas")
SHARES = (1.0, 0.95, 0.9, 0.85)
COMBINATIONS = ((1.0, 0.95), (1.0, 0.9), (1.0, 0.95, 0.9), (1.0, 0.95, 0.9, 0.85))


def model_folder_reader(model_dir: Path) -> tuple[Callable[[np.ndarray], np.ndarray], object]:
    """(tensors -> logits, its config) for a model folder, by the serving interpreter."""
    from captcha_ocr.config import load_config
    from captcha_ocr.runtime import Recognizer

    config = load_config(model_dir)
    recognizer = Recognizer(config, model_dir)
    return (lambda tensors: np.stack([recognizer.logits(tensor) for tensor in tensors])), config


def run_reader(run: Path) -> tuple[Callable[[np.ndarray], np.ndarray], object]:
    """(tensors -> logits, its settings) for a finished run's best checkpoint, by Keras."""
    import keras

    import captcha_ocr.training.train  # noqa: F401  (registers the CTC loss the checkpoint names)
    from captcha_ocr.training.settings import TrainSettings

    model = keras.models.load_model(run / "checkpoints" / "best.keras")
    return (lambda tensors: model.predict(tensors, batch_size=256, verbose=0)), TrainSettings.load(run)


def folder_images(data: Path, spec, limit: int) -> tuple[np.ndarray, list[str]]:
    """A labelled folder's model inputs (the one preprocessing) and labels (a run's own case folding)."""
    items, _ = list_labelled_files(data, case_fold=getattr(spec, "case_fold", False))
    files = items[:limit or None]
    tensors = np.stack([preprocess(path.read_bytes(), spec.height, spec.width, gray=spec.gray).tensor
                        for path, _ in files])
    return tensors, [text for _, text in files]


def held_out_images(run: Path) -> tuple[np.ndarray, list[str]]:
    """A run's own held-out images (its validation split, as training chose its checkpoint on them)."""
    from captcha_ocr.training.settings import TrainSettings
    from captcha_ocr.training.train import load_datasets

    _, validation = load_datasets(TrainSettings.load(run))
    return validation.images, list(validation.texts)


def score(name: str, tensors: np.ndarray, labels: list[str], logits_of: Callable[[np.ndarray], np.ndarray], spec,
          ignore_case: bool) -> dict:
    """Accuracy of each share alone and of each combination's most probable reading."""
    truths = [text.lower() if ignore_case else text for text in labels]
    readings: dict[float, list[Recognition]] = {}
    for share in SHARES:
        logits = logits_of(np.stack([narrowed(tensor, share) for tensor in tensors]))
        readings[share] = [decode_logits(frame_logits, spec.charset, spec.lengths) for frame_logits in logits]

    def accuracy(chosen: list[Recognition]) -> float:
        texts = [r.text.lower() if ignore_case else r.text for r in chosen]
        return float(np.mean([text == truth for text, truth in zip(texts, truths)]))

    row = {"set": name, "images": len(labels)}
    row.update({f"{share:g} alone": accuracy(readings[share]) for share in SHARES})
    for combination in COMBINATIONS:
        chosen = [max((readings[share][i] for share in combination), key=lambda r: r.confidence)
                  for i in range(len(labels))]
        row["max of " + ", ".join(f"{share:g}" for share in combination)] = accuracy(chosen)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--model-dir", type=Path, help="a model folder (default: the shipped general model)")
    which.add_argument("--run", type=Path, help="a finished training run: its best checkpoint")
    parser.add_argument("--data", type=Path, action="append", help="a labelled folder (default: ../shared's sets)")
    parser.add_argument("--held-out", action="store_true", help="with --run: also its own held-out images")
    parser.add_argument("--ignore-case", action="store_true")
    parser.add_argument("--limit", type=int, default=0, help="images per folder (default: all)")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "views.json")
    args = parser.parse_args()
    if args.run:
        logits_of, spec = run_reader(args.run)
    else:
        from captcha_ocr.registry import general_model_dir

        logits_of, spec = model_folder_reader(args.model_dir or general_model_dir())
    folders = args.data or [DATASETS / name for name in SETS if (DATASETS / name).is_dir()]
    rows = [score(folder.name, *folder_images(folder, spec, args.limit), logits_of, spec, args.ignore_case)
            for folder in folders]
    if args.run and args.held_out:
        rows.append(score("held-out", *held_out_images(args.run), logits_of, spec, args.ignore_case))
    columns = [key for key in rows[0] if key not in ("set", "images")] if rows else []
    print("| views | " + " | ".join(f"{row['set']} ({row['images']})" for row in rows) + " |")
    print("| --- |" + " ---: |" * len(rows))
    for column in columns:
        print(f"| {column} | " + " | ".join(f"{row[column] * 100:.2f}%" for row in rows) + " |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model": str(args.run or args.model_dir or "general"), "rows": rows},
                                   indent=2) + "\n")


if __name__ == "__main__":
    main()
