"""CTC decoding, the one decoder of training, evaluation and serving: per-frame logits -> text,
its per-character confidences and P(text | image).

Greedy first (the best class per frame, repeats merged, blanks dropped); when the label lengths
seen in training are known and the greedy reading has another length, the most probable path of a
seen length instead. A charset of letters and the arithmetic operators both (the general model's)
reads either a question or text: a reading holding an operator that asks no question is read
again without the operators' classes. Plain numpy, so the bundle needs nothing more. The CTC blank
is config.blank_index.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from captcha_ocr.answers import OPERATORS, is_question
from captcha_ocr.config import blank_index


@dataclass(frozen=True)
class CharResult:
    char: str
    confidence: float


@dataclass(frozen=True)
class Recognition:
    text: str
    confidence: float
    chars: tuple[CharResult, ...]


def log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def collapse_frames(frames: np.ndarray, log_probs: np.ndarray, blank: int) -> list[tuple[int, float]]:
    """A class per frame -> the CTC reading: (class, its best frame probability) per character."""
    probabilities = np.exp(log_probs[np.arange(len(frames)), frames]).tolist()
    decoded: list[tuple[int, float]] = []
    previous = blank
    for label, probability in zip(frames.tolist(), probabilities):
        if label != blank and label != previous:
            decoded.append((label, probability))
        elif label != blank and decoded:
            decoded[-1] = (label, max(decoded[-1][1], probability))
        previous = label
    return decoded


def best_path_of_length(log_probs: np.ndarray, blank: int, lengths: tuple[int, ...]) -> np.ndarray | None:
    """The most probable frame path whose reading has one of `lengths` characters (Viterbi over
    (characters so far, this frame's class)); None when no such path fits in the frames."""
    frames, classes = log_probs.shape
    most = max(lengths)
    score = np.full((most + 1, classes), -np.inf)
    score[0, blank] = log_probs[0, blank]
    score[1, :] = np.where(np.arange(classes) == blank, -np.inf, log_probs[0])
    back = np.zeros((frames, most + 1, classes), dtype=np.int64)  # previous state, as k * classes + c
    chars = np.arange(classes) != blank
    for t in range(1, frames):
        new = np.full_like(score, -np.inf)
        # a blank keeps the count: from any class at the same count
        best_any = score.argmax(axis=1)
        new[:, blank] = score[np.arange(most + 1), best_any] + log_probs[t, blank]
        back[t, :, blank] = np.arange(most + 1) * classes + best_any
        # a character repeats the last one (same count) or starts a new one (one more, after any other class)
        order = np.argsort(score[:-1], axis=1)
        first, second = order[:, -1], order[:, -2]
        rows = np.arange(most)
        other = np.where(np.arange(classes)[None, :] == first[:, None], score[rows, second][:, None],
                         score[rows, first][:, None])  # best over every class but this one, count k - 1
        other_from = np.where(np.arange(classes)[None, :] == first[:, None], second[:, None], first[:, None])
        repeat = score[1:]
        take_new = other > repeat
        new[1:] = np.where(chars, np.maximum(repeat, other) + log_probs[t], new[1:])
        back[t, 1:] = np.where(chars, np.where(take_new, rows[:, None] * classes + other_from,
                                               (rows[:, None] + 1) * classes + np.arange(classes)[None, :]),
                               back[t, 1:])
        score = new
    allowed = [k for k in lengths if k <= most]
    end = max(((k, c) for k in allowed for c in range(classes)), key=lambda state: score[state])
    if not np.isfinite(score[end]):
        return None
    path = np.empty(frames, dtype=np.int64)
    k, c = end
    for t in range(frames - 1, -1, -1):
        path[t] = c
        k, c = divmod(int(back[t, k, c]), classes)
    return path


def sequence_probability(log_probs: np.ndarray, labels: list[int], blank: int) -> float:
    """P(labels | image) summed over every CTC alignment: the forward algorithm, as a product of
    per-frame transition matrices reduced pairwise (a handful of batched matrix products instead of
    a Python loop over frames: this runs on every request). Every entry is a probability, so nothing
    overflows; an underflow drops only paths below 1e-308, far under the 4 decimals a reply reports."""
    extended = np.full(2 * len(labels) + 1, blank)
    extended[1::2] = labels
    states = len(extended)
    # state i may stay, step to i + 1, or skip the blank between two different labels to i + 2
    moves = np.eye(states) + np.eye(states, k=1)
    skip = (extended[2:] != blank) & (extended[2:] != extended[:-2])
    moves[np.arange(states - 2)[skip], np.arange(2, states)[skip]] = 1.0
    emissions = np.exp(log_probs[:, extended])  # (frames, states)
    alpha = np.zeros(states)
    alpha[: min(2, states)] = emissions[0, :2]
    matrices = moves[None, :, :] * emissions[1:, None, :]  # frame t: alpha_t = alpha_{t-1} @ matrices[t - 1]
    while len(matrices) > 1:
        if len(matrices) % 2:
            alpha = alpha @ matrices[0]  # the first frame's step, so the rest pair up
            matrices = matrices[1:]
        matrices = matrices[0::2] @ matrices[1::2]
    if len(matrices):
        alpha = alpha @ matrices[0]
    return float(alpha[-1] + (alpha[-2] if states > 1 else 0.0))


def decode_logits(logits: np.ndarray, charset: str, lengths: tuple[int, ...] = ()) -> Recognition:
    """CTC decode of one image's (frames, classes) logits (the module's rules: greedy, then a seen
    length, then questions or text). The confidences are the model's own: each character's best
    frame probability and the reading's probability summed over every alignment."""
    log_probs = log_softmax(logits.astype(np.float64))
    blank = blank_index(charset)
    path = collapse_frames(reading_frames(logits, charset, lengths, log_probs), log_probs, blank)
    chars = tuple(CharResult(charset[label], round(prob, 4)) for label, prob in path)
    confidence = sequence_probability(log_probs, [label for label, _ in path], blank)
    return Recognition(text="".join(c.char for c in chars), confidence=round(confidence, 4), chars=chars)


def reading_frames(logits: np.ndarray, charset: str, lengths: tuple[int, ...] = (),
                   log_probs: np.ndarray | None = None) -> np.ndarray:
    """The class per frame whose CTC reading is the image's: greedy, else the best path of a seen
    length; for a charset of letters and operators, without the operators where they ask no question
    (the general model's generator puts operators in questions only, yet it read `=` where a text
    captcha has `s`: docs/general-model.md, "What it gets wrong"). `log_probs`: the logits'
    log_softmax where the caller has it already (decode_logits), else computed only if needed."""
    blank = blank_index(charset)
    frames = _seen_length_frames(logits, blank, lengths, log_probs)
    operators = _operator_classes(charset)
    if operators:
        labels = _labels(frames, blank)
        if not operators.isdisjoint(labels) and not is_question(_spell(labels, charset)):
            masked = logits.astype(np.float64)
            masked[:, sorted(operators)] = _NEVER
            frames = _seen_length_frames(masked, blank, lengths)
    return frames


_NEVER = -1e30  # a class's logit that no path takes


def _seen_length_frames(logits: np.ndarray, blank: int, lengths: tuple[int, ...],
                        log_probs: np.ndarray | None = None) -> np.ndarray:
    frames = logits.argmax(axis=-1)
    if lengths and len(_labels(frames, blank)) not in lengths:
        if log_probs is None:
            log_probs = log_softmax(logits.astype(np.float64))
        best = best_path_of_length(log_probs, blank, tuple(lengths))
        if best is not None:
            frames = best
    return frames


def _labels(frames: np.ndarray, blank: int) -> list[int]:
    """A class per frame -> the reading's classes: repeats merged, blanks dropped (a Python loop:
    faster than numpy on a few dozen frames, and this runs on every request)."""
    labels, previous = [], blank
    for label in frames.tolist():
        if label != blank and label != previous:
            labels.append(label)
        previous = label
    return labels


def _spell(labels: list[int], charset: str) -> str:
    return "".join(charset[i] for i in labels)


@lru_cache(maxsize=64)
def _operator_classes(charset: str) -> frozenset[int]:
    """The operators' classes of a charset holding letters and every operator; none for any other."""
    if not set(OPERATORS) <= set(charset) or not any(char.isalpha() for char in charset):
        return frozenset()
    return frozenset(charset.index(char) for char in OPERATORS)
