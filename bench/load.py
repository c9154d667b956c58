#!/usr/bin/env python3
"""Load: the local server (`captcha-ocr serve`, its own process) under concurrent clients, loopback only.

    python bench/load.py --requests 20000 --concurrency 32

Bounded in count and time (--max-seconds); prints throughput, p50/p99 and errors, writes
bench/results/load.json.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

from captcha_ocr.config import load_config
from captcha_ocr.evaluation import latency_summary, synthetic_samples
from captcha_ocr.registry import default_model_dir

RESULTS = Path(__file__).resolve().parent / "results"
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


def wait_ready(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            connection = http.client.HTTPConnection(HOST, port, timeout=2)
            connection.request("GET", "/health")
            if connection.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("server did not start")


def run_load(port: int, paths: list[str], truths: list[str], total: int, concurrency: int, max_seconds: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    wrong = 0
    lock = threading.Lock()
    counter = iter(range(total))
    deadline = time.monotonic() + max_seconds

    def client() -> None:
        nonlocal wrong
        for index in counter:
            if time.monotonic() > deadline:
                return
            started = time.perf_counter()
            try:
                connection = http.client.HTTPConnection(HOST, port, timeout=30)
                connection.request("GET", paths[index % len(paths)])
                response = connection.getresponse()
                body = json.loads(response.read())
                connection.close()
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed)
                    if response.status != 200:
                        errors.append(str(response.status))
                    elif body["text"] != truths[index % len(truths)]:
                        wrong += 1
            except Exception as error:  # a benchmark counts failures, it does not stop on them
                with lock:
                    errors.append(type(error).__name__)

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - started
    done = len(latencies) + sum(1 for e in errors if not e.isdigit())
    summary = latency_summary(latencies)
    return {"requests": done, "concurrency": concurrency, "wall_s": wall, "throughput_rps": done / wall,
            "p50_ms": summary["median_ms"], "p99_ms": summary["p99_ms"],
            "errors": len(errors), "wrong_text": wrong}


def measure(requests: int, concurrency: int, max_seconds: float) -> dict:
    """Start `captcha-ocr serve` in its own process, load it, stop it; the measured figures."""
    config = load_config(default_model_dir())
    samples = synthetic_samples(64, 4711, config.charset, config.lengths)
    paths = ["/?base64Image=" + quote(base64.b64encode(s.data).decode(), safe="") for s in samples]
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "captcha_ocr.cli", "serve", "--port", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port)
        return run_load(port, paths, [s.text for s in samples], requests, concurrency, max_seconds)
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-seconds", type=float, default=600)
    args = parser.parse_args()
    result = measure(args.requests, args.concurrency, args.max_seconds)
    print(f"{'requests':>9} {'clients':>8} {'wall s':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}")
    r = result
    print(f"{r['requests']:>9} {r['concurrency']:>8} {r['wall_s']:>7.1f} {r['throughput_rps']:>8.1f} "
          f"{r['p50_ms']:>8.2f} {r['p99_ms']:>8.2f} {r['errors']:>7}")
    print(f"(wrong text on {result['wrong_text']} of {result['requests']} answers)")
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "load.json").write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
