#!/usr/bin/env python3
"""Make a finished run a shipped model:

    python scripts/ship_model.py runs/shipped                 # the default (one synthetic style)
    python scripts/ship_model.py runs/general --as general    # the general model (docs/general-model.md)

The default: copies export/config.json, the file it serves and export/model.tflite (float, for
comparison) to captcha_ocr/models/default (the package data every install reads). The general
model: config.json (renamed `general`, reading two views of each image: input.views) and its
served file to captcha_ocr/models/general. Either way the best checkpoint's backbone (float16)
is saved as a starting point of `train --data`
(captcha_ocr/training/synthetic_backbone.npz or general_backbone.npz: `--init`).
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
GENERAL_VIEWS = (1.0, 0.9)  # the general model's views (config.json input.views)
sys.path.insert(0, str(REPO))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a finished training run's folder")
    parser.add_argument("--as", dest="role", choices=("default", "general"), default="default")
    parser.add_argument("--serve", metavar="FILE", help="serve this file of the export instead of the one the export "
                        "chose (e.g. model_quantized.tflite, measured as reading as well and costing less memory)")
    args = parser.parse_args()
    run = args.run

    import keras

    from captcha_ocr.config import file_sha256, load_config
    from captcha_ocr.registry import GENERAL_MODEL, SHIPPED_MODEL_DIR, SHIPPED_MODELS_DIR, copy_model

    export = run / "export"
    if args.serve:  # the export's config, pointing at the file asked for
        config = load_config(export)
        staged = Path(tempfile.mkdtemp())
        shutil.copy2(export / args.serve, staged / args.serve)
        dataclasses.replace(config, model_file=args.serve, sha256=file_sha256(export / args.serve)).save(staged)
        export = staged
    if args.role == "general":
        target = SHIPPED_MODELS_DIR / GENERAL_MODEL
        shutil.rmtree(target, ignore_errors=True)
        copy_model(export, target, name=GENERAL_MODEL)
        # it reads each image twice, whole and narrowed, and keeps the more probable reading
        # (BENCHMARKS.md, "The general model": zero-shot, the second view reads more of both real sets)
        dataclasses.replace(load_config(target), views=GENERAL_VIEWS).save(target)
    else:
        target = SHIPPED_MODEL_DIR
        for name in {load_config(export).model_file, "config.json"}:
            shutil.copy2(export / name, target / name)
        shutil.copy2(run / "export" / "model.tflite", target / "model.tflite")

    import captcha_ocr.training.train  # noqa: F401  (registers the CTC loss the checkpoint names)
    from captcha_ocr.training.pretrained import save_backbone
    from captcha_ocr.training.settings import BACKBONES

    backbone = BACKBONES["general" if args.role == "general" else "synthetic"]
    path = save_backbone(keras.models.load_model(run / "checkpoints" / "best.keras"), backbone,
                         load_config(run / "export").charset)
    print(f"shipped {run}/export to {target}; backbone {path} ({path.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
