"""Benchmarks that cannot rot: each one runs here in a quick form (tiny counts, results in a temporary
folder, never over bench/results), so a benchmark that no longer runs fails the suite."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import MODEL_DIR, REPO, SHARED_DATASET, SHIPPED_NAMED

BENCH = REPO / "bench"
SCRIPTS = sorted(path.name for path in BENCH.glob("*.py"))


def bench(*args: str, timeout: int = 600) -> str:
    done = subprocess.run([sys.executable, *map(str, args)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, f"{args[:2]}:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.parametrize("script", SCRIPTS)
def test_every_benchmark_imports_and_parses_its_arguments(script):
    assert "usage" in bench(BENCH / script, "--help")


@pytest.mark.slow
def test_run_all_quick(tmp_path):
    out = bench(BENCH / "run_all.py", "--quick", "--out", tmp_path)
    results = json.loads((tmp_path / "benchmarks.json").read_text())
    assert results["accuracy"]["ours int8 (model_quantized.tflite)"] >= 0.9  # the shipped model reads its style
    (ours,) = [entry for name, entry in results["latency"].items() if name.startswith("ours")]
    assert 0 < ours["inference_median_ms"] < ours["handler_median_ms"]
    assert results["load"]["errors"] == 0 and (tmp_path / "benchmarks.png").is_file()
    assert "Reader.read" in out


@pytest.mark.slow
def test_soak_quick(tmp_path):
    bench(BENCH / "soak.py", "--calls", "300", "--warmup", "10", "--out", tmp_path)
    assert json.loads((tmp_path / "soak.json").read_text())["calls"] == 300


@pytest.mark.slow
def test_bundle_benchmarks_quick(bundle, unzipped_bundle, tmp_path):
    root, _ = unzipped_bundle
    isolation = bench(BENCH / "isolation.py", "--quick", "--bundle", root)
    assert "the worker's cost per request" in isolation and "(Recognizer.logits) | 0." in isolation
    assert "a decode that does nothing | 0." in isolation
    assert "1 classes" in bench(BENCH / "budget.py", "--bundle", root, "--only", "svg")
    bench(BENCH / "models.py", "--bundle", root, "--repeats", "1", "--out", tmp_path)
    counts = [row["models"] for row in json.loads((tmp_path / "models.json").read_text())]
    assert counts == [count + len(SHIPPED_NAMED) for count in (1, 3, 10)]
    sizes = bench(BENCH / "bundle.py", bundle, "--runs", "1")
    assert "cold start, median of 1 fresh" in sizes and "without bytecode" in sizes
    slider = bench(BENCH / "slider.py", "--bundle", root, "--quick")
    assert "| two backgrounds, photos | 10 |" in slider and "| background alone, procedural | 10 |" in slider


@pytest.mark.slow
def test_kinds_quick(tmp_path):
    out = bench(BENCH / "kinds.py", "--quick", "--kinds", "arithmetic", "gif", "--work", tmp_path / "work",
                "--out", tmp_path)
    rows = json.loads((tmp_path / "kinds.json").read_text())["rows"]
    assert [(row["kind"], row["read"]) for row in rows] == [("arithmetic", "as drawn"), ("gif", "all frames"),
                                                            ("gif", "first frame"), ("gif", "mean of frames")]
    assert all(row["test_images"] == 40 for row in rows) and "answer_accuracy" in rows[0]
    assert "| gif | first frame |" in out


@pytest.mark.slow
def test_throughput_quick():
    out = bench(BENCH / "throughput.py", "--quick")
    rates = [float(line.rsplit("|", 2)[-2]) for line in out.splitlines() if line.startswith("| folder run")
             or line.startswith("| general model")]
    assert len(rates) == 4 and all(rate > 0 for rate in rates)


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATASET.is_dir(), reason="../shared/datasets is not here")
def test_general_quick(tmp_path):
    from captcha_ocr.registry import general_model_dir

    model_dir = general_model_dir() or MODEL_DIR  # no general model shipped: the script still runs, on the default
    out = bench(BENCH / "general.py", "--model-dir", model_dir, "--limit", "10", "--out", tmp_path / "general.json")
    rows = json.loads((tmp_path / "general.json").read_text())["rows"]
    assert [row["set"] for row in rows] == ["captcha_images_v2", "tjsp_captchas"]
    assert all(row["images"] == 10 and 0 <= row["general"] <= 1 for row in rows)
    assert "captcha_images_v2" in out


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_DATASET.is_dir(), reason="../shared/datasets is not here")
def test_views_quick(tmp_path):
    out = bench(BENCH / "views.py", "--data", SHARED_DATASET, "--ignore-case", "--limit", "8",
                "--out", tmp_path / "views.json")
    (row,) = json.loads((tmp_path / "views.json").read_text())["rows"]
    assert row["set"] == "captcha_images_v2" and row["images"] == 8
    shares = {key: value for key, value in row.items() if key not in ("set", "images")}
    assert "1 alone" in shares and "max of 1, 0.9" in shares and all(0 <= value <= 1 for value in shares.values())
    assert "| max of 1, 0.9 |" in out


def test_the_learning_curve_keeps_one_record_per_run_and_start(tmp_path):
    sys.path.insert(0, str(BENCH))
    from learning_curve import save_record

    results = tmp_path / "curve.json"
    old = {"set": "s", "size_arg": 50, "seed": 1, "unlabelled": False, "test_accuracy": 0.5}  # before --init
    save_record(results, old)
    save_record(results, {**old, "init": "general", "test_accuracy": 0.9})
    save_record(results, {**old, "init": "synthetic", "test_accuracy": 0.6})  # replaces the one without init
    assert sorted((r.get("init"), r["test_accuracy"]) for r in json.loads(results.read_text())) == [
        ("general", 0.9), ("synthetic", 0.6)]
