#!/usr/bin/env python3
"""What decoding in a worker process costs, and where a request's time goes, on the SCF bundle under
Python 3.10 (`-I -S`).

    python bench/isolation.py [--bundle build/budget/unzipped] [--requests 300] [--quick]

In one process inside the unzipped bundle, the same captchas are read through `main_handler` with
the decoding worker (what ships) and in the handler's own process (DecoderPool.isolated off),
interleaved in rounds; then the request's stages one by one in that process (preprocessing, the
interpreter, CTC decoding); then the worker's round trip with a decode that does nothing, its
start (a fork at cold start) and its replacement after a crash are timed, and the idle worker's
own memory (private pages) is read. Medians; writes bench/results/isolation.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCH.parent), str(BENCH)]

from budget import bundle_and_python  # noqa: E402

RESULTS = BENCH / "results"

_CHILD = r"""
import base64, json, os, statistics, sys, time
sys.path.insert(0, ".")
import index
from captcha_ocr.synthetic import synthetic_captcha
from captcha_ocr.isolation import DecoderPool

requests, rounds = int(sys.argv[1]), int(sys.argv[2])
app = index._app
config = app.models.default.config
images = [synthetic_captcha(31337 + i, config.charset, config.lengths)[1] for i in range(50)]
events = [{"httpMethod": "GET", "path": "/", "queryString": {"base64Image": base64.b64encode(png).decode()}}
          for png in images]
times = {True: [], False: []}
for round_ in range(rounds):
    for isolated in (True, False) if round_ % 2 == 0 else (False, True):
        app.reader.decoder.isolated = isolated
        for i in range(requests // rounds):
            started = time.perf_counter()
            index.main_handler(events[i % len(events)], None)
            times[isolated].append(time.perf_counter() - started)
app.reader.decoder.isolated = True
from captcha_ocr.decoding import decode_logits
from captcha_ocr.imaging import preprocess
recognizer = app.models.default.recognizer
tensors = [preprocess(png, config.height, config.width, app.limits, config.gray).tensor for png in images]
logits = [recognizer.logits(tensor) for tensor in tensors]
stages = {
    "preprocess": lambda i: preprocess(images[i], config.height, config.width, app.limits, config.gray),
    "inference": lambda i: recognizer.logits(tensors[i]),
    "ctc_decode": lambda i: decode_logits(logits[i], config.charset, config.lengths),
}
stage_ms = {}
for name, stage in stages.items():
    spent = []
    for i in range(requests):
        started = time.perf_counter()
        stage(i % len(images))
        spent.append(time.perf_counter() - started)
    stage_ms[name] = statistics.median(spent) * 1000
starts, replacements = [], []
for _ in range(10):
    started = time.perf_counter()
    pool = DecoderPool(app.limits)
    starts.append(time.perf_counter() - started)
    pool.close()
def crash(data, height, width, limits, gray):
    os.abort()
pool = DecoderPool(app.limits, decode=crash)
for _ in range(10):
    started = time.perf_counter()
    try:
        pool.prepare(b"x", config.height, config.width, config.gray, time.monotonic() + 5)
    except Exception:
        pass
    replacements.append(time.perf_counter() - started)
pool.close()
from captcha_ocr.imaging import PreparedImage
def nothing(data, height, width, limits, gray):  # the hop alone: the same message sizes, no decoding
    return PreparedImage(tensors[0], (1, 1), "PNG")
pool, hops = DecoderPool(app.limits, decode=nothing), []
for i in range(requests):
    started = time.perf_counter()
    pool.prepare(images[i % len(images)], config.height, config.width, config.gray, time.monotonic() + 5)
    hops.append(time.perf_counter() - started)
pool.close()
(pid,) = app.reader.decoder.pids
fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/smaps_rollup") if ":" in line)
private = sum(int(fields[k].split()[0]) for k in ("Private_Clean", "Private_Dirty")) / 1024
print(json.dumps({"stages_ms": stage_ms, "isolated_ms": statistics.median(times[True]) * 1000,
                  "in_process_ms": statistics.median(times[False]) * 1000,
                  "worker_start_ms": statistics.median(starts) * 1000,
                  "crash_and_replace_ms": statistics.median(replacements) * 1000,
                  "hop_ms": statistics.median(hops) * 1000,
                  "idle_worker_private_mb": private, "requests": len(times[True])}))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, help="an unzipped bundle (default: build one under build/budget)")
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--quick", action="store_true", help="60 requests: a smoke run")
    args = parser.parse_args()
    bundle_dir, python = bundle_and_python(args.bundle)
    requests = 60 if args.quick else args.requests
    done = subprocess.run([python, "-I", "-S", "-c", _CHILD, str(requests), "6"], cwd=bundle_dir, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin"}, check=True, timeout=600)
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print("| what | median |\n| --- | ---: |")
    print(f"| request, decoding in the worker (what ships) | {result['isolated_ms']:.3f} ms |")
    print(f"| request, decoding in the handler's process | {result['in_process_ms']:.3f} ms |")
    stages = result["stages_ms"]
    for name, what in (("preprocess", "screen, decode, gray, resize (imaging.preprocess)"),
                       ("inference", "the interpreter (Recognizer.logits)"),
                       ("ctc_decode", "CTC decoding and the sequence probability (decoding.decode_logits)")):
        print(f"| a stage alone, in a loop of its own: {what} | {stages[name]:.3f} ms |")
    print(f"| the worker's cost per request | {result['isolated_ms'] - result['in_process_ms']:.3f} ms |")
    print(f"| the worker's round trip with a decode that does nothing | {result['hop_ms']:.3f} ms |")
    print(f"| starting the worker (a fork, at cold start) | {result['worker_start_ms']:.2f} ms |")
    print(f"| a crashing decode, answered, the worker replaced | {result['crash_and_replace_ms']:.2f} ms |")
    print(f"| the idle worker's own memory (private pages) | {result['idle_worker_private_mb']:.1f} MB |")
    if not args.quick:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "isolation.json").write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
