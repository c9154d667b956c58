#!/usr/bin/env python3
"""How many labelled images does a captcha style need? The learning curve, measured.

For each shared real set (../shared/datasets/captcha_images_v2 and tjsp_captchas): a fixed 20% test
split (the same for every run, never seen in training), then from the other 80%, in an order fixed
by the seed, the first N images as labelled training data (their own 80/20 split picks the best
epoch, as `train --data` does), for N in 50, 100, 200, 400 and all; each without and with the rest
of the 80% as unlabelled images (`train --unlabelled`). Every run uses the defaults of
`captcha-ocr train --data`; its best model is scored on the test split with full-sequence accuracy
(the float Keras model, so the curve runs on any Keras backend, a GPU machine included), read as
its export reads: at the run's views, with the seen lengths (`test_served`; records from before
views existed carry `test_greedy`, the whole width greedily, as their `test_accuracy`).

    .venv/bin/python bench/learning_curve.py [--sets captcha_images_v2 tjsp_captchas]
        [--sizes 50 100 200 400 0] [--seeds 1 2 3] [--jobs 2]        # 0 = all
    .venv/bin/python bench/learning_curve.py --report                  # table + plot from the results

Writes bench/results/learning_curve.json (one record per run, merged with earlier ones) and, with
--report, prints a markdown table and draws bench/results/learning_curve.png.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
SHARED = Path(os.environ.get("CAPTCHA_OCR_SHARED", REPO.parent / "shared")) / "datasets"
RESULTS = BENCH / "results" / "learning_curve.json"
PLOT = BENCH / "results" / "learning_curve.png"
TEST_FRACTION = 0.2
TEST_SEED = 0  # one test split per set, whatever the run's seed
DEFAULT_INIT = "synthetic"  # the curve's start unless --init says (records from before --init existed had it)
RECORD_KEY = ("set", "size_arg", "seed", "unlabelled", "init")


def split_folders(data: Path, size: int, seed: int, work: Path) -> dict[str, Path]:
    """test/ (fixed), labelled/ (first `size` of the seeded pool, 0 = all) and unlabelled/ (the rest), as links."""
    files = sorted(p for p in data.iterdir() if p.suffix.lower() == ".png")
    order = np.random.default_rng(TEST_SEED).permutation(len(files))
    cut = int(round(len(files) * TEST_FRACTION))
    test, pool = order[:cut], order[cut:]
    pool = pool[np.random.default_rng(seed).permutation(len(pool))]
    size = size or len(pool)
    parts = {"test": test, "labelled": pool[:size], "unlabelled": pool[size:]}
    folders = {}
    for name, indices in parts.items():
        folder = work / name
        folder.mkdir(parents=True)
        for index in indices:
            (folder / files[index].name).symlink_to(files[index].resolve())
        folders[name] = folder
    return folders


def run_one(data_name: str, size: int, seed: int, unlabelled: bool, out: Path, time_limit: float | None,
            init: str = DEFAULT_INIT, views: list[float] | None = None) -> dict:
    """One point of the curve: `size` labels (and the rest unlabelled), trained from `init`'s start
    and scored; `views` (train --views) replaces the folder default."""
    out.mkdir(parents=True, exist_ok=True)
    folders = split_folders(SHARED / data_name, size, seed, Path(tempfile.mkdtemp(dir=out)))
    overrides = {"seed": seed, "init": init}
    if time_limit is not None:
        overrides["time_limit"] = time_limit
    if views is not None:
        overrides["views"] = views  # a list through the worker's JSON argument, whatever it was here
    if unlabelled:
        overrides["unlabelled_dir"] = str(folders["unlabelled"])
    result, wall = train_and_score(folders["labelled"], folders["test"], out, overrides)
    return {"set": data_name, "labels": len(list(folders["labelled"].iterdir())), "size_arg": size, "seed": seed,
            "unlabelled": unlabelled, "init": init, "wall_s": wall, "test_accuracy": result["test_served"], **result}


def train_and_score(labelled: Path, test: Path, out: Path, overrides: dict) -> tuple[dict, float]:
    """`train --data labelled` with the defaults plus `overrides`, in a child process (its own Keras
    state) writing out/run and out/log.txt; returns its score on the test folder and its wall time."""
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--worker", str(labelled), str(test), str(out / "run"),
                           json.dumps(overrides)], cwd=REPO, capture_output=True, text=True)
    wall = round(time.perf_counter() - started, 1)
    (out / "log.txt").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"{out.name}: {(done.stderr or done.stdout)[-1500:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


def worker(labelled: Path, test: Path, out: Path, overrides: dict) -> None:
    """What `captcha-ocr train --data labelled` does with `overrides` (TrainSettings fields), then the
    best model's score on the test folder as one JSON line."""
    from captcha_ocr.training.settings import settings_for_run
    from captcha_ocr.training.train import infer_from_folder, load_datasets, load_unlabelled_images, train

    if "views" in overrides:  # a tuple, as the command line gives it, after its JSON hop
        overrides["views"] = tuple(overrides["views"])
    settings, _ = settings_for_run(out, {"data_dir": str(labelled), **overrides}, resume=False)
    infer_from_folder(settings, overrides.get("charset"), overrides.get("width"))
    train_set, validation = load_datasets(settings)
    train(settings, train_set, validation, unlabelled=load_unlabelled_images(settings))
    print(json.dumps(score(out, test)))


def test_logits(run: Path, test: Path):
    """A finished run's settings, its best model, the test folder's labels and the model's logits."""
    settings, model, texts, images = test_inputs(run, test)
    return settings, model, texts, model.predict(images, batch_size=256, verbose=0)


def test_inputs(run: Path, test: Path):
    """A finished run's settings, its best model, the test folder's labels and model inputs."""
    import keras

    from captcha_ocr.training.data import load_folder
    from captcha_ocr.training.settings import TrainSettings

    settings = TrainSettings.load(run)
    model = keras.models.load_model(run / "checkpoints" / "best.keras")
    tested, _ = load_folder(test, settings.height, settings.width, case_fold=settings.case_fold, gray=settings.gray)
    return settings, model, tested.texts, tested.images


def score(run: Path, test: Path) -> dict:
    """A finished run's best model on the test folder: the whole width alone, greedy and with the
    seen lengths, and as its export reads (runtime.read_views: the run's views, seen lengths); and
    what its state.json says of the run."""
    from captcha_ocr.decoding import decode_logits
    from captcha_ocr.runtime import read_views
    from captcha_ocr.training.train import keras_logits

    settings, model, texts, images = test_inputs(run, test)
    logits = model.predict(images, batch_size=256, verbose=0)
    greedy = [decode_logits(frame, settings.charset).text for frame in logits]
    seen = [decode_logits(frame, settings.charset, settings.lengths).text for frame in logits]
    served = [r.text for r in read_views(keras_logits(model), images, settings.charset, settings.lengths,
                                         settings.views)]
    state = json.loads((run / "state.json").read_text())
    return {
        "test_greedy": sum(p == t for p, t in zip(greedy, texts)) / len(texts),
        "test_seen_lengths": sum(p == t for p, t in zip(seen, texts)) / len(texts),
        "test_served": sum(p == t for p, t in zip(served, texts)) / len(texts), "views": list(settings.views),
        "test_images": len(texts), "val_accuracy": state["best_accuracy"], "epochs": state["epoch"],
        "best_epoch": state["best_epoch"], "train_s": round(state["elapsed_s"], 1),
        "input": f"{settings.height}x{settings.width}", "parameters": model.count_params(),
        "pseudo_labelled": max((r["pseudo_labelled"] for r in state.get("self_training", [])), default=0),
        "restarts": len(state.get("restarts", [])),
    }


def report(records: list[dict], init: str = DEFAULT_INIT) -> str:
    """Median test accuracy (range over seeds) per set, labels and variant, and the plot, of the runs
    that started from `init`."""
    records = [r for r in records if r.get("init", DEFAULT_INIT) == init]
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines = ["| set | labelled images | labelled only: test accuracy | wall time | + unlabelled: test accuracy | "
             "pseudo-labelled used | wall time | seeds |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for axis, data_name in zip(axes, ("captcha_images_v2", "tjsp_captchas")):
        for unlabelled, style in ((False, "o-"), (True, "s--")):
            rows = [r for r in records if r["set"] == data_name and r["unlabelled"] == unlabelled]
            sizes = sorted({r["labels"] for r in rows})
            medians = [np.median([r["test_accuracy"] for r in rows if r["labels"] == n]) * 100 for n in sizes]
            if sizes:
                axis.plot(sizes, medians, style, label="+ the rest unlabelled" if unlabelled else "labelled only")
        axis.set_xscale("log")
        axis.minorticks_off()
        ticks = sorted({r["labels"] for r in records if r["set"] == data_name})
        axis.set_xticks(ticks, [str(t) for t in ticks])
        axis.set_title(data_name)
        axis.set_xlabel("labelled images (80% train, 20% pick the epoch)")
        axis.grid(alpha=0.3)
        for size in sorted({r["labels"] for r in records if r["set"] == data_name}):
            cells = [_cell([r for r in records if r["set"] == data_name and r["labels"] == size
                            and r["unlabelled"] == unlabelled], unlabelled) for unlabelled in (False, True)]
            seeds = len({r["seed"] for r in records if r["set"] == data_name and r["labels"] == size})
            lines.append(f"| {data_name} | {size} | {cells[0]} | {cells[1]} | {seeds} |")
    axes[0].set_ylabel("full-sequence accuracy, unseen test split (%)")
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(PLOT, dpi=110)
    return "\n".join(lines)


def _cell(rows: list[dict], unlabelled: bool) -> str:
    """'accuracy | [pseudo-labels |] wall time' for one variant's runs (median; range over seeds)."""
    if not rows:
        return " | ".join(["–"] * (3 if unlabelled else 2))
    values = [r["test_accuracy"] * 100 for r in rows]
    accuracy = f"{np.median(values):.1f}%" + (f" ({min(values):.1f}-{max(values):.1f})" if len(values) > 1 else "")
    wall = f"{np.median([r['wall_s'] for r in rows]):.0f} s"
    if unlabelled:
        return f"{accuracy} | {int(np.median([r['pseudo_labelled'] for r in rows]))} | {wall}"
    return f"{accuracy} | {wall}"


def main() -> None:
    from captcha_ocr.training.settings import INIT_MODEL_SIZES

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sets", nargs="+", default=["captcha_images_v2", "tjsp_captchas"])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50, 100, 200, 400, 0], help="0 = all")
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time")
    parser.add_argument("--time-limit", type=float, help="minutes per run (default: train's)")
    parser.add_argument("--out", type=Path, default=None, help="where the runs go (default: a temporary folder)")
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--init", default=DEFAULT_INIT, choices=tuple(INIT_MODEL_SIZES),
                        help="the runs' start (train --init; default synthetic); --report shows this start's runs")
    parser.add_argument("--views", type=float, nargs="+",
                        help="the runs' views (train --views; default the folder default; give its own --results)")
    parser.add_argument("--report", action="store_true", help="print the table and draw the plot, run nothing")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        labelled, test, out, overrides = args.worker
        worker(Path(labelled), Path(test), Path(out), json.loads(overrides))
        return
    if args.report:
        print(report(json.loads(args.results.read_text()), args.init))
        return
    out = args.out or Path(tempfile.mkdtemp(prefix="learning-curve-"))
    jobs = [(name, size, seed, unlabelled) for name in args.sets for size in args.sizes for seed in args.seeds
            for unlabelled in ((False, True) if size else (False,))]
    jobs.sort(key=lambda job: -(job[1] or 10_000))  # the longest runs first, so the pool ends together
    lock = threading.Lock()

    def run(job: tuple) -> None:
        name, size, seed, unlabelled = job
        try:
            record = run_one(name, size, seed, unlabelled,
                             out / f"{name}-{size}-{seed}-{'u' if unlabelled else 'l'}-{args.init}", args.time_limit,
                             args.init, args.views)
        except RuntimeError as failed:  # one failed run is reported; the others still count
            print(f"FAILED {failed}", flush=True)
            return
        print(json.dumps(record), flush=True)
        with lock:  # each record is kept as soon as it is measured, replacing an earlier one of the same run
            save_record(args.results, record)

    with ThreadPoolExecutor(args.jobs) as pool:
        list(pool.map(run, jobs))
    print(f"results in {args.results}")


def save_record(results: Path, record: dict, key: tuple[str, ...] = RECORD_KEY) -> None:
    """Add `record` to the results file, replacing an earlier record of the same run (same `key`;
    a key's missing field reads as its default: `init` as DEFAULT_INIT)."""
    def identity(r: dict) -> list:
        return [r.get(k, DEFAULT_INIT if k == "init" else None) for k in key]

    records = json.loads(results.read_text()) if results.is_file() else []
    records = [r for r in records if identity(r) != identity(record)] + [record]
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(records, indent=1) + "\n")


if __name__ == "__main__":
    main()
