"""Runs inside one runtime's venv: latency of our model (inference alone, full handler) and accuracy.

    python ours.py IMAGES_DIR MODEL_DIR TIMED_CALLS  -> one JSON line
"""

import base64
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from captcha_ocr.app import create_app  # noqa: E402
from captcha_ocr.evaluation import latency_summary  # noqa: E402
from captcha_ocr.events import query_event  # noqa: E402
from captcha_ocr.imaging import preprocess  # noqa: E402


def timed(function, items, repeat):
    times = []
    for i in range(repeat):
        started = time.perf_counter()
        function(items[i % len(items)])
        times.append((time.perf_counter() - started) * 1000)
    return latency_summary(times)


def main():
    images_dir, model_dir, calls = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    app = create_app(model_dir)
    files = sorted(images_dir.glob("*.png"))
    truths = [f.stem.split("_", 1)[1] for f in files]
    encoded = [base64.b64encode(f.read_bytes()).decode() for f in files]
    events = [query_event({"base64Image": text}) for text in encoded]
    model = app.models.default
    config, recognizer = model.config, model.recognizer
    tensors = [preprocess(f.read_bytes(), config.height, config.width).tensor for f in files[:200]]
    correct = sum(json.loads(app.handle(e, None)["body"]).get("text") == t for e, t in zip(events, truths))
    for tensor in tensors[:100]:  # warm-up
        recognizer.logits(tensor)
    images = [f.read_bytes() for f in files[:200]]
    result = {
        "runtime": recognizer.runtime.package, "runtime_version": recognizer.runtime.version,
        "accuracy": correct / len(files), "images": len(files),
        "inference": timed(recognizer.logits, tensors, calls),
        "reader": timed(app.reader.read, images, calls),
        "handler": timed(lambda e: app.handle(e, None), events[:200], calls),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
