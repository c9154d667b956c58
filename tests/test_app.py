"""The handler end to end: every route, every error code, and what the logs may contain."""

import json
import logging
from urllib.parse import quote, urlencode

import pytest
from conftest import MODEL_DIR, SHIPPED_NAMED, b64, call, encode, get_event, post_event
from PIL import Image
from test_imaging import png_header_only

from captcha_ocr.app import App
from captcha_ocr.events import LOGGED_CHARS

SUCCESS_KEYS = {"ok", "text", "confidence", "chars", "model", "elapsedMs", "requestId"}


def assert_recognised(status, body, expected=None):
    assert status == 200, body
    assert set(body) == SUCCESS_KEYS and body["ok"] is True
    assert 0.0 <= body["confidence"] <= 1.0 and body["elapsedMs"] >= 0
    assert "".join(c["char"] for c in body["chars"]) == body["text"]
    if expected is not None:
        assert body["text"] == expected


def test_get_query_string(app, fresh_captchas):
    sample = fresh_captchas[0]
    status, body = call(app, get_event(b64(sample.data)))
    assert_recognised(status, body, sample.text)
    assert body["model"] == {"name": app.models.default.config.name, "sha256": app.models.default.config.sha256}


def test_image_alias_and_percent_encoded_query(app, fresh_captchas):
    sample = fresh_captchas[1]
    assert_recognised(*call(app, get_event(b64(sample.data), key="image")), sample.text)
    mangled = quote(b64(sample.data), safe="").replace("%2B", " ")
    assert_recognised(*call(app, get_event(mangled)), sample.text)


def test_post_bodies(app, fresh_captchas):
    sample = fresh_captchas[2]
    encoded = b64(sample.data)
    bodies = [
        post_event(json.dumps({"base64Image": encoded})),
        post_event(json.dumps({"base64Image": "data:image/png;base64," + encoded}), "application/json; charset=utf-8"),
        post_event(urlencode({"base64Image": encoded}), "application/x-www-form-urlencoded"),
        post_event(encoded, "text/plain"),
        post_event(encoded, ""),
        post_event(b64(encoded.encode()), "text/plain", isBase64Encoded=True),
        post_event(encoded, "image/png", isBase64Encoded="true"),  # a raw binary upload through the gateway
        post_event(encoded, "application/octet-stream", isBase64Encoded=True),
    ]
    for event in bodies:
        assert_recognised(*call(app, event), sample.text)


def test_direct_invoke(app, fresh_captchas):
    assert_recognised(*call(app, {"base64Image": b64(fresh_captchas[3].data)}), fresh_captchas[3].text)


def test_batch_answers_each_image_in_order(app, fresh_captchas):
    good = fresh_captchas[4:7]
    images = [b64(good[0].data), "%%%", b64(good[1].data), b64(b"not an image"), b64(good[2].data)]
    status, body = call(app, post_event(json.dumps({"images": images})))
    assert status == 200 and body["ok"] is True and len(body["results"]) == 5
    texts = [r.get("text") for r in body["results"]]
    assert texts[0::2] == [s.text for s in good]
    assert [r["error"]["code"] for r in body["results"][1::2]] == ["InvalidBase64", "UnsupportedImage"]


def test_health(app):
    status, body = call(app, get_event(path="/health"))
    assert status == 200 and body["ok"] is True
    config = app.models.default.config
    assert body["model"]["sha256"] == config.sha256 and body["model"]["charset"] == config.charset
    assert body["model"]["input"] == {"height": config.height, "width": config.width, "gray": config.gray,
                                      "views": list(config.views)}
    assert body["models"][0] == body["model"]  # the default first, then the package's named models
    assert [model["name"] for model in body["models"][1:]] == SHIPPED_NAMED
    assert body["runtime"]["package"] in ("tflite-runtime", "ai-edge-litert") and body["runtime"]["version"]


def test_cors_preflight(app):
    reply = app.handle({"httpMethod": "OPTIONS", "path": "/"}, None)
    assert reply["statusCode"] == 204 and reply["body"] == ""
    assert reply["headers"]["Access-Control-Allow-Methods"] == "GET, POST, OPTIONS"


def bad_requests(captcha: bytes) -> list[tuple[str, object, int, str]]:
    limits = {"max_base64_chars": 2_800_000}
    return [
        ("no parameter", get_event(), 400, "MissingImage"),
        ("empty value", get_event(""), 400, "MissingImage"),
        ("not base64", get_event("@@@@"), 400, "InvalidBase64"),
        ("base64 of text", get_event(b64(b"hello, world")), 415, "UnsupportedImage"),
        ("truncated png", get_event(b64(captcha[: len(captcha) // 2])), 415, "UnsupportedImage"),
        ("tiff", get_event(b64(encode(Image.new("L", (9, 9)), "TIFF"))), 415, "UnsupportedImage"),
        ("decompression bomb", get_event(b64(png_header_only(30000, 30000))), 413, "ImageTooLarge"),
        ("payload over the limit", get_event("A" * (limits["max_base64_chars"] + 4)), 413, "PayloadTooLarge"),
        ("malformed json", post_event("{not json"), 400, "InvalidJson"),
        ("json not an object", post_event("[1, 2]"), 400, "InvalidJson"),
        ("json without image", post_event("{}"), 400, "MissingImage"),
        ("images not a list", post_event('{"images": "abc"}'), 400, "InvalidRequest"),
        ("empty batch", post_event('{"images": []}'), 400, "MissingImage"),
        ("batch too large", post_event(json.dumps({"images": ["a"] * 17})), 413, "BatchTooLarge"),
        ("wrong content type", post_event("<x/>", "application/xml"), 415, "UnsupportedMediaType"),
        ("binary body as text", post_event(b64(b"\xff\xfe\x00"), "text/plain", isBase64Encoded=True),
         415, "UnsupportedMediaType"),
        ("broken base64 body", post_event("***", "text/plain", isBase64Encoded=True), 400, "InvalidBase64"),
        ("PUT", {"httpMethod": "PUT", "path": "/"}, 405, "MethodNotAllowed"),
        ("DELETE", {"httpMethod": "DELETE", "path": "/"}, 405, "MethodNotAllowed"),
        ("POST health", {"httpMethod": "POST", "path": "/health"}, 405, "MethodNotAllowed"),
        ("unknown path", get_event(path="/admin"), 404, "NotFound"),
        ("path traversal", get_event(path="/../../etc/passwd"), 404, "NotFound"),
        ("event not a dict", ["GET", "/"], 400, "InvalidRequest"),
        ("list values", get_event(["a", "b"]), 400, "InvalidRequest"),
    ]


@pytest.mark.parametrize("index", range(24))
def test_bad_requests_get_a_4xx_with_a_code(app, captcha_png, index):
    name, event, expected_status, expected_code = bad_requests(captcha_png)[index]
    status, body = call(app, event)
    assert (status, body["error"]["code"]) == (expected_status, expected_code), name
    assert body["ok"] is False and body["error"]["message"] and body["requestId"]


def test_method_not_allowed_says_what_is(app):
    reply = app.handle({"httpMethod": "PUT", "path": "/"}, None)
    assert reply["headers"]["Allow"] == "GET, POST, OPTIONS"


def test_unexpected_failures_are_500_without_details(app, captcha_png, monkeypatch):
    def explode(tensor):
        raise RuntimeError("/secret/path/model.tflite exploded")

    monkeypatch.setattr(app.models.default.recognizer, "recognize", explode)
    status, body = call(app, get_event(b64(captcha_png)))
    assert status == 500 and body["error"] == {"code": "InternalError", "message": "internal error"}
    assert "secret" not in json.dumps(body)


def test_logs_one_json_line_per_request_without_payload(app: App, captcha_png, caplog):
    encoded = b64(captcha_png)
    letters = "".join(filter(str.isalpha, encoded))
    events = [get_event(encoded), post_event(json.dumps({"base64Image": encoded})), get_event("@@" + encoded[:40]),
              get_event(encoded, path="/" + encoded), {"httpMethod": letters, "path": "/" + encoded},
              {"httpMethod": "GET", "path": "/" + encoded, "requestContext": {"requestId": encoded}}]
    logger = logging.getLogger("captcha_ocr")
    saved = logger.level, logger.propagate
    logger.addHandler(caplog.handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # exactly one copy of each record, whatever configured logging before
    try:
        for event in events:
            app.handle(event, {"request_id": "r-1"})
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]
    lines = [json.loads(record.getMessage()) for record in caplog.records]
    assert len(lines) == 6
    assert [line["status"] for line in lines] == [200, 200, 400, 404, 400, 404]
    assert all(len(str(value)) <= LOGGED_CHARS for line in lines for value in line.values())
    assert lines[0]["requestId"] == "r-1" and lines[0]["imageSize"] == "160x60" and lines[0]["payloadBytes"] > 0
    text = caplog.text
    assert encoded[:40] not in text and encoded[-40:] not in text


def test_the_function_serves_its_demo_page(app: App):
    for event in ({"httpMethod": "GET", "path": "/demo"},
                  {"httpMethod": "GET", "path": "/", "headers": {"accept": "text/html,application/xhtml+xml"}}):
        reply = app.handle(event, None)
        assert reply["statusCode"] == 200 and reply["headers"]["Content-Type"] == "text/html; charset=utf-8"
        assert "<title>captcha-ocr demo</title>" in reply["body"]
        assert 'fetch("/' not in reply["body"] and 'href="/' not in reply["body"]  # relative URLs only
    status, body = call(app, get_event())  # no Accept: text/html, no image: still the API
    assert status == 400 and body["error"]["code"] == "MissingImage"


def test_samples_are_fresh_captchas_the_model_reads(app: App):
    texts = set()
    for _ in range(3):
        status, sample = call(app, {"httpMethod": "GET", "path": "/sample"})
        lengths = app.models.default.config.lengths
        assert status == 200 and sample["mime"] == "image/png" and len(sample["text"]) in lengths
        status, body = call(app, get_event(sample["base64Image"]))
        assert status == 200 and body["text"] == sample["text"]
        texts.add(sample["text"])
    assert len(texts) == 3


def test_the_cold_start_log_names_the_python_and_the_glibc(monkeypatch):
    """So the first live deploy confirms SCF's base image (documented: CentOS 7.7, glibc 2.17)."""
    import platform

    from captcha_ocr import app as app_module

    logged: list[dict] = []
    monkeypatch.setattr(app_module, "log_event", lambda **fields: logged.append(fields))
    created = app_module.create_app(MODEL_DIR)
    created.reader.decoder.close()
    (cold,) = [entry for entry in logged if entry.get("event") == "cold_start"]
    assert cold["python"] == platform.python_version() and cold["libc"].startswith("glibc ")
