#!/usr/bin/env python3
"""What limits accuracy on a hard real style? One change to `train --data`'s defaults at a time,
each run scored on the same unseen test split as the learning curve (bench/learning_curve.py:
a fixed 20% of the set; the other 80% labelled).

    .venv/bin/python bench/ablations.py --set tjsp_captchas --seed 1 \\
        defaults "height 48:height=48" "10 minutes:time_limit=10"
    .venv/bin/python bench/ablations.py --score defaults RUN_DIR TEST_FOLDER   # a finished run
    .venv/bin/python bench/ablations.py --report

A variant is `NAME` (all defaults) or `NAME:SETTING=VALUE,...` with TrainSettings field names
(booleans as true/false).
Each run's test accuracy is read twice: greedy, and with the seen-lengths decoding serving uses.
Results go to bench/results/ablations.json (merged by set, seed and name).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import fields
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from learning_curve import SHARED, save_record, split_folders  # noqa: E402

RESULTS = BENCH / "results" / "ablations.json"


def parse_variant(text: str) -> tuple[str, dict]:
    """`NAME:key=value,...` -> (NAME, overrides typed like the TrainSettings fields)."""
    from captcha_ocr.training.settings import TrainSettings

    name, _, assignments = text.partition(":")
    kinds = {f.name: f.type for f in fields(TrainSettings)}
    overrides = {}
    for assignment in filter(None, assignments.split(",")):
        key, value = assignment.split("=", 1)
        kind = kinds[key]
        overrides[key] = (value == "true" if "bool" in kind else float(value) if "float" in kind
                          else int(value) if "int" in kind and "tuple" not in kind else value)
    return name, overrides


def worker(labelled: Path, test: Path, out: Path, overrides: dict) -> None:
    """Train with the defaults plus `overrides`; print one JSON line with the test accuracies."""
    from captcha_ocr.training.settings import settings_for_run
    from captcha_ocr.training.train import infer_from_folder, load_datasets, train

    settings, _ = settings_for_run(out, {"data_dir": str(labelled), **overrides}, resume=False)
    infer_from_folder(settings, overrides.get("charset"), overrides.get("width"))
    train_set, validation = load_datasets(settings)
    train(settings, train_set, validation)
    print(json.dumps(score(out, test)))


def test_logits(run: Path, test: Path):
    """A finished run's settings, its best model, the test folder's labels and the model's logits."""
    import keras

    from captcha_ocr.training.data import load_folder
    from captcha_ocr.training.settings import TrainSettings

    settings = TrainSettings.load(run)
    model = keras.models.load_model(run / "checkpoints" / "best.keras")
    tested, _ = load_folder(test, settings.height, settings.width, case_fold=settings.case_fold)
    return settings, model, tested.texts, model.predict(tested.images, batch_size=256, verbose=0)


def score(run: Path, test: Path) -> dict:
    """A finished run's best model on the test folder, greedy and with the seen lengths."""
    from captcha_ocr.runtime import decode_logits

    settings, model, texts, logits = test_logits(run, test)
    greedy = [decode_logits(frame, settings.charset).text for frame in logits]
    seen = [decode_logits(frame, settings.charset, settings.lengths).text for frame in logits]
    state = json.loads((run / "state.json").read_text())
    return {
        "test_greedy": sum(p == t for p, t in zip(greedy, texts)) / len(texts),
        "test_seen_lengths": sum(p == t for p, t in zip(seen, texts)) / len(texts),
        "test_images": len(texts), "val_accuracy": state["best_accuracy"], "epochs": state["epoch"],
        "best_epoch": state["best_epoch"], "train_s": round(state["elapsed_s"], 1),
        "input": f"{settings.height}x{settings.width}", "parameters": model.count_params(),
    }


def run_variant(data_name: str, seed: int, variant: str, out: Path, labels: int = 0) -> dict:
    """One variant's run on `labels` labelled images of the curve's pool (0: all of it)."""
    name, overrides = parse_variant(variant)
    work = out / f"{data_name}-{seed}-{name.replace(' ', '_')}"
    work.mkdir(parents=True)
    folders = split_folders(SHARED / data_name, labels, seed, Path(tempfile.mkdtemp(dir=work)))
    started = time.perf_counter()
    done = subprocess.run([sys.executable, __file__, "--worker", str(folders["labelled"]), str(folders["test"]),
                           str(work / "run"), json.dumps({"seed": seed, **overrides})],
                          capture_output=True, text=True)
    (work / "log.txt").write_text(done.stdout + done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"{name}: {(done.stderr or done.stdout)[-1500:]}")
    return {"set": data_name, "seed": seed, "name": name, "settings": overrides, "labels": labels or "all",
            "wall_s": round(time.perf_counter() - started, 1), **json.loads(done.stdout.strip().splitlines()[-1])}


def report(records: list[dict]) -> str:
    lines = ["| set | labels | seed | variant | input | parameters | epochs (best) | training time | held-out (val) | "
             "test, greedy | test, seen lengths |", "|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(records, key=lambda r: (r["set"], r["seed"], not r["name"].startswith("defaults"))):
        lines.append(f"| {r['set']} | {r.get('labels', 'all')} | {r['seed']} | {r['name']} | {r['input']} | "
                     f"{r['parameters']:,} | "
                     f"{r['epochs']} ({r['best_epoch']}) | {r['train_s']:.0f} s | {r['val_accuracy'] * 100:.2f}% | "
                     f"{r['test_greedy'] * 100:.2f}% | {r['test_seen_lengths'] * 100:.2f}% |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="*", help="NAME or NAME:setting=value,...")
    parser.add_argument("--set", default="tjsp_captchas")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--labels", type=int, default=0, help="labelled images from the pool (default 0: all)")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--score", nargs=3, metavar=("NAME", "RUN_DIR", "TEST_FOLDER"),
                        help="record a finished run (e.g. the learning curve's run on all labels) as variant NAME")
    parser.add_argument("--worker", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        labelled, test, out, overrides = args.worker
        worker(Path(labelled), Path(test), Path(out), json.loads(overrides))
        return
    if args.report:
        print(report(json.loads(args.results.read_text())))
        return
    if args.score:
        name, run, test = args.score
        record = {"set": args.set, "seed": args.seed, "name": name, "settings": {}, "wall_s": None,
                  **score(Path(run), Path(test))}
        save_record(args.results, record, key=("set", "seed", "name"))
        print(json.dumps(record))
        return
    out = args.out or Path(tempfile.mkdtemp(prefix="ablations-"))
    for variant in args.variants:
        record = run_variant(args.set, args.seed, variant, out, args.labels)
        print(json.dumps(record), flush=True)
        save_record(args.results, record, key=("set", "seed", "name"))


if __name__ == "__main__":
    main()
