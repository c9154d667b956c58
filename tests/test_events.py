import base64

import pytest

from captcha_ocr.errors import InvalidBase64, InvalidRequest
from captcha_ocr.events import integrated_response, parse_event

API_GATEWAY_EVENT = {
    "headerParameters": {},
    "headers": {"Content-Type": "application/json", "Host": "service-x.gz.apigw.tencentcs.com"},
    "httpMethod": "GET",
    "path": "/",
    "pathParameters": {},
    "queryString": {"base64Image": "iVBORw0"},
    "queryStringParameters": {},
    "requestContext": {"httpMethod": "ANY", "identity": {}, "path": "/", "requestId": "req-1",
                       "serviceId": "service-x", "sourceIp": "10.0.0.1", "stage": "release"},
    "body": None,
    "isBase64Encoded": False,
}


def test_api_gateway_event():
    request = parse_event(API_GATEWAY_EVENT)
    assert (request.method, request.path, request.request_id) == ("GET", "/", "req-1")
    assert request.query == {"base64Image": "iVBORw0"}
    assert request.headers["content-type"] == "application/json"  # header names are case-insensitive


def test_function_url_event_has_fewer_keys():
    event = {"httpMethod": "POST", "path": "/health", "queryString": {}, "headers": {}, "body": "x"}
    request = parse_event(event, {"request_id": "ctx-7"})
    assert (request.method, request.path, request.body, request.request_id) == ("POST", "/health", b"x", "ctx-7")


def test_direct_invoke():
    request = parse_event({"base64Image": "abc"})
    assert request.method == "INVOKE" and request.direct == {"base64Image": "abc"}


@pytest.mark.parametrize("flag", [True, "true", "TRUE"])
def test_base64_encoded_bodies(flag):
    event = {"httpMethod": "POST", "path": "/", "body": base64.b64encode(b"\x89PNG").decode(), "isBase64Encoded": flag}
    assert parse_event(event).body == b"\x89PNG"


def test_broken_base64_body():
    with pytest.raises(InvalidBase64):
        parse_event({"httpMethod": "POST", "path": "/", "body": "***", "isBase64Encoded": "true"})


@pytest.mark.parametrize("api_path, path, route", [("/ocr", "/ocr", "/"), ("/ocr", "/ocr/health", "/health"),
                                                   ("/", "/health/", "/health"), (None, "", "/")])
def test_routes_are_relative_to_the_api_path(api_path, path, route):
    event = {"httpMethod": "GET", "path": path, "requestContext": {"path": api_path}}
    assert parse_event(event).path == route


@pytest.mark.parametrize(
    "event",
    [
        None, [], "text", 42,
        {"httpMethod": 5, "path": "/"},
        {"httpMethod": "GET /", "path": "/"},
        {"httpMethod": "GET", "path": 3},
        {"httpMethod": "GET", "path": "/", "queryString": "base64Image=x"},
        {"httpMethod": "GET", "path": "/", "queryString": {"base64Image": ["a", "b"]}},
        {"httpMethod": "GET", "path": "/", "queryString": {"base64Image": {"x": 1}}},
        {"httpMethod": "POST", "path": "/", "body": {"base64Image": "x"}},
    ],
)
def test_events_no_trigger_sends_are_invalid(event):
    with pytest.raises(InvalidRequest):
        parse_event(event)


def test_single_item_lists_and_valueless_keys():
    request = parse_event({"httpMethod": "GET", "path": "/", "queryString": {"base64Image": ["abc"], "flag": None}})
    assert request.query == {"base64Image": "abc", "flag": ""}


def test_integrated_response_shape():
    reply = integrated_response(200, {"ok": True, "text": "日本"})
    assert reply["isBase64Encoded"] is False and reply["statusCode"] == 200
    assert reply["headers"]["Content-Type"] == "application/json; charset=utf-8"
    assert reply["headers"]["Access-Control-Allow-Origin"] == "*"
    assert reply["body"] == '{"ok":true,"text":"日本"}'
    assert integrated_response(204, None)["body"] == ""
