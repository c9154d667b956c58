"""Image bytes -> model input tensor. THE one preprocessing, shared by training and serving.

Training calls `preprocess` on the encoded bytes of every sample, exactly as the handler does on
what a client sends, so the model never sees an image prepared any other way.
"""

from __future__ import annotations

import io
import warnings
from typing import NamedTuple

import numpy as np
from PIL import Image

from captcha_ocr.errors import ImageTooLarge, UnsupportedImage

SUPPORTED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
_WHITE = (255, 255, 255, 255)
_HIGH_BIT_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}


def open_image(data: bytes, max_pixels: int) -> Image.Image:
    """Decode the first frame, refusing oversized images from the header alone (bomb-safe)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=SUPPORTED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"image declares too many pixels (limit {max_pixels})") from exc
    except Exception as exc:  # any decoder failure on untrusted bytes means "not an image we can read"
        raise UnsupportedImage(f"not a supported image; send one of {', '.join(SUPPORTED_FORMATS)}") from exc
    width, height = image.size
    if width * height > max_pixels:
        raise ImageTooLarge(f"image is {width}x{height} = {width * height} pixels; the limit is {max_pixels}")
    if width < 1 or height < 1:
        raise UnsupportedImage("image has no pixels")
    try:
        image.seek(0)
        image.load()
    except Exception as exc:
        raise UnsupportedImage(f"{image.format} image is truncated or corrupt") from exc
    return image


def _luminance(image: Image.Image) -> Image.Image:
    """Any mode -> float luminance ('F'), with transparency composited onto white."""
    if image.mode in _HIGH_BIT_DEPTH_MODES:
        return image.convert("I").convert("F") if image.mode.startswith("I;16") else image.convert("F")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba)
    return image.convert("RGB").convert("F")


def _image_to_tensor(image: Image.Image, height: int, width: int) -> np.ndarray:
    """Luminance, resize, then stretch to [0, 1] so text colour and contrast stop mattering."""
    resized = _luminance(image).resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(resized, dtype=np.float32)
    low, high = float(pixels.min()), float(pixels.max())
    if high - low < 1e-6:
        return np.ones((height, width, 1), dtype=np.float32)
    return ((pixels - low) / (high - low)).reshape(height, width, 1)


class PreparedImage(NamedTuple):
    tensor: np.ndarray  # (height, width, 1) float32 in [0, 1]
    source_size: tuple[int, int]  # the client's image, (width, height), for logs
    source_format: str


def preprocess(data: bytes, height: int, width: int, max_pixels: int = 4_000_000) -> PreparedImage:
    """Encoded image bytes -> the model input tensor, plus what logs may say about the source."""
    image = open_image(data, max_pixels)
    try:
        tensor = _image_to_tensor(image, height, width)
    except Exception as exc:  # exotic modes PIL can open but not convert
        raise UnsupportedImage(f"{image.format} images in mode {image.mode} are not supported") from exc
    return PreparedImage(tensor, image.size, image.format or "")
