"""Every error the library raises, under one base class, `CaptchaOcrError`.

`ApiError`s are about an image or a request: each carries its HTTP status and a machine-readable
code for the reply body (the function's replies, and what `Reader.read` raises). `UserError` is the
other family: what a person running a command can fix (a bad config, missing credentials, a failed
deploy step); the CLI prints it as one line and exits 1.
"""

from __future__ import annotations


class CaptchaOcrError(Exception):
    """The base of every error captcha_ocr raises on purpose: `except CaptchaOcrError` catches them all."""


class UserError(CaptchaOcrError):
    """A problem the user can fix; `captcha-ocr` prints the message, not a traceback."""


class ApiError(CaptchaOcrError):
    status: int = 400
    code: str = "BadRequest"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def body(self) -> dict:
        """The reply body every error has: `{"ok": false, "error": {"code", "message"}}`."""
        return {"ok": False, "error": {"code": self.code, "message": self.message}}


class MissingImage(ApiError):
    code = "MissingImage"


class InvalidBase64(ApiError):
    code = "InvalidBase64"


class InvalidJson(ApiError):
    code = "InvalidJson"


class InvalidRequest(ApiError):
    code = "InvalidRequest"


class PayloadTooLarge(ApiError):
    status = 413
    code = "PayloadTooLarge"


class BatchTooLarge(ApiError):
    status = 413
    code = "BatchTooLarge"


class NoGapFound(ApiError):
    """Slider images that are valid but show no gap: two identical backgrounds, a fully transparent piece."""

    status = 422
    code = "NoGapFound"


class GapDetectorMissing(ApiError):
    """A slider sent as its background alone, where this package was built without the gap detector."""

    status = 501
    code = "GapDetectorMissing"


class ImageTooLarge(ApiError):
    status = 413
    code = "ImageTooLarge"


class ImageTooComplex(ApiError):
    """Within the size limits, but its structure would cost more than a request may (e.g. JPEG scans)."""

    status = 413
    code = "ImageTooComplex"


class UnsupportedImage(ApiError):
    status = 415
    code = "UnsupportedImage"


class Forbidden(ApiError):
    """A local tool's request that does not come from its own page (Host, Origin, token)."""

    status = 403
    code = "Forbidden"


class NotFound(ApiError):
    status = 404
    code = "NotFound"


class UnknownModel(ApiError):
    """A `model` that this function does not serve; the message lists the names it does."""

    status = 404
    code = "UnknownModel"


class MethodNotAllowed(ApiError):
    status = 405
    code = "MethodNotAllowed"


class UnsupportedMediaType(ApiError):
    status = 415
    code = "UnsupportedMediaType"


class SamplesUnavailable(ApiError):
    """/sample without the `captcha` library installed."""

    status = 503
    code = "SamplesUnavailable"


class InternalError(ApiError):
    """A bug: the reply says only this, never a stack trace or detail."""

    status = 500
    code = "InternalError"


class DecoderCrashed(UnsupportedImage):
    """The worker decoding the image died or answered nonsense (isolation.py); `reason` is for the log."""

    def __init__(self, reason: str) -> None:
        super().__init__("image could not be decoded (the decoder failed on it)")
        self.reason = reason


class DecoderTimedOut(ImageTooComplex):
    """Decoding ran past the request's time budget and its worker was stopped; `reason` is for the log."""

    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason
