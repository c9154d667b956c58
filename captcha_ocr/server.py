"""A local API Gateway: HTTP on 127.0.0.1 -> the SCF API Gateway event -> `main_handler` -> HTTP.

The same handler object that SCF calls answers here, so what works with curl locally works in the
cloud. Besides the function's own routes the server adds what only a local run needs: the demo
page (/demo) and fresh sample captchas (/sample), neither of which is deployed.
"""

from __future__ import annotations

import base64
import json
import random
import signal
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
MAX_BODY_BYTES = 8_000_000  # above the handler's own limit, so the handler gives the 413
DEMO_FILES = {"/demo": ("index.html", "text/html; charset=utf-8")}


def api_gateway_event(method: str, target: str, headers: dict[str, str], body: bytes, client_ip: str) -> dict:
    """An HTTP request as Tencent API Gateway hands it to SCF (integrated response mode)."""
    url = urlsplit(target)
    query: dict[str, Any] = {}
    for key, values in parse_qs(url.query, keep_blank_values=True).items():
        query[key] = values[0] if len(values) == 1 else values
    try:
        text, is_base64 = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, is_base64 = base64.b64encode(body).decode("ascii"), True
    request_id = uuid.uuid4().hex
    return {
        "httpMethod": method,
        "path": url.path or "/",
        "queryString": query,
        "queryStringParameters": query,
        "headers": {k.lower(): v for k, v in headers.items()},
        "headerParameters": {},
        "pathParameters": {},
        "body": text if body else None,
        "isBase64Encoded": is_base64,
        "requestContext": {
            "serviceId": "local", "path": "/", "httpMethod": method, "requestId": request_id,
            "stage": "local", "sourceIp": client_ip,
        },
    }


class _RequestHandler(BaseHTTPRequestHandler):
    server_version = "captcha-ocr-local"
    handler: Handler  # set on the subclass built by make_server
    sample_maker: Callable[[], dict[str, Any]] | None

    def log_message(self, format: str, *args: Any) -> None:  # the handler logs its own JSON lines
        pass

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, document: dict[str, Any]) -> None:
        self._send(status, {"Content-Type": "application/json; charset=utf-8"}, json.dumps(document).encode())

    def _local_route(self) -> bool:
        path = urlsplit(self.path).path
        if self.command != "GET":
            return False
        if path in DEMO_FILES:
            name, content_type = DEMO_FILES[path]
            page = resources.files("captcha_ocr.web").joinpath(name).read_bytes()
            self._send(200, {"Content-Type": content_type, "Cache-Control": "no-store"}, page)
            return True
        if path == "/sample":
            if self.sample_maker is None:
                self._send_json(503, {"ok": False, "error": {"code": "SamplesUnavailable",
                                                            "message": "pip install captcha to get samples"}})
            else:
                self._send_json(200, self.sample_maker())
            return True
        if path == "/" and not urlsplit(self.path).query and "text/html" in self.headers.get("Accept", ""):
            self._send(302, {"Location": "/demo"}, b"")
            return True
        return False

    def _forward(self) -> None:
        if self._local_route():
            return
        length = self.headers.get("Content-Length")
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._send_json(411, {"ok": False, "error": {"code": "LengthRequired", "message": "send Content-Length"}})
            return
        size = int(length) if length and length.isdigit() else 0
        if size > MAX_BODY_BYTES:
            self.close_connection = True
            self._send_json(413, {"ok": False, "error": {"code": "PayloadTooLarge",
                                                        "message": f"body over {MAX_BODY_BYTES} bytes"}})
            return
        body = self.rfile.read(size) if size else b""
        event = api_gateway_event(self.command, self.path, dict(self.headers), body, self.client_address[0])
        reply = self.handler(event, {"request_id": event["requestContext"]["requestId"]})
        payload = base64.b64decode(reply["body"]) if reply.get("isBase64Encoded") else reply["body"].encode()
        self._send(int(reply["statusCode"]), dict(reply.get("headers", {})), payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = do_HEAD = _forward


class LocalGateway(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # the stdlib's 5 drops bursts of connections into 1 s SYN retries


def make_server(
    handler: Handler, host: str = "127.0.0.1", port: int = 9000,
    sample_maker: Callable[[], dict[str, Any]] | None = None,
) -> ThreadingHTTPServer:
    attributes = {"handler": staticmethod(handler),
                  "sample_maker": staticmethod(sample_maker) if sample_maker else None}
    request_handler = type("RequestHandler", (_RequestHandler,), attributes)
    return LocalGateway((host, port), request_handler)


def synthetic_sample_maker(charset: str, lengths: tuple[int, ...]) -> Callable[[], dict[str, Any]] | None:
    """Fresh captchas like the shipped model's training data; None without the `captcha` library."""
    try:
        from captcha_ocr.synthetic import synthetic_captcha
    except ImportError:
        return None
    seeds = random.SystemRandom()

    def make() -> dict[str, Any]:
        text, png = synthetic_captcha(seeds.getrandbits(63), charset, lengths)
        return {"ok": True, "text": text, "mime": "image/png", "base64Image": base64.b64encode(png).decode()}

    return make


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve(handler: Handler, host: str, port: int, sample_maker: Callable[[], dict[str, Any]] | None) -> None:
    """Serve until Ctrl-C (or SIGTERM, as `kill` and service managers send), then close cleanly."""
    server = make_server(handler, host, port, sample_maker)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    print(f"captcha-ocr local API Gateway on http://{host}:{server.server_address[1]}/  "
          f"(demo page: http://{host}:{server.server_address[1]}/demo, Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nstopping", flush=True)
    finally:
        server.server_close()
