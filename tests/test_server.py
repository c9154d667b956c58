"""The local API Gateway over real HTTP on loopback: curl-like requests, the demo page, Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode

import pytest
from conftest import REPO, b64


def fetch(url: str, data: bytes | None = None, headers: dict | None = None, method: str | None = None):
    request = urllib.request.Request(url, data=data, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


@pytest.mark.slow
def test_recognises_fresh_captchas_over_http(base_url, fresh_captchas):
    samples = fresh_captchas[10:60]
    right = 0
    for sample in samples:
        status, headers, body = fetch(f"{base_url}/?{urlencode({'base64Image': b64(sample.data)})}")
        assert status == 200 and headers["Content-Type"] == "application/json; charset=utf-8"
        right += json.loads(body)["text"] == sample.text
    assert right >= 0.95 * len(samples)


@pytest.mark.slow
def test_post_and_errors_over_http(base_url, captcha_png):
    status, _, body = fetch(base_url + "/", json.dumps({"base64Image": b64(captcha_png)}).encode(),
                            {"Content-Type": "application/json"})
    assert status == 200 and json.loads(body)["ok"] is True
    status, _, body = fetch(base_url + "/?base64Image=%40%40")
    assert status == 400 and json.loads(body)["error"]["code"] == "InvalidBase64"
    status, headers, _ = fetch(base_url + "/", method="DELETE")
    assert status == 405 and headers["Allow"] == "GET, POST"
    status, _, body = fetch(base_url + "/health")
    assert status == 200 and json.loads(body)["model"]["sha256"]


@pytest.mark.slow
def test_concurrent_requests(base_url, fresh_captchas):
    results: list[bool] = []

    def worker(sample):
        status, _, body = fetch(f"{base_url}/?{urlencode({'base64Image': b64(sample.data)})}")
        results.append(status == 200 and json.loads(body)["text"] == sample.text)

    threads = [threading.Thread(target=worker, args=(s,)) for s in fresh_captchas[:16]]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert len(results) == 16 and sum(results) >= 15


@pytest.mark.slow
def test_demo_page_and_samples(base_url):
    status, headers, page = fetch(base_url + "/demo")
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert b"New sample captcha" in page and b"http://" not in page.replace(b"http://www.w3.org", b"")
    status, _, body = fetch(base_url + "/sample")
    sample = json.loads(body)
    assert status == 200 and sample["mime"] == "image/png" and len(sample["text"]) in (4, 5, 6)
    status, headers, _ = fetch(base_url + "/", headers={"Accept": "text/html"})
    assert status == 200  # urllib followed the redirect to /demo


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_serve_command_stops_cleanly(stop_signal):
    process = subprocess.Popen([sys.executable, "-m", "captcha_ocr.cli", "serve", "--port", "0"], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        banner = process.stdout.readline()
        while "local API Gateway" not in banner and process.poll() is None:
            banner = process.stdout.readline()
        assert "http://127.0.0.1:" in banner
        url = re.search(r"http://127\.0\.0\.1:\d+/", banner).group(0)
        status, _, _ = fetch(url + "health")
        assert status == 200
        process.send_signal(stop_signal)
        assert process.wait(timeout=15) == 0
        assert "stopping" in process.stdout.read()
    finally:
        if process.poll() is None:
            process.kill()
            time.sleep(0.1)
