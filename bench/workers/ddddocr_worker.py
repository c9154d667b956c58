"""Runs inside the ddddocr venv: its bundled ONNX model on the same PNG files, case-insensitive.

    python ddddocr_worker.py IMAGES_DIR TIMED_CALLS  -> one JSON line
    python ddddocr_worker.py --folder LABELLED_DIR   -> accuracy on a labelled folder (labelled.py's
                                                        rules, as `eval --data` reads it), one JSON line
"""

import json
import sys
import time
from pathlib import Path

import ddddocr

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo: numpy is all evaluation needs here
from captcha_ocr.evaluation import latency_summary  # noqa: E402


def folder_accuracy(directory: Path) -> dict:
    from captcha_ocr.labelled import list_labelled_files

    ocr = ddddocr.DdddOcr(show_ad=False)
    items, _ = list_labelled_files(directory)
    correct = sum(ocr.classification(path.read_bytes()).lower() == label.lower() for path, label in items)
    return {"runtime": "ddddocr", "accuracy": correct / len(items), "images": len(items)}


def main():
    if sys.argv[1] == "--folder":
        print(json.dumps(folder_accuracy(Path(sys.argv[2]))))
        return
    images_dir, calls = Path(sys.argv[1]), int(sys.argv[2])
    ocr = ddddocr.DdddOcr(show_ad=False)
    files = sorted(images_dir.glob("*.png"))
    data = [f.read_bytes() for f in files]
    truths = [f.stem.split("_", 1)[1] for f in files]
    correct = sum(ocr.classification(d).lower() == t.lower() for d, t in zip(data, truths))
    for d in data[:20]:
        ocr.classification(d)
    times = []
    for i in range(calls):
        started = time.perf_counter()
        ocr.classification(data[i % len(data)])
        times.append((time.perf_counter() - started) * 1000)
    import importlib.metadata

    print(json.dumps({"runtime": "ddddocr", "runtime_version": importlib.metadata.version("ddddocr"),
                      "accuracy": correct / len(files), "images": len(files),
                      "handler": latency_summary(times)}))


if __name__ == "__main__":
    main()
