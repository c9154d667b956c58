#!/usr/bin/env python3
"""All benchmarks in one run, side by side on one machine and one image set; tables on stdout,
JSON and PNG plots in bench/results/.

    .venv/bin/python bench/run_all.py                # everything (about 10 minutes on 2 cores)
    .venv/bin/python bench/run_all.py --quick        # seconds: tiny counts, this venv only, results to
                                                     # build/bench-quick (the tests run it, so it cannot rot)

Each runtime and each peer runs in its own virtual environment under bench/.venvs (created on
first use from PyPI), so no peer becomes a project dependency. Latency is measured in fresh worker
processes, `--rounds` times with the runtimes interleaved; medians of the rounds are reported.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
import venv
from pathlib import Path

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(BENCH))

from captcha_ocr.config import load_config  # noqa: E402
from captcha_ocr.deploy import bundle as build_bundle  # noqa: E402
from captcha_ocr.evaluation import synthetic_samples  # noqa: E402
from captcha_ocr.registry import SHIPPED_MODEL_DIR  # noqa: E402

RESULTS = BENCH / "results"
VENVS = BENCH / ".venvs"
EVAL_SEED = 2026  # the "eval" stream: never used in training
ENVIRONMENTS = {
    "tflite-runtime 2.14": ["tflite-runtime==2.14.0", "numpy<2", "pillow"],
    # what ships: the versions pinned in runtime-pins.txt (the SCF bundle and `pip install .`)
    "ai-edge-litert 1.2 (pinned)": build_bundle.runtime_pins(),
    "ai-edge-litert 2.3 (newest)": ["ai-edge-litert==2.3.0", "numpy", "pillow"],
    "ddddocr": ["ddddocr==1.6.1"],
}
COLD_START_SNIPPET = {
    "ours": "import base64,sys; sys.path.insert(0, {repo!r}); import index; "
            "index.main_handler({{'base64Image': base64.b64encode(open({image!r},'rb').read()).decode()}}, None)",
    "tensorflow": "import sys, numpy as np; sys.path.insert(0, {repo!r}); import tensorflow as tf; "
                  "from captcha_ocr.imaging import preprocess; "
                  "i = tf.lite.Interpreter(model_path={model!r}); i.allocate_tensors(); d = i.get_input_details()[0]; "
                  "x = preprocess(open({image!r},'rb').read(), 32, 96).tensor; "
                  "s, z = d['quantization']; i.set_tensor(d['index'], np.round(x[None] / s + z).astype(d['dtype'])); "
                  "i.invoke()",
    "ddddocr": "import ddddocr; ddddocr.DdddOcr(show_ad=False).classification(open({image!r},'rb').read())",
}
# VmHWM, not ru_maxrss: Linux carries ru_maxrss across exec, so a child would report its parent's peak
RSS_SUFFIX = "; print('MAXRSS', [l.split()[1] for l in open('/proc/self/status') if l.startswith('VmHWM')][0])"


def slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-")


def environment(name: str) -> Path:
    """A venv with exactly ENVIRONMENTS[name]; created once, reused afterwards."""
    path = VENVS / slug(name)
    python = path / "bin" / "python"
    marker = path / ".installed"
    if not marker.is_file() or marker.read_text() != json.dumps(ENVIRONMENTS[name]):
        shutil.rmtree(path, ignore_errors=True)
        venv.create(path, with_pip=True)
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        *ENVIRONMENTS[name]], check=True)
        marker.write_text(json.dumps(ENVIRONMENTS[name]))
    return python


def site_packages_mb(python: Path) -> float:
    site = Path(subprocess.run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    skip = {"pip", "setuptools", "_distutils_hack", "pkg_resources"}
    total = 0
    for entry in site.iterdir():
        if entry.name.split("-")[0] in skip:
            continue
        files = [entry] if entry.is_file() else entry.rglob("*")
        total += sum(f.stat().st_size for f in files if f.is_file())
    return total / 2**20


def write_images(count: int) -> Path:
    config = load_config(SHIPPED_MODEL_DIR)
    folder = BENCH / ".data" / f"eval-{EVAL_SEED}-{count}"
    if not folder.is_dir():
        folder.mkdir(parents=True)
        for index, sample in enumerate(synthetic_samples(count, EVAL_SEED, config.charset, config.lengths)):
            (folder / f"{index:05d}_{sample.text}.png").write_bytes(sample.data)
    return folder


def run_json(command: list, env: dict | None = None) -> dict:
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        raise SystemExit(f"{command[:3]} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def cold_start(python: Path, snippet: str, runs: int) -> dict:
    """Fresh process to first reply (wall time measured outside it) and its peak RSS."""
    times, rss = [], []
    for _ in range(runs):
        started = time.perf_counter()
        result = subprocess.run([python, "-c", snippet + RSS_SUFFIX], capture_output=True, text=True,
                                env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
        times.append(time.perf_counter() - started)
        if result.returncode != 0:
            raise SystemExit(f"cold start failed:\n{result.stderr[-2000:]}")
        rss.append(int(result.stdout.split("MAXRSS")[-1]) / 1024)
    return {"seconds": statistics.median(times), "peak_rss_mb": statistics.median(rss), "runs": runs}


def median_of(rounds: list[dict], *keys: str) -> float:
    values = []
    for item in rounds:
        for key in keys:
            item = item[key]
        values.append(item)
    return statistics.median(values)


def table(title: str, header: list[str], rows: list[list]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]

    def line(cells: list) -> str:
        return "  ".join(str(c).rjust(w) if i else str(c).ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))

    return "\n".join([f"\n{title}", line(header), line(["-" * w for w in widths]), *map(line, rows)])


def plot(results: dict, results_dir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    latency = results["latency"]
    names = list(latency)
    figure, axes = plt.subplots(3, 1, figsize=(9, 10))
    handler = [latency[n]["handler_median_ms"] for n in names]
    axes[0].barh(names, handler, color=["#2457d6"] * (len(names) - 1) + ["#b42318"])
    axes[0].set_xscale("log")
    axes[0].set_xlabel("ms per image, median (log scale)")
    axes[0].set_title("Full request: base64 -> reply")
    cold = results["cold_start"]
    axes[1].barh(list(cold), [c["seconds"] for c in cold.values()], color="#2457d6")
    axes[1].set_xlabel("seconds, median")
    axes[1].set_title("Cold start: new process -> first reply")
    axes[2].barh(list(cold), [c["peak_rss_mb"] for c in cold.values()], color="#137a3f")
    axes[2].axvline(64, color="#b42318", linestyle="--", label="SCF 64 MB tier")
    axes[2].set_xlabel("MB")
    axes[2].set_title("Peak resident memory (VmHWM)")
    axes[2].legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(results_dir / "benchmarks.png", dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000, help="fresh captchas for accuracy (default 2000)")
    parser.add_argument("--calls", type=int, default=2000, help="timed calls per latency measurement")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions of the latency runs")
    parser.add_argument("--cold-runs", type=int, default=5)
    parser.add_argument("--load-requests", type=int, default=5000)
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run in seconds: 40 images, 40 calls, 1 round, 1 cold start, 100 requests of "
                             "load, this venv alone (no peers' venvs), results in build/bench-quick")
    parser.add_argument("--out", type=Path, help="where the JSON and the plot go (default bench/results)")
    args = parser.parse_args()
    results_dir = args.out or (REPO / "build" / "bench-quick" if args.quick else RESULTS)
    if args.quick:
        args.images, args.calls, args.rounds, args.cold_runs, args.load_requests = 40, 40, 1, 1, 100
        pythons = {"ours (this venv)": Path(sys.executable)}
    else:
        pythons = {name: environment(name) for name in ENVIRONMENTS}

    results_dir.mkdir(parents=True, exist_ok=True)
    images = write_images(args.images)
    first_image = str(sorted(images.glob("*.png"))[0])
    results: dict = {"machine": {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version()},
                     "images": args.images, "eval_seed": EVAL_SEED}

    # accuracy and latency, runtimes interleaved per round
    rounds: dict[str, list[dict]] = {name: [] for name in pythons}
    for _ in range(args.rounds):
        for name, python in pythons.items():
            if name == "ddddocr":
                command = [python, BENCH / "workers" / "ddddocr_worker.py", images, str(args.calls // 4)]
            else:
                command = [python, BENCH / "workers" / "ours.py", images, SHIPPED_MODEL_DIR, str(args.calls)]
            rounds[name].append(run_json([str(c) for c in command]))
    float_model = run_json([sys.executable, str(BENCH / "workers" / "ours.py"), str(images), str(float_model_dir()),
                            "10"])
    ours = [name for name in pythons if name != "ddddocr"]
    results["accuracy"] = {"ours int8 (model_quantized.tflite)": rounds[ours[0]][0]["accuracy"],
                           "ours float32 (model.tflite)": float_model["accuracy"]}
    if "ddddocr" in rounds:
        results["accuracy"]["ddddocr 1.6.1 (case-insensitive)"] = rounds["ddddocr"][0]["accuracy"]
    results["latency"] = {}
    for name, measured in rounds.items():
        entry = {"handler_median_ms": median_of(measured, "handler", "median_ms"),
                 "handler_p99_ms": median_of(measured, "handler", "p99_ms"),
                 "runtime_version": measured[0]["runtime_version"]}
        if name != "ddddocr":
            entry.update(inference_median_ms=median_of(measured, "inference", "median_ms"),
                         inference_p99_ms=median_of(measured, "inference", "p99_ms"),
                         reader_median_ms=median_of(measured, "reader", "median_ms"))
        results["latency"][name] = entry

    # cold start and peak RSS
    model = str(SHIPPED_MODEL_DIR / "model_quantized.tflite")
    fill = {"repo": str(REPO), "image": first_image, "model": model}
    cold_variants = {"ours (tflite-runtime)": "tflite-runtime 2.14", "ours (ai-edge-litert 1.2)":
                     "ai-edge-litert 1.2 (pinned)", "ours (this venv)": "ours (this venv)"}
    results["cold_start"] = {label: cold_start(pythons[name], COLD_START_SNIPPET["ours"].format(**fill), args.cold_runs)
                             for label, name in cold_variants.items() if name in pythons}
    results["cold_start"]["full TensorFlow tf.lite"] = cold_start(
        Path(sys.executable), COLD_START_SNIPPET["tensorflow"].format(**fill), args.cold_runs)
    if "ddddocr" in pythons:
        results["cold_start"]["ddddocr"] = cold_start(pythons["ddddocr"], COLD_START_SNIPPET["ddddocr"].format(**fill),
                                                      args.cold_runs)

    # sizes
    archive = build_bundle.build(BENCH / ".build", "3.10", "2.17", "3.4.19", SHIPPED_MODEL_DIR)
    staging = BENCH / ".build" / "scf-python3.10"
    results["sizes_mb"] = {
        "model_quantized.tflite": (SHIPPED_MODEL_DIR / "model_quantized.tflite").stat().st_size / 2**20,
        "model.tflite (float)": (float_model_dir() / "model.tflite").stat().st_size / 2**20,
        "SCF bundle, zipped": archive.stat().st_size / 2**20,
        "SCF bundle, unzipped": sum(p.stat().st_size for p in staging.rglob("*") if p.is_file()) / 2**20,
        **{f"installed: {name}": site_packages_mb(python) for name, python in pythons.items()},
    }

    # local server throughput
    import load

    results["load"] = load.measure(args.load_requests, 32, 300)

    (results_dir / "benchmarks.json").write_text(json.dumps(results, indent=2) + "\n")
    plot(results, results_dir)
    print_report(results, results_dir)


def float_model_dir() -> Path:
    """A folder with the float model and a config pointing at it (the sha256 is computed, not trusted)."""
    from captcha_ocr.config import file_sha256

    folder = BENCH / ".build" / "float-model"
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(SHIPPED_MODEL_DIR / "model.tflite", folder / "model.tflite")
    config = json.loads((SHIPPED_MODEL_DIR / "config.json").read_text())
    config.update(model_file="model.tflite", sha256=file_sha256(folder / "model.tflite"))
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def print_report(results: dict, results_dir: Path) -> None:
    machine = results["machine"]
    print(f"machine: {machine['cpu']}, {machine['cores']} cores, Python {machine['python']}")
    print(table(f"Accuracy on {results['images']} fresh captchas (eval seed {results['eval_seed']})",
                ["model", "full-sequence accuracy"],
                [[name, f"{value * 100:.2f}%"] for name, value in results["accuracy"].items()]))
    latency = results["latency"]
    ddddocr = latency.get("ddddocr", {}).get("handler_median_ms")
    rows = []
    for name, entry in latency.items():
        inference = entry.get("inference_median_ms")
        rows.append([f"{name} ({entry['runtime_version']})",
                     f"{inference:.3f} / {entry['inference_p99_ms']:.3f}" if inference else "-",
                     f"{entry['reader_median_ms']:.3f}" if inference else "-",
                     f"{entry['handler_median_ms']:.3f} / {entry['handler_p99_ms']:.3f}",
                     f"{ddddocr / entry['handler_median_ms']:.1f}x" if ddddocr else "-"])
    print(table("Latency per image, one thread, warm (median / p99 ms; median of rounds)",
                ["runtime", "inference", "Reader.read", "base64 -> reply", "vs ddddocr"], rows))
    print(table("Cold start: fresh process to first reply (median)", ["variant", "seconds", "peak RSS MB"],
                [[n, f"{c['seconds']:.3f}", f"{c['peak_rss_mb']:.1f}"] for n, c in results["cold_start"].items()]))
    print(table("Sizes", ["artifact", "MB"], [[n, f"{v:.2f}"] for n, v in results["sizes_mb"].items()]))
    load_result = results["load"]
    print(table("Local server under load (loopback, 32 clients)", ["requests", "req/s", "p50 ms", "p99 ms", "errors"],
                [[load_result["requests"], f"{load_result['throughput_rps']:.0f}", f"{load_result['p50_ms']:.1f}",
                  f"{load_result['p99_ms']:.1f}", load_result["errors"]]]))
    print(f"\nJSON: {results_dir / 'benchmarks.json'}, plot: {results_dir / 'benchmarks.png'}")


if __name__ == "__main__":
    main()
