"""captcha-ocr: a small, fast captcha reader on TFLite, served from Tencent SCF or called from Python.

    from captcha_ocr import Reader
    print(Reader().read("captcha.png").text)

The names below are imported on first use, so `import captcha_ocr` alone (the bundle builder,
training) loads neither numpy nor an interpreter.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

__version__ = "0.2.0"

__all__ = ["ApiError", "CaptchaOcrError", "CharReading", "ImageTooComplex", "ImageTooLarge", "PayloadTooLarge",
           "Reader", "Reading", "UnknownModel", "UnsupportedImage", "UserError", "__version__"]
_READER_NAMES = ("CharReading", "Reader", "Reading")

if TYPE_CHECKING:
    from captcha_ocr.errors import (
        ApiError,
        CaptchaOcrError,
        ImageTooComplex,
        ImageTooLarge,
        PayloadTooLarge,
        UnknownModel,
        UnsupportedImage,
        UserError,
    )
    from captcha_ocr.reader import CharReading, Reader, Reading


def __getattr__(name: str) -> Any:
    if name in __all__:
        module = "captcha_ocr.reader" if name in _READER_NAMES else "captcha_ocr.errors"
        return getattr(import_module(module), name)
    raise AttributeError(f"module 'captcha_ocr' has no attribute {name!r}")
