"""A local API Gateway: HTTP on 127.0.0.1 -> the SCF API Gateway event -> `main_handler` -> HTTP.

The same handler object that SCF calls answers every route here, the demo page and its samples
included, so what works with curl or a browser locally works in the cloud.
"""

from __future__ import annotations

import base64
import errno
import json
import logging
import secrets
import signal
import sys
import uuid
from collections.abc import Callable
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

from captcha_ocr import web
from captcha_ocr.errors import (
    ApiError,
    Forbidden,
    InternalError,
    InvalidJson,
    InvalidRequest,
    NotFound,
    UnsupportedMediaType,
    UserError,
)

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]
MAX_BODY_BYTES = 8_000_000  # above the handler's own limit, so the handler gives the 413
JSON = {"Content-Type": "application/json; charset=utf-8"}


def api_gateway_event(method: str, target: str, headers: dict[str, str], body: bytes, client_ip: str,
                      api_path: str = "/") -> dict:
    """An HTTP request as Tencent API Gateway hands it to SCF (integrated response mode); api_path
    is the API's own path, e.g. "/release", which the handler cuts from the request's path."""
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
            "serviceId": "local", "path": api_path, "httpMethod": method, "requestId": request_id,
            "stage": "local", "sourceIp": client_ip,
        },
    }


SERVER_SETTINGS = {
    # Waitress reads requests in one asyncio-style loop and hands only complete ones to its threads:
    # a slow or silent client costs a socket, never a thread, and is dropped when idle.
    "threads": 4,  # handler calls at once; the rest wait in the queue
    "connection_limit": 1000,  # open sockets, slow ones included
    "asyncore_use_poll": True,  # poll(), not select(): no 1024-descriptor ceiling
    "channel_timeout": 20,  # seconds a connection may send nothing, mid-request or idle
    "cleanup_interval": 5,
    "max_request_header_size": 65_536,
    "max_request_body_size": MAX_BODY_BYTES,  # larger bodies get 413 before they are read
    "inbuf_overflow": 65_536,  # a body beyond this waits in a temporary file, not in memory
    "backlog": 1024,
    "ident": "captcha-ocr-local",
    "expose_tracebacks": False,
}


class LocalGateway:
    """WSGI app: an HTTP request -> the API Gateway event -> the handler -> the HTTP reply."""

    def __init__(self, handler: Handler, api_path: str = "/") -> None:
        self.handler = handler
        self.api_path = api_path

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> list[bytes]:
        return _respond(environ, start_response, *self._forward(environ))

    def _forward(self, environ: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
        body = _request_body(environ)
        target = environ.get("PATH_INFO") or "/"
        if environ.get("QUERY_STRING"):
            target += "?" + environ["QUERY_STRING"]
        headers = {key[5:].replace("_", "-").lower(): value for key, value in environ.items()
                   if key.startswith("HTTP_")}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        event = api_gateway_event(environ["REQUEST_METHOD"], target, headers, body, environ.get("REMOTE_ADDR", ""),
                                  self.api_path)
        reply = self.handler(event, {"request_id": event["requestContext"]["requestId"]})
        payload = base64.b64decode(reply["body"]) if reply.get("isBase64Encoded") else reply["body"].encode()
        return int(reply["statusCode"]), dict(reply.get("headers", {})), payload


Reply = tuple[int, dict[str, str], bytes]  # status, headers, body


def _request_body(environ: dict[str, Any], limit: int | None = None) -> bytes:
    """The request's body, up to `limit` bytes (waitress accepts only digits as Content-Length)."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    return environ["wsgi.input"].read(length if limit is None else min(length, limit)) if length else b""


def _respond(environ: dict[str, Any], start_response: Callable, status: int, headers: dict[str, str],
             body: bytes) -> list[bytes]:
    start_response(f"{status} {HTTPStatus(status).phrase}", [*headers.items(), ("Content-Length", str(len(body)))])
    return [] if environ["REQUEST_METHOD"] == "HEAD" else [body]


def _json_reply(status: int, document: dict[str, Any]) -> Reply:
    return status, JSON, json.dumps(document).encode()


def make_server(handler: Handler, host: str = "127.0.0.1", port: int = 9000, api_path: str = "/") -> Any:
    """A waitress server (not yet running): `.run()` serves, `.close()` stops, `.effective_port`.
    api_path mounts the function under a prefix, as an API Gateway stage does ("/release")."""
    return make_wsgi_server(LocalGateway(handler, api_path), host, port)


def make_wsgi_server(app: Callable, host: str = "127.0.0.1", port: int = 9000) -> Any:
    """Any WSGI app on waitress with the settings above (the labelling page uses it too)."""
    try:
        from waitress import create_server
    except ImportError as exc:
        raise UserError("the local server needs waitress: pip install -e '.[local]' (make run does)") from exc

    logging.getLogger("waitress").setLevel(logging.ERROR)  # client hang-ups and queue depth are not news
    try:
        return create_server(app, host=host, port=port, **SERVER_SETTINGS)
    except OSError as exc:  # the address is taken (another server), not allowed, or not this machine's
        hint = "stop what uses it or pass another --port" if exc.errno == errno.EADDRINUSE else \
            "pass another --host or --port"
        raise ServerAddressError(f"cannot listen on {str(host)[:100]}:{port}: {exc.strerror or exc}; {hint}") from exc


class ServerAddressError(UserError):
    """The local server's address cannot be listened on: a one-line message, not a traceback."""


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def serve(server: Any, banner: str) -> None:
    """Run a server from make_server/make_wsgi_server until Ctrl-C (or SIGTERM, as `kill` and
    service managers send), then close cleanly. `banner` may name {url}."""
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    print(banner.format(url=f"http://{server.effective_host}:{server.effective_port}/"), flush=True)
    try:
        server.run()  # returns (after closing) on KeyboardInterrupt, which SIGTERM raises too
    except KeyboardInterrupt:
        pass
    finally:
        print("\nstopping", flush=True)
        server.close()


LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
WILDCARD_HOSTS = ("", "0.0.0.0", "::")
TOKEN_HEADER = "X-Label-Token"
_TOKEN_PLACEHOLDER = "__LABEL_TOKEN__"


class LabelPage:
    """The WSGI app of `captcha-ocr label`: the page, the session's state, answers, and its images.

    Only its own page may use it. Every request must name this server in its Host header (a page
    that rebinds its DNS name to 127.0.0.1 still sends its own name), and every write must also
    come from this server's origin, as JSON (a cross-site form cannot send it), with the token
    written into the page this server served (a cross-site script cannot read it).
    """

    ACTIONS = {"/label/answer", "/label/skip", "/label/back", "/label/retrain"}

    def __init__(self, session: Any, retrainer: Any = None, host: str = "127.0.0.1") -> None:
        self.session = session  # a LabelSession: it locks itself against waitress's threads
        self.retrainer = retrainer  # a labelling.Retrainer, or None: no retraining from the page
        # the names this server answers to; bound to every interface, it cannot know them: any
        self.hosts = None if host in WILDCARD_HOSTS else {*LOOPBACK_NAMES, host if ":" not in host else f"[{host}]"}
        self.token = secrets.token_urlsafe(24)

    def __call__(self, environ: dict[str, Any], start_response: Callable) -> list[bytes]:
        path, method = environ.get("PATH_INFO") or "/", environ["REQUEST_METHOD"]
        try:
            self._check_origin(environ, method)
            reply = self._route(path, method, environ)
        except ApiError as error:
            reply = _json_reply(error.status, error.body())
        except UserError as error:  # a bad label, a name, a file gone, a disk full: the page shows the message
            status, code = getattr(error, "status", 400), getattr(error, "code", "InvalidRequest")
            reply = _json_reply(status, {"ok": False, "error": {"code": code, "message": str(error)}})
        except Exception as error:  # never waitress's plain-text 500
            print(f"labelling page: {type(error).__name__} on {method} {path[:64]!r}", file=sys.stderr)
            reply = _json_reply(500, InternalError("internal error").body())
        return _respond(environ, start_response, *reply)

    def _check_origin(self, environ: dict[str, Any], method: str) -> None:
        host = environ.get("HTTP_HOST", "")
        name, port = _host_and_port(host)
        if port != str(environ.get("SERVER_PORT", "")) or (self.hosts is not None and name not in self.hosts):
            raise Forbidden("this server answers only to its own address (Host header)")
        if method in ("GET", "HEAD"):
            return
        if environ.get("HTTP_ORIGIN") != f"http://{host}":
            raise Forbidden("writes are accepted only from the labelling page itself (Origin header)")
        if not secrets.compare_digest(environ.get("HTTP_" + TOKEN_HEADER.upper().replace("-", "_"), ""), self.token):
            raise Forbidden("the page's token is missing or stale: reload the page")
        if (environ.get("CONTENT_TYPE") or "").split(";")[0].strip().lower() != "application/json":
            raise UnsupportedMediaType("send the body as application/json")

    def _route(self, path: str, method: str, environ: dict[str, Any]) -> Reply:
        if method == "GET" and path in ("/", "/label"):
            page = web.page(web.LABEL_PAGE).replace(_TOKEN_PLACEHOLDER, self.token).encode()
            return 200, {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}, page
        if method == "GET" and path == "/label/image":
            name = parse_qs(environ.get("QUERY_STRING", "")).get("name", [""])[0]
            return 200, {"Content-Type": "application/octet-stream", "Cache-Control": "no-store"}, \
                self.session.image(name)
        if (method, path) == ("GET", "/label/state"):
            return _json_reply(200, self._with_retraining(self.session.state()))
        if method == "POST" and path in self.ACTIONS:
            document = _json_object(_request_body(environ, limit=65_536))
            if path == "/label/answer":
                name, label = document.get("name"), document.get("label", "")
                if not isinstance(label, str) or not isinstance(name, (str, type(None))):
                    raise InvalidRequest('"label" and "name" must be strings')
                state = self.session.answer(label, name)
            elif path == "/label/retrain":
                if self.retrainer is None:
                    raise UserError("retraining is off: start captcha-ocr label with the train extra installed")
                self.retrainer.start()
                state = self.session.state()
            else:
                state = self.session.skip() if path == "/label/skip" else self.session.back()
            return _json_reply(200, self._with_retraining(state))
        return _json_reply(404, NotFound(f"no route {path[:64]!r}").body())

    def _with_retraining(self, state: dict[str, Any]) -> dict[str, Any]:
        return {**state, "retrain": self.retrainer.status if self.retrainer else {"state": "off"}}


def _host_and_port(host: str) -> tuple[str, str]:
    """A Host header's name and port ("[::1]:9001" -> ("[::1]", "9001")); no port means 80."""
    if host.startswith("["):
        name, _, rest = host.partition("]")
        return name + "]", rest[1:] if rest.startswith(":") else "80"
    name, _, port = host.partition(":")
    return name, port or "80"


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        document = json.loads(body or b"{}")
    except (ValueError, RecursionError):
        raise InvalidJson("body is not valid JSON") from None
    if not isinstance(document, dict):
        raise InvalidJson("body must be a JSON object")
    return document
