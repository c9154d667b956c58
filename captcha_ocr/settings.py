"""The function's own settings: what one request may cost, whichever model reads it.

A model's config.json is its contract (charset, input, decoding: config.py); the request budget is
the service's. The defaults below hold it on SCF's 128 MB and 10 s (docs/request-budget.md). A
deployment changes them with a JSON file named by $CAPTCHA_OCR_SETTINGS, read once at cold start:

    {"limits": {"max_batch": 8, "max_decode_ms": 1000}}

Unknown keys and values that are not positive integers are refused at cold start, naming the key.
A config.json of an earlier version that still carries "limits" loads as before; those limits are
not read (they were the default model's, silently applied to every model).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from captcha_ocr.errors import UserError

SETTINGS_ENV = "CAPTCHA_OCR_SETTINGS"


class SettingsError(UserError, ValueError):
    """The settings file is missing, malformed, or names a limit that does not exist."""


@dataclass(frozen=True)
class Limits:
    """What one request may cost, enforced before the expensive work (decoding, pixel allocation).

    Sized so the worst case fits the function's 128 MB and 10 s with margin, on the bundle's own
    runtime: docs/request-budget.md gives the measured worst case of each hostile class.
    """

    max_base64_chars: int = 2_800_000  # one image's base64 text
    max_decoded_bytes: int = 2_000_000  # one image's encoded bytes
    max_pixels: int = 2_000_000  # one image, from its header (a lossless RGBA WebP costs ~20 MB per megapixel)
    max_side: int = 4_096  # one image's width or height: a 1x4,000,000 strip is no captcha
    max_batch: int = 16  # images in one request
    max_batch_pixels: int = 8_000_000  # all images of one request together, judged before any is decoded
    max_body_bytes: int = 6_000_000  # a POST body (a Function URL takes at most 6 MB)
    max_body_values: int = 64  # fields of a form body; commas and brackets of a JSON one (a batch of 16: 18)
    max_jpeg_scans: int = 64  # progressive JPEGs have about 10; each scan walks every block again
    max_segments: int = 4_096  # a JPEG's marker segments, a GIF's blocks before its first frame, a WebP's
    # chunks (normal: < 30)
    max_rle_pixels: int = 262_144  # a run-length coded BMP, which Pillow decodes in Python (~0.6 us a pixel)
    # An animation (GIF, APNG, animated WebP) is read frame by frame, each frame at its canvas size: the
    # frames read are the first max_frames of it whose canvases together hold at most max_animation_pixels;
    # later frames are left out before anything is decoded (a flashing captcha has a handful)
    max_frames: int = 32
    max_animation_pixels: int = 4_000_000
    # A slider image (POST /slide) is searched at its own size, pixel for pixel: backgrounds are
    # commonly 260-680 px wide (680x390 is 265,000 pixels); the search's FFTs cost ~100 bytes a pixel
    max_slider_pixels: int = 400_000
    # Decoding runs in a worker process (isolation.py) held to these: one request's decoding time, its
    # batch's images together, and the memory a decode may take above what the worker holds idle
    max_decode_ms: int = 1_500
    max_decode_mb: int = 48


@dataclass(frozen=True)
class Settings:
    limits: Limits = field(default_factory=Limits)

    def describe(self) -> dict[str, Any]:
        """What /health says of them."""
        return dict(self.limits.__dict__)


def parse_settings(data: object) -> Settings:
    if not isinstance(data, dict) or set(data) - {"limits"}:
        raise SettingsError('settings: the top level must be an object with "limits"')
    given = data.get("limits", {})
    if not isinstance(given, dict):
        raise SettingsError('settings: "limits" must be an object')
    known = {f.name for f in fields(Limits)}
    for key, value in given.items():
        if key not in known:
            raise SettingsError(f"settings: no limit named {key[:64]!r}; the limits are {', '.join(sorted(known))}")
        if type(value) is not int or value <= 0:
            raise SettingsError(f"settings: limits.{key} must be a positive integer, got {value!r}")
    return Settings(Limits(**given))


def load_settings(path: str | os.PathLike | None = None) -> Settings:
    """The settings file given, else $CAPTCHA_OCR_SETTINGS's, else the defaults."""
    path = path or os.environ.get(SETTINGS_ENV)
    if not path:
        return Settings()
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SettingsError(f"settings file {path}: {exc.strerror or exc}") from exc
    except ValueError as exc:
        raise SettingsError(f"settings file {path}: not valid JSON ({exc})") from exc
    return parse_settings(data)
