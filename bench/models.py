#!/usr/bin/env python3
"""What each served model costs: cold start, idle memory and the first request, for 1, 3 and 10
models, on the SCF bundle under Python 3.10 (`-I -S`, its own wheels).

    python bench/models.py                       # build the bundle, print the table
    python bench/models.py --bundle build/budget/unzipped --repeats 7

Every model here but the package's own named ones (the general model, counted in the table) is
the shipped model's file under its own name, declaring its own image size (so
each request's size is read as well): the same cost as ten models of the shipped size. Each
measurement is a fresh process, as a cold SCF instance is: `import index` (every model loaded,
its sha256 and tensor shapes checked), then one request naming the last model, then, in another
fresh process, the most expensive request of tests/hostile.py. Medians of --repeats processes.
Writes bench/results/models.json; docs/models.md quotes it.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
sys.path[:0] = [str(REPO / "tests"), str(REPO / "bench")]

from budget import BUDGET_PEAK_MB, bundle_and_python, run_in_bundle  # noqa: E402
from conftest import b64, model_variant  # noqa: E402
from hostile import cases  # noqa: E402

from captcha_ocr.config import load_config  # noqa: E402
from captcha_ocr.evaluation import synthetic_samples  # noqa: E402
from captcha_ocr.registry import SHIPPED_MODEL_SUBDIR  # noqa: E402

COUNTS = (1, 3, 10)  # models of the models folder's kind served, the default included
WORST_CLASS = "largest allowed lossless rgba webp"


def packaged_named(bundle_dir: Path) -> int:
    """How many named models the bundle's package holds (the general model), served beside the others."""
    models = bundle_dir / "captcha_ocr" / SHIPPED_MODEL_SUBDIR[0]
    return sum(1 for folder in models.iterdir() if folder.name != SHIPPED_MODEL_SUBDIR[-1] and folder.is_dir())


def measure(bundle_dir: Path, python: str, count: int, repeats: int, sample, worst_event) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        names = [f"site{index}" for index in range(count - 1)]
        for index, name in enumerate(names):
            model_variant(Path(tmp), name, source_sizes=((100 + index, 40),))
        env = {"CAPTCHA_OCR_MODELS_DIR": tmp}
        event = {"base64Image": b64(sample.data), **({"model": names[-1]} if names else {})}
        runs = [run_in_bundle(bundle_dir, python, event, env=env) for _ in range(repeats)]
        worst = [run_in_bundle(bundle_dir, python, worst_event, env=env) for _ in range(repeats)]
    assert all(run.status == 200 and run.text == sample.text for run in runs), "a model misread the sample"
    return {
        "models": count + packaged_named(bundle_dir),
        "cold_start_s": statistics.median(run.cold_start_s for run in runs),
        "idle_mb": statistics.median(run.idle_mb for run in runs),
        "first_request_ms": round(statistics.median(run.seconds * 1000 for run in runs), 2),
        "worst_peak_mb": max(run.peak_mb for run in worst),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bundle", type=Path, help="an unzipped bundle (default: build one under build/budget)")
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per figure (default 5)")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where models.json goes (default bench/results)")
    args = parser.parse_args()
    bundle_dir, python = bundle_and_python(args.bundle)
    config = load_config(bundle_dir.joinpath("captcha_ocr", *SHIPPED_MODEL_SUBDIR))
    sample = synthetic_samples(1, 424_242, config.charset, config.lengths)[0]
    worst_event = cases(sample.data, sample.text, [WORST_CLASS])[0].event
    rows = [measure(bundle_dir, python, count, args.repeats, sample, worst_event) for count in COUNTS]
    print(f"{'models':>6} {'cold start s':>13} {'idle MB':>8} {'first request ms':>17} {'worst request peak MB':>22}")
    for row in rows:
        print(f"{row['models']:>6} {row['cold_start_s']:>13.3f} {row['idle_mb']:>8.1f} "
              f"{row['first_request_ms']:>17.2f} {row['worst_peak_mb']:>22.1f}")
    first, last = rows[0], rows[-1]
    extra = last["models"] - first["models"]
    print(f"\neach model beyond the first: {(last['idle_mb'] - first['idle_mb']) / extra:.2f} MB idle, "
          f"{(last['cold_start_s'] - first['cold_start_s']) * 1000 / extra:.1f} ms of cold start; "
          f"budget {BUDGET_PEAK_MB:.0f} MB peak; medians of {args.repeats} fresh processes")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "models.json").write_text(json.dumps(rows, indent=1) + "\n")
    return 0 if all(row["worst_peak_mb"] <= BUDGET_PEAK_MB for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
