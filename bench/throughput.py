#!/usr/bin/env python3
"""Training throughput on this machine: images per second through the trainer `train` fits
(training/train.py compile_trainer: the augmentation layers, the model, CTC and Adam), for the two
shapes every run takes, side by side in one process.

    .venv/bin/python bench/throughput.py [--steps 60] [--rounds 3] [--quick]

Rows: a folder run's defaults (48x112, batches of 8, the small network: what every user's 5 minutes
trains) and the general model's (48x160, batches of 32, the medium network), each with and without
augmentation (what the augmentation layers cost). XLA is no row: Keras refuses `jit_compile=True`
for this trainer (TensorFlow's CTC loss) and runs it uncompiled. Inputs are random images
(a step costs the same whatever the pixels); the median of the rounds is quoted. Nothing else
should run beside it: training shares the same two cores. Writes bench/results/throughput.json.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH.parent))
RESULTS = BENCH / "results"
LABEL_LENGTH = 6
# (row, height, width, batch size, network, augmentation)
ROWS = (
    ("folder run", 48, 112, 8, "small", True),
    ("folder run, no augmentation", 48, 112, 8, "small", False),
    ("general model", 48, 160, 32, "medium", True),
    ("general model, no augmentation", 48, 160, 32, "medium", False),
)


def images_per_second(height: int, width: int, batch_size: int, size: str, augment: bool, steps: int,
                      rounds: int) -> float:
    import keras
    import numpy as np

    from captcha_ocr.training.model import build_model
    from captcha_ocr.training.settings import GENERAL_CHARSET, TrainSettings
    from captcha_ocr.training.train import compile_trainer

    settings = TrainSettings(out_dir="unused", charset=GENERAL_CHARSET, height=height, width=width,
                             batch_size=batch_size, model_size=size, augment=augment, time_limit=5.0)
    keras.utils.set_random_seed(0)
    model = build_model(height, width, len(GENERAL_CHARSET) + 1, size)
    trainer = compile_trainer(settings, model, steps * batch_size, 1)
    rng = np.random.default_rng(0)
    images = rng.random((steps * batch_size, height, width, 1), dtype=np.float32)
    labels = rng.integers(0, len(GENERAL_CHARSET), (steps * batch_size, LABEL_LENGTH)).astype(np.int32)
    trainer.fit(images[:batch_size * 3], labels[:batch_size * 3], batch_size=batch_size, verbose=0)  # builds
    measured = []
    for _ in range(rounds):
        started = time.perf_counter()
        trainer.fit(images, labels, batch_size=batch_size, verbose=0, shuffle=False)
        measured.append(len(images) / (time.perf_counter() - started))
    return statistics.median(measured)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=60, help="training steps per round (default 60)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per row, the median quoted (default 3)")
    parser.add_argument("--quick", action="store_true", help="2 steps, 1 round: a smoke run, nothing written")
    args = parser.parse_args()
    steps, rounds = (2, 1) if args.quick else (args.steps, args.rounds)
    rows = []
    print("| row | input | batch | network | augmentation | images/s |")
    print("| --- | --- | ---: | --- | --- | ---: |")
    for name, height, width, batch_size, size, augment in ROWS:
        rate = images_per_second(height, width, batch_size, size, augment, steps, rounds)
        rows.append({"row": name, "height": height, "width": width, "batch_size": batch_size, "network": size,
                     "augmentation": augment, "images_per_s": round(rate, 1)})
        print(f"| {name} | {height}x{width} | {batch_size} | {size} | {'on' if augment else 'off'} "
              f"| {rate:.0f} |", flush=True)
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "throughput.json").write_text(json.dumps({"steps": steps, "rounds": rounds, "rows": rows},
                                                            indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
