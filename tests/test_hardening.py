"""Garbage in, a documented answer out: the bad-input matrix, fuzzing, privacy, concurrency.

`HYPOTHESIS_PROFILE=soak` (see bench/fuzz_soak.sh) runs the property tests with 20,000 examples.
"""

from __future__ import annotations

import ast
import base64
import io
import json
import os
import resource
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, b64, build_bundle, call, encode, get_event, post_event, readings_disagree_across_threads
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from test_imaging import png_header_only

settings.register_profile("ci", max_examples=300, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.register_profile("soak", max_examples=20_000, deadline=None,
                          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def animated_gif() -> bytes:
    frames = [Image.new("P", (160, 60), i) for i in range(3)]
    return encode(frames[0], "GIF", save_all=True, append_images=frames[1:], duration=50)


def cmyk_jpeg(png: bytes) -> bytes:
    return encode(Image.open(io.BytesIO(png)).convert("CMYK"), "JPEG")


def sixteen_bit_png() -> bytes:
    return encode(Image.fromarray((np.arange(160 * 60).reshape(60, 160) * 7).astype(np.uint16)))


def matrix(captcha: bytes) -> list[tuple[str, object, int, str | None]]:
    """(class, event, status, error code or None for a success) for every kind of bad input."""
    huge = "A" * 2_800_004
    return [
        ("missing parameter", get_event(), 400, "MissingImage"),
        ("empty value", get_event(""), 400, "MissingImage"),
        ("valueless key", get_event(None, queryString={"base64Image": None}), 400, "MissingImage"),
        ("whitespace value", get_event("   \n"), 400, "MissingImage"),
        ("list values", get_event(None, queryString={"base64Image": ["a", "b"]}), 400, "InvalidRequest"),
        ("object value", get_event(None, queryString={"base64Image": {"a": 1}}), 400, "InvalidRequest"),
        ("non-base64", get_event("!!not base64!!"), 400, "InvalidBase64"),
        ("impossible base64 length", get_event("AAAAA"), 400, "InvalidBase64"),
        ("base64 of text", get_event(b64(b"just some text, not an image")), 415, "UnsupportedImage"),
        ("base64 of html", get_event(b64(b"<html><body>hi</body></html>")), 415, "UnsupportedImage"),
        ("truncated png", get_event(b64(captcha[: len(captcha) // 2])), 415, "UnsupportedImage"),
        ("truncated jpeg", get_event(b64(cmyk_jpeg(captcha)[:300])), 415, "UnsupportedImage"),
        ("png signature only", get_event(b64(b"\x89PNG\r\n\x1a\n")), 415, "UnsupportedImage"),
        ("decompression bomb", get_event(b64(png_header_only(30000, 30000))), 413, "ImageTooLarge"),
        ("very wide over the pixel limit", get_event(b64(png_header_only(200_000, 21))), 413, "ImageTooLarge"),
        ("payload over the limit", get_event(huge), 413, "PayloadTooLarge"),
        ("body over the limit", post_event("A" * 6_000_001, "text/plain"), 413, "PayloadTooLarge"),
        ("unicode garbage", get_event("图像🙂ünïcødé"), 400, "InvalidBase64"),
        ("NUL bytes", get_event("iVBOR\x00\x00\x00"), 400, "InvalidBase64"),
        ("json not an object", post_event('"base64Image"'), 400, "InvalidJson"),
        ("malformed json", post_event('{"base64Image": '), 400, "InvalidJson"),
        ("deeply nested json", post_event("[" * 100_000 + "]" * 100_000), 400, "InvalidJson"),
        ("wrong content type", post_event(b64(captcha), "application/xml"), 415, "UnsupportedMediaType"),
        ("multipart body", post_event("--x\r\n\r\n--x--", "multipart/form-data; boundary=x"), 415,
         "UnsupportedMediaType"),
        ("isBase64Encoded with a broken body", post_event("%%%", "text/plain", isBase64Encoded="true"), 400,
         "InvalidBase64"),
        ("batch not a list", post_event('{"images": {"a": 1}}'), 400, "InvalidRequest"),
        ("batch over the limit", post_event(json.dumps({"images": [b64(captcha)] * 17})), 413, "BatchTooLarge"),
        ("HEAD", {"httpMethod": "HEAD", "path": "/"}, 405, "MethodNotAllowed"),
        ("PUT", {"httpMethod": "PUT", "path": "/", "body": "x"}, 405, "MethodNotAllowed"),
        ("DELETE", {"httpMethod": "DELETE", "path": "/health"}, 405, "MethodNotAllowed"),
        ("garbage method", {"httpMethod": "G E T", "path": "/"}, 400, "InvalidRequest"),
        ("unknown path", get_event(path="/v2/recognise"), 404, "NotFound"),
        ("path traversal", get_event(path="/../../../etc/passwd"), 404, "NotFound"),
        ("encoded traversal", get_event(path="/%2e%2e/%2e%2e/etc/passwd"), 404, "NotFound"),
        ("event not a dict", "GET /", 400, "InvalidRequest"),
        ("event is null", None, 400, "InvalidRequest"),
        ("headers not a map", {"httpMethod": "GET", "path": "/", "headers": ["x"]}, 400, "InvalidRequest"),
        # odd but valid images are recognised, not refused
        ("animated gif", get_event(b64(animated_gif())), 200, None),
        ("cmyk jpeg", get_event(b64(cmyk_jpeg(captcha))), 200, None),
        ("16-bit png", get_event(b64(sixteen_bit_png())), 200, None),
        ("1x1 image", get_event(b64(encode(Image.new("RGB", (1, 1))))), 200, None),
        ("very wide image", get_event(b64(encode(Image.new("L", (4000, 2), 255)))), 200, None),
        ("very tall image", get_event(b64(encode(Image.new("L", (2, 4000), 0)))), 200, None),
    ]


MATRIX_SIZE = 43


def test_matrix_has_every_class(captcha_png):
    names = [row[0] for row in matrix(captcha_png)]
    assert len(set(names)) == len(names) == MATRIX_SIZE >= 30


@pytest.mark.parametrize("index", range(MATRIX_SIZE))
def test_bad_input_matrix(app, captcha_png, index):
    name, event, expected_status, expected_code = matrix(captcha_png)[index]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    status, body = call(app, event)
    elapsed = time.perf_counter() - started
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - rss_before) / 1024
    assert status == expected_status, (name, body)
    assert body["ok"] is (expected_code is None), name
    if expected_code:
        assert body["error"]["code"] == expected_code, name
    assert elapsed < 2.0, f"{name} took {elapsed:.2f}s"
    assert grown_mb < 100, f"{name} grew peak memory by {grown_mb:.0f} MB"


def assert_valid_reply(reply: object) -> dict:
    assert isinstance(reply, dict) and set(reply) == {"isBase64Encoded", "statusCode", "headers", "body"}
    assert reply["isBase64Encoded"] is False and isinstance(reply["statusCode"], int)
    assert all(isinstance(k, str) and isinstance(v, str) for k, v in reply["headers"].items())
    assert isinstance(reply["body"], str)
    assert "Traceback" not in reply["body"] and str(REPO) not in reply["body"]
    assert reply["statusCode"] != 500, reply["body"]
    return json.loads(reply["body"]) if reply["body"] else {}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=40),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12,
)
events = st.fixed_dictionaries(
    {},
    optional={
        "httpMethod": st.sampled_from(["GET", "POST", "PUT", "OPTIONS", "HEAD", "get", ""]) | st.text(max_size=8),
        "path": st.sampled_from(["/", "/health", "/recognize", "", "/x/../"]) | st.text(max_size=20),
        "queryString": st.dictionaries(st.sampled_from(["base64Image", "image", "images", "x"]), json_values,
                                       max_size=3) | json_values,
        "headers": st.dictionaries(st.sampled_from(["content-type", "Content-Type", "x"]),
                                   st.sampled_from(["application/json", "text/plain", "image/png", ""])
                                   | st.text(max_size=20), max_size=2) | json_values,
        "body": st.text(max_size=200) | st.binary(max_size=200).map(lambda b: base64.b64encode(b).decode())
        | json_values.map(json.dumps) | json_values,
        "isBase64Encoded": st.sampled_from([True, False, "true", "false", "TRUE", None, 1]),
        "requestContext": st.fixed_dictionaries({}, optional={"path": st.text(max_size=10) | json_values,
                                                              "requestId": st.text(max_size=10) | json_values}),
        "base64Image": json_values,
        "images": json_values,
    },
)


@given(event=events | json_values)
def test_fuzzed_events_never_escape(app, event):
    assert_valid_reply(app.handle(event, None))


@given(data=st.binary(max_size=2048))
def test_fuzzed_image_bytes_never_escape(app, data):
    assert_valid_reply(app.handle(get_event(b64(data)), None))


@given(cut=st.integers(min_value=0, max_value=10_000), flips=st.lists(st.tuples(st.integers(0, 10_000),
                                                                                 st.integers(0, 255)), max_size=8))
def test_mutated_images_never_escape(app, captcha_png, cut, flips):
    data = bytearray(captcha_png[: max(8, len(captcha_png) - cut)])
    for position, value in flips:
        data[position % len(data)] = value
    body = assert_valid_reply(app.handle(get_event(b64(bytes(data))), None))
    assert body["ok"] or body["error"]["code"] in {"UnsupportedImage", "ImageTooLarge"}


def test_no_files_are_written_per_request(app, captcha_png, tmp_path, monkeypatch):
    import tempfile

    monkeypatch.chdir(tmp_path)
    watched = [tmp_path, Path(tempfile.gettempdir())]
    before = {folder: set(os.listdir(folder)) for folder in watched}
    for event in (get_event(b64(captcha_png)), get_event("@@"), post_event(json.dumps({"images": [b64(captcha_png)]}))):
        app.handle(event, None)
    assert {folder: set(os.listdir(folder)) for folder in watched} == before


SERVING_FILES, _ = build_bundle.serving_files()
FORBIDDEN_IMPORTS = {"pickle", "marshal", "shelve", "subprocess", "tensorflow", "keras"}
FORBIDDEN_BUILTINS = {"eval", "exec", "compile", "__import__"}
FORBIDDEN_METHODS = {"system", "popen", "spawnl", "execv", "loads"}  # os.system, os.popen, pickle-style loads


def test_serving_files_are_derived_from_index():
    names = {str(path) for path in SERVING_FILES}
    assert {"index.py", "captcha_ocr/__init__.py", "captcha_ocr/app.py", "captcha_ocr/budget.py",
            "captcha_ocr/web/index.html"} <= names
    assert not any(part in name for name in names for part in ("training", "deploy", "cli.py", "server.py"))


@pytest.mark.parametrize("module", [str(path) for path in SERVING_FILES if path.suffix == ".py"])
def test_serving_code_has_no_pickle_eval_or_shell(module):
    tree = ast.parse((REPO / module).read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            assert not {alias.name.split(".")[0] for alias in node.names} & FORBIDDEN_IMPORTS
        elif isinstance(node, ast.ImportFrom):
            assert (node.module or "").split(".")[0] not in FORBIDDEN_IMPORTS | {"captcha_ocr.training"}
            assert not (node.module or "").startswith("captcha_ocr.training")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id not in FORBIDDEN_BUILTINS, f"{module}: {node.func.id}()"
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            owner, method = getattr(node.func.value, "id", ""), node.func.attr
            assert not (method in FORBIDDEN_METHODS and owner != "json"), f"{module}: {owner}.{method}()"


def test_concurrent_calls_share_one_interpreter_safely(app, fresh_captchas):
    def read(image: bytes) -> str:
        return json.loads(app.handle(get_event(b64(image)), None)["body"])["text"]

    assert readings_disagree_across_threads(read, [s.data for s in fresh_captchas[:8]], threads=8) == []
