#!/usr/bin/env python3
"""Soak: N warm main_handler calls in one process; resident memory and latency must stay flat.

    python bench/soak.py --calls 100000

Prints a table of RSS and median latency per tenth of the run, and writes bench/results/soak.json.
Logs go through the real JSON formatter into /dev/null, so their cost is included.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import os
import time
from pathlib import Path

import numpy as np

from captcha_ocr.app import create_app, log
from captcha_ocr.evaluation import latency_summary, synthetic_samples
from captcha_ocr.events import query_event

RESULTS = Path(__file__).resolve().parent / "results"


def rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=100_000)
    parser.add_argument("--warmup", type=int, default=500)
    parser.add_argument("--out", type=Path, default=RESULTS, help="where soak.json goes (default bench/results)")
    args = parser.parse_args()

    log.addHandler(logging.StreamHandler(open(os.devnull, "w")))
    log.setLevel(logging.INFO)
    log.propagate = False
    app = create_app()
    config = app.models.default.config
    samples = synthetic_samples(64, 31337, config.charset, config.lengths)
    events = [query_event({"base64Image": base64.b64encode(s.data).decode()}) for s in samples]
    events.append(query_event({"base64Image": "@@bad@@"}))  # errors too
    for i in range(args.warmup):
        app.handle(events[i % len(events)], None)

    latencies = np.empty(args.calls, dtype=np.float64)
    tenth = args.calls // 10
    rows = []
    started = time.perf_counter()
    for i in range(args.calls):
        t0 = time.perf_counter()
        app.handle(events[i % len(events)], None)
        latencies[i] = (time.perf_counter() - t0) * 1000
        if (i + 1) % tenth == 0:
            window = latencies[i + 1 - tenth : i + 1]
            summary = latency_summary(window)
            rows.append({"calls": i + 1, "rss_mb": round(rss_mb(), 2), "median_ms": round(summary["median_ms"], 4),
                         "p99_ms": round(summary["p99_ms"], 4)})
    wall = time.perf_counter() - started

    print(f"{'calls':>8} {'RSS MB':>8} {'median ms':>10} {'p99 ms':>8}")
    for row in rows:
        print(f"{row['calls']:>8} {row['rss_mb']:>8.1f} {row['median_ms']:>10.3f} {row['p99_ms']:>8.3f}")
    growth = rows[-1]["rss_mb"] - rows[0]["rss_mb"]
    drift = rows[-1]["median_ms"] / rows[0]["median_ms"]
    print(f"\n{args.calls} calls in {wall:.1f} s; RSS growth from the first to the last tenth: {growth:+.2f} MB; "
          f"median latency last/first tenth: {drift:.3f}x")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "soak.json").write_text(json.dumps({"calls": args.calls, "wall_s": wall, "rss_growth_mb": growth,
                                                   "latency_drift": drift, "tenths": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
