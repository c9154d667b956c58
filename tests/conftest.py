"""Shared fixtures: the shipped model's app, fresh captchas, and event builders."""

from __future__ import annotations

import base64
import io
import json
import os
import threading
from pathlib import Path

import pytest
from PIL import Image

from captcha_ocr.app import App, create_app
from captcha_ocr.evaluation import Labelled, synthetic_samples
from captcha_ocr.server import make_server, synthetic_sample_maker

REPO = Path(__file__).resolve().parent.parent
SHARED_DATASET = REPO.parent / "shared" / "datasets" / "captcha_images_v2"
MODEL_DIR = Path(os.environ.get("CAPTCHA_OCR_MODEL_DIR") or REPO)
TEST_SEED = 7_000_001  # eval-stream seed used by tests only, never by training


@pytest.fixture(scope="session")
def app() -> App:
    return create_app(MODEL_DIR)


@pytest.fixture(scope="session")
def base_url(app: App):
    """The local API Gateway on a free loopback port, for the whole session."""
    server = make_server(app.handle, "127.0.0.1", 0, synthetic_sample_maker(app.config.charset, app.config.lengths))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def fresh_captchas(app: App) -> list[Labelled]:
    return synthetic_samples(60, TEST_SEED, app.config.charset, app.config.lengths)


@pytest.fixture(scope="session")
def captcha_png(fresh_captchas: list[Labelled]) -> bytes:
    return fresh_captchas[0].data


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def encode(image: Image.Image, format: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=format, **options)
    return out.getvalue()


def get_event(value: object = None, path: str = "/", key: str = "base64Image", **extra) -> dict:
    query = {} if value is None else {key: value}
    return {"httpMethod": "GET", "path": path, "queryString": query, "headers": {}, **extra}


def post_event(body: str, content_type: str = "application/json", path: str = "/", **extra) -> dict:
    return {"httpMethod": "POST", "path": path, "queryString": {}, "headers": {"content-type": content_type},
            "body": body, **extra}


def call(app: App, event: object) -> tuple[int, dict | None]:
    reply = app.handle(event, None)
    return reply["statusCode"], (json.loads(reply["body"]) if reply["body"] else None)
