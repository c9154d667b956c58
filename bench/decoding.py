#!/usr/bin/env python3
"""Does decoding with the label lengths seen in training help? Greedy CTC against greedy with a
length constraint (a reading of a length no label had is replaced by the best path of a seen
length, as serving does), on held-out images the runs never trained on.

    .venv/bin/python bench/decoding.py RUN_DIR:TEST_FOLDER [RUN_DIR:TEST_FOLDER ...]

Each RUN_DIR is a `train --out` folder (its checkpoints/best.keras and settings.json); the float
Keras model gives the logits, and both decodings read the same logits. Prints a markdown table:
accuracy each way, readings changed, right after and wrong after, and the decoding time per image.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def measure(run: Path, test: Path) -> dict:
    from learning_curve import test_logits

    from captcha_ocr.decoding import decode_logits

    settings, _, texts, logits = test_logits(run, test)
    greedy = [decode_logits(frame_logits, settings.charset).text for frame_logits in logits]
    started = time.perf_counter()
    constrained = [decode_logits(frame_logits, settings.charset, settings.lengths).text for frame_logits in logits]
    per_image_ms = (time.perf_counter() - started) / len(logits) * 1000
    changed = [i for i, (a, b) in enumerate(zip(greedy, constrained)) if a != b]
    return {
        "run": run.parent.name if run.name == "run" else run.name, "images": len(texts),
        "greedy": np.mean([p == t for p, t in zip(greedy, texts)]),
        "constrained": np.mean([p == t for p, t in zip(constrained, texts)]),
        "changed": len(changed), "fixed": sum(constrained[i] == texts[i] for i in changed),
        "ms": per_image_ms,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("pairs", nargs="+", help="RUN_DIR:TEST_FOLDER")
    args = parser.parse_args()
    print("| run | test images | greedy | with seen lengths | readings changed | of them right | decode ms/image |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for pair in args.pairs:
        run, test = pair.split(":", 1)
        row = measure(Path(run), Path(test))
        print(f"| {row['run']} | {row['images']} | {row['greedy'] * 100:.2f}% | {row['constrained'] * 100:.2f}% | "
              f"{row['changed']} | {row['fixed']} | {row['ms']:.2f} |", flush=True)


if __name__ == "__main__":
    sys.exit(main())
