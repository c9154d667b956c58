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

from captcha_ocr.budget import check_size, screen
from captcha_ocr.config import GRAY_MODES
from captcha_ocr.errors import ImageTooLarge, UnsupportedImage
from captcha_ocr.settings import Limits

SUPPORTED_FORMATS = ("PNG", "JPEG", "GIF", "BMP", "WEBP")
_WHITE = (255, 255, 255, 255)
_HIGH_BIT_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_REDUCIBLE_MODES = {"L", "LA", "RGB", "RGBA", "I", "F", "CMYK"}  # Image.reduce averages these channel by channel
# EXIF orientation -> the transpose that shows the image upright (as ImageOps.exif_transpose does)
_UPRIGHT = {2: Image.Transpose.FLIP_LEFT_RIGHT, 3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
            5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_270, 7: Image.Transpose.TRANSVERSE,
            8: Image.Transpose.ROTATE_90}


DEFAULT_LIMITS = Limits()


class OpenedImage(NamedTuple):
    image: Image.Image  # headers parsed, pixels not yet decoded
    orientation: int  # EXIF orientation, 1-8
    frames: int = 1  # an animation's frames to read (the screen left out the rest)


def open_image(data: bytes, limits: Limits) -> OpenedImage:
    """Screen the container (budget.screen), then let Pillow parse the headers of what is left."""
    screened = screen(data, limits)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(screened.data), formats=SUPPORTED_FORMATS)
    except Image.DecompressionBombError as exc:
        raise ImageTooLarge(f"image declares too many pixels (limit {limits.max_pixels})") from exc
    except Exception as exc:  # any decoder failure on untrusted bytes means "not an image we can read"
        raise UnsupportedImage(f"not a supported image; send one of {', '.join(SUPPORTED_FORMATS)}") from exc
    check_size(*image.size, limits)
    return OpenedImage(image, screened.orientation, screened.frames)


def _decode(image: Image.Image, frame_width: int, frame_height: int, index: int = 0) -> Image.Image:
    """Decode frame `index`; a large JPEG is decoded at 1/2 to 1/8 scale by libjpeg itself."""
    if image.format == "JPEG":
        image.draft(image.mode, (2 * frame_width, 2 * frame_height))
    try:
        image.seek(index)
        image.load()
    except Exception as exc:
        # in the decoding worker an allocation past its memory cap fails here too (isolation.py)
        raise UnsupportedImage(f"{image.format} image could not be decoded: truncated, corrupt, or needing more "
                               "memory than a request may use") from exc
    return image


def _shrink(image: Image.Image, frame_width: int, frame_height: int) -> Image.Image:
    """Box-average an image larger than twice the model input down to about that, before the mode
    conversions below copy it: their cost then no longer grows with the client's pixel count."""
    factors = (max(1, image.width // (2 * frame_width)), max(1, image.height // (2 * frame_height)))
    if factors == (1, 1):
        return image
    if image.mode not in _REDUCIBLE_MODES:  # palette indices and packed bits cannot be averaged
        has_alpha = "A" in image.mode or "transparency" in image.info
        image = image.convert("I" if image.mode in _HIGH_BIT_DEPTH_MODES else "RGBA" if has_alpha else "RGB")
    return image.reduce(factors)


def _gray(image: Image.Image, gray: str = GRAY_MODES[0]) -> Image.Image:
    """Any mode -> one float channel ('F'), transparency composited onto white; `gray` says which
    (config.GRAY_MODES). A gray source reads the same in every mode."""
    if image.mode in _HIGH_BIT_DEPTH_MODES:
        return image.convert("I").convert("F") if image.mode.startswith("I;16") else image.convert("F")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        image = Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba)
    rgb = image.convert("RGB")
    if gray == "luminance":
        return rgb.convert("F")
    channels = np.asarray(rgb, dtype=np.float32)
    if gray == "darkest":
        return Image.fromarray(channels.min(axis=2), "F")
    spread = channels.max(axis=(0, 1)) - channels.min(axis=(0, 1))
    return Image.fromarray(np.ascontiguousarray(channels[:, :, int(spread.argmax())]), "F")


def _stored_frame(height: int, width: int, orientation: int) -> tuple[int, int]:
    """The model input's (width, height) in the stored image's orientation."""
    return (height, width) if orientation >= 5 else (width, height)


def _frame_gray(image: Image.Image, frame: tuple[int, int], gray: str) -> Image.Image:
    """One decoded frame as gray pixels ('F'), box-averaged first if it is large."""
    try:
        return _gray(_shrink(image, *frame), gray)
    except Exception as exc:  # exotic modes PIL can open but not convert
        raise UnsupportedImage(f"{image.format} images in mode {image.mode} are not supported") from exc


def _ink_of_all_frames(image: Image.Image, frame: tuple[int, int], gray: str, frames: int) -> Image.Image:
    """Every frame's gray pixels, each pixel taken from the frame where it lies farthest from the
    background (the first frame's median): a flashing captcha shows each character in some frames
    only, and this keeps each one where it is strongest, dark on light or light on dark alike. A
    still image (one frame) is its own gray pixels. bench/kinds.py measures this against the first
    frame alone and the mean of the frames."""
    first = _frame_gray(_decode(image, *frame), frame, gray)
    if frames == 1:
        return first
    combined = np.array(first, dtype=np.float32)
    background = float(np.median(combined))
    strength = np.abs(combined - background)
    for index in range(1, frames):
        layer = np.asarray(_frame_gray(_decode(image, *frame, index), frame, gray), dtype=np.float32)
        if layer.shape != combined.shape:  # the screen fixed the canvas; a decoder that differs is not trusted
            raise UnsupportedImage(f"{image.format} animation frames differ in size")
        layer_strength = np.abs(layer - background)
        stronger = layer_strength > strength
        combined[stronger] = layer[stronger]
        strength[stronger] = layer_strength[stronger]
    return Image.fromarray(combined, "F")


def _gray_to_tensor(gray: Image.Image, height: int, width: int, orientation: int = 1) -> np.ndarray:
    """Resize, turn upright, then stretch to [0, 1] so text colour and contrast stop mattering.

    An image stored on its side (orientation 5-8) is resized to the swapped size and turned after,
    so turning it costs nothing.
    """
    resized = gray.resize(_stored_frame(height, width, orientation), Image.Resampling.BILINEAR)
    if orientation in _UPRIGHT:
        resized = resized.transpose(_UPRIGHT[orientation])
    pixels = np.asarray(resized, dtype=np.float32)
    low, high = float(pixels.min()), float(pixels.max())
    if high - low < 1e-6:
        return np.ones((height, width, 1), dtype=np.float32)
    return ((pixels - low) / (high - low)).reshape(height, width, 1)


def narrowed(tensor: np.ndarray, share: float) -> np.ndarray:
    """The model input with its content squeezed to `share` of the width, centred, the edge columns
    repeated into the margins (any background colour continues): another view of the same image,
    read by a model whose config declares it (config.ModelConfig.views). A zero-shot reader given
    text a little narrower than the width it fills reads more of it (docs/general-model.md)."""
    height, width = tensor.shape[:2]
    inner = max(1, round(width * share))
    if inner >= width:
        return tensor
    gray = Image.fromarray(np.ascontiguousarray(tensor[:, :, 0], dtype=np.float32), "F")
    squeezed = np.asarray(gray.resize((inner, height), Image.Resampling.BILINEAR), dtype=np.float32)
    left = (width - inner) // 2
    return np.pad(squeezed, ((0, 0), (left, width - inner - left)), mode="edge")[:, :, np.newaxis]


class PreparedImage(NamedTuple):
    tensor: np.ndarray  # (height, width, 1) float32 in [0, 1]
    source_size: tuple[int, int]  # the client's image, (width, height), for logs
    source_format: str


def preprocess(data: bytes, height: int, width: int, limits: Limits = DEFAULT_LIMITS,
               gray: str = GRAY_MODES[0]) -> PreparedImage:
    """Encoded image bytes -> the model input tensor (`gray`: config.GRAY_MODES), plus what logs
    may say about the source."""
    image, orientation, frames = open_image(data, limits)
    source_size, source_format = image.size, image.format or ""
    gray_image = _ink_of_all_frames(image, _stored_frame(height, width, orientation), gray, frames)
    return PreparedImage(_gray_to_tensor(gray_image, height, width, orientation), source_size, source_format)


def decode_rgba(data: bytes, limits: Limits = DEFAULT_LIMITS) -> np.ndarray:
    """Encoded image bytes -> its pixels as (height, width, 4) RGBA uint8, upright, at its own size (a
    slider's positions are in the image's own pixels); an animation's first frame. Behind the same
    screen as preprocess, and held to max_slider_pixels."""
    image, orientation, _ = open_image(data, limits)
    if image.width * image.height > limits.max_slider_pixels:
        raise ImageTooLarge(f"slider image is {image.width}x{image.height} = {image.width * image.height} pixels; "
                            f"the limit is {limits.max_slider_pixels}")
    image = _decode(image, image.width, image.height)
    try:
        rgba = image.convert("RGBA")
    except Exception as exc:  # exotic modes PIL can open but not convert
        raise UnsupportedImage(f"{image.format} images in mode {image.mode} are not supported") from exc
    if orientation in _UPRIGHT:
        rgba = rgba.transpose(_UPRIGHT[orientation])
    return np.asarray(rgba, dtype=np.uint8)

