import base64
import json

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


# Alibaba Cloud Function Compute 3.0, HTTP trigger, built-in runtime: the documented request struct
FUNCTION_COMPUTE_EVENT = {
    "version": "v1",
    "rawPath": "/example",
    "body": "Hello FC!",
    "isBase64Encoded": False,
    "headers": {"header1": "value1", "header2": "value1,value2", "Content-Type": "text/plain"},
    "queryParameters": {"parameter1": "value1", "parameter2": "value1,value2"},
    "requestContext": {
        "accountId": "123456*********", "domainName": "<http-trigger-id>.<region-id>.fcapp.run",
        "domainPrefix": "<http-trigger-id>",
        "http": {"method": "GET", "path": "/example", "protocol": "HTTP/1.1", "sourceIp": "11.11.11.**",
                 "userAgent": "PostmanRuntime/7.32.3"},
        "requestId": "1-64f6cd87-*************", "time": "2023-09-05T06:41:11Z", "timeEpoch": "1693896071895",
    },
}


def test_function_compute_http_trigger_event():
    request = parse_event(FUNCTION_COMPUTE_EVENT)
    assert (request.method, request.path, request.request_id) == ("GET", "/example", "1-64f6cd87-*************")
    assert request.query == {"parameter1": "value1", "parameter2": "value1,value2"}
    assert request.headers["content-type"] == "text/plain" and request.body == b"Hello FC!"


def test_function_compute_passes_the_event_as_json_bytes():
    event = json.dumps({**FUNCTION_COMPUTE_EVENT, "requestContext": {
        **FUNCTION_COMPUTE_EVENT["requestContext"], "http": {"method": "POST", "path": "/health"}}}).encode()
    assert (parse_event(event).method, parse_event(event).path) == ("POST", "/health")
    with pytest.raises(InvalidRequest):
        parse_event(b"not json")


def test_function_compute_binary_body_and_reply(app):
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n").decode()
    event = {**FUNCTION_COMPUTE_EVENT, "body": png, "isBase64Encoded": True, "headers": {"Content-Type": "image/png"},
             "requestContext": {**FUNCTION_COMPUTE_EVENT["requestContext"], "http": {"method": "POST", "path": "/"}}}
    assert parse_event(event).body == b"\x89PNG\r\n\x1a\n"
    reply = app.handle(json.dumps(event).encode(), None)  # what index.main_handler gets on Function Compute
    # the documented response struct: statusCode, headers, isBase64Encoded, body
    assert set(reply) == {"statusCode", "headers", "isBase64Encoded", "body"}
    assert reply["statusCode"] == 415 and json.loads(reply["body"])["error"]["code"] == "UnsupportedImage"
