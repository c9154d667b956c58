"""SCF events -> one typed `Request`; a status and body -> the integrated response SCF returns.

Four event shapes arrive at `main_handler`: the API Gateway trigger (`queryString`, `headers`,
`body`, `isBase64Encoded`, `requestContext`), the SCF Function URL trigger (the same keys, fewer of
them), Alibaba Cloud Function Compute 3.0's HTTP trigger (`rawPath`, `queryParameters`,
`requestContext.http.method`), and a direct invoke (`{"base64Image": ...}`, no HTTP at all). The
reply is the same integrated response for all of them. Nothing here runs the model.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from captcha_ocr.errors import InvalidBase64, InvalidRequest

LOGGED_CHARS = 64  # a client-supplied string is cut to this in logs: never long enough to carry an image
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "86400",
}


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    direct: dict[str, Any] | None = None  # the event itself, for a direct invoke
    request_id: str = ""

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()


def _truthy(value: object) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def single_values(mapping: object, what: str) -> dict[str, str]:
    """Gateway maps and parsed forms -> {name: str}; a list value is accepted only when it holds one string."""
    if mapping is None:
        return {}
    if not isinstance(mapping, dict):
        raise InvalidRequest(f"{what} must be an object")
    result = {}
    for key, value in mapping.items():
        if isinstance(value, list):
            if len(value) != 1:
                raise InvalidRequest(f"{what} {str(key)[:64]!r} is given {len(value)} times; give it once")
            value = value[0]
        if value is None:
            value = ""
        if not isinstance(value, (str, int, float, bool)):
            raise InvalidRequest(f"{what} {str(key)[:64]!r} must be a string")
        result[str(key).lower() if what == "header" else str(key)] = str(value)
    return result


def _body_bytes(event: dict[str, Any]) -> bytes:
    body = event.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise InvalidRequest("body must be a string")
    if _truthy(event.get("isBase64Encoded")):
        try:
            return base64.b64decode(body, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise InvalidBase64("isBase64Encoded is true but the body is not valid base64") from exc
    return body.encode("utf-8", errors="surrogatepass")


def _route_path(event: dict[str, Any]) -> str:
    """The path relative to the API's own path, so routes work under any API Gateway prefix."""
    path = event.get("path") or "/"
    context = event.get("requestContext")
    api_path = context.get("path") if isinstance(context, dict) else None
    if not isinstance(path, str):
        raise InvalidRequest("path must be a string")
    prefix = api_path.rstrip("/") if isinstance(api_path, str) else ""
    if prefix and (path == prefix or path.startswith(prefix + "/")):  # "/release" is not cut from "/releasehealth"
        path = path[len(prefix) :]
    return path


def _function_compute_http(event: dict[str, Any]) -> dict[str, Any] | None:
    """requestContext.http of an Alibaba Cloud Function Compute 3.0 HTTP-trigger event, else None."""
    context = event.get("requestContext")
    http = context.get("http") if isinstance(context, dict) and "httpMethod" not in event else None
    return http if isinstance(http, dict) else None


def _request_id(event: dict[str, Any], context: object) -> str:
    candidates = [getattr(context, "request_id", None)]
    if isinstance(context, dict):
        candidates.append(context.get("request_id"))
    request_context = event.get("requestContext")
    if isinstance(request_context, dict):
        candidates.append(request_context.get("requestId"))
    for candidate in candidates:
        if isinstance(candidate, str) and 0 < len(candidate) <= LOGGED_CHARS:
            return candidate
    return uuid.uuid4().hex


def parse_event(event: object, context: object = None) -> Request:
    """Any SCF or Function Compute event -> Request; raises InvalidRequest for events no trigger sends.

    Function Compute 3.0's Python runtime hands the event over as JSON bytes; SCF as a dict.
    """
    if isinstance(event, (bytes, str)):
        try:
            event = json.loads(event)
        except (ValueError, RecursionError):
            pass  # refused just below
    if not isinstance(event, dict):
        raise InvalidRequest("event must be a JSON object")
    request_id = _request_id(event, context)
    http = _function_compute_http(event)
    if http is not None:  # Function Compute 3.0: {"requestContext": {"http": {"method", "path"}}, ...}
        method, path, query = http.get("method"), http.get("path") or "/", event.get("queryParameters")
    elif "httpMethod" in event:
        method, path = event.get("httpMethod"), _route_path(event)
        query = event.get("queryString", event.get("queryStringParameters"))
    else:
        return Request(method="INVOKE", path="/", direct=event, request_id=request_id)
    if not isinstance(method, str) or not (method.isascii() and method.isalpha() and len(method) <= 16):
        raise InvalidRequest("the HTTP method must be 1-16 ASCII letters")
    if not isinstance(path, str):
        raise InvalidRequest("path must be a string")
    return Request(
        method=method.upper(),
        path="/" + path.strip("/"),
        query=single_values(query, "query parameter"),
        headers=single_values(event.get("headers"), "header"),
        body=_body_bytes(event),
        request_id=request_id,
    )


def query_event(params: dict[str, str], path: str = "/") -> dict[str, Any]:
    """The smallest API Gateway GET event carrying these query parameters: how tools and tests call
    the handler the way a client's GET does."""
    return {"httpMethod": "GET", "path": path, "queryString": dict(params), "headers": {}}


def integrated_response(status: int, body: dict[str, Any] | str | None,
                        extra_headers: dict[str, str] | None = None) -> dict:
    """The API Gateway / Function URL integrated response: a dict body becomes a JSON string, a str
    body (a page, with its Content-Type in extra_headers) goes as it is, None is empty (204)."""
    headers = {"Content-Type": "application/json; charset=utf-8", **CORS_HEADERS, **(extra_headers or {})}
    return {
        "isBase64Encoded": False,
        "statusCode": status,
        "headers": headers,
        "body": body if isinstance(body, str) else "" if body is None else json.dumps(
            body, ensure_ascii=False, separators=(",", ":")),
    }
