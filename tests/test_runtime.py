import itertools

import numpy as np
import pytest

from captcha_ocr.runtime import (
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


def test_confidences_are_probabilities():
    result = decode_logits(logits_for([0, BLANK, 1, 2], confidence=3.0), CHARSET)
    assert result.text == "abc"
    assert 0 < result.confidence < 1
    assert all(0 < c.confidence < 1 for c in result.chars)
    assert result.confidence <= min(c.confidence for c in result.chars) + 1e-6
    sharp = decode_logits(logits_for([0, BLANK, 1, 2], confidence=20.0), CHARSET)
    assert sharp.confidence > 0.999


def test_interpreter_comes_from_the_lightest_runtime():
    _, info = import_interpreter()
    assert info.package in ("tflite-runtime", "ai-edge-litert")
    assert info.version != "unknown"
