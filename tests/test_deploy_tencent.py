"""`captcha-ocr deploy` against a fake SCF API on loopback, through the official SDK.

The fake verifies every request's TC3-HMAC-SHA256 signature with the test's secret (its own
implementation of Tencent's documented algorithm, not the SDK's), answers in the documented
response shapes, including errors, and records the actions. Nothing here reaches Tencent Cloud:
no live deploy was made.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import io
import json
import re
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


# The fake's own reading of the documented parameter rules (the SDK's parameter documentation):
# a request that breaks one is refused as the service refuses it, whatever the client checked
DOC_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,58}[A-Za-z0-9]")
DOC_DESCRIPTION = re.compile(r"[A-Za-z0-9 ,.\n\u4e00-\u9fff]*")
DOC_MEMORY = {64, *range(128, 3073, 128)}
DOC_ZIP_LIMITS = {"CreateFunction": 50 * 2**20, "UpdateFunctionCode": 20 * 2**20}


def invalid(parameter: str, message: str) -> tencent.CloudError:
    return tencent.CloudError(f"InvalidParameterValue.{parameter}", message)


class FakeScf:
    """The SCF API actions deploy uses, as strict as the documentation: parameter rules, each call's
    upload limit, a CreateTrigger reply without the URL, a trigger named by SCF. Faults to inject:
    {action: [error code, ...]} per call."""

    def __init__(self) -> None:
        self.functions: dict[str, dict] = {}
        self.layers: dict[str, list[dict]] = {}
        self.listings_before_url = 1  # ListTriggers calls after CreateTrigger that show no URL yet
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
        return {key: value for key, value in function.items() if key not in ("states", "code", "versions", "alias")}

    @staticmethod
    def check_configuration(params: dict) -> None:
        if "Description" in params and (len(params["Description"]) > 1000
                                        or not DOC_DESCRIPTION.fullmatch(params["Description"])):
            raise invalid("Description", "only letters, digits, spaces, commas, newlines and periods")
        for variable in (params.get("Environment") or {}).get("Variables", []):
            if not variable.get("Key") or not variable.get("Value"):
                raise invalid("Environment", "a variable's name and value may not be empty")
        if "MemorySize" in params and params["MemorySize"] not in DOC_MEMORY:
            raise invalid("MemorySize", "64, or 128-3072 in steps of 128")
        if "Timeout" in params and not 1 <= params["Timeout"] <= 900:
            raise invalid("Timeout", "1-900")

    @staticmethod
    def check_code(action: str, code: dict) -> None:
        if "ZipFile" in code:
            if len(code["ZipFile"]) > DOC_ZIP_LIMITS[action]:
                raise invalid("ZipFile", f"over {DOC_ZIP_LIMITS[action] // 2**20} MB")
            zipfile.ZipFile(io.BytesIO(base64.b64decode(code["ZipFile"], validate=True)))  # a real zip
        elif not str(code.get("CosObjectName", "")).startswith("/") or re.search(r"-\d+$", code["CosBucketName"]):
            raise invalid("Cos", "CosObjectName starts with /, CosBucketName has no -appid")

    def CreateFunction(self, params: dict) -> dict:  # noqa: N802
        if params["FunctionName"] in self.functions:
            raise tencent.CloudError("ResourceInUse.Function", "the function already exists")
        if not DOC_NAME.fullmatch(params["FunctionName"]):
            raise invalid("FunctionName", "letters, digits, - and _, 2-60")
        self.check_configuration(params)
        self.check_code("CreateFunction", params["Code"])
        self.check_layers(params)
        self.functions[params["FunctionName"]] = {
            "code": params["Code"].get("ZipFile") or params["Code"].get("CosObjectName"), "versions": [],
            "alias": "$LATEST", "Layers": params.get("Layers"),
            "FunctionName": params["FunctionName"], "Namespace": params["Namespace"], "Runtime": params["Runtime"],
            "Type": params.get("Type", "Event"), "Handler": params["Handler"], "MemorySize": params["MemorySize"],
            "Timeout": params["Timeout"], "Environment": params["Environment"], "Triggers": [], "StatusReasons": [],
            "states": list(self.create_states),
        }
        return {}

    def UpdateFunctionCode(self, params: dict) -> dict:  # noqa: N802
        function = self._function(params)
        self.check_code("UpdateFunctionCode", params)
        function["code"] = params.get("ZipFile") or params.get("CosObjectName")
        function["states"] = ["Updating", "Active"]
        return {}

    def UpdateFunctionConfiguration(self, params: dict) -> dict:  # noqa: N802
        function = self._function(params)
        self.check_configuration(params)
        self.check_layers(params)
        function.update(MemorySize=params["MemorySize"], Timeout=params["Timeout"], states=["Updating", "Active"])
        if "Layers" in params:
            function["Layers"] = params["Layers"]
        return {}

    # -- layers, versions and the $DEFAULT alias --------------------------------------------
    def PublishLayerVersion(self, params: dict) -> dict:  # noqa: N802
        if not re.fullmatch(r"[A-Za-z](?:[A-Za-z0-9_-]{0,62}[A-Za-z0-9])?", params["LayerName"]):
            raise invalid("LayerName", "1-64 letters, digits, - and _")
        if "Python3.10" not in params["CompatibleRuntimes"]:
            raise invalid("CompatibleRuntimes", "the function's runtime is not among them")
        if len(params["Content"].get("ZipFile", "")) > 50 * 2**20:
            raise invalid("ZipFile", "over 50 MB")
        versions = self.layers.setdefault(params["LayerName"], [])
        versions.append({"LayerName": params["LayerName"], "LayerVersion": len(versions) + 1, "Status": "Active",
                         "Description": params.get("Description", ""),
                         "CompatibleRuntimes": params["CompatibleRuntimes"], "content": params["Content"]["ZipFile"]})
        return {"LayerVersion": len(versions)}

    def ListLayerVersions(self, params: dict) -> dict:  # noqa: N802
        if params["LayerName"] not in self.layers:
            raise tencent.CloudError("ResourceNotFound.Layer", "no such layer")
        return {"LayerVersions": [{k: v for k, v in version.items() if k != "content"}
                                  for version in self.layers[params["LayerName"]]]}

    def GetLayerVersion(self, params: dict) -> dict:  # noqa: N802
        versions = self.layers.get(params["LayerName"], [])
        if not 1 <= params["LayerVersion"] <= len(versions):
            raise tencent.CloudError("ResourceNotFound.LayerVersion", "no such layer version")
        return {k: v for k, v in versions[params["LayerVersion"] - 1].items() if k != "content"}

    def check_layers(self, params: dict) -> None:
        for layer in params.get("Layers") or []:
            if not 1 <= layer["LayerVersion"] <= len(self.layers.get(layer["LayerName"], [])):
                raise tencent.CloudError("ResourceNotFound.Layer", f"no layer {layer}")

    def PublishVersion(self, params: dict) -> dict:  # noqa: N802
        function = self._function(params)
        version = str(len(function["versions"]) + 1)
        function["versions"].append({"Version": version, "code": function["code"], "Layers": function.get("Layers")})
        return {"FunctionVersion": version}

    def UpdateAlias(self, params: dict) -> dict:  # noqa: N802
        function = self._function(params)
        if params["Name"] != "$DEFAULT" or params["FunctionVersion"] not in {
                v["Version"] for v in function["versions"]}:
            raise tencent.CloudError("ResourceNotFound.Version", "no such version")
        function["alias"] = params["FunctionVersion"]
        return {}

    def ListVersionByFunction(self, params: dict) -> dict:  # noqa: N802
        function = self._function(params)
        versions = [{"Version": "$LATEST"}, *({"Version": v["Version"]} for v in function["versions"])]
        return {"Versions": versions, "FunctionVersion": [v["Version"] for v in versions], "TotalCount": len(versions)}

    def serves(self, name: str = "captcha-ocr") -> str:
        """The code the Function URL runs: $DEFAULT's version, else $LATEST."""
        function = self.functions[name]
        version = next((v for v in function["versions"] if v["Version"] == function["alias"]), None)
        return version["code"] if version else function["code"]

    def ListTriggers(self, params: dict) -> dict:  # noqa: N802
        triggers = self._function(params)["Triggers"]
        for trigger in triggers:
            if trigger.get("pending", 0) > 0:
                trigger["pending"] -= 1
            elif "pending" in trigger:
                del trigger["pending"]
                description = json.loads(trigger["TriggerDesc"])
                description["NetConfig"]["ExtranetUrl"] = FUNCTION_URL
                trigger["TriggerDesc"] = json.dumps(description)
        shown = [{k: v for k, v in t.items() if k != "pending"} for t in triggers]
        return {"Triggers": shown, "TotalCount": len(shown)}

    def CreateTrigger(self, params: dict) -> dict:  # noqa: N802
        """As documented: the reply holds only the RequestId; the trigger is named after its URL's id,
        and its URL shows in ListTriggers once SCF has made it."""
        function = self._function(params)
        description = json.loads(params["TriggerDesc"])
        assert params["Type"] == "http" and description["AuthType"] in ("NONE", "CAM")
        trigger = {"Type": "http", "TriggerName": "url-" + FUNCTION_URL.split("-")[1], "Enable": 1,
                   "TriggerDesc": json.dumps(description), "Qualifier": params["Qualifier"],
                   "pending": self.listings_before_url}
        function["Triggers"].append(trigger)
        return {}

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
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
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
    # CreateTrigger's documented reply has no URL: ListTriggers is polled until SCF has made it
    assert actions(fake_scf) == ["GetFunction", "CreateFunction", "GetFunction", "GetFunction", "ListTriggers",
                                 "CreateTrigger", "ListTriggers", "ListTriggers"]
    create = fake_scf.calls[1][1]
    assert create["Type"] == "Event"
    assert create["FunctionName"] == "captcha-ocr" and create["Namespace"] == "default"
    assert (create["Runtime"], create["Handler"], create["MemorySize"], create["Timeout"]) == (
        "Python3.10", "index.main_handler", 128, 10)  # serverless.yml's values
    assert base64.b64decode(create["Code"]["ZipFile"]) == small_zip.read_bytes()
    assert {"Key": "PYTHONUNBUFFERED", "Value": "1"} in create["Environment"]["Variables"]
    trigger = next(params for action, params in fake_scf.calls if action == "CreateTrigger")
    assert fake_scf.functions["captcha-ocr"]["Triggers"][0]["TriggerName"] != trigger["TriggerName"]  # SCF names it
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
    fake_scf.faults = {"UpdateFunctionCode": ["FailedOperation.UpdateFunctionCode"],
                       "UpdateFunctionConfiguration": ["FailedOperation.FunctionStatusError"],
                       "ListTriggers": ["RequestLimitExceeded"]}
    code, out, err = run_deploy(fake_scf, small_zip)
    assert code == 0, err
    assert actions(fake_scf).count("UpdateFunctionCode") == 2 and actions(fake_scf).count("ListTriggers") == 2
    assert actions(fake_scf).count("UpdateFunctionConfiguration") == 2 and "retrying" in out


def test_busy_trigger_calls_are_retried_too(fake_scf, small_zip):
    fake_scf.faults = {"CreateTrigger": ["FailedOperation.FunctionVersionStatusNotActive",
                                         "FailedOperation.FunctionNameStatusError"]}
    code, out, err = run_deploy(fake_scf, small_zip)
    assert code == 0, err
    assert actions(fake_scf).count("CreateTrigger") == 3 and f"Function URL: {FUNCTION_URL}" in out


def test_a_function_that_already_exists_is_updated_not_retried_as_busy(fake_scf, small_zip):
    """ResourceInUse.Function means "exists" (made meanwhile, e.g. by another deploy), not "busy"."""
    assert run_deploy(fake_scf, small_zip)[0] == 0
    fake_scf.calls.clear()
    fake_scf.faults = {"GetFunction": ["ResourceNotFound.Function"]}  # it did not exist when first asked
    code, out, err = run_deploy(fake_scf, small_zip)
    assert code == 0, err
    assert actions(fake_scf)[:4] == ["GetFunction", "CreateFunction", "GetFunction", "UpdateFunctionCode"]
    assert actions(fake_scf).count("CreateFunction") == 1


@pytest.mark.parametrize("change, message", [
    ({"description": "captcha-ocr - reads (base64Image) + more"}, "description"),
    ({"environment": {"EMPTY": ""}}, "value may be empty"),
    ({"memory": 100}, "memory 100 MB"),
    ({"timeout": 901}, "timeout 901 s"),
    ({"name": "1-bad-"}, "function name"),
])
def test_settings_the_api_refuses_stop_the_deploy_before_any_call(fake_scf, small_zip, change, message):
    cloud = tencent.SdkCloud("ap-guangzhou", tencent.load_credential(), fake_scf.endpoint, "http")
    settings = dataclasses.replace(tencent.DeploySettings(), **change)
    deployer = tencent.Deployer(cloud, settings, print_line=lambda line: None, sleep=lambda seconds: None)
    with pytest.raises(tencent.DeployError, match=message):
        deployer.deploy(tencent.zip_code(small_zip.read_bytes()))
    assert fake_scf.calls == []


def test_the_fake_refuses_what_the_api_refuses(fake_scf):
    """The fake is as strict as the documentation: the description today's serverless.yml had was refused."""
    with pytest.raises(tencent.CloudError, match="Description"):
        fake_scf.check_configuration({"Description": "captcha-ocr - recognise captcha images (base64Image) with a "
                                                     "TFLite CNN + CTC model"})
    with pytest.raises(tencent.CloudError, match="Environment"):
        fake_scf.check_configuration({"Environment": {"Variables": [{"Key": "A", "Value": ""}]}})
    with pytest.raises(tencent.CloudError, match="ZipFile"):
        fake_scf.check_code("UpdateFunctionCode", {"ZipFile": "A" * (20 * 2**20 + 4)})
    with pytest.raises(tencent.CloudError, match="Cos"):
        fake_scf.check_code("UpdateFunctionCode", {"CosBucketName": "bucket", "CosObjectName": "code.zip"})


def test_serverless_yml_passes_every_documented_rule():
    tencent.check_settings(tencent.settings_from_serverless(REPO / "serverless.yml"))


def test_an_update_over_20_mb_says_to_use_cos_while_a_creation_takes_up_to_50(fake_scf, small_zip):
    big = {"ZipFile": "A" * (25 * 2**20)}
    tencent.check_upload_size(big, "CreateFunction")
    with pytest.raises(tencent.DeployError, match="20 MB UpdateFunctionCode accepts directly.*cos-bucket"):
        tencent.check_upload_size(big, "UpdateFunctionCode")


def test_cos_names_are_normalised_as_documented():
    assert tencent.cos_code("mybucket-1250000000", "captcha-ocr.zip", "ap-guangzhou") == {
        "CosBucketName": "mybucket", "CosObjectName": "/captcha-ocr.zip", "CosBucketRegion": "ap-guangzhou"}
    assert tencent.cos_code("my-bucket", "/a/b.zip", "ap-beijing")["CosBucketName"] == "my-bucket"


@pytest.mark.parametrize("existing, message", [({"Runtime": "Python3.9"}, "runs Python3.9"),
                                               ({"Type": "HTTP"}, "of type HTTP")])
def test_an_existing_function_of_another_runtime_or_type_is_refused(fake_scf, small_zip, existing, message):
    assert run_deploy(fake_scf, small_zip)[0] == 0
    fake_scf.functions["captcha-ocr"].update(existing)
    fake_scf.calls.clear()
    code, _, err = run_deploy(fake_scf, small_zip)
    assert code == 1 and message in err and "UpdateFunctionCode" not in actions(fake_scf)


def test_only_the_default_qualifiers_url_is_used(fake_scf, small_zip):
    assert run_deploy(fake_scf, small_zip)[0] == 0
    triggers = fake_scf.functions["captcha-ocr"]["Triggers"]
    triggers.insert(0, {"Type": "http", "TriggerName": "url-other", "Qualifier": "2", "Enable": 1,
                        "TriggerDesc": json.dumps({"AuthType": "CAM", "NetConfig": {
                            "EnableExtranet": True, "ExtranetUrl": "https://other-version.example"}})})
    code, out, err = run_deploy(fake_scf, small_zip)
    assert code == 0, err
    assert f"Function URL: {FUNCTION_URL}" in out and "UpdateTrigger" not in actions(fake_scf)


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
    assert actions(fake_scf) == ["GetFunction"] and fake_scf.functions == {}  # it read the account, wrote nothing
    assert "reading the account" in out
    planned = [line.split(" ", 1)[0] for line in out.splitlines() if line[:1].isupper() and "{" in line]
    assert planned == ["CreateFunction", "CreateTrigger"]
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


# -- the layered deploy end to end: first deploy, code update, dependency change, publish, roll-back
def zip_of(tmp_path: Path, name: str, files: dict[str, str]) -> Path:
    path = tmp_path / name
    with zipfile.ZipFile(path, "w") as archive:
        for file, text in files.items():
            archive.writestr(file, text)
    return path


def test_layered_deploys_end_to_end(fake_scf, tmp_path):
    code_v1 = zip_of(tmp_path, "code1.zip", {"index.py": "# version 1\n"})
    code_v2 = zip_of(tmp_path, "code2.zip", {"index.py": "# version 2\n"})
    deps_a = zip_of(tmp_path, "deps-a.zip", {"numpy/__init__.py": "# numpy a\n"})
    deps_b = zip_of(tmp_path, "deps-b.zip", {"numpy/__init__.py": "# numpy b\n"})

    # a first deploy publishes the layer and binds it
    code, out, err = run_deploy(fake_scf, code_v1, "--layer", str(deps_a), "--publish")
    assert code == 0, err
    function = fake_scf.functions["captcha-ocr"]
    assert function["Layers"] == [{"LayerName": "captcha-ocr-deps", "LayerVersion": 1}]
    assert actions(fake_scf).count("PublishLayerVersion") == 1 and function["alias"] == "1"
    url = FUNCTION_URL

    # a code-only update reuses the layer: no PublishLayerVersion, the upload is the code alone
    fake_scf.calls.clear()
    code, out, err = run_deploy(fake_scf, code_v2, "--layer", str(deps_a), "--publish")
    assert code == 0, err
    assert "PublishLayerVersion" not in actions(fake_scf) and "reused" in out
    uploaded = next(params for action, params in fake_scf.calls if action == "UpdateFunctionCode")
    assert len(uploaded["ZipFile"]) <= 1.5 * 2**20
    assert fake_scf.serves() == base64.b64encode(code_v2.read_bytes()).decode() and function["alias"] == "2"

    # a dependency change publishes a new layer version and binds it
    fake_scf.calls.clear()
    code, out, err = run_deploy(fake_scf, code_v2, "--layer", str(deps_b))
    assert code == 0, err
    assert actions(fake_scf).count("PublishLayerVersion") == 1
    assert function["Layers"] == [{"LayerName": "captcha-ocr-deps", "LayerVersion": 2}]

    # a roll-back routes $DEFAULT (so the URL) to version 1: nothing built, nothing uploaded
    fake_scf.calls.clear()
    code, out, err = run_deploy(fake_scf, code_v2, "--rollback", "1")
    assert code == 0, err
    assert fake_scf.serves() == base64.b64encode(code_v1.read_bytes()).decode()
    assert not {"UpdateFunctionCode", "PublishLayerVersion", "CreateTrigger"} & set(actions(fake_scf))
    assert f"Function URL: {url}" in out
    code, _, err = run_deploy(fake_scf, code_v2, "--rollback", "9")
    assert code == 1 and "no published version '9'" in err


def test_the_dry_run_of_an_update_shows_the_real_plan(fake_scf, tmp_path):
    code_zip = zip_of(tmp_path, "code.zip", {"index.py": "# v\n"})
    deps = zip_of(tmp_path, "deps.zip", {"numpy/__init__.py": "# n\n"})
    assert run_deploy(fake_scf, code_zip, "--layer", str(deps))[0] == 0
    fake_scf.calls.clear()
    code, out, err = run_deploy(fake_scf, code_zip, "--layer", str(deps), "--dry-run")
    assert code == 0, err
    assert set(actions(fake_scf)) <= set(tencent.READ_ACTIONS)  # only reads reached the account
    planned = [line.split(" ", 1)[0] for line in out.splitlines() if line[:1].isupper() and "{" in line]
    assert planned == ["UpdateFunctionCode", "UpdateFunctionConfiguration"]  # the layer reused, the URL there
    assert "reused" in out


def test_a_dry_run_without_credentials_says_it_assumes_an_empty_account(fake_scf, small_zip, monkeypatch):
    monkeypatch.delenv("TENCENTCLOUD_SECRET_ID")
    monkeypatch.delenv("TENCENTCLOUD_SECRET_KEY")
    code, out, err = run_deploy(fake_scf, small_zip, "--dry-run")
    assert code == 0, err
    assert "assuming an empty account" in out and fake_scf.calls == []
