"""`captcha-ocr deploy` against a fake SCF API on loopback, through the official SDK.

The fake verifies every request's TC3-HMAC-SHA256 signature with the test's secret (its own
implementation of Tencent's documented algorithm, not the SDK's), answers in the documented
response shapes, including errors, and records the actions. Nothing here reaches Tencent Cloud:
no live deploy was made.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import io
import json
import threading
import time
import uuid
import zipfile
from contextlib import redirect_stderr, redirect_stdout
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import MODEL_DIR, REPO

from captcha_ocr import cli
from captcha_ocr.deploy import tencent

SECRET_ID, SECRET_KEY = "AKIDtest0123456789", "test-secret-key-0123456789"
FUNCTION_URL = "https://1250000000-abc123-gz.scf.tencentcs.com"


def tc3_signature(secret_key: str, date: str, service: str, string_to_sign: str) -> str:
    def sign(key: bytes, message: str) -> bytes:
        return hmac.new(key, message.encode(), hashlib.sha256).digest()

    signing_key = sign(sign(sign(("TC3" + secret_key).encode(), date), service), "tc3_request")
    return hmac.new(signing_key, string_to_sign.encode(), hashlib.sha256).hexdigest()


class FakeScf:
    """The SCF API actions deploy uses, with faults to inject: {action: [error code, ...]} per call."""

    def __init__(self) -> None:
        self.functions: dict[str, dict] = {}
        self.calls: list[tuple[str, dict]] = []
        self.faults: dict[str, list[str]] = {}
        self.create_states = ["Creating", "Active"]  # what GetFunction reports after CreateFunction
        self.signatures_checked = 0

    # -- HTTP ---------------------------------------------------------------------------------
    def answer(self, headers: dict[str, str], body: bytes) -> dict:
        request_id = str(uuid.uuid4())
        problem = self.check_signature(headers, body)
        if problem:
            return {"Response": {"Error": {"Code": "AuthFailure.SignatureFailure", "Message": problem},
                                 "RequestId": request_id}}
        action, params = headers["x-tc-action"], json.loads(body)
        self.calls.append((action, params))
        faults = self.faults.get(action) or []
        try:
            if faults:
                raise tencent.CloudError(faults.pop(0), "injected by the test")
            result = getattr(self, action)(params)
        except tencent.CloudError as error:
            return {"Response": {"Error": {"Code": error.code, "Message": error.message}, "RequestId": request_id}}
        return {"Response": {**result, "RequestId": request_id}}

    def check_signature(self, headers: dict[str, str], body: bytes) -> str:
        authorization = headers.get("authorization", "")
        fields = dict(part.strip().split("=", 1) for part in authorization.removeprefix("TC3-HMAC-SHA256 ").split(","))
        secret_id, date, service, terminator = fields["Credential"].split("/")
        timestamp = int(headers["x-tc-timestamp"])
        if secret_id != SECRET_ID:
            return "unknown SecretId"
        if abs(time.time() - timestamp) > 300 or date != datetime.fromtimestamp(timestamp, timezone.utc).strftime(
                "%Y-%m-%d") or terminator != "tc3_request" or service != "scf":
            return "bad credential scope or timestamp"
        signed = fields["SignedHeaders"].split(";")
        canonical_headers = "".join(f"{name}:{headers[name].strip()}\n" for name in signed)
        canonical = "\n".join(["POST", "/", "", canonical_headers, ";".join(signed), hashlib.sha256(body).hexdigest()])
        string_to_sign = "\n".join(["TC3-HMAC-SHA256", str(timestamp), f"{date}/{service}/tc3_request",
                                    hashlib.sha256(canonical.encode()).hexdigest()])
        if not hmac.compare_digest(tc3_signature(SECRET_KEY, date, service, string_to_sign), fields["Signature"]):
            return "signature mismatch"
        self.signatures_checked += 1
        return ""

    # -- actions ------------------------------------------------------------------------------
    def _function(self, params: dict) -> dict:
        function = self.functions.get(params["FunctionName"])
        if function is None:
            raise tencent.CloudError("ResourceNotFound.Function", f"function {params['FunctionName']} does not exist")
        return function

    def GetFunction(self, params: dict) -> dict:  # noqa: N802 (SCF's action names)
        function = self._function(params)
        if len(function["states"]) > 1:
            function["Status"] = function["states"].pop(0)
        else:
            function["Status"] = function["states"][0]
        return {key: value for key, value in function.items() if key != "states"}

    def CreateFunction(self, params: dict) -> dict:  # noqa: N802
        if params["FunctionName"] in self.functions:
            raise tencent.CloudError("ResourceInUse.Function", "the function already exists")
        zipfile.ZipFile(io.BytesIO(base64.b64decode(params["Code"]["ZipFile"], validate=True)))  # a real zip
        self.functions[params["FunctionName"]] = {
            "FunctionName": params["FunctionName"], "Namespace": params["Namespace"], "Runtime": params["Runtime"],
            "Handler": params["Handler"], "MemorySize": params["MemorySize"], "Timeout": params["Timeout"],
            "Environment": params["Environment"], "Triggers": [], "StatusReasons": [],
            "states": list(self.create_states),
        }
        return {}

    def UpdateFunctionCode(self, params: dict) -> dict:  # noqa: N802
        function = self._function(params)
        zipfile.ZipFile(io.BytesIO(base64.b64decode(params["ZipFile"], validate=True)))
        function["states"] = ["Updating", "Active"]
        return {}

    def UpdateFunctionConfiguration(self, params: dict) -> dict:  # noqa: N802
        function = self._function(params)
        function.update(MemorySize=params["MemorySize"], Timeout=params["Timeout"], states=["Updating", "Active"])
        return {}

    def ListTriggers(self, params: dict) -> dict:  # noqa: N802
        triggers = self._function(params)["Triggers"]
        return {"Triggers": triggers, "TotalCount": len(triggers)}

    def CreateTrigger(self, params: dict) -> dict:  # noqa: N802
        function = self._function(params)
        description = json.loads(params["TriggerDesc"])
        assert params["Type"] == "http" and description["AuthType"] in ("NONE", "CAM")
        description["NetConfig"]["ExtranetUrl"] = FUNCTION_URL
        trigger = {"Type": "http", "TriggerName": params["TriggerName"], "TriggerDesc": json.dumps(description),
                   "Qualifier": params["Qualifier"], "Enable": 1}
        function["Triggers"].append(trigger)
        return {"TriggerInfo": trigger}

    def UpdateTrigger(self, params: dict) -> dict:  # noqa: N802
        trigger = next(t for t in self._function(params)["Triggers"] if t["TriggerName"] == params["TriggerName"])
        description = json.loads(params["TriggerDesc"])
        description["NetConfig"]["ExtranetUrl"] = FUNCTION_URL
        trigger["TriggerDesc"] = json.dumps(description)
        return {}


@pytest.fixture
def fake_scf(monkeypatch):
    fake = FakeScf()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers["Content-Length"]))
            reply = json.dumps(fake.answer({k.lower(): v for k, v in self.headers.items()}, body)).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(reply)))
            self.end_headers()
            self.wfile.write(reply)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    fake.endpoint = f"127.0.0.1:{server.server_address[1]}"
    monkeypatch.setenv("TENCENTCLOUD_SECRET_ID", SECRET_ID)
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", SECRET_KEY)
    monkeypatch.setenv("HOME", "/nonexistent")  # no profile file from the machine running the tests
    yield fake
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def small_zip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("zip") / "bundle.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("index.py", "def main_handler(event, context):\n    return {}\n")
    return path


def run_deploy(fake: FakeScf, bundle: Path, *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = cli.main(["deploy", "--bundle", str(bundle), "--no-smoke", "--api-endpoint", fake.endpoint,
                         "--api-scheme", "http", "--poll-seconds", "0", *extra])
    return code, out.getvalue(), err.getvalue()


def actions(fake: FakeScf) -> list[str]:
    return [action for action, _ in fake.calls]


def test_first_deploy_creates_the_function_and_its_url(fake_scf, small_zip):
    code, out, err = run_deploy(fake_scf, small_zip)
    assert code == 0, err
    assert actions(fake_scf) == ["GetFunction", "CreateFunction", "GetFunction", "GetFunction", "ListTriggers",
                                 "CreateTrigger"]
    create = fake_scf.calls[1][1]
    assert create["FunctionName"] == "captcha-ocr" and create["Namespace"] == "default"
    assert (create["Runtime"], create["Handler"], create["MemorySize"], create["Timeout"]) == (
        "Python3.10", "index.main_handler", 128, 10)  # serverless.yml's values
    assert base64.b64decode(create["Code"]["ZipFile"]) == small_zip.read_bytes()
    assert {"Key": "PYTHONUNBUFFERED", "Value": "1"} in create["Environment"]["Variables"]
    trigger = fake_scf.calls[-1][1]
    assert trigger["Type"] == "http" and json.loads(trigger["TriggerDesc"]) == {
        "AuthType": "NONE", "NetConfig": {"EnableIntranet": False, "EnableExtranet": True}}
    assert f"Function URL: {FUNCTION_URL}" in out
    assert fake_scf.signatures_checked == len(fake_scf.calls)


def test_a_second_deploy_updates_and_never_duplicates(fake_scf, small_zip):
    assert run_deploy(fake_scf, small_zip)[0] == 0
    fake_scf.calls.clear()
    code, out, err = run_deploy(fake_scf, small_zip, "--memory", "256", "--timeout", "8")
    assert code == 0, err
    assert actions(fake_scf) == ["GetFunction", "UpdateFunctionCode", "GetFunction", "GetFunction",
                                 "UpdateFunctionConfiguration", "GetFunction", "GetFunction", "ListTriggers"]
    function = fake_scf.functions["captcha-ocr"]
    assert (function["MemorySize"], function["Timeout"]) == (256, 8) and len(function["Triggers"]) == 1
    assert f"Function URL: {FUNCTION_URL}" in out
    fake_scf.calls.clear()
    assert run_deploy(fake_scf, small_zip, "--url-auth", "CAM")[0] == 0  # a changed URL auth: updated in place
    assert actions(fake_scf)[-2:] == ["UpdateTrigger", "ListTriggers"]
    assert json.loads(function["Triggers"][0]["TriggerDesc"])["AuthType"] == "CAM"
    assert len(function["Triggers"]) == 1


def test_a_failed_function_stops_the_deploy_with_the_platform_reason(fake_scf, small_zip):
    fake_scf.create_states = ["Creating", "CreateFailed"]
    original = FakeScf.CreateFunction

    def create_then_fail(self, params):
        result = original(self, params)
        self.functions[params["FunctionName"]]["StatusReasons"] = [
            {"ErrorCode": "InternalError.System", "ErrorMessage": "image layer could not be unpacked"}]
        return result

    fake_scf.CreateFunction = create_then_fail.__get__(fake_scf)
    code, out, err = run_deploy(fake_scf, small_zip)
    assert code == 1
    assert "CreateFailed" in err and "image layer could not be unpacked" in err and "Traceback" not in err
    assert "CreateTrigger" not in actions(fake_scf) and "Function URL:" not in out


def test_throttled_and_busy_calls_are_retried(fake_scf, small_zip):
    assert run_deploy(fake_scf, small_zip)[0] == 0
    fake_scf.calls.clear()
    fake_scf.faults = {"UpdateFunctionCode": ["ResourceInUse.Function"], "ListTriggers": ["RequestLimitExceeded"]}
    code, out, err = run_deploy(fake_scf, small_zip)
    assert code == 0, err
    assert actions(fake_scf).count("UpdateFunctionCode") == 2 and actions(fake_scf).count("ListTriggers") == 2
    assert "retrying" in out


def test_a_function_stuck_in_creating_times_out_with_a_clear_message(fake_scf, small_zip):
    fake_scf.create_states = ["Creating"]
    cloud = tencent.SdkCloud("ap-guangzhou", tencent.load_credential(), fake_scf.endpoint, "http")
    deployer = tencent.Deployer(cloud, tencent.DeploySettings(), print_line=lambda line: None, poll_seconds=1,
                                max_wait_seconds=3, sleep=lambda seconds: None)
    with pytest.raises(tencent.DeployError, match="still Creating after 3 s"):
        deployer.deploy(tencent.zip_code(small_zip.read_bytes()))


def test_a_wrong_secret_is_refused_by_the_signature_check(fake_scf, small_zip, monkeypatch):
    monkeypatch.setenv("TENCENTCLOUD_SECRET_KEY", "not-the-secret")
    code, _, err = run_deploy(fake_scf, small_zip)
    assert code == 1 and "AuthFailure.SignatureFailure" in err and fake_scf.functions == {}


def test_dry_run_prints_the_plan_and_sends_nothing(fake_scf, small_zip, tmp_path):
    config = tmp_path / "serverless.yml"
    config.write_text((REPO / "serverless.yml").read_text().replace(
        'PYTHONUNBUFFERED: "1"', 'PYTHONUNBUFFERED: "1"\n      API_SECRET_TOKEN: "hunter2"'))
    code, out, err = run_deploy(fake_scf, small_zip, "--dry-run", "--config", str(config))
    assert code == 0, err
    assert fake_scf.calls == []
    planned = [line.split(" ", 1)[0] for line in out.splitlines() if line[:1].isupper() and "{" in line]
    assert planned == ["GetFunction", "CreateFunction", "GetFunction", "ListTriggers", "CreateTrigger"]
    digest = hashlib.sha256(small_zip.read_bytes()).hexdigest()
    assert f"sha256 {digest}" in out and base64.b64encode(small_zip.read_bytes()).decode() not in out
    assert "hunter2" not in out and '"Value": "***"' in out


def test_the_plan_names_the_models_the_bundle_serves(fake_scf, tmp_path):
    archive = tmp_path / "bundle.zip"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("index.py", "")
        bundle.write(MODEL_DIR / "config.json", "captcha_ocr/models/default/config.json")
        bundle.writestr("models/mysite/config.json", (MODEL_DIR / "config.json").read_text().replace(
            '"name": "captcha-ocr-synthetic-v1"', '"name": "mysite"'))
    code, out, err = run_deploy(fake_scf, archive, "--dry-run")
    assert code == 0, err
    assert "models: captcha-ocr-synthetic-v1 (default), mysite" in out


def test_an_upload_over_50_mb_says_to_use_cos():
    with pytest.raises(tencent.DeployError, match="COS"):
        tencent.check_upload_size({"ZipFile": "A" * (tencent.ZIP_UPLOAD_LIMIT_BYTES + 4)})
    tencent.check_upload_size(tencent.cos_code("bucket-1250000000", "captcha-ocr.zip", "ap-guangzhou"))


def test_settings_come_from_serverless_yml():
    settings = tencent.settings_from_serverless(REPO / "serverless.yml")
    assert (settings.name, settings.region, settings.namespace, settings.memory, settings.timeout,
            settings.url_auth) == ("captcha-ocr", "ap-guangzhou", "default", 128, 10, "NONE")
