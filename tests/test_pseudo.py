"""Self-training's choices, without training: which confidence to trust and which readings to keep."""

from __future__ import annotations

import numpy as np

from captcha_ocr.training import pseudo
from captcha_ocr.training.data import Dataset


def test_the_threshold_is_the_lowest_where_held_out_readings_are_right_often_enough():
    truths = ["abcd"] * 20
    # right above 0.8; at 0.75 half of them are wrong
    held_out = [("abcd", 0.95)] * 10 + [("abce", 0.75)] * 5 + [("abcd", 0.75)] * 5
    assert pseudo.choose_threshold(held_out, truths) == 0.8


def test_no_threshold_when_the_model_is_not_yet_right_or_too_few_readings_judge_it():
    assert pseudo.choose_threshold([("xxxx", 0.999)] * 20, ["abcd"] * 20) is None
    assert pseudo.choose_threshold([("abcd", 0.999)] * (pseudo.MIN_SUPPORT - 1),
                                   ["abcd"] * (pseudo.MIN_SUPPORT - 1)) is None


def test_pseudo_labels_keep_confident_readings_of_a_known_length():
    images = np.arange(4, dtype=np.float32).reshape(4, 1, 1, 1)
    unlabelled = Dataset(images, [""] * 4)
    read = [("abcd", 0.99), ("abc", 0.99), ("abcd", 0.5), ("dcba", 0.95)]
    chosen = pseudo.pseudo_labelled(unlabelled, read, 0.9, lengths=(4,))
    assert chosen.texts == ["abcd", "dcba"]
    assert chosen.images.ravel().tolist() == [0.0, 3.0]
    assert len(pseudo.pseudo_labelled(unlabelled, read, 0.999, lengths=(4,))) == 0


def test_readings_carry_the_serving_confidence():
    charset = "ab"
    logits = np.full((1, 5, 3), -10.0, dtype=np.float32)
    for frame, cls in enumerate([0, 2, 1, 2, 2]):  # a, blank, b, blank, blank
        logits[0, frame, cls] = 10.0
    images = np.zeros((1, 4, 10, 1), dtype=np.float32)
    model = lambda tensors: logits[:len(tensors)]  # noqa: E731  (every view reads the same)
    [(text, confidence)] = pseudo.readings(model, images, charset, lengths=(2,))
    assert text == "ab" and confidence > 0.99
    [(forced, _)] = pseudo.readings(model, images, charset, lengths=(3,))  # as serving reads: a seen length
    assert len(forced) == 3
    [(viewed, _)] = pseudo.readings(model, images, charset, lengths=(2,), views=(1.0, 0.9))
    assert viewed == "ab"
