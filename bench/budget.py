#!/usr/bin/env python3
"""The request budget, measured where it matters: the SCF bundle under Python 3.10, `-I -S`.

    python bench/budget.py                      # build the bundle, run every hostile class, print a table
    python bench/budget.py --bundle build/scf-python3.10 --only jpeg

Each hostile request (tests/hostile.py) runs in a fresh process, as a cold SCF instance would: the
process imports `index` (cold start), reads the event, then its peak-RSS mark is reset so that the
peak measured is the request's own (`VmHWM` after the call) and the idle figure is what the process
held before it. Writes bench/results/budget.json; the README's budget table comes from it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
sys.path[:0] = [str(REPO / "tests")]

from captcha_ocr.deploy import bundle as build_bundle  # noqa: E402
from captcha_ocr.registry import SHIPPED_MODEL_DIR  # noqa: E402

BUDGET_PEAK_MB = 100.0  # of the function's 128 MB: the rest is margin
BUDGET_SECONDS = 2.0  # per request on a 2-core machine, of the function's 10 s

# Runs inside the unzipped bundle. The event arrives on stdin, as SCF hands the runtime its event.
# Decoding runs in the function's worker process (captcha_ocr/isolation.py), so the request's memory
# is the parent's peak plus what the worker held of its own at its peak. The worker's pool is made
# again here with the same limits and a decode that also reports the worker's
# peak RSS during the job and how much of its memory was its own (private) at the end, in a file (the
# worker keeps no descriptor of its parent's): its own memory
# at any moment is at most peak RSS + (private - RSS) at the end (pages only turn private, never
# back). A worker that died mid-job reports nothing; then its whole peak RSS (RUSAGE_CHILDREN) counts.
_CHILD = r"""
import json, os, resource, sys, tempfile, time
sys.path[:0] = [".", *sys.argv[1:]]  # the function's folder first (/var/user), then a layer's (/opt), as SCF does

def memory(pid="self"):
    fields = dict(line.split(":", 1) for line in open(f"/proc/{pid}/status"))
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024

def private_mb():
    fields = dict(line.split(":", 1) for line in open("/proc/self/smaps_rollup") if ":" in line)
    return sum(int(fields[k].split()[0]) for k in ("Private_Clean", "Private_Dirty")) / 1024

started = time.perf_counter()
import index
cold_start = time.perf_counter() - started
from captcha_ocr.imaging import preprocess
from captcha_ocr.isolation import DecoderPool
reports_file = os.path.join(tempfile.mkdtemp(prefix="budget-"), "worker.jsonl")

def measured(data, height, width, limits, gray):
    with open("/proc/self/clear_refs", "w") as marks:
        marks.write("5")
    try:
        return preprocess(data, height, width, limits, gray)
    finally:
        rss, peak = memory()
        with open(reports_file, "a") as reports:
            reports.write(json.dumps({"own_mb": peak + private_mb() - rss}) + "\n")

app = index._app
app.reader.decoder.close()
app.reader.decoder = DecoderPool(app.limits, decode=measured)
event = json.loads(sys.stdin.buffer.read())
idle_mb, _ = memory()
with open("/proc/self/clear_refs", "w") as marks:
    marks.write("5")  # reset VmHWM: from here on the peak is this request's
started = time.perf_counter()
reply = index.main_handler(event, {"request_id": "budget"})
elapsed = time.perf_counter() - started
_, peak_mb = memory()
try:
    reports = [json.loads(line) for line in open(reports_file)]
    os.remove(reports_file)
except FileNotFoundError:
    reports = []
os.rmdir(os.path.dirname(reports_file))
worker_mb = max([r["own_mb"] for r in reports] or [0.0])
if app.reader.decoder.restarts:  # a worker was replaced: count the dead one's whole peak
    worker_mb = max(worker_mb, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024)
sys.stdout.write("\n" + json.dumps({"reply": reply, "idle_mb": idle_mb, "peak_mb": peak_mb + worker_mb,
                                    "worker_mb": worker_mb, "seconds": elapsed, "cold_start_s": cold_start,
                                    "restarts": app.reader.decoder.restarts}))
"""


@dataclass(frozen=True)
class Measurement:
    status: int
    code: str | None
    text: str | None
    idle_mb: float
    peak_mb: float
    seconds: float
    log_lines: tuple[str, ...]
    cold_start_s: float  # importing index: the runtime, the packages, every model loaded and checked
    model: str | None  # the model that answered

    @property
    def above_idle_mb(self) -> float:
        return self.peak_mb - self.idle_mb


def run_in_bundle(bundle_dir: Path, python: str, event: object, timeout: float = 60,
                  env: dict[str, str] | None = None, layer_dir: Path | None = None) -> Measurement:
    """One request in a fresh `python -I -S` process inside the unzipped bundle (env: e.g. the
    function's CAPTCHA_OCR_MODELS_DIR; layer_dir: the dependency layer of a layered deploy, on the
    path after the function's folder)."""
    # -B: SCF's code folder is read-only, so nothing compiled at a cold start is kept for the next one
    result = subprocess.run([python, "-I", "-S", "-B", "-c", _CHILD, *([str(layer_dir)] if layer_dir else [])],
                            cwd=bundle_dir, input=json.dumps(event).encode(),
                            capture_output=True, timeout=timeout, env={"PATH": "/usr/bin:/bin", **(env or {})})
    if result.returncode != 0:
        raise RuntimeError(f"bundle process failed ({result.returncode}): {result.stderr.decode()[-2000:]}")
    *logs, last = result.stdout.decode().rstrip("\n").split("\n")
    report = json.loads(last)
    raw = report["reply"]["body"] or "{}"
    body = json.loads(raw) if raw.startswith("{") else {}  # the demo page is HTML
    return Measurement(
        status=report["reply"]["statusCode"], code=(body.get("error") or {}).get("code"), text=body.get("text"),
        idle_mb=round(report["idle_mb"], 1), peak_mb=round(report["peak_mb"], 1),
        seconds=round(report["seconds"], 4), log_lines=tuple(line for line in logs if line),
        cold_start_s=round(report["cold_start_s"], 3), model=(body.get("model") or {}).get("name"),
    )


def unzipped_bundle(out: Path) -> Path:
    """Build the bundle (wheels for Python 3.10, glibc-checked) and unzip it next to the archive."""
    archive = build_bundle.build(out, "3.10", "2.17", "3.4.19", SHIPPED_MODEL_DIR)
    target = out / "unzipped"
    shutil.rmtree(target, ignore_errors=True)
    zipfile.ZipFile(archive).extractall(target)
    return target


def bundle_and_python(bundle_dir: Path | None) -> tuple[Path, str]:
    """The unzipped bundle given (--bundle), else one built under build/budget, and the Python 3.10
    that runs it; exits with status 2 where no Python 3.10 is installed."""
    python = build_bundle.find_python("3.10")
    if python is None:
        print("Python 3.10 is not installed: the bundle cannot be run", file=sys.stderr)
        raise SystemExit(2)
    return bundle_dir or unzipped_bundle(REPO / "build" / "budget"), python


def print_markdown(rows: list[dict]) -> None:
    print("| class | answer | peak MB | above idle MB | seconds |\n| --- | --- | ---: | ---: | ---: |")
    for row in rows:
        answer = f"{row['status']} {row['code'] or ''}".strip()
        print(f"| {row['class']} | {answer} | {row['peak_mb']:.1f} | {row['peak_mb'] - row['idle_mb']:.1f} "
              f"| {row['seconds']:.3f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, help="an unzipped bundle (default: build one under build/budget)")
    parser.add_argument("--only", help="run the classes whose name contains this")
    parser.add_argument("--markdown", action="store_true", help="print bench/results/budget.json as a table")
    args = parser.parse_args()
    if args.markdown:
        print_markdown(json.loads((RESULTS / "budget.json").read_text()))
        return 0
    bundle_dir, python = bundle_and_python(args.bundle)

    from conftest import MODEL_DIR  # noqa: F401  (sets up the same paths the tests use)
    from hostile import CLASS_NAMES, cases

    from captcha_ocr.evaluation import synthetic_samples

    config = json.loads(bundle_dir.joinpath("captcha_ocr", "models", "default", "config.json").read_text())
    sample = synthetic_samples(1, 424_242, config["charset"], tuple(config["lengths"]))[0]
    rows = []
    print(f"{'class':<52} {'status':>6} {'code':<18} {'peak MB':>8} {'+idle MB':>8} {'seconds':>8}  ok")
    wanted = [name for name in CLASS_NAMES if not args.only or args.only in name]
    for case in cases(sample.data, sample.text, wanted):
        measured = run_in_bundle(bundle_dir, python, case.event)
        right = (measured.status, measured.code) == (case.status, case.code) and (
            case.text is None or measured.text == case.text)
        within = measured.peak_mb <= BUDGET_PEAK_MB and measured.seconds <= BUDGET_SECONDS
        rows.append({"class": case.name, **{k: v for k, v in asdict(measured).items()
                                            if k not in ("log_lines", "cold_start_s", "model")},
                     "expected": [case.status, case.code], "right": right, "within_budget": within})
        print(f"{case.name[:52]:<52} {measured.status:>6} {str(measured.code):<18} {measured.peak_mb:>8.1f} "
              f"{measured.above_idle_mb:>8.1f} {measured.seconds:>8.3f}  {'ok' if right and within else 'FAIL'}",
              flush=True)
    worst = max(rows, key=lambda r: r["peak_mb"]), max(rows, key=lambda r: r["seconds"])
    print(f"\n{len(rows)} classes; worst peak {worst[0]['peak_mb']} MB ({worst[0]['class']}), "
          f"slowest {worst[1]['seconds']} s ({worst[1]['class']}); idle {rows[0]['idle_mb']} MB")
    if not args.only:
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "budget.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0 if all(r["right"] and r["within_budget"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
