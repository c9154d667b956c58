"""Client errors: each carries its HTTP status and a machine-readable code for the reply body."""

from __future__ import annotations


class ApiError(Exception):
    status: int = 400
    code: str = "BadRequest"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


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


class ImageTooLarge(ApiError):
    status = 413
    code = "ImageTooLarge"


class UnsupportedImage(ApiError):
    status = 415
    code = "UnsupportedImage"


class NotFound(ApiError):
    status = 404
    code = "NotFound"


class MethodNotAllowed(ApiError):
    status = 405
    code = "MethodNotAllowed"


class UnsupportedMediaType(ApiError):
    status = 415
    code = "UnsupportedMediaType"
