#!/usr/bin/env python3
"""What the SCF bundle weighs and how fast it starts: sizes by part, cold start in fresh processes.

    python bench/bundle.py build/captcha-ocr-scf-python3.10.zip [--runs 15]
    python bench/bundle.py build/captcha-ocr-code-python3.10.zip --layer build/captcha-ocr-layer-python3.10.zip

Cold start is `import index` (model load, sha256 and shape checks, interpreter creation) plus one
recognition, in a fresh `python3.10 -I -S -B` process inside the unzipped bundle, as SCF starts an
instance (its code folder is read-only: nothing compiled is kept); the median of --runs, with the
peak RSS of those processes. Side by side, interleaved: the bundle as built and the same files
without their bytecode (`__pycache__`), which every cold start would then compile.
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from captcha_ocr.deploy.bundle import find_python

VARIANTS = ("as built", "without bytecode")
_CHILD = r"""
import base64, json, sys, time
sys.path[:0] = [".", *sys.argv[2:]]  # the function's folder, then a layer's: /var/user, then /opt
started = time.perf_counter()
import index
loaded = time.perf_counter()
event = {"httpMethod": "GET", "path": "/", "queryString": {"base64Image": sys.argv[1]}}
index.main_handler(event, None)
first = time.perf_counter()
fields = dict(line.split(":", 1) for line in open("/proc/self/status"))
print(json.dumps({"import_s": loaded - started, "first_request_s": first - loaded,
                  "peak_mb": int(fields["VmHWM"].split()[0]) / 1024}))
"""


def parts(archive: Path, top: int = 12) -> list[tuple[str, int, int]]:
    zipped, unzipped = collections.Counter(), collections.Counter()
    for info in zipfile.ZipFile(archive).infolist():
        pieces = info.filename.split("/")
        key = "/".join(pieces[:2]) if len(pieces) > 2 or pieces[0].endswith(".libs") else pieces[0]
        zipped[key] += info.compress_size
        unzipped[key] += info.file_size
    return [(key, size, unzipped[key]) for key, size in zipped.most_common(top)]


def cold_starts(archive: Path, runs: int, layer: Path | None = None) -> dict[str, list[dict]]:
    """Each variant's runs: "as built" and "without bytecode"."""
    python = find_python("3.10")
    if python is None:
        raise SystemExit("Python 3.10 is not installed: cannot start the bundle")
    sample = next((Path(__file__).resolve().parent.parent / "scripts" / "smoke").glob("*.png"))
    image = __import__("base64").b64encode(sample.read_bytes()).decode()
    with tempfile.TemporaryDirectory() as scratch:
        variants = {}
        for variant in VARIANTS:
            code, layer_folder = Path(scratch, variant, "code"), Path(scratch, variant, "layer")
            zipfile.ZipFile(archive).extractall(code)
            if layer is not None:
                zipfile.ZipFile(layer).extractall(layer_folder)
            if variant == VARIANTS[1]:
                for cache in [*code.rglob("__pycache__"), *layer_folder.rglob("__pycache__")]:
                    shutil.rmtree(cache)
            variants[variant] = (code, layer_folder)
        results: dict[str, list[dict]] = {variant: [] for variant in VARIANTS}
        for _ in range(runs):
            for variant, (code, layer_folder) in variants.items():
                done = subprocess.run([python, "-I", "-S", "-B", "-c", _CHILD, image,
                                       *([str(layer_folder)] if layer else [])],
                                      cwd=code, capture_output=True, text=True, env={"PATH": "/usr/bin:/bin"},
                                      check=True)
                results[variant].append(json.loads(done.stdout.strip().splitlines()[-1]))
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("archive", type=Path)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--layer", type=Path, help="the dependency layer of a layered deploy (ARCHIVE: its code zip)")
    args = parser.parse_args()
    infos = zipfile.ZipFile(args.archive).infolist()
    print(f"{args.archive.name}: {args.archive.stat().st_size / 1e6:.2f} MB zipped, "
          f"{sum(i.file_size for i in infos) / 1e6:.2f} MB unzipped, {len(infos)} files")
    for key, zipped, unzipped in parts(args.archive):
        print(f"  {zipped / 1e6:6.2f} MB zipped  {unzipped / 1e6:6.2f} MB unzipped  {key}")
    print(f"cold start, median of {args.runs} fresh processes each, interleaved (read-only folder, as on SCF):")
    print(f"  {'variant':<18} {'import index':>13} {'first request':>14} {'peak RSS':>9}")
    for variant, runs in cold_starts(args.archive, args.runs, args.layer).items():
        median = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        print(f"  {variant:<18} {median['import_s'] * 1000:>10.0f} ms {median['first_request_s'] * 1000:>11.1f} ms "
              f"{median['peak_mb']:>6.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
