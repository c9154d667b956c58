#!/usr/bin/env python3
"""Make a finished synthetic run the shipped model:

    python scripts/ship_model.py runs/shipped

copies export/config.json, the file it serves and export/model.tflite (float, for comparison) to
captcha_ocr/models/default (the package data every install reads), and saves the best
checkpoint's backbone (float16) as the starting point of `train --data` (captcha_ocr/training/synthetic_backbone.npz).
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    run = Path(sys.argv[1])

    import keras

    from captcha_ocr.config import load_config
    from captcha_ocr.registry import SHIPPED_MODEL_DIR

    for name in {load_config(run / "export").model_file, "model.tflite", "config.json"}:
        shutil.copy2(run / "export" / name, SHIPPED_MODEL_DIR / name)

    import captcha_ocr.training.train  # noqa: F401  (registers the CTC loss the checkpoint names)
    from captcha_ocr.training.pretrained import save_backbone

    path = save_backbone(keras.models.load_model(run / "checkpoints" / "best.keras"))
    print(f"shipped {run}/export to {SHIPPED_MODEL_DIR}; backbone {path} ({path.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
