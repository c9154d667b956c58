"""`captcha-ocr deploy`: the bundle to a Tencent Cloud SCF function with a Function URL.

On the official SDK (tencentcloud-sdk-python-scf). The steps, each an SCF API action:
GetFunction -> CreateFunction, or UpdateFunctionCode + UpdateFunctionConfiguration -> GetFunction
until Active -> ListTriggers -> CreateTrigger or UpdateTrigger (Type "http": the Function URL) ->
the URL. A second run updates what the first created and never duplicates it. Settings default to
serverless.yml, so the Serverless Framework and this command deploy the same function.
"""

from __future__ import annotations

import base64
import configparser
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from captcha_ocr.errors import UserError

RUNTIME = "Python3.10"
HANDLER = "index.main_handler"
URL_TRIGGER_NAME = "captcha-ocr-url"
URL_AUTH_TYPES = ("NONE", "CAM")
ZIP_UPLOAD_LIMIT_BYTES = 50 * 2**20  # SCF's limit on a CreateFunction/UpdateFunctionCode request with Code.ZipFile
FAILED_STATES = ("CreateFailed", "UpdateFailed", "PublishFailed", "DeleteFailed")
THROTTLED = "RequestLimitExceeded"  # retried on any action
BUSY = ("ResourceInUse", "FailedOperation.UpdateFunctionCode")  # retried on updates: the function is still changing
SECRET_WORDS = ("SECRET", "KEY", "TOKEN", "PASSWORD")


class DeployError(UserError):
    """The deploy stopped: the message says at which step and why, with the platform's reason."""


class CloudError(Exception):
    """An SCF API error: its code (e.g. ResourceNotFound.Function) and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class Cloud(Protocol):
    def call(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """One SCF API action; returns its Response object, raises CloudError."""


@dataclass(frozen=True)
class DeploySettings:
    name: str = "captcha-ocr"
    region: str = "ap-guangzhou"
    namespace: str = "default"
    memory: int = 128
    timeout: int = 10
    url_auth: str = "NONE"
    description: str = ""
    environment: dict[str, str] = field(default_factory=dict)
    credentials_file: str = "~/credentials"


def settings_from_serverless(path: Path) -> DeploySettings:
    """serverless.yml's provider and function settings, and custom.deploy for what it has no key for."""
    import yaml

    document = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    provider = document.get("provider", {})
    custom = (document.get("custom") or {}).get("deploy") or {}
    function = next(iter((document.get("functions") or {}).values()), {}) or {}
    variables = ((provider.get("environment") or {}).get("variables")) or {}
    return DeploySettings(
        name=str(custom.get("name", document.get("service", DeploySettings.name))),
        region=str(provider.get("region", DeploySettings.region)),
        namespace=str(custom.get("namespace", DeploySettings.namespace)),
        memory=int(provider.get("memorySize", DeploySettings.memory)),
        timeout=int(provider.get("timeout", DeploySettings.timeout)),
        url_auth=str(custom.get("urlAuth", DeploySettings.url_auth)).upper(),
        description=str(function.get("description", "")),
        environment={str(k): str(v) for k, v in variables.items()},
        credentials_file=str(provider.get("credentials", DeploySettings.credentials_file)),
    )


# -- talking to SCF -----------------------------------------------------------------------------
def load_credential(credentials_file: str = "~/credentials") -> Any:
    """The SDK's own sources first (TENCENTCLOUD_SECRET_ID/KEY, ~/.tencentcloud/credentials), then
    the ini file serverless.yml names (`tencent_secret_id`, `tencent_secret_key` under [default])."""
    from tencentcloud.common import credential

    for source in (credential.EnvironmentVariableCredential(), credential.ProfileCredential()):
        found = source.get_credential()
        if found is not None:
            return found
    path = Path(credentials_file).expanduser()
    if path.is_file():
        parser = configparser.ConfigParser()
        parser.read(path)
        section = parser["default"] if parser.has_section("default") else {}
        secret_id, secret_key = section.get("tencent_secret_id"), section.get("tencent_secret_key")
        if secret_id and secret_key:
            return credential.Credential(secret_id.strip(), secret_key.strip())
    raise DeployError("no Tencent Cloud credentials: set TENCENTCLOUD_SECRET_ID and TENCENTCLOUD_SECRET_KEY, "
                      f"or write them to ~/.tencentcloud/credentials or {credentials_file} (README: Deploy)")


class SdkCloud:
    """SCF through the official SDK's client; `endpoint` points it elsewhere (the tests' fake API)."""

    def __init__(self, region: str, credential: Any, endpoint: str | None = None, scheme: str = "https") -> None:
        from tencentcloud.common.profile.client_profile import ClientProfile
        from tencentcloud.common.profile.http_profile import HttpProfile
        from tencentcloud.scf.v20180416.scf_client import ScfClient

        http = HttpProfile(endpoint=endpoint, protocol=scheme) if endpoint else HttpProfile()
        self._client = ScfClient(credential, region, ClientProfile(httpProfile=http))

    def call(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException

        try:
            return self._client.call_json(action, params)["Response"]
        except TencentCloudSDKException as error:
            raise CloudError(str(error.code), str(error.message)) from error


class DryRun:
    """Prints every call it would send and answers as a fresh account would: no function yet."""

    def __init__(self, print_line: Callable[[str], None], zip_bytes: bytes | None) -> None:
        self.print_line = print_line
        self.zip_note = describe_zip(zip_bytes) if zip_bytes is not None else ""
        self.created = False

    def call(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        self.print_line(f"{action} {json.dumps(masked(params, self.zip_note), ensure_ascii=False)}")
        self.created = self.created or action == "CreateFunction"
        if action == "GetFunction":
            if not self.created:
                raise CloudError("ResourceNotFound.Function", "(dry run: assuming the function does not exist yet)")
            return {"Status": "Active"}
        if action == "ListTriggers":
            return {"Triggers": []}
        if action == "CreateTrigger":
            return {"TriggerInfo": {"TriggerDesc": json.dumps({"NetConfig": {
                "ExtranetUrl": "https://<the Function URL SCF assigns>"}})}}
        return {}


def describe_zip(data: bytes) -> str:
    return f"<zip: {len(data):,} bytes, sha256 {hashlib.sha256(data).hexdigest()}>"


def masked(params: Any, zip_note: str = "") -> Any:
    """A copy fit to print: the zip as its size and hash, secret-looking values as ***."""
    if isinstance(params, dict):
        result = {}
        for key, value in params.items():
            if key == "ZipFile":
                result[key] = zip_note or "<zip>"
            elif key == "Value" and any(word in str(params.get("Key", "")).upper() for word in SECRET_WORDS):
                result[key] = "***"
            else:
                result[key] = masked(value, zip_note)
        return result
    if isinstance(params, list):
        return [masked(item, zip_note) for item in params]
    return params


# -- the deploy ---------------------------------------------------------------------------------
@dataclass
class Deployer:
    cloud: Cloud
    settings: DeploySettings
    print_line: Callable[[str], None] = print
    poll_seconds: float = 2.0
    max_wait_seconds: float = 300.0
    retries: int = 5
    sleep: Callable[[float], None] = time.sleep

    def deploy(self, code: dict[str, Any]) -> str:
        """Create or update the function with `code` (ZipFile or COS), wait for Active, ensure the
        Function URL, and return the URL."""
        check_upload_size(code)
        if self._function() is None:
            self.print_line(f"creating function {self._where()}")
            self._call("CreateFunction", {**self._identity(), **self._configuration(), "Code": code,
                                          "Handler": HANDLER, "Runtime": RUNTIME})
            self._wait_active("created")
        else:
            self.print_line(f"updating function {self._where()}")
            self._call("UpdateFunctionCode", {**self._identity(), **code, "Handler": HANDLER})
            self._wait_active("code updated")
            self._call("UpdateFunctionConfiguration", {**self._identity(), **self._configuration()})
            self._wait_active("configuration updated")
        return self._ensure_function_url()

    # -- steps ------------------------------------------------------------------------------
    def _where(self) -> str:
        return f"{self.settings.name} in {self.settings.region}/{self.settings.namespace}"

    def _identity(self) -> dict[str, Any]:
        return {"FunctionName": self.settings.name, "Namespace": self.settings.namespace}

    def _configuration(self) -> dict[str, Any]:
        variables = [{"Key": key, "Value": value} for key, value in sorted(self.settings.environment.items())]
        return {"MemorySize": self.settings.memory, "Timeout": self.settings.timeout,
                "Description": self.settings.description[:1000], "Environment": {"Variables": variables}}

    def _function(self) -> dict[str, Any] | None:
        try:
            return self._call("GetFunction", self._identity())
        except CloudError as error:
            if error.code.startswith("ResourceNotFound"):
                return None
            raise DeployError(f"GetFunction failed: {error}") from error

    def _wait_active(self, what: str) -> None:
        waited, status = 0.0, "unknown"
        while waited <= self.max_wait_seconds:
            function = self._function() or {}
            status = function.get("Status", "unknown")
            if status == "Active":
                self.print_line(f"  function {what}: Active")
                return
            if status in FAILED_STATES:
                reasons = "; ".join(f"{r.get('ErrorCode', '')}: {r.get('ErrorMessage', '')}"
                                    for r in function.get("StatusReasons") or []) or "no reason given"
                raise DeployError(f"function {self.settings.name} is {status} ({reasons})")
            self.sleep(self.poll_seconds)
            waited += self.poll_seconds
        raise DeployError(f"function {self.settings.name} is still {status} after {self.max_wait_seconds:.0f} s; "
                          "look at the SCF console and run deploy again")

    def _ensure_function_url(self) -> str:
        if self.settings.url_auth not in URL_AUTH_TYPES:
            raise DeployError(f"url auth must be one of {', '.join(URL_AUTH_TYPES)}, not {self.settings.url_auth!r}")
        wanted = {"AuthType": self.settings.url_auth, "NetConfig": {"EnableIntranet": False, "EnableExtranet": True}}
        params = {**self._identity(), "TriggerName": URL_TRIGGER_NAME, "Type": "http",
                  "TriggerDesc": json.dumps(wanted), "Qualifier": "$DEFAULT", "Enable": "OPEN"}
        existing = self._url_trigger()
        if existing is None:
            self.print_line("creating the Function URL")
            created = self._call("CreateTrigger", params).get("TriggerInfo") or {}
            url = trigger_url(created) or trigger_url(self._url_trigger() or {})
        else:
            current = json.loads(existing.get("TriggerDesc") or "{}")
            if current.get("AuthType") != wanted["AuthType"] or {**current.get("NetConfig", {}),
                                                                  **wanted["NetConfig"]} != current.get("NetConfig"):
                self.print_line("updating the Function URL")
                self._call("UpdateTrigger", {**params, "TriggerName": existing.get("TriggerName", URL_TRIGGER_NAME)})
                existing = self._url_trigger() or existing
            url = trigger_url(existing)
        if not url:
            raise DeployError("the Function URL trigger exists but SCF returned no address for it")
        return url

    def _url_trigger(self) -> dict[str, Any] | None:
        triggers = self._call("ListTriggers", self._identity()).get("Triggers") or []
        return next((t for t in triggers if str(t.get("Type", "")).lower() == "http"), None)

    def _call(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """One action, retried with backoff while SCF says it is throttled or the function is busy."""
        for attempt in range(self.retries + 1):
            try:
                return self.cloud.call(action, params)
            except CloudError as error:
                retried = error.code.startswith(THROTTLED) or (
                    action.startswith("Update") and error.code.startswith(BUSY))
                if not retried or attempt == self.retries:
                    if action == "GetFunction":
                        raise
                    raise DeployError(f"{action} failed: {error}") from error
                self.print_line(f"  {action}: {error.code}, retrying")
                self.sleep(self.poll_seconds * 2**attempt)
        raise AssertionError("unreachable")


def trigger_url(trigger: dict[str, Any]) -> str:
    """The public address in a Function URL trigger's TriggerDesc (NetConfig.ExtranetUrl)."""
    try:
        description = json.loads(trigger.get("TriggerDesc") or "{}")
    except json.JSONDecodeError:
        return ""
    return str((description.get("NetConfig") or {}).get("ExtranetUrl") or "").rstrip("/")


def zip_code(data: bytes) -> dict[str, Any]:
    return {"ZipFile": base64.b64encode(data).decode("ascii")}


def cos_code(bucket: str, key: str, region: str) -> dict[str, Any]:
    return {"CosBucketName": bucket, "CosObjectName": key, "CosBucketRegion": region}


def check_upload_size(code: dict[str, Any]) -> None:
    """A direct upload carries the zip as base64 in the request: over 50 MB it must go through COS."""
    size = len(code.get("ZipFile", ""))
    if size > ZIP_UPLOAD_LIMIT_BYTES:
        raise DeployError(
            f"the zip is {size / 2**20:.1f} MB as base64, over SCF's {ZIP_UPLOAD_LIMIT_BYTES // 2**20} MB limit for "
            "a direct upload: upload it to a COS bucket in the same region (e.g. coscli cp "
            "build/captcha-ocr-scf-python3.10.zip cos://BUCKET/captcha-ocr.zip) and run "
            "captcha-ocr deploy --cos-bucket BUCKET --cos-object captcha-ocr.zip")

