"""Domain-randomised captchas for the general model: many fonts, layouts, colours and noises, so a
model trained on them has seen something like a site's captcha before it sees the site's own.

Never in the bundle (nothing the function imports reaches it). Every image is fully determined by
its seed, in any process and any order. Sources, mixed by SOURCE_WEIGHTS:

- `drawn`: our renderer below, the most varied: a font bank from the system's font packages
  (`font_bank`, installed by the training setup; docs/general-model.md lists them and their
  licences), digits, both cases and arithmetic operators, 3-8 characters, random sizes and aspect
  ratios, solid, gradient, noisy or transparent backgrounds, one or many ink colours (pale ones
  too), filled, hollow, outlined, dotted and smeared glyphs, rotation, tight kerning and overlap, dots,
  lines (a web of many thin ones too), arcs and strike-through curves, small text in a tall
  canvas, a wave warp, blur and JPEG artefacts;
- `captcha`: the `captcha` library's ImageCaptcha with fonts from the bank (what the shipped default
  model was trained on alone);
- `wheezy`: wheezy.captcha's drawers (MIT): background, curve, noise, warped, rotated, squeezed glyphs;
- `easy`: easy-captcha-python's (Apache-2.0) arithmetic questions and flashing GIFs, with its own fonts.

multicolorcaptcha is left out: it is GPL-3.0, and the others cover its styles.
"""

from __future__ import annotations

import colorsys
import io
import math
import random
import string
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from captcha_ocr.answers import OPERATORS
from captcha_ocr.errors import UserError
from captcha_ocr.synthetic import derive_seed, seeded_captcha
from captcha_ocr.training.settings import GENERAL_CHARSET, GENERAL_DEFAULTS

GENERAL_LENGTHS = GENERAL_DEFAULTS["lengths"]
FONT_DIRS = ("/usr/share/fonts",)
# symbol and dingbat faces draw no letters
_NOT_TEXT_FONTS = ("d050000l", "standardsymbols", "dingbat", "symbol", "fontawesome", "wqy", "math")
SOURCE_WEIGHTS = {"drawn": 0.7, "captcha": 0.1, "wheezy": 0.1, "easy": 0.1}
# part of a dataset cache's key (training/data.py): a change to what a seed draws is a new version
GENERATOR_VERSION = 4


class FontsMissing(UserError):
    """No usable font for the generator."""


@lru_cache(maxsize=1)
def font_bank(directories: tuple[str, ...] = FONT_DIRS) -> tuple[str, ...]:
    """Every .ttf/.otf under the font folders that draws digits and letters, sorted (so a seed picks
    the same font on every machine with the same packages)."""
    paths = sorted({str(p) for d in directories for p in Path(d).rglob("*") if p.suffix.lower() in (".ttf", ".otf")})
    usable = tuple(p for p in paths if not any(word in Path(p).name.lower() for word in _NOT_TEXT_FONTS)
                   and _draws_text(p))
    if not usable:
        raise FontsMissing("no .ttf/.otf font found under /usr/share/fonts: apt-get install fonts-dejavu-core "
                           "(docs/general-model.md lists the training setup's font packages)")
    return usable


def _draws_text(path: str) -> bool:
    """Whether the font has distinct glyphs for a few characters (a symbol font maps them all to one box)."""
    try:
        font = ImageFont.truetype(path, 24)
        shapes = set()
        for char in "0Aa+":
            mask = font.getmask(char)
            shapes.add((mask.size, bytes(mask)))
        return len(shapes) == 4
    except OSError:
        return False


@lru_cache(maxsize=512)
def _font(path: str, size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(path, size)


def random_label(rng: random.Random, charset: str = GENERAL_CHARSET,
                 lengths: tuple[int, ...] = GENERAL_LENGTHS) -> str:
    """A label: mostly characters of the charset, sometimes an arithmetic question ("12+7=?")."""
    if set("+-=?") <= set(charset) and rng.random() < 0.05:
        operator = rng.choice("+-*")
        question = f"{rng.randint(0, 99)}{operator}{rng.randint(0, 9 if operator == '*' else 99)}"
        return question + rng.choice(("=?", "=", ""))
    # operators only in questions: a line crossing plain text must not read as "+" or "-"
    letters = "".join(c for c in charset if c not in OPERATORS)
    pool = rng.choice((letters, string.digits, string.ascii_uppercase + string.digits,
                       string.ascii_lowercase + string.digits, letters))
    pool = "".join(c for c in pool if c in charset) or charset
    return "".join(rng.choice(pool) for _ in range(rng.choice(lengths)))


# -- colours ---------------------------------------------------------------------------------------
def _luminance(colour: tuple[int, ...]) -> float:
    r, g, b = colour[:3]
    return 0.299 * r + 0.587 * g + 0.114 * b


def _colour(rng: random.Random, light: bool, pale: bool = False) -> tuple[int, int, int]:
    """A random colour on the light or dark side; `pale`: close to the middle (low contrast)."""
    while True:
        colour = tuple(rng.randint(0, 255) for _ in range(3))
        lum = _luminance(colour)
        lowest, highest = ((150, 256) if light else (0, 110)) if not pale else ((120, 200) if light else (60, 130))
        if lowest <= lum < highest:
            return colour  # type: ignore[return-value]


def _vivid(rng: random.Random) -> tuple[int, int, int]:
    """A saturated colour of any hue and brightness (yellow on white too): noise lines often are."""
    red, green, blue = colorsys.hsv_to_rgb(rng.random(), rng.uniform(0.6, 1.0), rng.uniform(0.5, 1.0))
    return int(red * 255), int(green * 255), int(blue * 255)


# -- the drawn source ------------------------------------------------------------------------------
def _background(rng: random.Random, size: tuple[int, int], light: bool) -> Image.Image:
    width, height = size
    kind = rng.choices(("solid", "gradient", "noise", "blotches"), (0.4, 0.3, 0.15, 0.15))[0]
    first = _colour(rng, light)
    if kind == "solid":
        return Image.new("RGB", size, first)
    if kind == "gradient":
        second = _colour(rng, light)
        angle = rng.uniform(0, math.pi)
        xs, ys = np.meshgrid(np.linspace(0, 1, width), np.linspace(0, 1, height))
        t = (xs * math.cos(angle) + ys * math.sin(angle))
        t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
        pixels = np.asarray(first, np.float32) * (1 - t[..., None]) + np.asarray(second, np.float32) * t[..., None]
        return Image.fromarray(pixels.astype(np.uint8), "RGB")
    np_rng = np.random.default_rng(rng.getrandbits(32))
    if kind == "noise":  # grain, gray or coloured
        channels = 1 if rng.random() < 0.5 else 3
        grain = np_rng.normal(0, rng.uniform(10, 45), (height, width, channels))
        return Image.fromarray(np.clip(np.asarray(first, np.float32) + grain, 0, 255).astype(np.uint8), "RGB")
    image = Image.new("RGB", size, first)
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(3, 12)):
        x, y, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(3, height / 2)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=_colour(rng, light))
    return image.filter(ImageFilter.GaussianBlur(rng.uniform(1, 4)))


def _glyph(rng: random.Random, char: str, font: ImageFont.FreeTypeFont, style: str, ink: tuple[int, int, int],
           background: tuple[int, int, int], angle: float) -> Image.Image:
    """One character as an RGBA tile, rotated, cropped to its ink."""
    left, top, right, bottom = font.getbbox(char)
    pad = max(4, font.size // 4)
    tile = Image.new("RGBA", (right - left + 2 * pad, bottom - top + 2 * pad), (0, 0, 0, 0))
    draw = ImageDraw.Draw(tile)
    origin = (pad - left, pad - top)
    stroke = max(1, font.size // 18)
    if style == "hollow":
        draw.text(origin, char, font=font, fill=(*background, 0), stroke_width=stroke, stroke_fill=(*ink, 255))
    elif style == "outlined":
        draw.text(origin, char, font=font, fill=(*background, 255), stroke_width=stroke, stroke_fill=(*ink, 255))
    elif style == "bold":
        draw.text(origin, char, font=font, fill=(*ink, 255), stroke_width=stroke, stroke_fill=(*ink, 255))
    elif style == "smeared":  # translucent copies a pixel or two apart, blended: a shaky, hairy ink
        reach = max(1, font.size // 16)
        for _ in range(rng.randint(3, 7)):
            layer = Image.new("RGBA", tile.size, (0, 0, 0, 0))
            offset = (origin[0] + rng.randint(-reach, reach), origin[1] + rng.randint(-reach, reach))
            ImageDraw.Draw(layer).text(offset, char, font=font, fill=(*ink, rng.randint(70, 170)))
            tile.alpha_composite(layer)
    else:
        draw.text(origin, char, font=font, fill=(*ink, 255))
    if style == "dotted":
        alpha = np.asarray(tile.getchannel("A"))
        step = max(2, font.size // 14)
        grid = np.zeros_like(alpha)
        grid[::step, ::step] = 255
        if step > 2:  # dots of 2x2 pixels
            grid = np.maximum(grid, np.roll(grid, 1, axis=1))
            grid = np.maximum(grid, np.roll(grid, 1, axis=0))
        tile.putalpha(Image.fromarray(np.minimum(alpha, grid)))
    tile = tile.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    box = tile.getchannel("A").getbbox()
    return tile.crop(box) if box else tile


def _strike_curve(rng: random.Random, draw: ImageDraw.ImageDraw, size: tuple[int, int], fill, thickness: int) -> None:
    """A smooth curve across the text, as many sites draw through their captchas."""
    width, height = size
    amplitude, phase = rng.uniform(0.05, 0.3) * height, rng.uniform(0, 2 * math.pi)
    periods, centre = rng.uniform(0.3, 2.0), rng.uniform(0.35, 0.65) * height
    x0, x1 = rng.uniform(0, 0.3) * width, rng.uniform(0.7, 1.0) * width
    slope = rng.uniform(-0.2, 0.2) * height / width
    points = [(x, centre + slope * (x - width / 2) + amplitude * math.sin(phase + 2 * math.pi * periods * x / width))
              for x in np.linspace(x0, x1, 40)]
    draw.line(points, fill=fill, width=thickness, joint="curve")


def _polyline(rng: random.Random, draw: ImageDraw.ImageDraw, size: tuple[int, int], fill, thickness: int) -> None:
    """A line of a few straight segments with sharp turns from the left border across the text, sometimes
    starting with a hook back (a stroke the model must not read as a character)."""
    width, height = size
    xs = sorted(rng.uniform(0, 1) for _ in range(rng.randint(2, 5)))
    points = [(rng.uniform(0, 0.15) * width, rng.uniform(0.1, 0.9) * height)]
    if rng.random() < 0.4:
        points.append((points[0][0] + rng.uniform(0.03, 0.12) * width, rng.uniform(0, 1) * height))
    points += [(max(points[-1][0], x * width), rng.uniform(0.2, 0.8) * height) for x in xs]
    points.append((rng.uniform(0.8, 1.0) * width, rng.uniform(0.1, 0.9) * height))
    draw.line(points, fill=fill, width=thickness, joint="curve")


def _noise(rng: random.Random, image: Image.Image, inks: list[tuple[int, int, int]], light: bool,
           height_px: int) -> None:
    draw = ImageDraw.Draw(image)
    width, height = image.size

    def noise_colour():
        return rng.choice(inks) if rng.random() < 0.6 else _colour(rng, not light, pale=rng.random() < 0.3)

    if rng.random() < 0.4:  # dots: salt and pepper, or blobs
        for _ in range(rng.randint(10, int(width * height / 120) + 11)):
            x, y, r = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0.4, 1.8)
            draw.ellipse((x - r, y - r, x + r, y + r), fill=noise_colour() if rng.random() < 0.7
                         else _colour(rng, light))
    if rng.random() < 0.45:  # straight lines
        for _ in range(rng.randint(1, 5)):
            draw.line((rng.uniform(0, width), rng.uniform(0, height), rng.uniform(0, width), rng.uniform(0, height)),
                      fill=noise_colour(), width=rng.randint(1, max(1, height_px // 20)))
    if rng.random() < 0.3:  # thin lines from edge to edge, across the text
        for _ in range(rng.randint(1, 3)):
            draw.line((0, rng.uniform(0, height), width, rng.uniform(0, height)), fill=noise_colour(),
                      width=rng.randint(1, 2))
    if rng.random() < 0.15:  # a web of long thin lines, each in its own colour, across the whole image
        for _ in range(rng.randint(5, 12)):
            y0, y1 = rng.uniform(-0.3, 1.3) * height, rng.uniform(-0.3, 1.3) * height
            draw.line((rng.uniform(-0.2, 0.3) * width, y0, rng.uniform(0.7, 1.2) * width, y1),
                      fill=_vivid(rng) if rng.random() < 0.7 else _colour(rng, not light), width=1)
    if rng.random() < 0.3:  # arcs
        for _ in range(rng.randint(1, 4)):
            x, y = rng.uniform(-width / 2, width), rng.uniform(-height, height)
            draw.arc((x, y, x + rng.uniform(width / 4, width), y + rng.uniform(height / 2, 2 * height)),
                     rng.uniform(0, 360), rng.uniform(0, 360), fill=noise_colour(), width=rng.randint(1, 3))
    if rng.random() < 0.35:  # strike-through curves in the ink's colour
        for _ in range(rng.randint(1, 2)):
            _strike_curve(rng, draw, image.size, noise_colour(), rng.randint(1, max(2, height_px // 10)))
    if rng.random() < 0.25:  # a broken line of straight segments
        _polyline(rng, draw, image.size, noise_colour(), rng.randint(1, max(2, height_px // 16)))


def _wave(rng: random.Random, image: Image.Image) -> Image.Image:
    """Shift each column up or down along a sine wave."""
    pixels = np.asarray(image)
    height, width = pixels.shape[:2]
    amplitude, period = rng.uniform(1, max(1.5, height / 10)), rng.uniform(width / 3, width * 1.5)
    phase = rng.uniform(0, 2 * math.pi)
    shifts = np.round(amplitude * np.sin(phase + 2 * math.pi * np.arange(width) / period)).astype(int)
    rows = (np.arange(height)[:, None] - shifts[None, :]) % height
    warped = pixels[rows, np.arange(width)[None, :]]
    return Image.fromarray(warped, image.mode)


def _drawn(rng: random.Random, text: str, fonts: tuple[str, ...]) -> Image.Image:
    height = rng.randint(32, 90)
    light = rng.random() < 0.8  # most captchas are dark ink on light
    font_path = rng.choice(fonts)
    per_char_font = rng.random() < 0.15
    # of the height: most captchas fill it, some set small text in a tall canvas
    size = int(height * (rng.uniform(0.5, 0.9) if rng.random() < 0.75 else rng.uniform(0.28, 0.5)))
    style = rng.choices(("filled", "bold", "hollow", "outlined", "dotted", "smeared"),
                        (0.55, 0.13, 0.07, 0.07, 0.08, 0.10))[0]
    inks_count = 1 if rng.random() < 0.5 else len(text)
    pale = rng.random() < 0.1
    inks = [_colour(rng, not light, pale) for _ in range(inks_count)]
    max_angle = rng.choice((0, 8, 20, 35))
    # of the font size: overlap to letters spread far apart
    spacing = rng.choice((-0.3, -0.2, -0.1, 0.0, 0.1, 0.3, 0.6, 1.0, 1.5))
    if len(text) > 5:
        spacing = min(max(spacing, -0.15), 0.6)  # eight overlapping glyphs are no longer legible
    glyphs = []
    bg_guess = (235, 235, 235) if light else (30, 30, 30)
    for index, char in enumerate(text):
        path = rng.choice(fonts) if per_char_font else font_path
        font = _font(path, max(10, int(size * rng.uniform(0.85, 1.15))))
        glyphs.append(_glyph(rng, char, font, style, inks[index % len(inks)], bg_guess,
                             rng.uniform(-max_angle, max_angle)))
    gap = int(spacing * size)
    text_width = sum(g.width for g in glyphs) + gap * (len(glyphs) - 1)
    margin_x = int(height * rng.uniform(0.05, 0.6))
    width = max(text_width + 2 * margin_x, int(height * 1.2))
    image = _background(rng, (width, height), light)
    if rng.random() < 0.4:
        _noise(rng, image, inks, light, height)  # noise under the text
    x = (width - text_width) // 2
    baseline = rng.uniform(0.3, 0.7)
    for glyph in glyphs:
        wobble = rng.uniform(-0.15, 0.15) * height if max_angle else 0
        y = int((height - glyph.height) * baseline + wobble)
        y = min(max(y, -glyph.height // 6), height - glyph.height + glyph.height // 6)
        image.paste(glyph, (x, y), glyph)
        x += glyph.width + gap
    if rng.random() < 0.8:
        _noise(rng, image, inks, light, height)  # and over it
    if rng.random() < 0.25:
        image = _wave(rng, image)
    if rng.random() < 0.3:
        image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    return image


# -- third-party sources ---------------------------------------------------------------------------
def _captcha_library(rng: random.Random, text: str, fonts: tuple[str, ...]) -> Image.Image:
    from captcha.image import ImageCaptcha

    height = rng.randint(40, 80)
    width = int(height * rng.uniform(0.55, 0.8) * len(text) + height * 0.5)
    generator = ImageCaptcha(width=width, height=height, fonts=[rng.choice(fonts)],
                             font_sizes=(int(height * 0.7), int(height * 0.8)))
    with seeded_captcha(rng.getrandbits(64)):
        return generator.generate_image(text)


def _hex(colour: tuple[int, ...]) -> str:
    return "#" + "".join(f"{channel:02x}" for channel in colour[:3])


def _wheezy(rng: random.Random, text: str, fonts: tuple[str, ...]) -> Image.Image:
    from wheezy.captcha import image as wheezy

    height = rng.randint(40, 80)
    width = int(height * 0.7 * len(text) + height * 0.4)
    # wheezy masks each glyph by its own brightness, so its ink must be bright: mid-tones on a pale
    # background, or on a dark one
    ink_colour = _colour(rng, light=True)
    while not 130 <= _luminance(ink_colour) < 185:
        ink_colour = _colour(rng, light=True)
    paper = (rng.randint(225, 255),) * 3 if rng.random() < 0.7 else _colour(rng, light=False)
    ink = _hex(ink_colour)
    render = wheezy.captcha(drawings=[
        wheezy.background(_hex(paper)),
        wheezy.text(fonts=[rng.choice(fonts)], font_sizes=(int(height * 0.75),), color=ink,
                    squeeze_factor=rng.uniform(0.6, 1.0),
                    drawings=[wheezy.warp(rng.uniform(0.1, 0.3)), wheezy.rotate(), wheezy.offset()]),
        wheezy.curve(color=ink, width=rng.randint(1, 4)),
        wheezy.noise(number=rng.randint(0, 60), color=ink),
        wheezy.smooth(),
    ], width=width, height=height)
    state = random.getstate()  # wheezy draws from the random module: seed it for this image alone
    random.seed(rng.getrandbits(64))
    try:
        return render(text)
    finally:
        random.setstate(state)


SOURCES: dict[str, Callable[[random.Random, str, tuple[str, ...]], Image.Image]] = {
    "drawn": _drawn, "captcha": _captcha_library, "wheezy": _wheezy,
}


def _encode(rng: random.Random, image: Image.Image, transparent: bool) -> bytes:
    out = io.BytesIO()
    if transparent:
        image.save(out, format="PNG")
        return out.getvalue()
    choice = rng.choices(("png", "jpeg", "gif", "webp"), (0.5, 0.35, 0.08, 0.07))[0]
    if choice == "jpeg":
        image.convert("RGB").save(out, format="JPEG", quality=rng.randint(15, 95))
    elif choice == "gif":
        image.convert("RGB").save(out, format="GIF")
    elif choice == "webp":
        image.convert("RGB").save(out, format="WEBP", quality=rng.randint(30, 95))
    else:
        image.save(out, format="PNG", compress_level=1)
    return out.getvalue()


def _transparent(image: Image.Image) -> Image.Image:
    """The background made transparent where it is close to the corner's colour (as sites serve PNGs)."""
    rgb = np.asarray(image.convert("RGB"), dtype=np.int16)
    corner = rgb[0, 0]
    distance = np.abs(rgb - corner).sum(axis=2)
    alpha = np.where(distance < 60, 0, 255).astype(np.uint8)
    rgba = np.dstack([rgb.astype(np.uint8), alpha])
    return Image.fromarray(rgba, "RGBA")


def randomised_captcha(seed: int, charset: str = GENERAL_CHARSET,
                       lengths: tuple[int, ...] = GENERAL_LENGTHS) -> tuple[str, bytes]:
    """One domain-randomised captcha as (label, encoded bytes), fully determined by `seed`."""
    rng = random.Random(seed)
    fonts = font_bank()
    source = rng.choices(tuple(SOURCE_WEIGHTS), tuple(SOURCE_WEIGHTS.values()))[0]
    if source == "easy" and set(charset) >= set("0123456789+-*=?"):
        return _easy_source(rng)
    if source == "easy":
        source = "drawn"
    text = random_label(rng, charset, lengths)
    image = SOURCES[source](rng, text, fonts)
    transparent = source == "drawn" and rng.random() < 0.05
    if transparent:
        image = _transparent(image)
    return text, _encode(rng, image, transparent)


def _easy_source(rng: random.Random) -> tuple[str, bytes]:
    from captcha_ocr.training.generators import generate_one

    sample = generate_one("arithmetic" if rng.random() < 0.5 else "gif", rng.getrandbits(64))
    return sample.label, sample.data


def gallery(out: Path, count: int = 24, seed: int = 1) -> Path:
    """A contact sheet of `count` samples with their labels (docs/general-model.md shows one)."""
    tiles = []
    for index in range(count):
        label, data = randomised_captcha(derive_seed("gallery", seed, index))
        image = Image.open(io.BytesIO(data)).convert("RGBA")
        backdrop = Image.new("RGBA", image.size, (200, 200, 200, 255))
        image = Image.alpha_composite(backdrop, image).convert("RGB")
        image.thumbnail((240, 60))
        tile = Image.new("RGB", (250, 82), (255, 255, 255))
        tile.paste(image, (5, 3))
        ImageDraw.Draw(tile).text((5, 66), label, fill=(0, 0, 0), font=_font(font_bank()[0], 12))
        tiles.append(tile)
    columns = 4
    sheet = Image.new("RGB", (250 * columns, 82 * math.ceil(count / columns)), (255, 255, 255))
    for index, tile in enumerate(tiles):
        sheet.paste(tile, (250 * (index % columns), 82 * (index // columns)))
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out)
    return out
