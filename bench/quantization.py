#!/usr/bin/env python3
"""What each exported file of one model costs and reads: every file `export` writes, served in
turn by the SCF bundle under Python 3.10 (`-I -S`, its own wheels), on a folder of unseen labelled
captchas, one request per image through `main_handler`.

    python bench/quantization.py RUN/export TEST_FOLDER [--bundle build/budget/unzipped]

Prints one row per file: size, full-sequence accuracy, median and p99 time per request (base64
event in, reply out), and the process's peak memory. The files are measured one after another in
the same way, so compare them with each other (ratios), not with another machine.
Writes bench/results/quantization.json.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
sys.path[:0] = [str(REPO / "bench")]

from budget import bundle_and_python  # noqa: E402

from captcha_ocr.config import file_sha256, load_config  # noqa: E402
from captcha_ocr.evaluation import folder_samples, latency_summary  # noqa: E402
from captcha_ocr.training.export import PREFERENCE  # noqa: E402

# Runs inside the unzipped bundle: [[text, base64], ...] on stdin, one request each.
_CHILD = r"""
import json, sys, time
sys.path.insert(0, ".")
import index
samples = json.loads(sys.stdin.buffer.read())
right, seconds = 0, []
for text, image in samples:
    started = time.perf_counter()
    reply = index.main_handler({"base64Image": image}, {"request_id": "quantization"})
    seconds.append(time.perf_counter() - started)
    right += json.loads(reply["body"]).get("text") == text
peak = dict(line.split(":", 1) for line in open("/proc/self/status"))["VmHWM"].split()[0]
sys.stdout.write("\n" + json.dumps({"accuracy": right / len(samples), "seconds": seconds, "peak_mb": int(peak) / 1024}))
"""


def measure(bundle_dir: Path, python: str, export: Path, file: str, samples: list[list[str]]) -> dict:
    """One file served alone (CAPTCHA_OCR_MODEL_DIR) in a fresh bundle process."""
    with tempfile.TemporaryDirectory() as tmp:
        config = dataclasses.replace(load_config(export), model_file=file, sha256=file_sha256(export / file))
        config.save(Path(tmp))
        (Path(tmp) / file).write_bytes((export / file).read_bytes())
        done = subprocess.run([python, "-I", "-S", "-c", _CHILD], cwd=bundle_dir, input=json.dumps(samples).encode(),
                              capture_output=True, timeout=600,
                              env={"PATH": "/usr/bin:/bin", "CAPTCHA_OCR_MODEL_DIR": tmp})
    if done.returncode != 0:
        raise RuntimeError(f"{file}: {done.stderr.decode()[-2000:]}")
    report = json.loads(done.stdout.decode().rstrip("\n").split("\n")[-1])
    latency = latency_summary([seconds * 1000 for seconds in report["seconds"]])
    return {"file": file, "kb": round((export / file).stat().st_size / 1024, 1), "accuracy": report["accuracy"],
            **latency, "peak_mb": report["peak_mb"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("export", type=Path, help="an export folder (train's RUN/export)")
    parser.add_argument("test", type=Path, help="a folder of labelled captchas the model never trained on")
    parser.add_argument("--bundle", type=Path, help="an unzipped bundle (default: build one under build/budget)")
    args = parser.parse_args()
    bundle_dir, python = bundle_and_python(args.bundle)
    samples = [[s.text, base64.b64encode(s.data).decode()] for s in folder_samples(args.test)]
    files = [file for file in PREFERENCE if (args.export / file).is_file()]
    rows = [measure(bundle_dir, python, args.export, file, samples) for file in files]
    served = load_config(args.export).model_file
    print(f"{len(samples)} images of {args.test}, through main_handler in the bundle under Python 3.10\n")
    print(f"{'file':<24}{'KB':>8}{'accuracy':>10}{'median ms':>11}{'p99 ms':>9}{'peak MB':>9}")
    for row in rows:
        mark = "  <- served" if row["file"] == served else ""
        print(f"{row['file']:<24}{row['kb']:>8.1f}{row['accuracy'] * 100:>9.2f}%{row['median_ms']:>11.2f}"
              f"{row['p99_ms']:>9.2f}{row['peak_mb']:>9.1f}{mark}")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "quantization.json").write_text(json.dumps({"export": str(args.export), "test": str(args.test),
                                                           "images": len(samples), "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
