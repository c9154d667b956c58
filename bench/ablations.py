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
import sys
import tempfile
from dataclasses import fields
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
from learning_curve import SHARED, save_record, score, split_folders, train_and_score  # noqa: E402

RESULTS = BENCH / "results" / "ablations.json"
RECORD_KEY = ("set", "labels", "seed", "name")  # one record per run of a variant; a re-run replaces it


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


def run_variant(data_name: str, seed: int, variant: str, out: Path, labels: int = 0) -> dict:
    """One variant's run on `labels` labelled images of the curve's pool (0: all of it)."""
    name, overrides = parse_variant(variant)
    work = out / f"{data_name}-{seed}-{name.replace(' ', '_')}"
    work.mkdir(parents=True)
    folders = split_folders(SHARED / data_name, labels, seed, Path(tempfile.mkdtemp(dir=work)))
    result, wall = train_and_score(folders["labelled"], folders["test"], work, {"seed": seed, **overrides})
    return {"set": data_name, "seed": seed, "name": name, "settings": overrides, "labels": labels or "all",
            "wall_s": wall, **result}


def report(records: list[dict]) -> str:
    """The table, by set, each set's runs in the order they were made."""
    lines = ["| set | labels | seed | variant | input | parameters | epochs (best) | restarts | training time | "
             "held-out (val) | test, greedy | test, seen lengths |",
             "|---|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(records, key=lambda r: r["set"]):
        lines.append(f"| {r['set']} | {r.get('labels', 'all')} | {r['seed']} | {r['name']} | {r['input']} | "
                     f"{r['parameters']:,} | {r['epochs']} ({r['best_epoch']}) | {r.get('restarts', '–')} | "
                     f"{r['train_s']:.0f} s | "
                     f"{r['val_accuracy'] * 100:.2f}% | {r['test_greedy'] * 100:.2f}% | "
                     f"{r['test_seen_lengths'] * 100:.2f}% |")
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
    args = parser.parse_args()
    if args.report:
        print(report(json.loads(args.results.read_text())))
        return
    if args.score:
        name, run, test = args.score
        record = {"set": args.set, "seed": args.seed, "name": name, "settings": {}, "labels": args.labels or "all",
                  "wall_s": None, **score(Path(run), Path(test))}
        save_record(args.results, record, key=RECORD_KEY)
        print(json.dumps(record))
        return
    out = args.out or Path(tempfile.mkdtemp(prefix="ablations-"))
    for variant in args.variants:
        try:
            record = run_variant(args.set, args.seed, variant, out, args.labels)
        except RuntimeError as failed:
            raise SystemExit(str(failed)) from None
        print(json.dumps(record), flush=True)
        save_record(args.results, record, key=RECORD_KEY)


if __name__ == "__main__":
    main()
