import importlib.util
import json
import os
import subprocess
import sys

import pytest
from conftest import MODEL_DIR, REPO, SERVING_RUNTIMES, b64, build_bundle, get_event

from captcha_ocr.config import ConfigError
from captcha_ocr.runtime import RUNTIME_ENV, import_interpreter


def test_interpreter_is_the_pinned_runtime(monkeypatch):
    monkeypatch.delenv(RUNTIME_ENV, raising=False)
    _, info = import_interpreter()
    assert f"{info.package}=={info.version}" in build_bundle.runtime_pins()


def test_an_unknown_runtime_name_is_a_config_error():
    with pytest.raises(ConfigError, match="CAPTCHA_OCR_RUNTIME"):
        import_interpreter("tflite")


@pytest.mark.parametrize("package", SERVING_RUNTIMES)
def test_each_supported_runtime_reads_the_same_captchas(package, fresh_captchas):
    """tflite-runtime stays a tested alternative. A fresh process per runtime: tflite-runtime and
    TensorFlow cannot share one (see evaluation.py)."""
    if importlib.util.find_spec(package.replace("-", "_")) is None:
        pytest.skip(f"{package} is not installed")
    events = [get_event(b64(sample.data)) for sample in fresh_captchas[:10]]
    program = ("import json, sys; import index; events = json.load(sys.stdin); "
               "print(json.dumps([json.loads(index.main_handler(e, None)['body'])['text'] for e in events]))")
    result = subprocess.run([sys.executable, "-c", program], input=json.dumps(events), capture_output=True, text=True,
                            cwd=REPO, env={**os.environ, RUNTIME_ENV: package, "CAPTCHA_OCR_MODEL_DIR": str(MODEL_DIR)},
                            timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f'"runtime":"{package}"' in result.stdout  # the cold-start log line names the runtime used
    assert json.loads(result.stdout.splitlines()[-1]) == [sample.text for sample in fresh_captchas[:10]]


def test_a_model_with_views_keeps_the_most_probable_reading(fresh_captchas):
    import dataclasses

    import numpy as np

    from captcha_ocr.config import load_config
    from captcha_ocr.decoding import decode_logits
    from captcha_ocr.imaging import narrowed, preprocess
    from captcha_ocr.runtime import Recognizer

    config = load_config(MODEL_DIR)
    single = Recognizer(config, MODEL_DIR)
    viewed = Recognizer(dataclasses.replace(config, views=(1.0, 0.7, 0.5)), MODEL_DIR)
    for captcha in fresh_captchas[:20]:
        tensor = preprocess(captcha.data, config.height, config.width, gray=config.gray).tensor
        readings = [decode_logits(single.logits(narrowed(tensor, share)), config.charset, config.lengths)
                    for share in (1.0, 0.7, 0.5)]
        best = int(np.argmax([reading.confidence for reading in readings]))
        assert viewed.recognize(tensor) == readings[best]
        assert single.recognize(tensor) == readings[0]
    assert readings[0] != readings[2]  # the views are read apart: the half-width one reads otherwise
