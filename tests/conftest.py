"""Shared fixtures: the shipped model's app, fresh captchas, and event builders."""

from __future__ import annotations

import base64
import dataclasses
import io
import json
import os
import tempfile
import threading
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from captcha_ocr.app import App, create_app
from captcha_ocr.config import load_config
from captcha_ocr.deploy import bundle as build_bundle
from captcha_ocr.evaluation import Labelled, synthetic_samples
from captcha_ocr.events import query_event
from captcha_ocr.registry import MODELS_DIR_ENV, SHIPPED_MODEL_DIR, copy_model, shipped_named_folders
from captcha_ocr.server import make_server

REPO = Path(__file__).resolve().parent.parent
# the tests serve the models they make, never a models/ folder a user keeps in the checkout
os.environ.setdefault(MODELS_DIR_ENV, tempfile.mkdtemp(prefix="captcha-ocr-no-models-"))
SHARED_DATASET = REPO.parent / "shared" / "datasets" / "captcha_images_v2"
MODEL_DIR = Path(os.environ.get("CAPTCHA_OCR_MODEL_DIR") or SHIPPED_MODEL_DIR)
# the package's named models (the general model), which every function serves beside its default
SHIPPED_NAMED = [load_config(folder).name for folder in shipped_named_folders(MODEL_DIR)]
# their files in the package (the wheel, the bundle): each one's config.json and served model file
SHIPPED_NAMED_FILES = {f"captcha_ocr/models/{folder.name}/{name}" for folder in shipped_named_folders(MODEL_DIR)
                       for name in ("config.json", load_config(folder).model_file)}
TEST_SEED = 7_000_001  # eval-stream seed used by tests only, never by training


BUNDLE_PYTHON = "3.10"  # SCF's newest Python runtime, which the bundle targets
# the interpreter packages serving supports (runtime.py's chain, less its TensorFlow fallback)
SERVING_RUNTIMES = ("ai-edge-litert", "tflite-runtime")


@pytest.fixture(scope="session")
def bundle(tmp_path_factory) -> Path:
    """The SCF zip, built once per session for Python 3.10 and glibc 2.17."""
    return build_bundle.build(tmp_path_factory.mktemp("build"), BUNDLE_PYTHON, "2.17", "3.4.19", MODEL_DIR)


@pytest.fixture(scope="session")
def unzipped_bundle(bundle: Path, tmp_path_factory) -> tuple[Path, str]:
    """The bundle unzipped as SCF unzips it, and the Python 3.10 to run it with (skips without one)."""
    python = build_bundle.find_python(BUNDLE_PYTHON)
    if python is None:
        pytest.skip(f"Python {BUNDLE_PYTHON} is not installed here; the bundle cannot be run under it")
    target = tmp_path_factory.mktemp("unzipped")
    zipfile.ZipFile(bundle).extractall(target)
    return target, python


@pytest.fixture(scope="session")
def layered_build(tmp_path_factory) -> build_bundle.Layered:
    """The function's code zip and its dependency layer zip, built once per session."""
    return build_bundle.build_layered(tmp_path_factory.mktemp("layered"), BUNDLE_PYTHON, "2.17", "3.4.19", MODEL_DIR)


@pytest.fixture(scope="session")
def unzipped_layered(layered_build, tmp_path_factory) -> tuple[Path, Path, str]:
    """The layered deploy unzipped as SCF lays it out: (the function's folder, the layer's, Python 3.10)."""
    python = build_bundle.find_python(BUNDLE_PYTHON)
    if python is None:
        pytest.skip(f"Python {BUNDLE_PYTHON} is not installed here; the bundle cannot be run under it")
    built = layered_build
    code, layer = tmp_path_factory.mktemp("var-user"), tmp_path_factory.mktemp("opt")
    zipfile.ZipFile(built.code).extractall(code)
    zipfile.ZipFile(built.layer).extractall(layer)
    return code, layer, python


@pytest.fixture(scope="session")
def app() -> App:
    return create_app(MODEL_DIR)


@pytest.fixture(scope="session")
def base_url(app: App):
    """The local API Gateway on a free loopback port, for the whole session."""
    server = make_server(app.handle, "127.0.0.1", 0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.effective_port}"
    server.close()


@pytest.fixture(scope="session")
def fresh_captchas(app: App) -> list[Labelled]:
    return synthetic_samples(60, TEST_SEED, app.models.default.config.charset, app.models.default.config.lengths)


@pytest.fixture(scope="session")
def captcha_png(fresh_captchas: list[Labelled]) -> bytes:
    return fresh_captchas[0].data


def model_variant(models_dir: Path, folder_name: str, **changes) -> Path:
    """The shipped model's file in models_dir/folder_name, named so, its config changed: e.g. an
    upper-case charset, which reads "K7DM" where the shipped model reads "k7dm", so a reply shows
    which model answered, or declared source_sizes."""
    folder = models_dir / folder_name
    copy_model(MODEL_DIR, folder, folder_name)
    dataclasses.replace(load_config(folder), **changes).save(folder)
    return folder


UPPER = load_config(MODEL_DIR).charset.upper()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def encode(image: Image.Image, format: str = "PNG", **options) -> bytes:
    out = io.BytesIO()
    image.save(out, format=format, **options)
    return out.getvalue()


def get_event(value: object = None, path: str = "/", key: str = "base64Image", model: str | None = None,
              **extra) -> dict:
    query = {**({} if value is None else {key: value}), **({} if model is None else {"model": model})}
    return {**query_event(query, path), **extra}


def post_event(body: str, content_type: str = "application/json", path: str = "/", **extra) -> dict:
    return {"httpMethod": "POST", "path": path, "queryString": {}, "headers": {"content-type": content_type},
            "body": body, **extra}


def call(app: App, event: object) -> tuple[int, dict | None]:
    reply = app.handle(event, None)
    return reply["statusCode"], (json.loads(reply["body"]) if reply["body"] else None)


def readings_disagree_across_threads(read, images: list[bytes], threads: int = 6, rounds: int = 10) -> list[str]:
    """`read` (image bytes -> text) called from several threads at once, each image read many times:
    every reading that differs from the one a single thread got first."""
    expected = [read(image) for image in images]
    failures: list[str] = []

    def work(offset: int) -> None:
        for round_ in range(rounds):
            index = (offset + round_) % len(images)
            text = read(images[index])
            if text != expected[index]:
                failures.append(f"thread {offset}: {text!r} != {expected[index]!r}")

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    return failures
