"""Reproducible slider captchas: a background with a shaded gap, the puzzle piece that fits it, the
background without the gap, and the gap's box. For tests, benchmarks, training the gap detector and
the demo page's slider tab (so numpy and Pillow only, like synthetic.py for text).

What real sites draw, each choice random per sample and fixed by its seed:
- backgrounds: procedural textures (smooth colour fields, gradients, stripes, blobs, noise), and, for
  training and benchmarks, crops of the photos matplotlib ships as sample data;
- the piece: a square of 26-72 px with rounded corners, with a tab (a bump out) or a blank (a bite
  in) on some sides;
- the gap: the piece's shape shaded into the background (darkened, lightened or greyed), with a
  light or dark rim, or none;
- the piece drawn at its start position on the left (half the samples), an outline round it;
- a decoy gap (a third of the samples): another shape, shaded more faintly and without a rim;
- JPEG artefacts (half the samples).
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from captcha_ocr.budget import JPEG_SIGNATURE
from captcha_ocr.synthetic import derive_seed

_SUPERSAMPLE = 4  # shapes are drawn 4x larger and reduced: anti-aliased edges, as sites draw them


@dataclass(frozen=True)
class Box:
    x: int  # left edge
    y: int  # top
    width: int
    height: int


@dataclass(frozen=True)
class Slider:
    background: bytes  # with the gap (and maybe the piece at its start and a decoy): what sites send
    full: bytes  # the same background without the gap, the piece or the decoy (PNG)
    piece: bytes  # the piece, RGBA PNG cropped to its shape
    gap: Box  # where the piece fits: what a solver must find
    size: tuple[int, int]  # the background's (width, height)
    piece_drawn: bool  # the piece is drawn at its start position on the left
    decoy: Box | None  # a fainter gap of another shape, if drawn


def _smooth_field(rng: np.random.Generator, width: int, height: int, cells: int) -> np.ndarray:
    """Random values on a coarse grid, smoothly resized up: a (height, width) field in [0, 1]."""
    grid = rng.random((max(2, cells * height // width), cells)).astype(np.float32)
    return np.asarray(Image.fromarray(grid, "F").resize((width, height), Image.Resampling.BICUBIC)).clip(0, 1)


def texture(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A colourful procedural background, (height, width, 3) float in [0, 255]."""
    image = np.zeros((height, width, 3), np.float32)
    for channel in range(3):
        image[..., channel] = 255 * _smooth_field(rng, width, height, int(rng.integers(3, 12)))
    style = rng.integers(4)
    if style == 0:  # a gradient across it
        ramp = np.linspace(0, 1, width, dtype=np.float32)[None, :, None] * rng.uniform(-120, 120, 3)
        image += ramp
    elif style == 1:  # stripes
        period = rng.uniform(8, 40)
        angle = rng.uniform(0, np.pi)
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        stripes = np.sin((xx * np.cos(angle) + yy * np.sin(angle)) * 2 * np.pi / period)
        image += stripes[..., None] * rng.uniform(10, 50, 3)
    elif style == 2:  # blobs
        canvas = Image.new("RGB", (width, height))
        draw = ImageDraw.Draw(canvas)
        for _ in range(int(rng.integers(5, 25))):
            cx, cy, radius = rng.uniform(0, width), rng.uniform(0, height), rng.uniform(5, height / 3)
            draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius),
                         fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        blobs = np.asarray(canvas.filter(ImageFilter.GaussianBlur(rng.uniform(1, 6))), np.float32)
        image = image * 0.4 + blobs * 0.6
    image += rng.normal(0, rng.uniform(0, 12), image.shape).astype(np.float32)  # sensor-like noise
    return image.clip(0, 255)


def piece_mask(rng: np.random.Generator, side: int) -> np.ndarray:
    """A puzzle piece's shape, (side, side) float in [0, 1]: a rounded square whose sides may carry a
    tab (a disc outside the square) or a blank (a disc cut out of it)."""
    big = side * _SUPERSAMPLE
    body = big * rng.uniform(0.6, 0.66)  # the square; tabs reach out of it into the rest of the box
    knob = body * rng.uniform(0.15, 0.19)  # a tab's radius
    inset = (big - body) / 2
    square = (inset, inset, big - inset, big - inset)
    mask = Image.new("L", (big, big), 0)
    draw = ImageDraw.Draw(mask)
    draw.rounded_rectangle(square, radius=body * rng.uniform(0, 0.12), fill=255)
    middle = big / 2
    sides = [(middle, square[1]), (square[2], middle), (middle, square[3]), (square[0], middle)]
    kinds = rng.choice(["tab", "blank", "flat"], size=4, p=[0.45, 0.25, 0.3])
    for (cx, cy), kind in sorted(zip(sides, kinds), key=lambda side: side[1] != "blank"):  # blanks first
        if kind == "flat":
            continue
        # a tab sits mostly out of the square, a blank as deep into it
        direction = np.sign([cx - middle, cy - middle])
        shift = knob * 0.55 * (1 if kind == "tab" else -1)
        x, y = cx + direction[0] * shift, cy + direction[1] * shift
        draw.ellipse((x - knob, y - knob, x + knob, y + knob), fill=255 if kind == "tab" else 0)
    return np.asarray(mask.resize((side, side), Image.Resampling.BOX), np.float32) / 255


def _rim(mask: np.ndarray, width: float) -> np.ndarray:
    """The band along a shape's edge, in [0, 1]."""
    image = Image.fromarray((mask * 255).astype(np.uint8), "L")
    grown = np.asarray(image.filter(ImageFilter.MaxFilter(3)), np.float32) / 255
    shrunk = np.asarray(image.filter(ImageFilter.MinFilter(3)), np.float32) / 255
    band = np.clip(grown - shrunk, 0, 1)
    return band if width <= 1 else np.asarray(Image.fromarray((band * 255).astype(np.uint8)).filter(
        ImageFilter.MaxFilter(3)), np.float32) / 255


def _bbox(mask: np.ndarray, threshold: float = 0.5) -> tuple[int, int, int, int]:
    rows, columns = np.nonzero(mask > threshold)
    return int(columns.min()), int(rows.min()), int(columns.max()) + 1, int(rows.max()) + 1


def _shade(image: np.ndarray, mask: np.ndarray, x: int, y: int, rng: np.random.Generator, faint: bool) -> None:
    """Shade the shape into the image at (x, y), in place: the gap (or, faint, a decoy)."""
    side = mask.shape[0]
    region = image[y:y + side, x:x + side]
    alpha = mask[..., None]
    style = rng.integers(3)
    strength = rng.uniform(0.12, 0.25) if faint else rng.uniform(0.4, 0.7)
    if style == 0:
        target = region * (1 - strength)  # darkened
    elif style == 1:
        target = region + (255 - region) * strength  # lightened
    else:
        gray = region.mean(axis=2, keepdims=True)
        target = region * (1 - strength) + (gray * 0.6) * strength  # greyed and darkened
    region[:] = region * (1 - alpha) + target * alpha
    if not faint and rng.random() < 0.8:  # a rim, light or dark
        rim = _rim(mask, rng.choice([1, 2]))[..., None] * rng.uniform(0.5, 0.9)
        colour = 255.0 if rng.random() < 0.6 else 0.0
        region[:] = region * (1 - rim) + colour * rim


Backgrounds = Callable[[np.random.Generator, int, int], np.ndarray]  # (rng, width, height) -> (h, w, 3) floats


def generate_slider(seed: int, *, piece_drawn: bool | None = None, decoy: bool | None = None,
                    photos: Backgrounds | None = None) -> Slider:
    """One slider captcha, fully determined by `seed` (and `photos`); `piece_drawn` and `decoy` force
    those choices (sites that serve the background with and without the gap draw neither). Given
    `photos` (training/photos.py's photo_background: training and benchmarks), half the backgrounds
    come from it; the function's demo draws procedural ones only."""
    rng = np.random.default_rng(seed)
    width = int(rng.integers(260, 421))
    height = int(width * rng.uniform(0.45, 0.62))
    full = photos(rng, width, height) if photos and rng.random() < 0.5 else texture(rng, width, height)
    side = int(rng.integers(44, 73))  # the shape inside is 60-100% of it
    side = min(side, height - 10)
    mask = piece_mask(rng, side)
    left, top, right, bottom = _bbox(mask)
    start_x = int(rng.integers(0, 11)) - left  # the piece's start position, its shape's left edge at 0-10
    x = int(rng.integers(side + 10, width - side - 4))
    y = int(rng.integers(2, height - side - 2))
    background = full.copy()
    # the piece: the background's pixels in the gap's shape, with an outline
    crop = full[y:y + side, x:x + side].copy()
    outline = _rim(mask, 1)[..., None] * 0.9
    crop = crop * (1 - outline) + 255 * outline
    alpha = np.clip(mask + _rim(mask, 1) * 0.5, 0, 1)
    piece_rgba = np.dstack([crop, alpha[..., None] * 255]).clip(0, 255).astype(np.uint8)
    _shade(background, mask, x, y, rng, faint=False)
    decoy_box = None
    if (rng.random() < 1 / 3) if decoy is None else decoy:
        decoy_mask = piece_mask(rng, side)
        for _ in range(20):  # a place clear of the gap and of the start position
            dx = int(rng.integers(side + 10, width - side - 4))
            dy = int(rng.integers(2, height - side - 2))
            if abs(dx - x) > side + 4:
                _shade(background, decoy_mask, dx, dy, rng, faint=True)
                d_left, d_top, d_right, d_bottom = _bbox(decoy_mask)
                decoy_box = Box(dx + d_left, dy + d_top, d_right - d_left, d_bottom - d_top)
                break
    drawn = rng.random() < 0.5
    piece_drawn = bool(drawn if piece_drawn is None else piece_drawn)
    if piece_drawn:
        target = background[y:y + side, max(0, start_x):start_x + side]
        source = piece_rgba[:, max(0, -start_x):].astype(np.float32)
        blend = source[..., 3:4] / 255
        target[:] = target * (1 - blend) + source[..., :3] * blend
    piece = Image.fromarray(piece_rgba[top:bottom, left:right], "RGBA")
    encoded = io.BytesIO()
    shown = Image.fromarray(background.round().astype(np.uint8), "RGB")
    if rng.random() < 0.5:
        shown.save(encoded, "JPEG", quality=int(rng.integers(40, 91)))
    else:
        shown.save(encoded, "PNG")
    return Slider(background=encoded.getvalue(), full=_png(Image.fromarray(full.round().astype(np.uint8), "RGB")),
                  piece=_png(piece), gap=Box(x + left, y + top, right - left, bottom - top), size=(width, height),
                  piece_drawn=piece_drawn, decoy=decoy_box)


def yolo_line(box: Box, size: tuple[int, int]) -> str:
    """The box as a YOLO label line: class 0, centre x and y, width and height, each a fraction of the image."""
    width, height = size
    return (f"0 {(box.x + box.width / 2) / width:.6f} {(box.y + box.height / 2) / height:.6f} "
            f"{box.width / width:.6f} {box.height / height:.6f}")


def write_sliders(count: int, seed: int, out: Path) -> list[Slider]:
    """`count` sliders into `out`: NNNNN.png (or .jpg) the background, NNNNN.piece.png, NNNNN.full.png
    and NNNNN.txt, the gap as a YOLO label line (what labelling tools write)."""
    out.mkdir(parents=True, exist_ok=True)
    sliders = []
    for index in range(count):
        slider = generate_slider(derive_seed("slider", seed, index))
        suffix = ".jpg" if slider.background.startswith(JPEG_SIGNATURE) else ".png"
        (out / f"{index:05d}{suffix}").write_bytes(slider.background)
        (out / f"{index:05d}.piece.png").write_bytes(slider.piece)
        (out / f"{index:05d}.full.png").write_bytes(slider.full)
        (out / f"{index:05d}.txt").write_text(yolo_line(slider.gap, slider.size) + "\n")
        sliders.append(slider)
    return sliders


def _png(image: Image.Image) -> bytes:
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def random_seed() -> int:
    return random.SystemRandom().getrandbits(63)
