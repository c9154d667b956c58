"""Routes, the error -> status mapping, and one structured log line per request.

Flow: events (what SCF sent) -> here (which route) -> payload (bytes) -> imaging (tensor) ->
runtime (text) -> here -> events (integrated reply). `handle` never raises: a client error is a
4xx with a machine-readable code, anything unexpected a 500 `InternalError` with no stack trace.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from captcha_ocr import __version__
from captcha_ocr.config import ModelConfig, load_config
from captcha_ocr.errors import (
    ApiError,
    BatchTooLarge,
    InvalidJson,
    InvalidRequest,
    MethodNotAllowed,
    MissingImage,
    NotFound,
    PayloadTooLarge,
    UnsupportedMediaType,
)
from captcha_ocr.events import Request, integrated_response, parse_event
from captcha_ocr.imaging import preprocess
from captcha_ocr.payload import decode_image_base64
from captcha_ocr.runtime import Recognizer

log = logging.getLogger("captcha_ocr")
MODEL_DIR_ENV = "CAPTCHA_OCR_MODEL_DIR"
IMAGE_KEYS = ("base64Image", "image")
RAW_IMAGE_TYPES = ("application/octet-stream",)
ROUTES = {"/": ("GET", "POST", "INVOKE"), "/recognize": ("GET", "POST", "INVOKE"), "/health": ("GET",)}


def configure_logging() -> None:
    """JSON lines on stdout, which SCF ships to its log service; idempotent."""
    if not any(getattr(h, "_captcha_ocr", False) for h in log.handlers):
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._captcha_ocr = True  # type: ignore[attr-defined]
        log.addHandler(handler)
    log.setLevel(logging.INFO)
    log.propagate = False


def log_event(**fields: Any) -> None:
    log.info(json.dumps(fields, ensure_ascii=True, separators=(",", ":")))


class App:
    def __init__(self, config: ModelConfig, recognizer: Recognizer) -> None:
        self.config = config
        self.recognizer = recognizer
        self.model_info = {"name": config.name, "sha256": config.sha256}

    # -- entry -------------------------------------------------------------------------------
    def handle(self, event: object, context: object = None) -> dict[str, Any]:
        started = time.perf_counter()
        fields: dict[str, Any] = {"requestId": uuid.uuid4().hex, "route": None}
        status, body, headers = 500, None, {}
        try:
            request = parse_event(event, context)
            fields.update(requestId=request.request_id, method=request.method, route=request.path,
                          payloadBytes=len(request.body) or sum(map(len, request.query.values())))
            status, body, headers = self._dispatch(request, fields)
        except ApiError as error:
            status, body = error.status, {"ok": False, "error": {"code": error.code, "message": error.message}}
            if isinstance(error, MethodNotAllowed):
                headers = {"Allow": ", ".join(m for m in ROUTES.get(fields["route"], ()) if m != "INVOKE")}
        except Exception as error:  # never let a client see a stack trace
            status = 500
            body = {"ok": False, "error": {"code": "InternalError", "message": "internal error"}}
            fields["exception"] = type(error).__name__
        elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
        if body is not None:
            body = {**body, "elapsedMs": elapsed_ms, "requestId": fields["requestId"]}
        code = body.get("error", {}).get("code") if body else None
        log_event(**fields, status=status, code=code, elapsedMs=elapsed_ms)
        return integrated_response(status, body, headers)

    def _dispatch(self, request: Request, fields: dict[str, Any]) -> tuple[int, dict | None, dict]:
        if request.method == "OPTIONS" and request.path in ROUTES:
            return 204, None, {}
        methods = ROUTES.get(request.path)
        if methods is None:
            raise NotFound(f"no route {request.path[:100]!r}; use / (recognise) or /health")
        if request.method not in methods:
            raise MethodNotAllowed(f"{request.method[:16]} is not allowed on {request.path}")
        if request.path == "/health":
            return 200, self.health(), {}
        return 200, self.recognize(request, fields), {}

    # -- routes ------------------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        runtime = self.recognizer.runtime
        return {
            "ok": True,
            "service": "captcha-ocr",
            "version": __version__,
            "model": {**self.model_info, "file": self.config.model_file},
            "charset": self.config.charset,
            "lengths": list(self.config.lengths),
            "input": {"height": self.config.height, "width": self.config.width},
            "runtime": {"package": runtime.package, "version": runtime.version},
            "limits": self.config.limits.__dict__,
        }

    def recognize(self, request: Request, fields: dict[str, Any]) -> dict[str, Any]:
        values, is_batch = self._image_values(request)
        fields["images"] = len(values)
        if not is_batch:
            return {**self._recognize_one(values[0], fields), "model": self.model_info}
        results = []
        for value in values:
            try:
                results.append(self._recognize_one(value, fields))
            except ApiError as error:
                results.append({"ok": False, "error": {"code": error.code, "message": error.message}})
        return {"ok": True, "results": results, "model": self.model_info}

    def _recognize_one(self, value: object, fields: dict[str, Any]) -> dict[str, Any]:
        limits = self.config.limits
        if isinstance(value, bytes):
            data = value
            if len(data) > limits.max_decoded_bytes:
                raise PayloadTooLarge(f"image is {len(data)} bytes; the limit is {limits.max_decoded_bytes}")
        else:
            data = decode_image_base64(value, limits)
        prepared = preprocess(data, self.config.height, self.config.width, limits.max_pixels)
        fields.setdefault("imageSize", "{}x{}".format(*prepared.source_size))
        fields.setdefault("imageFormat", prepared.source_format)
        result = self.recognizer.recognize(prepared.tensor)
        return {
            "ok": True,
            "text": result.text,
            "confidence": result.confidence,
            "chars": [{"char": c.char, "confidence": c.confidence} for c in result.chars],
        }

    # -- where the image is in the request --------------------------------------------------
    def _image_values(self, request: Request) -> tuple[list[object], bool]:
        if request.direct is not None:
            return self._values_from_mapping(request.direct)
        if request.method == "GET" or not request.body:
            return self._values_from_mapping(request.query)
        return self._values_from_body(request)

    def _values_from_body(self, request: Request) -> tuple[list[object], bool]:
        limits = self.config.limits
        if len(request.body) > limits.max_body_bytes:
            raise PayloadTooLarge(f"body is {len(request.body)} bytes; the limit is {limits.max_body_bytes}")
        content_type = request.content_type
        if content_type.startswith("image/") or content_type in RAW_IMAGE_TYPES:
            return [request.body], False
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnsupportedMediaType(
                "body is binary: send it with Content-Type image/* or application/octet-stream"
            ) from exc
        if content_type == "application/json" or (content_type in ("", "text/plain") and text.lstrip().startswith("{")):
            try:
                document = json.loads(text)
            except (json.JSONDecodeError, RecursionError) as exc:
                raise InvalidJson("body is not valid JSON") from exc
            if not isinstance(document, dict):
                raise InvalidJson('JSON body must be an object such as {"base64Image": "..."}')
            return self._values_from_mapping(document)
        if content_type == "application/x-www-form-urlencoded":
            form = parse_qs(text, keep_blank_values=True, max_num_fields=32)
            return self._values_from_mapping({k: v[-1] for k, v in form.items()})
        if content_type in ("", "text/plain"):
            return [text], False
        raise UnsupportedMediaType(
            f"Content-Type {content_type[:64]!r} is not supported; use application/json, "
            "application/x-www-form-urlencoded, text/plain or image/*"
        )

    def _values_from_mapping(self, mapping: dict[str, Any]) -> tuple[list[object], bool]:
        if "images" in mapping:
            images = mapping["images"]
            if not isinstance(images, list):
                raise InvalidRequest('"images" must be a list of base64 strings')
            if not images:
                raise MissingImage('"images" is empty')
            if len(images) > self.config.limits.max_batch:
                raise BatchTooLarge(f"{len(images)} images in one request; the limit is {self.config.limits.max_batch}")
            return images, True
        for key in IMAGE_KEYS:
            if key in mapping:
                return [mapping[key]], False
        raise MissingImage("no image: send base64Image (query string, JSON body, form or raw body)")


def default_model_dir() -> Path:
    """$CAPTCHA_OCR_MODEL_DIR, else the repo root (where index.py and the shipped model live)."""
    return Path(os.environ.get(MODEL_DIR_ENV) or Path(__file__).resolve().parent.parent)


def create_app(model_dir: Path | None = None) -> App:
    """Load and check the model once (cold start). Raises, after logging why, if it is unusable."""
    model_dir = Path(model_dir or default_model_dir())
    started = time.perf_counter()
    try:
        config = load_config(model_dir)
        recognizer = Recognizer(config, model_dir)
    except Exception as error:
        log_event(event="startup_failed", modelDir=str(model_dir), error=f"{type(error).__name__}: {error}")
        raise
    runtime = recognizer.runtime
    log_event(event="cold_start", model=config.name, sha256=config.sha256, runtime=runtime.package,
              runtimeVersion=runtime.version, elapsedMs=round((time.perf_counter() - started) * 1000, 1))
    return App(config, recognizer)
