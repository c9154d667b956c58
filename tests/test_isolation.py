"""isolation.DecoderPool: a decoder that crashes, runs away, allocates without bound or answers
nonsense costs one error reply, and the next request is served by a fresh worker."""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest
from conftest import b64, call, get_event, post_event, readings_disagree_across_threads

from captcha_ocr.app import App
from captcha_ocr.errors import DecoderCrashed, DecoderTimedOut, ImageTooComplex
from captcha_ocr.imaging import PreparedImage, preprocess
from captcha_ocr.isolation import DecoderPool
from captcha_ocr.settings import Limits

FAST = Limits(max_decode_ms=400)


def faulty(data: bytes, height: int, width: int, limits: Limits, gray: str) -> PreparedImage:
    """preprocess, but for a few magic payloads the decoder's worst behaviours, in the worker."""
    if data == b"abort":
        os.abort()  # what glibc does on a corrupted heap
    if data == b"segfault":
        os.kill(os.getpid(), signal.SIGSEGV)
    if data == b"exit":
        os._exit(3)
    if data == b"hog":
        hoard = []
        while True:  # an allocation without bound: stopped by the worker's address-space cap
            hoard.append(bytearray(1 << 20))
    if data == b"spin":
        while True:  # a runaway loop: stopped by the request's time budget
            pass
    if data == b"wrong shape":  # an answer that is not what was asked: treated as a crash
        return PreparedImage(np.zeros((4, 4, 1), np.float32), (1, 1), "PNG")
    return preprocess(data, height, width, limits, gray)


@pytest.fixture()
def faulty_app(app) -> App:
    faulty_app = App(app.models, DecoderPool(FAST, decode=faulty))
    yield faulty_app
    faulty_app.reader.decoder.close()


def _pid(app: App) -> int:
    (pid,) = app.reader.decoder.pids
    return pid


@pytest.mark.parametrize("fault, status, code", [
    ("abort", 415, "UnsupportedImage"), ("segfault", 415, "UnsupportedImage"), ("exit", 415, "UnsupportedImage"),
    ("hog", 413, "ImageTooComplex"), ("spin", 413, "ImageTooComplex"), ("wrong shape", 415, "UnsupportedImage"),
])
def test_a_failing_decoder_costs_one_reply_and_the_next_request_is_served(faulty_app, captcha_png, fault, status,
                                                                         code, monkeypatch):
    expected = call(faulty_app, get_event(b64(captcha_png)))[1]["text"]
    first = _pid(faulty_app)
    log: list[dict] = []
    monkeypatch.setattr("captcha_ocr.app.log_event", lambda **fields: log.append(fields))
    got_status, body = call(faulty_app, get_event(b64(fault.encode())))
    assert (got_status, body["error"]["code"]) == (status, code)
    assert faulty_app.reader.decoder.restarts == 1 and _pid(faulty_app) != first
    if fault != "hog":  # the worker answers its own MemoryError, then is replaced: nothing was lost
        assert [entry["decoder"] for entry in log if "decoder" in entry] != []
    assert call(faulty_app, get_event(b64(captcha_png)))[1]["text"] == expected  # a fresh worker reads it


def test_a_runaway_decode_is_stopped_at_the_time_budget(faulty_app):
    started = time.monotonic()
    status, body = call(faulty_app, get_event(b64(b"spin")))
    elapsed = time.monotonic() - started
    assert (status, body["error"]["code"]) == (413, "ImageTooComplex")
    assert FAST.max_decode_ms / 1000 <= elapsed < FAST.max_decode_ms / 1000 + 5  # a hang would never return


def test_a_batch_has_one_time_budget_not_one_per_image(faulty_app, captcha_png):
    started = time.monotonic()
    status, body = call(faulty_app, post_event(json.dumps({"images": [b64(b"spin")] * 4 + [b64(captcha_png)]})))
    elapsed = time.monotonic() - started
    assert status == 200
    assert [entry["ok"] for entry in body["results"]] == [False] * 5  # the budget went on the first image
    assert {entry["error"]["code"] for entry in body["results"]} == {"ImageTooComplex"}
    assert elapsed < 2 * FAST.max_decode_ms / 1000 + 5
    assert faulty_app.reader.decoder.restarts == 1


def test_a_crash_inside_a_batch_fails_only_its_own_entry(faulty_app, captcha_png):
    status, body = call(faulty_app, post_event(json.dumps({"images": [b64(captcha_png), b64(b"abort"),
                                                                      b64(captcha_png)]})))
    assert status == 200
    assert [entry["ok"] for entry in body["results"]] == [True, False, True]
    assert body["results"][1]["error"]["code"] == "UnsupportedImage"


def test_the_pool_raises_typed_errors_with_a_reason(captcha_png):
    pool = DecoderPool(FAST, decode=faulty)
    try:
        with pytest.raises(DecoderCrashed) as crashed:
            pool.prepare(b"abort", 64, 192, "luminance", time.monotonic() + 5)
        assert crashed.value.reason == f"killed by signal {signal.SIGABRT}"
        with pytest.raises(DecoderTimedOut):
            pool.prepare(b"spin", 64, 192, "luminance", time.monotonic() + 0.2)
        with pytest.raises(ImageTooComplex, match="48 MB|more than"):
            pool.prepare(b"hog", 64, 192, "luminance", time.monotonic() + 5)
        with pytest.raises(DecoderTimedOut):  # a deadline already past: no worker is even asked
            pool.prepare(captcha_png, 64, 192, "luminance", time.monotonic() - 1)
        assert pool.prepare(captcha_png, 64, 192, "luminance", time.monotonic() + 5).tensor.shape == (64, 192, 1)
    finally:
        pool.close()


def test_the_workers_memory_cap_leaves_room_for_the_largest_allowed_image():
    from hostile import webp_lossless_rgba

    pool = DecoderPool(Limits())
    try:
        prepared = pool.prepare(webp_lossless_rgba(), 64, 192, "luminance", time.monotonic() + 10)
        assert prepared.source_size == (1414, 1414)
    finally:
        pool.close()


def test_concurrent_requests_share_the_workers_safely(app, fresh_captchas):
    pool_app = App(app.models, DecoderPool(app.limits, size=2))
    try:
        failures = readings_disagree_across_threads(lambda image: call(pool_app, get_event(b64(image)))[1]["text"],
                                                    [s.data for s in fresh_captchas[:6]], rounds=8)
    finally:
        pool_app.reader.decoder.close()
    assert failures == []


def test_closing_the_pool_stops_its_workers(app):
    pool = DecoderPool(app.limits, size=2)
    pids = pool.pids
    pool.close()
    for pid in pids:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # already reaped: nothing is left running
