#!/usr/bin/env python3
"""Zero-shot: the general model, the shipped default and ddddocr 1.6.1 on real captchas none of
them was trained on (../shared/datasets), side by side on the same images, case-insensitive.

    .venv/bin/python bench/general.py [--model-dir runs/general/export] [--limit N]

Ours are read through main_handler (`captcha-ocr eval --data DIR --ignore-case`); ddddocr by its
own `classification(bytes)` in its venv (bench/run_all.py creates it). Also each model's time per
image (`Reader.read`, median of 3 rounds over the set's first 100 images) in the runtime the
bundle ships (bench/run_all.py's pinned ai-edge-litert venv; this venv where that is missing).
Prints a table and writes bench/results/general.json. Needs ../shared; sets without it are skipped.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
DATASETS = REPO.parent / "shared" / "datasets"
SETS = ("captcha_images_v2", "tjsp_captchas")
RESULTS = BENCH / "results"
DDDDOCR = BENCH / ".venvs" / "ddddocr" / "bin" / "python"
PINNED = BENCH / ".venvs" / "ai-edge-litert-1-2--pinned" / "bin" / "python"
_LATENCY = r"""
import json, statistics, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from captcha_ocr import Reader
reader = Reader(sys.argv[2])
images = [p.read_bytes() for p in sorted(Path(sys.argv[3]).glob("*.png"))[:100]]
for data in images:
    reader.read(data)
rounds = []
for _ in range(3):
    times = []
    for data in images:
        started = time.perf_counter()
        reader.read(data)
        times.append((time.perf_counter() - started) * 1000)
    rounds.append(statistics.median(times))
print(json.dumps(statistics.median(rounds)))
"""
sys.path.insert(0, str(REPO))
from captcha_ocr.registry import GENERAL_MODEL, SHIPPED_MODEL_DIR, SHIPPED_MODELS_DIR  # noqa: E402

GENERAL = SHIPPED_MODELS_DIR / GENERAL_MODEL


def ours(model_dir: Path, data: Path) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        subprocess.run([sys.executable, "-m", "captcha_ocr.cli", "eval", "--data", str(data), "--model-dir",
                        str(model_dir), "--ignore-case", "--json", str(report)], cwd=REPO, check=True,
                       capture_output=True)
        return json.loads(report.read_text())["sequence_accuracy"]


def latency_ms(model_dir: Path, data: Path) -> float:
    python = PINNED if PINNED.is_file() else Path(sys.executable)
    result = subprocess.run([str(python), "-c", _LATENCY, str(REPO), str(model_dir), str(data)], capture_output=True,
                            text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def ddddocr(data: Path) -> float | None:
    if not DDDDOCR.is_file():
        return None
    result = subprocess.run([str(DDDDOCR), str(BENCH / "workers" / "ddddocr_worker.py"), "--folder", str(data)],
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])["accuracy"]


def limited(data: Path, limit: int, tmp: Path) -> Path:
    """The first `limit` labelled images of a set, linked into a folder (quick runs)."""
    if not limit:
        return data
    folder = tmp / data.name
    folder.mkdir()
    for path in sorted(p for p in data.iterdir() if p.suffix == ".png")[:limit]:
        (folder / path.name).symlink_to(path)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", type=Path, default=GENERAL, help="the general model's folder")
    parser.add_argument("--limit", type=int, default=0, help="images per set (default: all)")
    parser.add_argument("--out", type=Path, default=RESULTS / "general.json")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in SETS:
            if not (DATASETS / name).is_dir():
                print(f"{name}: not in {DATASETS}, skipped")
                continue
            data = limited(DATASETS / name, args.limit, Path(tmp))
            default = SHIPPED_MODEL_DIR
            rows.append({"set": name, "images": len(list(data.glob("*.png"))),
                         "general": ours(args.model_dir, data),
                         "shipped default": ours(default, data),
                         "ddddocr 1.6.1": ddddocr(data),
                         "general_ms": latency_ms(args.model_dir, data), "default_ms": latency_ms(default, data)})
    print(f"{'set':<20} {'images':>6} {'general':>9} {'default':>9} {'ddddocr':>9} {'general ms':>11} "
          f"{'default ms':>11}")
    for row in rows:
        cells = [f"{row[k] * 100:8.2f}%" if row[k] is not None else "        -"
                 for k in ("general", "shipped default", "ddddocr 1.6.1")]
        print(f"{row['set']:<20} {row['images']:>6} " + " ".join(cells)
              + f" {row['general_ms']:>11.3f} {row['default_ms']:>11.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"model_dir": str(args.model_dir), "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
