"""The general model's generator (training/randomised.py): reproducible by seed, labels within the
general charset and lengths, every image readable by the one preprocessing, many styles at once."""

from __future__ import annotations

import io
import random
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from captcha_ocr.imaging import preprocess
from captcha_ocr.training import randomised
from captcha_ocr.training.randomised import SOURCE_WEIGHTS, font_bank, gallery, random_label, randomised_captcha
from captcha_ocr.training.settings import GENERAL_CHARSET, GENERAL_DEFAULTS

SAMPLES = 240


@pytest.fixture(scope="module")
def samples() -> list[tuple[str, bytes]]:
    return [randomised_captcha(seed) for seed in range(SAMPLES)]


def test_a_seed_always_draws_the_same_captcha_in_any_order(samples):
    assert [randomised_captcha(seed) for seed in (7, 3, 7)] == [samples[7], samples[3], samples[7]]
    assert len({data for _, data in samples}) == SAMPLES


def test_labels_keep_to_the_general_charset_and_lengths(samples):
    lengths = Counter(len(label) for label, _ in samples)
    assert set(lengths) <= set(GENERAL_DEFAULTS["lengths"]) and len(lengths) >= 4
    assert all(set(label) <= set(GENERAL_CHARSET) for label, _ in samples)
    chars = set("".join(label for label, _ in samples))
    assert chars & set("ABCXYZ") and chars & set("abcxyz") and chars & set("0123456789") and chars & set("+-*")


def test_arithmetic_questions_are_among_the_labels():
    rng = random.Random(5)
    questions = [label for label in (random_label(rng) for _ in range(2000)) if "+" in label or "*" in label]
    assert 50 < len(questions) < 400 and any(q.endswith("=?") for q in questions)


def test_every_image_goes_through_the_one_preprocessing(samples):
    formats = Counter()
    for _, data in samples:
        image = Image.open(io.BytesIO(data))
        formats[image.format] += 1
        tensor = preprocess(data, 48, 160).tensor
        assert tensor.shape == (48, 160, 1) and float(tensor.max()) > float(tensor.min())
    assert {"PNG", "JPEG"} <= set(formats) and len(formats) >= 3  # artefacts of several encoders


def test_sizes_and_aspect_ratios_vary(samples):
    sizes = [Image.open(io.BytesIO(data)).size for _, data in samples]
    ratios = [w / h for w, h in sizes]
    assert min(h for _, h in sizes) < 45 and max(h for _, h in sizes) > 70
    assert min(ratios) < 2 and max(ratios) > 5


def test_each_source_is_drawn_from(monkeypatch):
    drawn = Counter()
    for name, source in list(randomised.SOURCES.items()):
        monkeypatch.setitem(randomised.SOURCES, name, lambda rng, text, fonts, name=name, source=source:
                            (drawn.update([name]), source(rng, text, fonts))[1])
    for seed in range(150):
        randomised_captcha(seed)
    assert set(drawn) == set(SOURCE_WEIGHTS) - {"easy"}  # easy-captcha-python draws its own labels
    assert drawn["drawn"] > drawn["captcha"]


def test_the_font_bank_holds_only_faces_that_draw_text(tmp_path):
    bank = font_bank()
    assert bank and all(path.endswith((".ttf", ".otf")) for path in bank)
    assert not any("D050000L" in path or "StandardSymbols" in path for path in bank)  # dingbats, symbols
    (tmp_path / "broken.ttf").write_bytes(b"not a font")
    assert not randomised._draws_text(str(tmp_path / "broken.ttf")) and randomised._draws_text(bank[0])


def test_a_transparent_background_keeps_the_ink_opaque():
    image = Image.new("RGB", (60, 20), (250, 250, 250))
    image.paste((10, 10, 10), (20, 5, 40, 15))
    alpha = np.asarray(randomised._transparent(image).getchannel("A"))
    assert alpha[0, 0] == 0 and alpha[10, 30] == 255


def test_the_gallery_is_a_contact_sheet(tmp_path):
    path = gallery(tmp_path / "gallery.png", count=8, seed=1)
    assert Image.open(path).size == (1000, 164)
