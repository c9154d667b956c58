"""index.py as SCF loads it: a fresh process, the model loaded once, no TensorFlow anywhere."""

import json
import os
import subprocess
import sys

from conftest import MODEL_DIR, REPO

PROGRAM = r"""
import base64, json, sys
from captcha_ocr.evaluation import synthetic_samples
from captcha_ocr.events import query_event
import index
first = index._app
samples = synthetic_samples(5, 4242, index._app.models.default.config.charset, index._app.models.default.config.lengths)
events = [query_event({"base64Image": base64.b64encode(s.data).decode()}) for s in samples]
replies = [index.main_handler(event, {"request_id": "x"}) for event in events]
print(json.dumps({"texts": [json.loads(r["body"])["text"] for r in replies], "truth": [s.text for s in samples],
                  "same_app": index._app is first,
                  "tensorflow_loaded": any(m == "tensorflow" or m.startswith("tensorflow.") for m in sys.modules)}))
"""


def run_index(env_model_dir):
    env = {**os.environ, "CAPTCHA_OCR_MODEL_DIR": str(env_model_dir), "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", PROGRAM], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=120)


def test_main_handler_serves_without_tensorflow():
    result = run_index(MODEL_DIR)
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["tensorflow_loaded"] is False and outcome["same_app"] is True
    assert sum(t == s for t, s in zip(outcome["texts"], outcome["truth"])) >= 4
    cold_start = [json.loads(line) for line in result.stdout.splitlines() if '"cold_start"' in line]
    assert len(cold_start) == 1 and cold_start[0]["runtime"] in ("tflite-runtime", "ai-edge-litert")


def test_cold_start_failure_is_logged_clearly(tmp_path):
    tampered = (MODEL_DIR / "config.json").read_text().replace('"sha256": "', '"sha256": "0')
    (tmp_path / "config.json").write_text(tampered)
    (tmp_path / "model_quantized.tflite").write_bytes((MODEL_DIR / "model_quantized.tflite").read_bytes())
    result = run_index(tmp_path)
    assert result.returncode != 0
    failure = [json.loads(line) for line in result.stdout.splitlines() if "startup_failed" in line]
    assert failure and "sha256" in failure[0]["error"]
