"""THE seam from an image to its text: the HTTP handler, the command line, the labelling page and
the benchmarks all read through a Reader, so there is one way from bytes to a reading.

    from captcha_ocr import Reader

    reader = Reader()                        # the shipped model (or Reader("runs/mine/export"))
    reading = reader.read("captcha.png")     # bytes, a path or a PIL image
    print(reading.text, reading.confidence)

A Reader holds the models (registry.py), the request budget's limits and, for the function, the
decoding worker (isolation.py). Every image passes the same screen (budget.py) and preprocessing
(imaging.py) as a request does, and bad input raises the same typed errors, all under
`captcha_ocr.CaptchaOcrError`. It is thread-safe: the interpreters are locked, the worker pool
is shared.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image

from captcha_ocr.answers import Answer, answer
from captcha_ocr.budget import screen
from captcha_ocr.detector import GapDetector
from captcha_ocr.errors import ApiError, GapDetectorMissing, InvalidRequest, PayloadTooLarge, UnsupportedImage
from captcha_ocr.imaging import PreparedImage, decode_rgba, preprocess
from captcha_ocr.isolation import DecoderPool
from captcha_ocr.registry import Model, Registry, load_registry
from captcha_ocr.settings import Limits, load_settings
from captcha_ocr.slider import Gap, compare_backgrounds, match_piece

ImageInput = Union[bytes, bytearray, memoryview, str, os.PathLike, Image.Image]
_DETECTOR_LOCK = threading.Lock()


@dataclass(frozen=True)
class CharReading:
    char: str
    confidence: float  # the best frame's probability of this character


@dataclass(frozen=True)
class Reading:
    """What a model read in one image."""

    text: str
    confidence: float  # P(text | image), summed over every CTC alignment
    chars: tuple[CharReading, ...]
    model: str  # the name of the model that read it
    source_size: tuple[int, int]  # the image as sent, (width, height)
    source_format: str  # PNG, JPEG, GIF, BMP or WEBP
    task: str = "text"  # the model's (answers.TASKS)
    answer: int | None = None  # for an arithmetic model: what the captcha asks for
    answer_error: str | None = None  # for an arithmetic model: why its reading has no answer


class Reader:
    """Reads captchas with the shipped model, a trained export, or a models folder beside a default.

    `model_dir`: the default model's folder (else $CAPTCHA_OCR_MODEL_DIR, else the shipped model);
    `models_dir`: more models, picked per image by name or by declared size (registry.py);
    `isolate`: decode in a worker process held to the limits (what the function does; off by
    default for a library call, which then decodes in this process behind the same screen);
    `limits`: what one image may cost (default: settings.py's, which $CAPTCHA_OCR_SETTINGS may change).
    """

    def __init__(self, model_dir: str | os.PathLike | None = None, models_dir: str | os.PathLike | None = None, *,
                 isolate: bool = False, limits: Limits | None = None) -> None:
        models = load_registry(Path(model_dir) if model_dir else None, Path(models_dir) if models_dir else None)
        limits = limits or load_settings().limits
        self._setup(models, limits, DecoderPool(limits) if isolate else None)

    @classmethod
    def from_models(cls, models: Registry, limits: Limits | None = None,
                    decoder: DecoderPool | None = None) -> Reader:
        """A Reader over models already loaded (the function's App, the labelling page)."""
        reader = cls.__new__(cls)
        reader._setup(models, limits or (decoder.limits if decoder else load_settings().limits), decoder)
        return reader

    def _setup(self, models: Registry, limits: Limits, decoder: DecoderPool | None) -> None:
        self.models = models
        self.limits = limits  # the function's, for every model
        self.decoder = decoder

    def close(self) -> None:
        """Stop the decoding worker, if any (it also stops when the Reader is garbage-collected)."""
        if self.decoder is not None:
            self.decoder.close()

    # -- reading ---------------------------------------------------------------------------------
    def read(self, image: ImageInput, model: str | Model | None = None, deadline: float | None = None) -> Reading:
        """One image -> its Reading, by `model` (a name or a Model), else by the one model declaring
        its size, else by the default. `deadline` (time.monotonic()) bounds the decoding; by default
        the limits' max_decode_ms from now. Raises UnsupportedImage, ImageTooLarge, ImageTooComplex,
        PayloadTooLarge, UnknownModel: all CaptchaOcrError."""
        data = self._bytes(image)
        chosen = self.models.named(model) if isinstance(model, str) else model or self.model_for_size(data)
        config = chosen.config
        if deadline is None:
            deadline = time.monotonic() + self.limits.max_decode_ms / 1000
        prepared = self._prepare(data, config.height, config.width, config.gray, deadline)
        result = chosen.recognizer.recognize(prepared.tensor)
        solved = answer(result.text) if config.task == "arithmetic" else Answer(None)
        return Reading(result.text, result.confidence, tuple(CharReading(c.char, c.confidence) for c in result.chars),
                       chosen.name, prepared.source_size, prepared.source_format, config.task, *solved)

    def read_many(self, images: Iterable[ImageInput], model: str | Model | None = None) -> list[Reading | ApiError]:
        """Each image's Reading, or the error that image alone got; one decoding deadline for all."""
        deadline = time.monotonic() + self.limits.max_decode_ms / 1000
        results: list[Reading | ApiError] = []
        for image in images:
            try:
                results.append(self.read(image, model, deadline))
            except ApiError as error:
                results.append(error)
        return results

    def slide(self, background: ImageInput, piece: ImageInput | None = None, full: ImageInput | None = None,
              deadline: float | None = None) -> Gap:
        """Where a slider's piece goes: from the `piece`, or from the background without the gap (`full`),
        both measured (slider.py); from the background alone, by the gap detector (detector/). Every
        image passes the same screen and size limits as a captcha; positions are the background's pixels."""
        if piece is not None and full is not None:
            raise InvalidRequest("send the piece or the background without the gap (full), not both")
        detector = self.gap_detector() if piece is None and full is None else None
        if deadline is None:
            deadline = time.monotonic() + self.limits.max_decode_ms / 1000
        images = [image for image in (background, piece, full) if image is not None]
        pixels = [self._rgba(self._bytes(image), deadline) for image in images]
        if detector is not None:
            return detector.find(pixels[0])
        return match_piece(*pixels) if full is None else compare_backgrounds(*pixels)

    def use_gap_detector(self, detector: GapDetector) -> None:
        """Read backgrounds alone with this detector (e.g. one slide-train fine-tuned) instead of the shipped one."""
        with _DETECTOR_LOCK:
            self._detector = detector

    def gap_detector(self) -> GapDetector:
        """The gap detector for a background alone (detector/), loaded on first use; GapDetectorMissing
        where this package was built without one."""
        with _DETECTOR_LOCK:
            if not hasattr(self, "_detector"):
                self._detector = GapDetector.shipped()
        if self._detector is None:
            raise GapDetectorMissing("finding the gap in a background alone needs the gap detector, which this "
                                     "package was built without: send the piece, or the background without the gap")
        return self._detector

    def _rgba(self, data: bytes, deadline: float) -> np.ndarray:
        if self.decoder is not None:
            return self.decoder.rgba(data, deadline)
        return decode_rgba(data, self.limits)

    def model_for_size(self, data: bytes) -> Model:
        """The one model declaring the image's size, read from its header (budget.screen), else the default."""
        if not self.models.chooses_by_size:
            return self.models.default
        try:
            size = screen(data, self.limits).size
        except ApiError:
            return self.models.default  # the preprocessing gives the image's own error
        return self.models.for_size(size)

    def _prepare(self, data: bytes, height: int, width: int, gray: str, deadline: float) -> PreparedImage:
        if self.decoder is not None:
            return self.decoder.prepare(data, height, width, gray, deadline)
        return preprocess(data, height, width, self.limits, gray)

    def _bytes(self, image: ImageInput) -> bytes:
        """The encoded image: bytes as given, a file's bytes (its size checked before it is read), or
        a PIL image saved losslessly as PNG."""
        limit = self.limits.max_decoded_bytes
        if isinstance(image, (bytes, bytearray, memoryview)):
            data = bytes(image)
        elif isinstance(image, (str, os.PathLike)):
            path = Path(image)
            try:
                size = path.stat().st_size
                if size > limit:
                    raise PayloadTooLarge(f"{path.name[:64]} is {size} bytes; the limit is {limit}")
                data = path.read_bytes()
            except OSError as error:
                raise UnsupportedImage(f"cannot read {str(path)[:100]}: {error.strerror or error}") from None
        elif isinstance(image, Image.Image):
            out = io.BytesIO()
            image.save(out, format="PNG", compress_level=1)
            data = out.getvalue()
        else:
            raise UnsupportedImage(f"read() takes bytes, a path or a PIL image, not {type(image).__name__}")
        if len(data) > limit:
            raise PayloadTooLarge(f"image is {len(data)} bytes; the limit is {limit}")
        return data

