#!/usr/bin/env python3
"""The captcha kinds after plain text, trained with every default of `captcha-ocr train --data`.

For each kind drawn by easy-captcha-python (training/generators.py): a training folder (seed 1) and
an unseen test folder (seed 2), a default folder run, then `captcha-ocr eval --data` of its export
(the int8 model through main_handler, as served) on the test folder. The animated GIFs (each frame
shows only some of the characters) are read three ways, each trained and tested the same way:

- all frames, each pixel where it is farthest from the background (what imaging.preprocess does),
- the first frame alone (the folders converted to PNG first: what a first-frame reader sees),
- the mean of all frames (converted likewise): the other blend the issue names.

    .venv/bin/python bench/kinds.py [--kinds arithmetic gif chinese] [--train 2000] [--test 1000]
    .venv/bin/python bench/kinds.py --quick      # seconds of training: a smoke run, not a measurement

Writes bench/results/kinds.json (--quick: build/bench-quick/kinds.json; the rows of kinds not run are
kept) and prints a table.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))

from captcha_ocr.labelled import read_label_file  # noqa: E402
from captcha_ocr.training.generators import LABELS_FILE, generate_folder  # noqa: E402

KINDS = {"arithmetic": ["as drawn"], "gif": ["all frames", "first frame", "mean of frames"],
         "chinese": ["as drawn"]}


def converted(source: Path, out: Path, method: str) -> Path:
    """A GIF folder as PNGs of its first frame or of the mean of its frames, labels kept."""
    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for name, label in (read_label_file(source) or {}).items():
        image = Image.open(source / name)
        if method == "first frame":
            image.seek(0)
            pixels = np.asarray(image.convert("RGB"), dtype=np.float32)
        else:
            stack = []
            for index in range(image.n_frames):
                image.seek(index)
                stack.append(np.asarray(image.convert("RGB"), dtype=np.float32))
            pixels = np.mean(stack, axis=0)
        png = io.BytesIO()
        Image.fromarray(pixels.round().astype(np.uint8), "RGB").save(png, "PNG")
        target = Path(name).with_suffix(".png").name
        (out / target).write_bytes(png.getvalue())
        lines.append(f"{target}\t{label}")
    (out / LABELS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def cli(*args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "captcha_ocr.cli", *args], cwd=REPO, capture_output=True,
                          text=True)
    if done.returncode != 0:
        raise SystemExit(f"captcha-ocr {' '.join(args[:3])} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def measure(kind: str, method: str, train_dir: Path, test_dir: Path, work: Path, train_flags: list[str]) -> dict:
    run = work / "runs" / f"{kind}-{method.replace(' ', '-')}"
    started = time.monotonic()
    cli("train", "--data", str(train_dir), "--out", str(run), *train_flags)
    minutes = (time.monotonic() - started) / 60
    report_file = run / "eval-test.json"
    cli("eval", "--data", str(test_dir), "--model-dir", str(run / "export"), "--json", str(report_file))
    report = json.loads(report_file.read_text())
    row = {"kind": kind, "read": method, "train_images": len(read_label_file(train_dir) or {}), "flags": train_flags,
           "test_images": report["images"], "accuracy": report["sequence_accuracy"], "minutes": round(minutes, 2)}
    for key in ("answer_accuracy", "answer_accuracy_where_text_right"):
        if key in report:
            row[key] = report[key]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kinds", nargs="+", choices=list(KINDS), default=list(KINDS))
    parser.add_argument("--train", type=int, default=2000, help="training images per kind (default 2000)")
    parser.add_argument("--test", type=int, default=1000, help="unseen test images per kind (default 1000)")
    parser.add_argument("--chinese-train", type=int, default=4000,
                        help="training images for chinese, whose charset is 500 characters (default 4000)")
    parser.add_argument("--time-limit", type=float, help="minutes per run (default: train --data's own, 5)")
    parser.add_argument("--quick", action="store_true", help="40 images, 2 epochs: checks the script runs")
    parser.add_argument("--work", type=Path, default=BENCH / ".build" / "kinds", help="data and runs")
    parser.add_argument("--out", type=Path, help="where kinds.json goes")
    args = parser.parse_args()
    flags = ["--epochs", "2", "--patience", "2"] if args.quick else []
    if args.time_limit:
        flags += ["--time-limit", str(args.time_limit)]
    if args.quick:
        args.train = args.chinese_train = args.test = 40
    out = args.out or (REPO / "build" / "bench-quick" if args.quick else BENCH / "results")
    rows = []
    for kind in args.kinds:
        count = args.chinese_train if kind == "chinese" else args.train
        data = args.work / "data" / f"{kind}-{count}"
        train_dir = data / "train"
        test_dir = data / "test"
        if not (train_dir / LABELS_FILE).is_file():
            generate_folder(kind, count, 1, train_dir)
            generate_folder(kind, args.test, 2, test_dir)
        for method in KINDS[kind]:
            train_for, test_for = train_dir, test_dir
            if method in ("first frame", "mean of frames"):
                slug = method.replace(" ", "-")
                train_for = converted(train_dir, data / f"train-{slug}", method)
                test_for = converted(test_dir, data / f"test-{slug}", method)
            row = measure(kind, method, train_for, test_for, args.work, flags)
            rows.append(row)
            print(json.dumps(row), flush=True)
    out.mkdir(parents=True, exist_ok=True)
    results = out / "kinds.json"
    def key(row: dict) -> tuple:
        return row["kind"], row["read"], row["train_images"], tuple(row.get("flags", ()))

    measured = {key(row) for row in rows}  # a run keeps the rows of what it did not measure
    earlier = json.loads(results.read_text())["rows"] if results.is_file() else []
    rows = [row for row in earlier if key(row) not in measured] + rows
    rows.sort(key=lambda row: (list(KINDS).index(row["kind"]), KINDS[row["kind"]].index(row["read"]),
                               row["train_images"]))
    results.write_text(json.dumps({"rows": rows, "quick": args.quick}, indent=2) + "\n")
    print("| kind | read as | train / test images | time limit | text accuracy | answer accuracy (where text right) "
          "| minutes |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        where = row.get("answer_accuracy_where_text_right") or 0.0
        answered = (f"{row['answer_accuracy'] * 100:.2f}% ({where * 100:.2f}%)" if "answer_accuracy" in row
                    else "-")
        flags = row.get("flags") or []
        limit = flags[flags.index("--time-limit") + 1] if "--time-limit" in flags else "5 (default)"
        print(f"| {row['kind']} | {row['read']} | {row['train_images']} / {row['test_images']} | {limit} | "
              f"{row['accuracy'] * 100:.2f}% | {answered} | {row['minutes']:.1f} |")


if __name__ == "__main__":
    main()
