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


def test_read_views_keeps_each_images_most_probable_view_in_order():
    """The one rule training and serving share: a batch is read at every view and each image keeps
    its own most probable reading (the first of equals), in the batch's order."""
    import numpy as np

    from captcha_ocr.decoding import decode_logits
    from captcha_ocr.runtime import read_views

    charset = "ab"

    def logits(text: str, sure: float) -> np.ndarray:  # frames: each character then a blank
        frames = np.zeros((2 * len(text), 3), dtype=np.float32)
        for frame, cls in enumerate(c for char in text for c in (charset.index(char), 2)):
            frames[frame, cls] = sure
        return frames

    # per view (the share in the first pixel of the narrowed input), per image: what the model reads
    answers = {1.0: [("ab", 9.0), ("aa", 2.0), ("ba", 5.0)], 0.9: [("bb", 3.0), ("bb", 8.0), ("ab", 5.0)]}
    seen_shares = []

    def logits_of(tensors: list) -> list:
        share = 1.0 if all(t.shape[1] == 10 and t[0, 9, 0] == 1.0 for t in tensors) else 0.9
        seen_shares.append(share)
        return [logits(*answers[share][i]) for i in range(len(tensors))]

    tensors = np.zeros((3, 4, 10, 1), dtype=np.float32)
    tensors[:, :, 9] = 1.0  # a bright last column: narrowed inputs pad it with edge columns, then change
    tensors[:, :, 8] = 0.5
    readings = read_views(logits_of, tensors, charset, (2,), (1.0, 0.9))
    assert seen_shares == [1.0, 0.9]  # one call per view, the whole batch at once
    assert [r.text for r in readings] == ["ab", "bb", "ba"]  # ties keep the first view
    assert readings[1] == decode_logits(logits("bb", 8.0), charset, (2,))
    assert [r.text for r in read_views(logits_of, tensors, charset, (2,))] == ["ab", "aa", "ba"]  # one view
