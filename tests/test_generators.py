"""Captchas of the kinds after plain text (training/generators.py): reproducible, labelled as drawn,
readable as a folder, and arithmetic answered by our parser as the generator itself computed it."""

from __future__ import annotations

import io
import subprocess
import sys

import pytest
from conftest import REPO
from PIL import Image

from captcha_ocr.answers import answer
from captcha_ocr.labelled import list_labelled_files
from captcha_ocr.training import generators
from captcha_ocr.training.generators import KINDS, GeneratorUnavailable, generate_folder, generate_one


def has_cjk_font() -> bool:
    try:
        generators.cjk_font()
    except GeneratorUnavailable:
        return False
    return True


needs_cjk_font = pytest.mark.skipif(not has_cjk_font(), reason="no CJK font: apt-get install fonts-wqy-microhei")


@pytest.mark.parametrize("kind", [pytest.param(k, marks=needs_cjk_font) if "chinese" in k else k for k in KINDS])
def test_a_seed_always_draws_the_same_captcha_and_another_seed_another(kind):
    first, again, other = generate_one(kind, 11), generate_one(kind, 11), generate_one(kind, 12)
    assert first == again
    assert (first.label, first.data) != (other.label, other.data)
    formats = {".png": "PNG", ".gif": "GIF", ".jpg": "JPEG", ".webp": "WEBP"}
    assert Image.open(io.BytesIO(first.data)).format == formats[first.suffix]
    if kind != "randomised":
        assert first.suffix == (".gif" if kind.endswith("gif") else ".png")


def test_our_parser_answers_every_question_as_the_generator_computed_it():
    samples = [generate_one("arithmetic", seed) for seed in range(300)]
    assert all(sample.label.endswith("=?") for sample in samples)
    assert [answer(sample.label).value for sample in samples] == [sample.expected_answer for sample in samples]
    assert any(sample.expected_answer < 0 for sample in samples)  # subtraction below zero is drawn too


def test_a_gif_has_a_frame_per_character_each_showing_them_at_another_strength():
    sample = generate_one("gif", 3)
    image = Image.open(io.BytesIO(sample.data))
    assert image.n_frames == len(sample.label) >= 4
    frames = []
    for index in range(image.n_frames):
        image.seek(index)
        frames.append(image.convert("L").tobytes())
    assert len(set(frames)) == image.n_frames


@needs_cjk_font
def test_chinese_labels_are_chinese_characters():
    sample = generate_one("chinese", 5)
    assert len(sample.label) == 4 and all("\u4e00" <= char <= "\u9fff" for char in sample.label)


def test_a_missing_cjk_font_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv(generators.CJK_FONT_ENV, str(tmp_path / "none.ttc"))
    with pytest.raises(GeneratorUnavailable, match="fonts-wqy-microhei"):
        generate_one("chinese", 1)


def test_a_generated_folder_is_read_as_labelled_with_labels_tsv(tmp_path):
    written = generate_folder("arithmetic", 12, 7, tmp_path)
    items, report = list_labelled_files(tmp_path)
    assert [label for _, label in items] == [sample.label for sample in written]
    assert len(items) == 12 and not report.unlabelled


def test_the_sample_command_writes_a_kind_and_says_how_to_repeat_it(tmp_path):
    done = subprocess.run([sys.executable, "-m", "captcha_ocr.cli", "sample", "--kind", "gif", "--count", "3",
                           "--seed", "9", "--out", str(tmp_path)], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "--seed 9" in done.stdout
    assert sorted(path.name for path in tmp_path.iterdir()) == ["00000.gif", "00001.gif", "00002.gif", "labels.tsv"]
