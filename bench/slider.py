#!/usr/bin/env python3
"""Slider captchas on the SCF bundle under Python 3.10 (`-I -S`): how often POST /slide finds the gap,
and what a request costs.

    python bench/slider.py [--bundle build/budget/unzipped] [--count 1000] [--quick]

Generated sliders (slider_samples.py, seeds from 900,000: none of them seen while the methods were
written), on procedural backgrounds and on photo backgrounds, go through `main_handler` in one
process inside the unzipped bundle, in three modes: the piece and the background, and the background
alone (the gap detector), decoys and the piece drawn at its start included, as generated; and the
two backgrounds (neither drawn: sites that send both draw neither). Two more rows draw the photo
row's sliders 1.6x as large (416-672 px wide, bicubic: the truth scaled, so a scaled rim counts
against them) for the piece and the two-background modes. The detector was trained on
other seeds (training/gap.py: 10,000,000 on, and 700,000-700,499 to keep its best epoch). Within 3,
5 and 10 px (the larger of the x and y errors), and the request's median and p99 time. Writes
bench/results/slider.json.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import subprocess
import sys
import tempfile
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

from budget import bundle_and_python  # noqa: E402
from PIL import Image  # noqa: E402

from captcha_ocr.slider_samples import generate_slider  # noqa: E402
from captcha_ocr.training.photos import photo_background  # noqa: E402

RESULTS = BENCH / "results"
FIRST_SEED = 900_000

_CHILD = r"""
import json, sys, time
sys.path.insert(0, ".")
import index
rows = []
for line in open(sys.argv[1]):
    case = json.loads(line)
    event = {"httpMethod": "POST", "path": "/slide", "headers": {"content-type": "application/json"},
             "queryString": {}, "body": json.dumps(case["body"])}
    index.main_handler(event, None)  # a first call of each size warms nothing that matters; timed below
    started = time.perf_counter()
    reply = index.main_handler(event, None)
    seconds = time.perf_counter() - started
    body = json.loads(reply["body"])
    rows.append({"mode": case["mode"], "status": reply["statusCode"], "ms": seconds * 1000,
                 "error": max(abs(body["x"] - case["x"]), abs(body["y"] - case["y"])) if body.get("ok") else None})
print(json.dumps(rows))
"""


WIDE = 1.6  # the wide rows: the photo row's sliders drawn 1.6x (416-672 px: sites' sliders run to 680)


def _enlarged(data: bytes) -> bytes:
    """The image drawn WIDE times its size (bicubic), in its own format (a JPEG at quality 90)."""
    image = Image.open(io.BytesIO(data))
    kind = image.format
    image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    encoded = io.BytesIO()
    image.resize((round(image.width * WIDE), round(image.height * WIDE)), Image.Resampling.BICUBIC).save(
        encoded, kind, **({"quality": 90} if kind == "JPEG" else {}))
    return encoded.getvalue()


def write_cases(path: Path, count: int) -> None:
    encode = lambda data: base64.b64encode(data).decode()  # noqa: E731
    with path.open("w") as out:
        def write(mode: str, x: float, y: float, body: dict[str, bytes]) -> None:
            out.write(json.dumps({"mode": mode, "x": x, "y": y,
                                  "body": {key: encode(value) for key, value in body.items()}}) + "\n")

        for photos, backgrounds in ((None, "procedural"), (photo_background, "photos")):
            for seed in range(FIRST_SEED, FIRST_SEED + count):
                slider = generate_slider(seed, photos=photos)
                plain = generate_slider(seed, piece_drawn=False, decoy=False, photos=photos)
                for mode, truth, body in (
                        ("piece and background", slider, {"background": slider.background, "piece": slider.piece}),
                        ("two backgrounds", plain, {"background": plain.background, "full": plain.full}),
                        ("background alone", slider, {"background": slider.background})):
                    write(f"{mode}, {backgrounds}", truth.gap.x, truth.gap.y, body)
                    if photos and mode != "background alone":
                        write(f"{mode}, photos drawn {WIDE}x", truth.gap.x * WIDE, truth.gap.y * WIDE,
                              {key: _enlarged(value) for key, value in body.items()})


def summary(rows: list[dict]) -> dict:
    import numpy as np

    errors = np.array([row["error"] if row["error"] is not None else 10**6 for row in rows])
    times = np.array([row["ms"] for row in rows])
    return {"sliders": len(rows), **{f"within_{px}px": float(np.mean(errors <= px)) for px in (3, 5, 10)},
            "median_ms": float(np.median(times)), "p99_ms": float(np.percentile(times, 99)),
            "errors": int(sum(row["status"] != 200 for row in rows))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, help="an unzipped bundle (default: build one under build/budget)")
    parser.add_argument("--count", type=int, default=1000, help="sliders per mode (default 1000)")
    parser.add_argument("--quick", action="store_true", help="10 sliders per mode: a smoke run, nothing written")
    args = parser.parse_args()
    bundle_dir, python = bundle_and_python(args.bundle)
    count = 10 if args.quick else args.count
    with tempfile.TemporaryDirectory() as folder:
        cases = Path(folder) / "cases.jsonl"
        write_cases(cases, count)
        done = subprocess.run([python, "-I", "-S", "-c", _CHILD, str(cases)], cwd=bundle_dir, capture_output=True,
                              text=True, env={"PATH": "/usr/bin:/bin"}, timeout=3000)
    if done.returncode != 0:
        raise SystemExit(done.stderr[-3000:])
    rows = json.loads(done.stdout.strip().splitlines()[-1])
    modes = list(dict.fromkeys(row["mode"] for row in rows))
    results = {mode: summary([row for row in rows if row["mode"] == mode]) for mode in modes}
    print("| mode, backgrounds | sliders | within 3 px | within 5 px | within 10 px | median ms | p99 ms | errors |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for mode, result in results.items():
        print(f"| {mode} | {result['sliders']} | {result['within_3px'] * 100:.1f}% | {result['within_5px'] * 100:.1f}% "
              f"| {result['within_10px'] * 100:.1f}% | {result['median_ms']:.2f} | {result['p99_ms']:.2f} "
              f"| {result['errors']} |")
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "slider.json").write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
