import importlib.util
import itertools
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import MODEL_DIR, REPO, b64, build_bundle, get_event

from captcha_ocr.config import ConfigError
from captcha_ocr.runtime import (
    RUNTIME_ENV,
    best_path_of_length,
    decode_logits,
    greedy_texts,
    import_interpreter,
    log_softmax,
    sequence_probability,
)

CHARSET = "abc"
BLANK = 3


def logits_for(path: list[int], confidence: float = 8.0) -> np.ndarray:
    logits = np.zeros((len(path), len(CHARSET) + 1))
    logits[np.arange(len(path)), path] = confidence
    return logits


@pytest.mark.parametrize(
    "path, text",
    [
        ([BLANK, 0, 0, BLANK, 1, BLANK], "ab"),
        ([0, BLANK, 0, 0, 2], "aac"),  # a blank separates a real repeat
        ([BLANK] * 5, ""),
        ([2, 2, 2, 2], "c"),
    ],
)
def test_greedy_ctc_decoding(path, text):
    logits = logits_for(path)
    assert decode_logits(logits, CHARSET).text == text
    assert greedy_texts(logits[np.newaxis], CHARSET) == [text]


def brute_force_probability(log_probs: np.ndarray, labels: list[int]) -> float:
    total = 0.0
    for path in itertools.product(range(log_probs.shape[1]), repeat=log_probs.shape[0]):
        collapsed = [k for i, k in enumerate(path) if k != BLANK and (i == 0 or k != path[i - 1])]
        if collapsed == labels:
            total += float(np.exp(sum(log_probs[t, k] for t, k in enumerate(path))))
    return total


@pytest.mark.parametrize("labels", [[0], [0, 1], [1, 1], [], [2, 0, 2]])
def test_sequence_probability_sums_every_alignment(labels):
    log_probs = log_softmax(np.random.default_rng(len(labels)).normal(size=(5, 4)))
    assert sequence_probability(log_probs, labels, BLANK) == pytest.approx(brute_force_probability(log_probs, labels))


def collapsed(path) -> list[int]:
    return [k for i, k in enumerate(path) if k != BLANK and (i == 0 or k != path[i - 1])]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("lengths", [(1,), (2,), (3,), (2, 3), (5,)])
def test_the_best_path_of_an_allowed_length_is_the_best_of_all_such_paths(seed, lengths):
    log_probs = log_softmax(np.random.default_rng(seed).normal(scale=3.0, size=(5, 4)))
    best = max((path for path in itertools.product(range(4), repeat=5) if len(collapsed(path)) in lengths),
               key=lambda path: sum(log_probs[t, k] for t, k in enumerate(path)), default=None)
    found = best_path_of_length(log_probs, BLANK, lengths)
    if best is None:
        assert found is None
        return
    assert len(collapsed(found.tolist())) in lengths
    score = lambda path: sum(log_probs[t, k] for t, k in enumerate(path))  # noqa: E731
    assert score(found.tolist()) == pytest.approx(score(best))


def test_a_reading_of_an_unseen_length_gives_way_to_the_best_of_a_seen_length():
    # frame 3 is nearly as much 'a' as blank, and every label had 4 characters: "abc" is wrong
    logits = logits_for([0, BLANK, 1, BLANK, 2, BLANK], confidence=8.0)
    logits[3, 0] = 6.0
    assert decode_logits(logits, CHARSET).text == "abc"
    forced = decode_logits(logits, CHARSET, lengths=(4,))
    assert forced.text == "abac" and forced.confidence < 0.5
    assert decode_logits(logits, CHARSET, lengths=(3, 4)).text == "abc"  # an allowed length is left alone


def test_confidences_are_probabilities():
    result = decode_logits(logits_for([0, BLANK, 1, 2], confidence=3.0), CHARSET)
    assert result.text == "abc"
    assert 0 < result.confidence < 1
    assert all(0 < c.confidence < 1 for c in result.chars)
    assert result.confidence <= min(c.confidence for c in result.chars) + 1e-6
    sharp = decode_logits(logits_for([0, BLANK, 1, 2], confidence=20.0), CHARSET)
    assert sharp.confidence > 0.999


def test_interpreter_is_the_pinned_runtime(monkeypatch):
    monkeypatch.delenv(RUNTIME_ENV, raising=False)
    _, info = import_interpreter()
    assert f"{info.package}=={info.version}" in build_bundle.runtime_pins()


def test_an_unknown_runtime_name_is_a_config_error():
    with pytest.raises(ConfigError, match="CAPTCHA_OCR_RUNTIME"):
        import_interpreter("tflite")


@pytest.mark.parametrize("package", ["ai-edge-litert", "tflite-runtime"])
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
