"""Routes, the error -> status mapping, and one structured log line per request.

Flow: events (what SCF sent) -> here (which route) -> payload (bytes) -> imaging (tensor) ->
runtime (text) -> here -> events (integrated reply). `handle` never raises: a client error is a
4xx with a machine-readable code, anything unexpected a 500 `InternalError` with no stack trace.
"""

from __future__ import annotations

import base64
import json
import logging
import platform
import random
import sys
import time
import uuid
from contextvars import ContextVar
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import parse_qs

from captcha_ocr import __version__, web
from captcha_ocr.budget import JPEG_SIGNATURE, screen
from captcha_ocr.errors import (
    ApiError,
    BatchTooLarge,
    DecoderCrashed,
    DecoderTimedOut,
    GapDetectorMissing,
    InternalError,
    InvalidJson,
    InvalidRequest,
    MethodNotAllowed,
    MissingImage,
    NotFound,
    PayloadTooLarge,
    SamplesUnavailable,
    UnsupportedMediaType,
)
from captcha_ocr.events import Request, integrated_response, parse_event, single_values
from captcha_ocr.isolation import DecoderPool
from captcha_ocr.payload import decode_image_base64
from captcha_ocr.reader import Reader
from captcha_ocr.registry import Model, Registry, load_registry
from captcha_ocr.settings import Settings, load_settings

log = logging.getLogger("captcha_ocr")
IMAGE_KEYS = ("base64Image", "image")
MODEL_KEY = "model"  # names the model to read with, wherever the image is given (or in the query string)
RAW_IMAGE_TYPES = ("application/octet-stream",)
# path -> method -> the App method that answers it ("INVOKE": a direct invoke, no HTTP); OPTIONS is
# answered on every path for CORS preflights
ROUTES: dict[str, dict[str, str]] = {
    "/": {"GET": "root", "POST": "recognize", "INVOKE": "recognize"},
    "/recognize": {"GET": "recognize", "POST": "recognize", "INVOKE": "recognize"},
    "/health": {"GET": "health"},
    "/demo": {"GET": "demo"},
    "/sample": {"GET": "sample"},
    "/slide": {"POST": "slide", "INVOKE": "slide"},
}
SLIDER_KEYS = ("background", "piece", "full")  # POST /slide's JSON fields: base64 images
HTML = "text/html; charset=utf-8"


class Reply(NamedTuple):
    status: int
    body: dict[str, Any] | str | None  # a JSON document, a page, or nothing (204)
    headers: dict[str, str] = {}


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


_request_log: ContextVar[dict[str, Any] | None] = ContextVar("request_log", default=None)


def add_log_fields(replace: bool = True, **fields: Any) -> None:
    """Add keys to the current request's log line (request-scoped, thread-safe; outside a request,
    e.g. a route called directly, it does nothing). replace=False keeps a value already there."""
    current = _request_log.get()
    if current is not None:
        current.update(fields if replace else {k: v for k, v in fields.items() if k not in current})


class App:
    def __init__(self, models: Registry, decoder: DecoderPool | None = None, settings: Settings | None = None) -> None:
        self.models = models
        self.settings = settings or (Settings(decoder.limits) if decoder else load_settings())
        self.limits = self.settings.limits  # the function's, whichever model reads the image
        # THE way from bytes to a reading, decoding in a worker process held to the limits (isolation.py)
        self.reader = Reader.from_models(models, self.limits, decoder or DecoderPool(self.limits))

    # -- entry -------------------------------------------------------------------------------
    def handle(self, event: object, context: object = None) -> dict[str, Any]:
        started = time.perf_counter()
        fields: dict[str, Any] = {"requestId": uuid.uuid4().hex, "route": None}
        status, body, headers = 500, None, {}
        try:
            request = parse_event(event, context)
            # the route only when it is one of ours: an unknown path is the client's text, never logged
            fields.update(requestId=request.request_id, method=request.method,
                          route=request.path if request.path in ROUTES else None,
                          payloadBytes=len(request.body) or sum(map(len, request.query.values())))
            token = _request_log.set(fields)
            try:
                status, body, headers = self._dispatch(request)
            finally:
                _request_log.reset(token)
        except ApiError as error:
            status, body = error.status, error.body()
            if isinstance(error, MethodNotAllowed):
                headers = {"Allow": allowed_methods(fields["route"])}
        except Exception as error:  # never let a client see a stack trace
            status, body = InternalError.status, InternalError("internal error").body()
            fields["exception"] = type(error).__name__
        elapsed_ms = round((time.perf_counter() - started) * 1000, 3)
        if isinstance(body, dict):
            body = {**body, "elapsedMs": elapsed_ms, "requestId": fields["requestId"]}
        code = body.get("error", {}).get("code") if isinstance(body, dict) else None
        log_event(**fields, status=status, code=code, elapsedMs=elapsed_ms)
        return integrated_response(status, body, headers)

    def _dispatch(self, request: Request) -> Reply:
        methods = ROUTES.get(request.path)
        if methods is None:
            raise NotFound(f"no route {request.path[:100]!r}; use / (recognise), /slide, /health or /demo")
        if request.method == "OPTIONS":
            return Reply(204, None)
        if request.method not in methods:
            raise MethodNotAllowed(f"{request.method} is not allowed on {request.path}")
        return getattr(self, methods[request.method])(request)

    # -- routes ------------------------------------------------------------------------------
    def root(self, request: Request) -> Reply:
        """`/` from a browser (HTML accepted, no query) is the demo page; from anything else, recognition."""
        if not request.query and "text/html" in request.headers.get("accept", ""):
            return self.demo(request)
        return self.recognize(request)

    def demo(self, request: Request) -> Reply:
        return Reply(200, web.page(web.DEMO_PAGE), {"Content-Type": HTML, "Cache-Control": "no-store"})

    def sample(self, request: Request) -> Reply:
        """A fresh captcha of the model's charset and lengths (`model`, else the default's), drawn by
        the `captcha` library; with kind=slider, a fresh slider (slider_samples.py) and its gap."""
        if request.query.get("kind") == "slider":
            from captcha_ocr.slider_samples import generate_slider, random_seed

            slider = generate_slider(random_seed())
            mime = "image/jpeg" if slider.background.startswith(JPEG_SIGNATURE) else "image/png"
            return Reply(200, {"ok": True, "mime": mime, "background": base64.b64encode(slider.background).decode(),
                               "piece": base64.b64encode(slider.piece).decode(),
                               "gap": {"x": slider.gap.x, "y": slider.gap.y, "width": slider.gap.width,
                                       "height": slider.gap.height}})
        try:
            from captcha_ocr.synthetic import synthetic_captcha  # imported on the first sample, not at cold start
        except ImportError as exc:
            raise SamplesUnavailable("samples need the captcha library: pip install captcha") from exc
        config = (self._named_model(request.query) or self.models.default).config
        text, png = synthetic_captcha(random.SystemRandom().getrandbits(63), config.charset, config.lengths)
        encoded = base64.b64encode(png).decode()
        return Reply(200, {"ok": True, "text": text, "mime": "image/png", "base64Image": encoded})

    def health(self, request: Request) -> Reply:
        runtime = self.models.default.recognizer.runtime
        return Reply(200, {
            "ok": True,
            "service": "captcha-ocr",
            "version": __version__,
            "model": self.models.default.describe(),  # the default: it answers requests that name none
            "models": [model.describe() for model in self.models],
            "runtime": {"package": runtime.package, "version": runtime.version},
            "limits": self.settings.describe(),
            "slider": self._slider_health(),
        })

    def slide(self, request: Request) -> Reply:
        """A slider: `{"background", "piece"}` or `{"background", "full"}` (base64) -> where the gap is."""
        source = request.direct if request.direct is not None else self._body_content(request)
        if not isinstance(source, dict):
            raise InvalidRequest('send a JSON object: {"background": <base64>, "piece": <base64>} or '
                                 '{"background": <base64>, "full": <base64>}')
        unknown = sorted(set(source) - set(SLIDER_KEYS))
        if unknown:
            raise InvalidRequest(f"unknown field {unknown[0][:32]!r}; /slide takes {', '.join(SLIDER_KEYS)}")
        if "background" not in source:
            raise MissingImage('no "background": /slide needs the background (base64), with the piece or the '
                               'background without the gap ("full")')
        images = {key: decode_image_base64(source[key], self.limits) for key in SLIDER_KEYS if key in source}
        add_log_fields(images=len(images), mode="+".join(images))
        deadline = time.monotonic() + self.limits.max_decode_ms / 1000
        gap = self.reader.slide(images["background"], images.get("piece"), images.get("full"), deadline)
        return Reply(200, gap.as_dict())

    def _slider_health(self) -> dict[str, Any]:
        """What POST /slide finds a gap with: the two measured methods, and the detector if this package has one."""
        try:
            detector = self.reader.gap_detector()
        except GapDetectorMissing:
            return {"methods": ["piece", "difference"], "detector": None}
        return {"methods": ["piece", "difference", "detector"],
                "detector": {"file": detector.config["model_file"], "sha256": detector.config["sha256"],
                             "input": detector.config["input"]}}

    def recognize(self, request: Request) -> Reply:
        """One image or a batch; each read by the model named, else by the one model declaring its
        size, else by the default. The reply (and each batch entry) names the model that read it."""
        values, is_batch, named = self._image_values(request)
        add_log_fields(images=len(values))
        images = [self._image_bytes_or_error(value) for value in values]
        if len(images) > 1:
            self._check_batch_pixels(images)
        deadline = time.monotonic() + self.limits.max_decode_ms / 1000  # one decoding budget for all images
        if not is_batch:
            if isinstance(images[0], ApiError):
                raise images[0]
            return Reply(200, self._recognize_one(images[0], named, deadline))
        results = [self._result_or_error(image, named, deadline) for image in images]
        return Reply(200, {"ok": True, "results": results, "model": (named or self.models.default).summary()})

    def _result_or_error(self, image: bytes | ApiError, named: Model | None, deadline: float) -> dict[str, Any]:
        """One batch entry: its reading, or its own error body (one bad image does not fail the batch)."""
        if isinstance(image, ApiError):
            return image.body()
        try:
            return self._recognize_one(image, named, deadline)
        except ApiError as error:
            return error.body()

    def _check_batch_pixels(self, images: list[bytes | ApiError]) -> None:
        """The batch's pixel total from the headers alone (budget.screen), before any image is decoded."""
        limits, pixels = self.limits, 0
        for image in images:
            if isinstance(image, bytes):
                try:
                    pixels += screen(image, limits).pixels  # an animation: every frame read
                except ApiError:
                    continue  # this entry gets its own error when it is recognised
        if pixels > limits.max_batch_pixels:
            raise BatchTooLarge(f"the images hold {pixels} pixels in all; the limit is {limits.max_batch_pixels}")

    def _image_bytes_or_error(self, value: object) -> bytes | ApiError:
        try:
            return self._image_bytes(value)
        except ApiError as error:
            return error

    def _image_bytes(self, value: object) -> bytes:
        """A raw body's bytes as they are (the reader checks their size), else the base64 decoded."""
        return value if isinstance(value, bytes) else decode_image_base64(value, self.limits)

    def _recognize_one(self, data: bytes, named: Model | None, deadline: float) -> dict[str, Any]:
        try:
            reading = self.reader.read(data, named, deadline)
        except (DecoderCrashed, DecoderTimedOut) as error:
            add_log_fields(decoder=error.reason)  # its worker was replaced: the log says why, never the image
            raise
        add_log_fields(replace=False, imageSize="{}x{}".format(*reading.source_size),
                       imageFormat=reading.source_format, model=reading.model)  # the first image's, for a batch
        body = {
            "ok": True,
            "text": reading.text,
            "confidence": reading.confidence,
            "chars": [{"char": c.char, "confidence": c.confidence} for c in reading.chars],
            "model": self.models.named(reading.model).summary(),
        }
        if reading.task == "arithmetic":  # what the captcha asks for; a reading with none says why
            body["answer"] = reading.answer
            if reading.answer is None:
                body["answerError"] = reading.answer_error
        return body

    def _named_model(self, mapping: dict[str, Any]) -> Model | None:
        name = mapping.get(MODEL_KEY)
        if name is None or name == "":
            return None
        if not isinstance(name, str):
            raise InvalidRequest('"model" must be the name of a model, a string')
        return self.models.named(name)

    # -- where the image is in the request --------------------------------------------------
    def _image_values(self, request: Request) -> tuple[list[object], bool, Model | None]:
        """The image values, whether they are a batch, and the model named with them (a raw body's
        model, and any the body does not name, comes from the query string)."""
        if request.direct is not None:
            source: dict[str, Any] | object = request.direct
        elif request.method == "GET" or not request.body:
            source = request.query
        else:
            source = self._body_content(request)
        if not isinstance(source, dict):
            return [source], False, self._named_model(request.query)
        values, is_batch = self._values_from_mapping(source)
        return values, is_batch, self._named_model(source if MODEL_KEY in source else request.query)

    def _body_content(self, request: Request) -> dict[str, Any] | bytes | str:
        """A JSON or form body's fields, or the one image a raw body is."""
        limits = self.limits
        if len(request.body) > limits.max_body_bytes:
            raise PayloadTooLarge(f"body is {len(request.body)} bytes; the limit is {limits.max_body_bytes}")
        content_type = request.content_type
        if content_type.startswith("image/") or content_type in RAW_IMAGE_TYPES:
            return request.body
        try:
            text = request.body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise UnsupportedMediaType(
                "body is binary: send it with Content-Type image/* or application/octet-stream"
            ) from exc
        if content_type == "application/json" or (content_type in ("", "text/plain") and text.lstrip().startswith("{")):
            return self._parse_json(text)
        if content_type == "application/x-www-form-urlencoded":
            try:
                form = parse_qs(text, keep_blank_values=True, max_num_fields=limits.max_body_values)
            except ValueError as exc:
                raise InvalidRequest(f"form body has more than {limits.max_body_values} fields") from exc
            return single_values(form, "form field")
        if content_type in ("", "text/plain"):
            return text
        raise UnsupportedMediaType(
            f"Content-Type {content_type[:64]!r} is not supported; use application/json, "
            "application/x-www-form-urlencoded, text/plain or image/*"
        )

    def _parse_json(self, text: str) -> dict[str, Any]:
        """A JSON object, its size bounded before parsing: every value costs a Python object."""
        limit = self.limits.max_body_values
        if text.count(",") + text.count("[") + text.count("{") > limit:
            raise InvalidJson(f"JSON body holds more than {limit} values")
        try:
            document = json.loads(text)
        except (ValueError, RecursionError) as exc:  # ValueError: bad syntax, or an integer of 4,300+ digits
            raise InvalidJson("body is not valid JSON") from exc
        if not isinstance(document, dict):
            raise InvalidJson('JSON body must be an object such as {"base64Image": "..."}')
        return document

    def _values_from_mapping(self, mapping: dict[str, Any]) -> tuple[list[object], bool]:
        if "images" in mapping:
            images = mapping["images"]
            if not isinstance(images, list):
                raise InvalidRequest('"images" must be a list of base64 strings')
            if not images:
                raise MissingImage('"images" is empty')
            if len(images) > self.limits.max_batch:
                raise BatchTooLarge(f"{len(images)} images in one request; the limit is {self.limits.max_batch}")
            return images, True
        for key in IMAGE_KEYS:
            if key in mapping:
                return [mapping[key]], False
        raise MissingImage("no image: send base64Image (query string, JSON body, form or raw body)")


def allowed_methods(path: str | None) -> str:
    """The `Allow` header of a 405: the route's HTTP methods and OPTIONS, which every route answers."""
    return ", ".join([*(m for m in ROUTES.get(path or "", {}) if m != "INVOKE"), "OPTIONS"])


def create_app(model_dir: Path | None = None, models_dir: Path | None = None) -> App:
    """Load the function's settings and check every model once (cold start; registry.load_registry).
    Raises, after logging which model or setting is unusable and why, if one is. The log names the
    Python and the glibc it runs on, so the first live deploy confirms the base image."""
    started = time.perf_counter()
    try:
        settings = load_settings()
        models = load_registry(model_dir, models_dir)
    except Exception as error:
        log_event(event="startup_failed", error=f"{type(error).__name__}: {error}"[:2000])
        raise
    default, runtime = models.default, models.default.recognizer.runtime
    app = App(models, settings=settings)
    log_event(event="cold_start", model=default.name, sha256=default.config.sha256, models=models.names,
              runtime=runtime.package, runtimeVersion=runtime.version, python=platform.python_version(),
              libc=" ".join(platform.libc_ver()).strip(), elapsedMs=round((time.perf_counter() - started) * 1000, 1))
    return app
