"""The local API Gateway over real HTTP on loopback: curl-like requests, the demo page, Ctrl-C."""

from __future__ import annotations

import json
import re
import signal
import socket
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
    assert status == 405 and headers["Allow"] == "GET, POST, OPTIONS"
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
        host, port = url.removeprefix("http://").rstrip("/").split(":")
        for request in (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nabc",  # hangs up mid-body
                        b"GET /demo HTTP/1.1\r\nHost: x\r\n\r\n"):  # hangs up before reading the reply
            with socket.create_connection((host, int(port))) as connection:
                connection.sendall(request)
        assert fetch(url + "health")[0] == 200
        process.send_signal(stop_signal)
        assert process.wait(timeout=15) == 0
        output = process.stdout.read()
        assert "stopping" in output and "Traceback" not in output and "Error" not in output
    finally:
        if process.poll() is None:
            process.kill()
            time.sleep(0.1)


@pytest.mark.parametrize("command", ["serve", "label"])
def test_a_taken_port_is_a_one_line_error_not_a_traceback(command, tmp_path, captcha_png):
    (tmp_path / "k7dm.png").write_bytes(captcha_png)  # the labelling page needs an image to start
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        extra = [str(tmp_path)] if command == "label" else []
        done = subprocess.run([sys.executable, "-m", "captcha_ocr.cli", command, *extra, "--port", str(port)],
                              cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in done.stderr and "another --port" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


def raw_exchange(base_url: str, request: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes as they are (no client library to tidy them) and read until the server closes."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as connection:
        connection.sendall(request)
        chunks = []
        while chunk := connection.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@pytest.mark.slow
@pytest.mark.parametrize("request_bytes, status", [
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: \xc2\xb2\r\nConnection: close\r\n\r\nab", b"400"),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: +2\r\nConnection: close\r\n\r\nab", b"400"),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc", b"400"),
    (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 9000000\r\nConnection: close\r\n\r\n", b"413"),
    (b"GET /health HTTP/1.0\r\n\r\n", b"200"),
    (b"GET /health\r\n\r\n", b"200"),  # a request line with no headers at all gets its answer
])
def test_strict_http_parsing(base_url, request_bytes, status):
    reply = raw_exchange(base_url, request_bytes)
    assert reply.split(b" ", 2)[1] == status, reply[:200]


@pytest.mark.slow
def test_slow_clients_cost_no_threads_and_health_still_answers(base_url):
    threads_before = threading.active_count()
    host, port = base_url.removeprefix("http://").split(":")
    slow = []
    try:
        for index in range(500):  # each holds a connection with half a request and sends no more
            connection = socket.create_connection((host, int(port)), timeout=5)
            connection.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n" if index % 2
                               else b"GET /health HTTP/1.1\r\nHost: x\r\n")
            slow.append(connection)
        latencies = []
        for _ in range(20):
            started = time.perf_counter()
            status, _, _ = fetch(base_url + "/health")
            latencies.append(time.perf_counter() - started)
            assert status == 200
        assert threading.active_count() <= threads_before + 1  # no thread per connection
        assert sorted(latencies)[len(latencies) // 2] < 0.1, latencies
    finally:
        for connection in slow:
            connection.close()
