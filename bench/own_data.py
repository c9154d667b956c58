#!/usr/bin/env python3
"""Training on a user's labelled folder, measured two ways on the shared real captchas
(../shared/datasets/captcha_images_v2, 1040 images):

1. the README's command as a user runs it: `train --data DIR` (seeded 80/20 split; the 20% also
   picks the best epoch), for several seeds;
2. a stricter split: 70% train, 10% to pick the epoch, 20% test the run never sees, scored
   through main_handler with `eval --data`.

    .venv/bin/python bench/own_data.py [--seeds 1 2 3] [--strict-seeds 1]

Prints a table and writes bench/results/own_data.json. Needs ../shared; the data is not copied
into the project (the split folders are links in a temporary directory).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DATA = REPO.parent / "shared" / "datasets" / "captcha_images_v2"
RESULTS = BENCH / "results"


def run(*args: str) -> tuple[str, float]:
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "captcha_ocr.cli", *args], cwd=REPO, capture_output=True,
                            text=True)
    if result.returncode != 0:
        raise SystemExit(result.stdout[-2000:] + result.stderr[-2000:])
    return result.stdout, time.perf_counter() - started


def export_accuracies(stdout: str) -> dict[str, float]:
    return {name: float(value) / 100 for name, value in
            re.findall(r"^(model(?:_quantized)?\.tflite)\s+[\d.]+\s+([\d.]+)%", stdout, re.MULTILINE)}


def standard_split(seed: int, out: Path) -> dict:
    stdout, wall = run("train", "--data", str(DATA), "--out", str(out / f"standard-{seed}"), "--seed", str(seed))
    state = json.loads((out / f"standard-{seed}" / "state.json").read_text())
    return {"seed": seed, "wall_s": wall, "epochs": state["epoch"], "best_epoch": state["best_epoch"],
            **export_accuracies(stdout)}


def strict_split(seed: int, out: Path) -> dict:
    files = sorted(DATA.glob("*.png"))
    order = np.random.default_rng(seed).permutation(len(files))
    parts = {"train": order[: int(0.7 * len(files))], "val": order[int(0.7 * len(files)) : int(0.8 * len(files))],
             "test": order[int(0.8 * len(files)) :]}
    for name, indices in parts.items():
        folder = out / f"strict-{seed}-{name}"
        folder.mkdir(parents=True)
        for index in indices:
            (folder / files[index].name).symlink_to(files[index])
    run_dir = out / f"strict-{seed}"
    _, wall = run("train", "--data", str(out / f"strict-{seed}-train"), "--val-data", str(out / f"strict-{seed}-val"),
                  "--out", str(run_dir), "--seed", str(seed))
    report = {}
    for model_file in ("model_quantized.tflite", "model.tflite"):
        path = out / f"report-{seed}-{model_file}.json"
        run("eval", "--data", str(out / f"strict-{seed}-test"), "--model-dir", str(run_dir / "export"),
            "--model-file", model_file, "--json", str(path))
        report[model_file] = json.loads(path.read_text())["sequence_accuracy"]
    return {"seed": seed, "wall_s": wall, "test_images": len(parts["test"]), **report}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3], help="seeds of the 80/20 runs")
    parser.add_argument("--strict-seeds", type=int, nargs="+", default=[1], help="seeds of the 70/10/20 runs")
    args = parser.parse_args()
    if not DATA.is_dir():
        raise SystemExit(f"{DATA} is not here")
    with tempfile.TemporaryDirectory() as tmp:
        standard = [standard_split(seed, Path(tmp)) for seed in args.seeds]
        strict = [strict_split(seed, Path(tmp)) for seed in args.strict_seeds]
    print("train --data (80/20, the 20% also picks the epoch)")
    print(f"{'seed':>5} {'wall s':>7} {'epochs':>7} {'int8':>8} {'float':>8}")
    for row in standard:
        print(f"{row['seed']:>5} {row['wall_s']:>7.0f} {row['epochs']:>7} {row['model_quantized.tflite'] * 100:>7.2f}% "
              f"{row['model.tflite'] * 100:>7.2f}%")
    print("\nstrict (70% train, 10% picks the epoch, 20% unseen test through main_handler)")
    print(f"{'seed':>5} {'wall s':>7} {'test':>5} {'int8':>8} {'float':>8}")
    for row in strict:
        print(f"{row['seed']:>5} {row['wall_s']:>7.0f} {row['test_images']:>5} "
              f"{row['model_quantized.tflite'] * 100:>7.2f}% {row['model.tflite'] * 100:>7.2f}%")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "own_data.json").write_text(json.dumps({"standard": standard, "strict": strict}, indent=2) + "\n")


if __name__ == "__main__":
    main()
