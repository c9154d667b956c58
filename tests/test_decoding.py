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


def test_the_blank_is_the_class_after_the_charset():
    assert blank_index("abc") == 3


MIXED = "0123456789abs+-*=?"  # letters and every operator: the general model's kind of charset
MIXED_BLANK = blank_index(MIXED)


def mixed_logits(text: str, runner_up: dict[int, str] | None = None) -> np.ndarray:
    """A frame per character with a blank after each; `runner_up` gives some frames a second choice."""
    logits = np.zeros((2 * len(text), MIXED_BLANK + 1))
    for i, char in enumerate(text):
        logits[2 * i, MIXED.index(char)] = 8.0
        logits[2 * i + 1, MIXED_BLANK] = 8.0
    for i, char in (runner_up or {}).items():
        logits[2 * i, MIXED.index(char)] = 6.0
    return logits


def test_an_operator_in_a_reading_that_asks_no_question_gives_way_to_the_best_other_class():
    logits = mixed_logits("ab=b", runner_up={2: "s"})
    result = decode_logits(logits, MIXED)
    assert result.text == "absb"
    assert result.chars[2].confidence < 0.5  # the model's own probability of the character, not renormalised


@pytest.mark.parametrize("question", ["12+7=?", "3*4=", "9-2"])
def test_a_question_keeps_its_operators(question):
    logits = mixed_logits(question, runner_up={i: "s" for i in range(len(question))})
    assert decode_logits(logits, MIXED).text == question


def test_a_charset_without_letters_or_without_every_operator_reads_its_operators_as_it_sees_them():
    for charset in ("0123456789+-*=?", "abs-"):  # an arithmetic model's; a text model whose labels hold '-'
        blank = blank_index(charset)
        logits = np.zeros((4, blank + 1))
        logits[[0, 2], [charset.index("-"), charset.index("-")]] = 8.0
        logits[[1, 3], blank] = 8.0
        logits[0, 0] = 6.0
        assert decode_logits(logits, charset).text == "--"
