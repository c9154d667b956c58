"""decoding: the one CTC decoder of training and serving (greedy, seen lengths, sequence probability)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from captcha_ocr.config import blank_index
from captcha_ocr.decoding import (
    best_path_of_length,
    decode_logits,
    log_softmax,
    read_texts,
    sequence_probability,
)

CHARSET = "abc"
BLANK = blank_index(CHARSET)


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
    assert read_texts(logits[np.newaxis], CHARSET) == [text]


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


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("lengths", [(), (2,), (3,), (2, 4)])
def test_a_batch_reads_exactly_as_serving_reads_each_image(seed, lengths):
    """What training scores its checkpoints with is what the served model replies."""
    rng = np.random.default_rng(seed)
    batch = rng.normal(size=(5, 12, BLANK + 1)) * 3
    assert read_texts(batch, CHARSET, lengths) == [decode_logits(logits, CHARSET, lengths).text for logits in batch]


def test_the_blank_is_the_class_after_the_charset():
    assert blank_index("abc") == 3
