"""Folders of labelled sliders, as `slide-eval` and `slide-train` read them.

One background per image file (PNG, JPEG, GIF, BMP, WebP), its gap in a YOLO label file beside it,
what labelling tools (LabelImg, Label Studio, CVAT, Roboflow) export:

    00017.png          the background with the gap
    00017.txt          "0 cx cy width height": the gap's centre and size, each a fraction of the image
    00017.piece.png    the piece (optional: the piece-and-background mode)
    00017.full.png     the background without the gap (optional: the two-background mode)

`captcha-ocr sample --kind slider` writes such a folder. The first line of a label file counts;
the class number is not read (a slider has one).
"""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from captcha_ocr.errors import ApiError
from captcha_ocr.labelled import IMAGE_SUFFIXES, DatasetError
from captcha_ocr.slider import Box

PIECE_SUFFIX, FULL_SUFFIX = ".piece", ".full"


@dataclass(frozen=True)
class LabelledSlider:
    background: Path
    gap: Box  # in the background's pixels (score 1)
    piece: Path | None
    full: Path | None


def parse_yolo(line: str, size: tuple[int, int]) -> Box:
    """One YOLO line -> a box in pixels of an image of `size` (width, height)."""
    fields = line.split()
    try:
        cx, cy, width, height = (float(value) for value in fields[1:5])
    except ValueError:
        raise DatasetError(f"not a YOLO label line (class cx cy width height): {line[:80]!r}") from None
    if len(fields) < 5 or not all(0 <= value <= 1 for value in (cx, cy, width, height)):
        raise DatasetError(f"not a YOLO label line (class cx cy width height, fractions): {line[:80]!r}")
    x, y = (cx - width / 2) * size[0], (cy - height / 2) * size[1]
    return Box(round(x), round(y), round(width * size[0]), round(height * size[1]), 1.0)


def list_sliders(folder: Path) -> list[LabelledSlider]:
    """Every background of the folder that has a label file, sorted by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DatasetError(f"no such folder: {folder}")
    sliders = []
    for path in sorted(folder.iterdir()):
        stem = path.name[:-len(path.suffix)]
        if path.suffix.lower() not in IMAGE_SUFFIXES or stem.endswith((PIECE_SUFFIX, FULL_SUFFIX)):
            continue
        label = path.with_suffix(".txt")
        if not label.is_file():
            continue
        lines = [line for line in label.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not lines:
            raise DatasetError(f"{label.name} is empty")
        with Image.open(io.BytesIO(path.read_bytes())) as image:
            size = image.size
        piece, full = (next((p for p in folder.glob(f"{stem}{kind}.*") if p.suffix.lower() in IMAGE_SUFFIXES), None)
                       for kind in (PIECE_SUFFIX, FULL_SUFFIX))
        sliders.append(LabelledSlider(path, parse_yolo(lines[0], size), piece, full))
    if not sliders:
        raise DatasetError(f"{folder}: no background with a YOLO label file beside it (00017.png and 00017.txt)")
    return sliders


MODES = ("auto", "piece", "full", "background")


def evaluate(slide, sliders: list[LabelledSlider], mode: str = "auto") -> dict:
    """How often `slide(background, piece, full)` (Reader.slide) finds each labelled gap: within 3, 5
    and 10 px (the larger of the x and y errors). `mode`: auto uses the piece where there is one, else
    the background without the gap, else the background alone; the others use that one input only."""
    errors, failures, times = [], [], []
    for slider in sliders:
        piece = slider.piece if mode in ("auto", "piece") else None
        full = slider.full if mode == "full" or (mode == "auto" and piece is None) else None
        if (mode == "piece" and piece is None) or (mode == "full" and full is None):
            raise DatasetError(f"{slider.background.name} has no {mode} file beside it")
        started = time.perf_counter()
        try:
            gap = slide(slider.background, piece, full)
        except ApiError as error:
            failures.append({"image": slider.background.name, "code": error.code})
            continue
        times.append((time.perf_counter() - started) * 1000)
        errors.append(max(abs(gap.x - slider.gap.x), abs(gap.y - slider.gap.y)))
    count = len(sliders)
    return {"sliders": count, **{f"within_{px}px": sum(e <= px for e in errors) / count for px in (3, 5, 10)},
            "failures": failures, "median_ms": sorted(times)[len(times) // 2] if times else None}
