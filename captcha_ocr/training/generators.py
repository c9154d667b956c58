"""Labelled captchas of the kinds users bring after plain text, from a third-party generator, for
tests, examples and training: never served (nothing the function imports reaches this module).

easy-captcha-python draws them (Apache-2.0, on the package index): arithmetic questions ("3+2x5=?"),
animated GIFs whose characters fade in and out frame by frame (a flashing captcha: no frame shows
them all; digits and capitals, since its default font draws capitals for both cases), Chinese
characters, and Chinese GIFs. It draws every random choice from `secrets`; as
with the `captcha` library (synthetic.py), its module is handed a seeded stand-in, so a (kind,
seed) pair always writes the same folder.

A folder holds the images (00000.png, ...) and labels.tsv, the format `train --data` and `eval
--data` read (labelled.py). For arithmetic the label is the question as drawn; answers.py turns a
reading of it into the answer, and `expected_answers` keeps the generator's own result beside it so
tests can check the parser against an independent source.

The `randomised` kind is the general model's generator (randomised.py), many styles at once.

Chinese needs a CJK font: fonts-wqy-microhei (Debian; the training setup installs it), or
$CAPTCHA_OCR_CJK_FONT naming any .ttf/.ttc file with those glyphs.
"""

from __future__ import annotations

import io
import os
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from captcha_ocr.errors import UserError
from captcha_ocr.labelled import LABEL_FILES
from captcha_ocr.synthetic import SeededSecrets, derive_seed

KINDS = ("arithmetic", "gif", "chinese", "chinese-gif", "randomised")
CJK_FONT_ENV = "CAPTCHA_OCR_CJK_FONT"
CJK_FONTS = ("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc", "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
             "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
LABELS_FILE = "labels.tsv"
assert LABELS_FILE in LABEL_FILES


class GeneratorUnavailable(UserError):
    """The generator package or the font a kind needs is not installed."""


@dataclass(frozen=True)
class Generated:
    label: str  # what is drawn: the text, or the arithmetic question as shown
    data: bytes  # the encoded image
    suffix: str  # ".png", ".gif" (".jpg", ".webp" for randomised)
    expected_answer: int | None = None  # arithmetic: the generator's own result


def _easy_captcha():
    try:
        import easy_captcha
        import easy_captcha.base.randoms as randoms
    except ImportError as exc:
        raise GeneratorUnavailable("these captchas are drawn by easy-captcha-python: "
                                   "pip install 'captcha-ocr-scf[train-tools]'") from exc
    return easy_captcha, randoms


def cjk_font() -> str:
    """The CJK font Chinese captchas are drawn with (easy_captcha would silently fall back to a font
    with no Chinese glyphs, drawing boxes)."""
    named = os.environ.get(CJK_FONT_ENV)
    for path in ([named] if named else CJK_FONTS):
        if Path(path).is_file():
            return path
    raise GeneratorUnavailable(f"no CJK font found (tried {', '.join([named] if named else CJK_FONTS)}): "
                               f"apt-get install fonts-wqy-microhei, or set ${CJK_FONT_ENV}")


@contextmanager
def _seeded(randoms, seed: int) -> Iterator[None]:
    original = randoms.secrets
    randoms.secrets = SeededSecrets(seed)
    try:
        yield
    finally:
        randoms.secrets = original


def _suffix(data: bytes) -> str:
    """The file suffix of an encoded image, by the format Pillow reads in it (.jpg for JPEG)."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as image:
        return "." + {"JPEG": "jpg"}.get(image.format, image.format.lower())


def generate_one(kind: str, seed: int) -> Generated:
    """One captcha of `kind` (KINDS), fully determined by `seed`."""
    if kind not in KINDS:
        raise UserError(f"no captcha kind {kind!r}; the kinds are {', '.join(KINDS)}")
    if kind == "randomised":  # the general model's (randomised.py): PNG, JPEG, GIF or WebP
        from captcha_ocr.training.randomised import randomised_captcha

        label, data = randomised_captcha(seed)
        return Generated(label, data, _suffix(data))
    easy_captcha, randoms = _easy_captcha()
    rng = random.Random(seed)
    with _seeded(randoms, seed):
        if kind == "arithmetic":
            drawer = easy_captcha.ArithmeticCaptcha(width=130, height=48, length=rng.choice((2, 3)))
            label = drawer.get_arithmetic_string()
            expected = int(drawer.text())
        elif kind == "gif":
            drawer = easy_captcha.GifCaptcha(width=130, height=48, length=rng.choice((4, 5)))
            drawer.char_type = easy_captcha.TYPE_NUM_AND_UPPER  # its default font draws one case only
            label, expected = drawer.text(), None
        else:
            size = 28
            drawer = (easy_captcha.ChineseCaptcha if kind == "chinese" else easy_captcha.ChineseGifCaptcha)(
                width=130, height=48, length=4)
            drawer.set_font(cjk_font(), size)
            label, expected = drawer.text(), None
        out = io.BytesIO()
        if not drawer.out(out):
            raise GeneratorUnavailable(f"easy-captcha-python could not draw a {kind} captcha")
    suffix = ".gif" if kind.endswith("gif") else ".png"
    return Generated(label, out.getvalue(), suffix, expected)


def generate_folder(kind: str, count: int, seed: int, out: Path) -> list[Generated]:
    """`count` captchas of `kind` into `out`, with labels.tsv; the same (kind, seed) writes the same folder."""
    out.mkdir(parents=True, exist_ok=True)
    samples, lines = [], ["# file\tlabel (written by captcha-ocr sample)"]
    for index in range(count):
        sample = generate_one(kind, derive_seed("generators", kind, seed, index))
        name = f"{index:05d}{sample.suffix}"
        (out / name).write_bytes(sample.data)
        lines.append(f"{name}\t{sample.label}")
        samples.append(sample)
    (out / LABELS_FILE).write_text("\n".join(lines) + "\n", encoding="utf-8")
    return samples
