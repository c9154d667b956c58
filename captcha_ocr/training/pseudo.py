"""Self-training on unlabelled captchas: the model's confident readings become labels.

A user can download thousands of captchas in minutes but labels them by hand. After training on
the labelled ones, the model reads the unlabelled images; those it reads with a confidence at
which it is right on the held-out images (at least PRECISION of them) join the training set.
The held-out images stay labelled by hand, so they judge every round, and a round's model
replaces the best one only when it scores at least as well there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np

from captcha_ocr.runtime import read_views
from captcha_ocr.training.data import Dataset

PRECISION = 0.98  # share of held-out readings at or above the threshold that must be right
THRESHOLDS = (0.5, 0.7, 0.8, 0.9, 0.95, 0.99)  # the lowest one that keeps PRECISION is used
MIN_SUPPORT = 5  # held-out readings at or above a threshold it takes to judge it


def readings(logits_of: Callable[[list[np.ndarray]], Iterable[np.ndarray]], images: Sequence[np.ndarray],
             charset: str, lengths: Sequence[int], views: Sequence[float] = (1.0,)) -> list[tuple[str, float]]:
    """(text, sequence confidence) per image, as serving reads them (runtime.read_views: the run's
    views, the lengths seen in the labels)."""
    return [(r.text, r.confidence) for r in read_views(logits_of, images, charset, tuple(lengths), views)]


def choose_threshold(held_out: Sequence[tuple[str, float]], truths: Sequence[str]) -> float | None:
    """The lowest confidence at which the held-out readings are right at least PRECISION of the time
    (on MIN_SUPPORT readings or more); None when no threshold is, and no reading is to be trusted."""
    for threshold in THRESHOLDS:
        right = [text == truth for (text, confidence), truth in zip(held_out, truths) if confidence >= threshold]
        if len(right) >= MIN_SUPPORT and np.mean(right) >= PRECISION:
            return threshold
    return None


def pseudo_labelled(unlabelled: Dataset, read: Sequence[tuple[str, float]], threshold: float,
                    lengths: Sequence[int]) -> Dataset:
    """The unlabelled images read at `threshold` or above, with a length seen in the labels."""
    chosen = [i for i, (text, confidence) in enumerate(read) if confidence >= threshold and len(text) in lengths]
    subset = unlabelled.subset(np.array(chosen, dtype=np.int64))
    subset.texts = [read[i][0] for i in chosen]
    return subset
