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
import re
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
FUNCTION_TYPE = "Event"  # an event function, reached through its Function URL (not an HTTP-type web function)
# The documented rules of the SCF API (the SDK's parameter documentation, tencentcloud-sdk-python-scf
# models.py), checked before a call is sent: the service refuses what breaks them
UPLOAD_LIMITS = {  # what each call accepts as ZipFile, as base64 text (conservatively: the zip itself is smaller)
    "CreateFunction": 50 * 2**20,  # Code.ZipFile: "zip包大小上限为 50MB"
    "UpdateFunctionCode": 20 * 2**20,  # ZipFile: "最大支持20M"
    "PublishLayerVersion": 50 * 2**20,  # Content is a Code: the same 50 MB
}
LAYER_NAME = re.compile(r"[A-Za-z](?:[A-Za-z0-9_-]{0,62}[A-Za-z0-9])?")  # 1-64, a letter first, no - or _ last
LAYER_MARK = "captcha ocr dependencies sha256 "  # + the layer zip's digest, in the layer version's Description
DEFAULT_ALIAS = "$DEFAULT"  # what the Function URL routes; PublishVersion + UpdateAlias move it, the URL stays
READ_ACTIONS = ("GetFunction", "ListTriggers", "ListLayerVersions", "GetLayerVersion", "ListVersionByFunction")
ZIP_UPLOAD_LIMIT_BYTES = UPLOAD_LIMITS["CreateFunction"]
FUNCTION_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,58}[A-Za-z0-9]")  # letters first, 2-60, no - or _ last
# "英文字母、数字、空格、逗号、换行符和英文句号，支持中文": letters, digits, space, comma, newline, period, Chinese
DESCRIPTION = re.compile(r"[A-Za-z0-9 ,.\n\u3400-\u9fff\uf900-\ufaff]{0,1000}")
MEMORY_SIZES = (64, *range(128, 3072 + 1, 128))  # "64、128MB-3072MB，并且以 128MB 为阶梯"
TIMEOUT_RANGE = (1, 900)  # seconds
FAILED_STATES = ("CreateFailed", "UpdateFailed", "PublishFailed", "DeleteFailed")
THROTTLED = "RequestLimitExceeded"  # retried on any action
# the function (or its version) is still changing: retried on every call that can meet them, triggers too
BUSY = ("FailedOperation.UpdateFunctionCode", "FailedOperation.FunctionStatusError",
        "FailedOperation.FunctionNameStatusError", "FailedOperation.FunctionVersionStatusNotActive")
EXISTS = "ResourceInUse.Function"  # CreateFunction: a function of that name exists already (not "busy")
URL_WAIT_SECONDS = 60.0  # CreateTrigger answers with a RequestId only: ListTriggers shows the URL once it is made
SECRET_WORDS = ("SECRET", "KEY", "TOKEN", "PASSWORD")


class DeployError(UserError):
    """The deploy stopped: the message says at which step and why, with the platform's reason (`code`)."""

    def __init__(self, message: str, code: str = "") -> None:
        super().__init__(message)
        self.code = code


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
    layer: str = ""  # the dependency layer's name (default: the function's name + "-deps")

    @property
    def layer_name(self) -> str:
        return self.layer or f"{self.name}-deps"


def check_settings(settings: DeploySettings) -> None:
    """Every documented parameter rule a setting must meet, all problems in one message."""
    problems = []
    if not FUNCTION_NAME.fullmatch(settings.name):
        problems.append(f"function name {settings.name[:80]!r}: 2-60 letters, digits, '-' and '_', starting with a "
                        "letter and not ending with '-' or '_'")
    if settings.memory not in MEMORY_SIZES:
        problems.append(f"memory {settings.memory} MB: 64, or 128 to 3072 in steps of 128")
    if not TIMEOUT_RANGE[0] <= settings.timeout <= TIMEOUT_RANGE[1]:
        problems.append(f"timeout {settings.timeout} s: {TIMEOUT_RANGE[0]} to {TIMEOUT_RANGE[1]}")
    if not DESCRIPTION.fullmatch(settings.description):
        bad = sorted({c for c in settings.description if not DESCRIPTION.fullmatch(c)})[:10]
        problems.append(f"description: at most 1000 letters, digits, spaces, commas, newlines, periods and Chinese "
                        f"characters (it has {len(settings.description)}; not allowed: {''.join(bad)!r})")
    for key, value in settings.environment.items():
        if not key or not value:
            problems.append(f"environment variable {key[:64]!r}: neither its name nor its value may be empty")
    if not LAYER_NAME.fullmatch(settings.layer_name):
        problems.append(f"layer name {settings.layer_name[:80]!r}: 1-64 letters, digits, '-' and '_', starting with a "
                        "letter and not ending with '-' or '_'")
    if problems:
        raise DeployError("the SCF API would refuse these settings:\n  " + "\n  ".join(problems))


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
        layer=str(custom.get("layer", "")),
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
                      f"or write them to ~/.tencentcloud/credentials or {credentials_file} (docs/deploy.md)")


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
    """Prints every call it would send and sends no write. With `reader` (credentials were found),
    the reads go to the account, so the plan printed is the real one: create or update, layer reused
    or published. Without one it answers as an empty account would, and says so."""

    def __init__(self, print_line: Callable[[str], None], zip_bytes: bytes | None, reader: Cloud | None = None,
                 layer_bytes: bytes | None = None) -> None:
        self.print_line, self.reader = print_line, reader
        self.notes = {describe_zip(data): data for data in (zip_bytes, layer_bytes) if data is not None}
        self.written: set[str] = set()
        self.function: dict[str, Any] | None = None

    def call(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        if action not in READ_ACTIONS:
            self.written.add(action)
            self.print_line(f"{action} {json.dumps(self._masked(params), ensure_ascii=False)}")
            return self._as_if_done(action)
        if self.reader is not None and not self._changed_by_writes(action):
            self.print_line(f"(read) {action} {json.dumps(masked(params), ensure_ascii=False)}")
            answer = self.reader.call(action, params)
            if action == "GetFunction":
                self.function = answer
            return answer
        return self._as_if_done(action)

    def _changed_by_writes(self, action: str) -> bool:
        """Whether a read's answer depends on writes this dry run only printed."""
        return bool({"GetFunction": self.written, "ListTriggers": {"CreateFunction", "CreateTrigger"} & self.written,
                     "GetLayerVersion": {"PublishLayerVersion"} & self.written,
                     "ListVersionByFunction": {"CreateFunction", "PublishVersion"} & self.written}.get(action))

    def _masked(self, params: dict[str, Any]) -> Any:
        zipped = params.get("ZipFile") or (params.get("Code") or params.get("Content") or {}).get("ZipFile") or ""
        note = next((note for note, data in self.notes.items() if base64.b64encode(data).decode() == zipped), "")
        return masked(params, note)

    def _as_if_done(self, action: str) -> dict[str, Any]:
        """What the account would answer once the writes printed so far were made."""
        if action == "GetFunction":
            if self.function is None and "CreateFunction" not in self.written:
                raise CloudError("ResourceNotFound.Function", "(dry run: assuming the function does not exist yet)")
            return {**(self.function or {}), "Status": "Active"}
        if action == "ListTriggers":
            if "CreateTrigger" in self.written:
                return {"Triggers": [{"Type": "http", "Qualifier": DEFAULT_ALIAS, "TriggerDesc": json.dumps(
                    {"NetConfig": {"ExtranetUrl": "https://<the Function URL SCF assigns>"}})}]}
            return {"Triggers": []}
        if action == "ListLayerVersions":
            return {"LayerVersions": []}
        if action == "PublishLayerVersion":
            return {"LayerVersion": 0}
        if action == "GetLayerVersion":
            return {"Status": "Active"}
        if action == "PublishVersion":
            return {"FunctionVersion": "<the next version>"}
        if action == "ListVersionByFunction":
            return {"Versions": []}
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
    layers: list[dict[str, Any]] | None = field(default=None, init=False)  # bound to the function, when layered

    def deploy(self, code: dict[str, Any], layer: bytes | None = None, publish: bool = False) -> str:
        """Create or update the function with `code` (ZipFile or COS), bound to the dependency
        `layer` (a zip, published only when its content changed) when one is given; wait for Active,
        ensure the Function URL, with `publish` publish a version and route $DEFAULT to it, and return
        the URL. Every documented parameter rule is checked first."""
        check_settings(self.settings)
        self.layers = None if layer is None else [self._ensure_layer(layer)]
        existing = self._function()
        if existing is None:
            check_upload_size(code, "CreateFunction")
            self.print_line(f"creating function {self._where()}")
            try:
                self._call("CreateFunction", {**self._identity(), **self._configuration(), "Code": code,
                                              "Handler": HANDLER, "Runtime": RUNTIME, "Type": FUNCTION_TYPE})
            except DeployError as error:
                if error.code != EXISTS:
                    raise
                existing = self._function()  # made meanwhile (another deploy): update it instead
                if existing is None:
                    raise
            else:
                self._wait_active("created")
        if existing is not None:
            self._check_existing(existing)
            check_upload_size(code, "UpdateFunctionCode")
            self.print_line(f"updating function {self._where()}")
            self._call("UpdateFunctionCode", {**self._identity(), **code, "Handler": HANDLER})
            self._wait_active("code updated")
            self._call("UpdateFunctionConfiguration", {**self._identity(), **self._configuration()})
            self._wait_active("configuration updated")
        url = self._ensure_function_url()
        if publish:
            self._publish()
        return url

    def rollback(self, version: str) -> str:
        """Route $DEFAULT, and so the Function URL, back to an earlier published version; the URL stays."""
        versions = [str(v.get("Version")) for v in self._call(
            "ListVersionByFunction", {**self._identity(), "Limit": 100}).get("Versions") or []]
        if version not in versions:
            raise DeployError(f"{self.settings.name} has no published version {version!r}; it has "
                              f"{', '.join(v for v in versions if v != '$LATEST') or 'none'}")
        self._call("UpdateAlias", {**self._identity(), "Name": DEFAULT_ALIAS, "FunctionVersion": version})
        self.print_line(f"{DEFAULT_ALIAS} now routes to version {version}")
        return self._ensure_function_url()

    def _publish(self) -> None:
        published = self._call("PublishVersion", {**self._identity(), "Description": "published by captcha ocr"})
        version = str(published.get("FunctionVersion", ""))
        self._call("UpdateAlias", {**self._identity(), "Name": DEFAULT_ALIAS, "FunctionVersion": version})
        self.print_line(f"published version {version}; {DEFAULT_ALIAS} routes to it "
                        "(captcha-ocr deploy --rollback VERSION routes it back)")

    def _ensure_layer(self, data: bytes) -> dict[str, Any]:
        """The dependency layer's version holding exactly `data` (its sha256 in the version's
        Description): reused when one is there, else published and waited for."""
        name, mark = self.settings.layer_name, LAYER_MARK + hashlib.sha256(data).hexdigest()[:40]
        try:
            versions = self._call("ListLayerVersions", {"LayerName": name}).get("LayerVersions") or []
        except DeployError as error:
            if not error.code.startswith("ResourceNotFound"):
                raise
            versions = []
        for version in versions:
            if version.get("Description") == mark and version.get("Status", "Active") == "Active":
                self.print_line(f"layer {name} version {version['LayerVersion']} holds these dependencies: reused")
                return {"LayerName": name, "LayerVersion": int(version["LayerVersion"])}
        content = {"ZipFile": base64.b64encode(data).decode("ascii")}
        check_upload_size(content, "PublishLayerVersion")
        self.print_line(f"publishing layer {name} ({len(data) / 2**20:.1f} MB of dependencies)")
        number = int(self._call("PublishLayerVersion", {
            "LayerName": name, "CompatibleRuntimes": [RUNTIME], "Content": content, "Description": mark,
            "LicenseInfo": "the licences of numpy, Pillow, ai-edge-litert and captcha"}).get("LayerVersion", 0))

        def active() -> bool | None:
            status = self._call("GetLayerVersion", {"LayerName": name, "LayerVersion": number}).get("Status")
            if status and "Fail" in status:
                raise DeployError(f"layer {name} version {number} is {status}")
            return True if status == "Active" else None

        if not self._poll(active, self.max_wait_seconds):
            raise DeployError(f"layer {name} version {number} is not active after {self.max_wait_seconds:.0f} s")
        return {"LayerName": name, "LayerVersion": number}

    def _check_existing(self, function: dict[str, Any]) -> None:
        """An existing function must be one this command can update: its Runtime cannot change after
        creation, an HTTP-type (web) function takes other code, and a failed creation is reported."""
        runtime, kind, status = function.get("Runtime"), function.get("Type"), function.get("Status")
        if runtime and runtime != RUNTIME:
            raise DeployError(f"function {self.settings.name} runs {runtime}, and SCF cannot change a function's "
                              f"runtime: delete it (console, or tccli scf DeleteFunction) or deploy under another "
                              f"--name to get {RUNTIME}")
        if kind and kind != FUNCTION_TYPE:
            raise DeployError(f"function {self.settings.name} is of type {kind}; this command deploys an "
                              f"{FUNCTION_TYPE} function: deploy under another --name")
        if status == "CreateFailed":
            raise DeployError(f"function {self.settings.name} is CreateFailed ({status_reasons(function)}): fix the "
                              "cause, delete the function and deploy again")
        if status in FAILED_STATES:
            self.print_line(f"  function is {status} ({status_reasons(function)}): updating it again")

    # -- steps ------------------------------------------------------------------------------
    def _where(self) -> str:
        return f"{self.settings.name} in {self.settings.region}/{self.settings.namespace}"

    def _identity(self) -> dict[str, Any]:
        return {"FunctionName": self.settings.name, "Namespace": self.settings.namespace}

    def _configuration(self) -> dict[str, Any]:
        variables = [{"Key": key, "Value": value} for key, value in sorted(self.settings.environment.items())]
        configuration = {"MemorySize": self.settings.memory, "Timeout": self.settings.timeout,
                         "Description": self.settings.description[:1000], "Environment": {"Variables": variables}}
        if self.layers is not None:
            configuration["Layers"] = self.layers
        return configuration

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
                raise DeployError(f"function {self.settings.name} is {status} ({status_reasons(function)})")
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
            url = trigger_url(created) or self._wait_for_url()
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

    def _wait_for_url(self) -> str:
        """The documented CreateTrigger reply holds only a RequestId: ListTriggers, polled, shows the
        URL once SCF has made it (under a trigger name of SCF's choosing, so none is relied on)."""
        return self._poll(lambda: trigger_url(self._url_trigger() or {}) or None, URL_WAIT_SECONDS) or ""

    def _poll(self, check: Callable[[], Any], limit_seconds: float) -> Any:
        """check() until it gives something other than None, sleeping poll_seconds between tries; None
        once limit_seconds have passed (counted at least 0.5 s a try, so a zero poll still ends)."""
        waited = 0.0
        while True:
            found = check()
            if found is not None or waited >= limit_seconds:
                return found
            self.sleep(self.poll_seconds)
            waited += max(self.poll_seconds, 0.5)

    def _url_trigger(self) -> dict[str, Any] | None:
        """The Function URL of the $DEFAULT qualifier (the one a URL's alias routes), by type, never by name."""
        triggers = self._call("ListTriggers", self._identity()).get("Triggers") or []
        return next((t for t in triggers if str(t.get("Type", "")).lower() == "http"
                     and t.get("Qualifier", "$DEFAULT") == "$DEFAULT"), None)

    def _call(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        """One action, retried with backoff while SCF says it is throttled or the function is busy."""
        for attempt in range(self.retries + 1):
            try:
                return self.cloud.call(action, params)
            except CloudError as error:
                retried = error.code.startswith(THROTTLED) or error.code in BUSY
                if not retried or attempt == self.retries:
                    if action == "GetFunction":
                        raise
                    raise DeployError(f"{action} failed: {error}", error.code) from error
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


def status_reasons(function: dict[str, Any]) -> str:
    return "; ".join(f"{r.get('ErrorCode', '')}: {r.get('ErrorMessage', '')}"
                     for r in function.get("StatusReasons") or []) or "no reason given"


def zip_code(data: bytes) -> dict[str, Any]:
    return {"ZipFile": base64.b64encode(data).decode("ascii")}


_APPID_SUFFIX = re.compile(r"-\d{6,}$")


def cos_code(bucket: str, key: str, region: str) -> dict[str, Any]:
    """The code's COS location as SCF documents it: the bucket's own name without its -<appid>
    suffix (as the COS console shows it, "mybucket-1250000000"), the object's path from a '/'."""
    return {"CosBucketName": _APPID_SUFFIX.sub("", bucket), "CosObjectName": "/" + key.lstrip("/"),
            "CosBucketRegion": region}


def check_upload_size(code: dict[str, Any], action: str = "CreateFunction") -> None:
    """A direct upload carries the zip as base64 in the request, and each call has its own limit
    (CreateFunction 50 MB, UpdateFunctionCode 20 MB): above it the code must go through COS."""
    size, limit = len(code.get("ZipFile", "")), UPLOAD_LIMITS[action]
    if size > limit:
        raise DeployError(
            f"the zip is {size / 2**20:.1f} MB as base64, over the {limit // 2**20} MB {action} accepts directly: "
            "upload it to a COS bucket in the same region (e.g. coscli cp build/captcha-ocr-scf-python3.10.zip "
            "cos://BUCKET/captcha-ocr.zip) and run captcha-ocr deploy --cos-bucket BUCKET --cos-object "
            "captcha-ocr.zip")

