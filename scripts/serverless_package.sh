#!/usr/bin/env bash
# Validate serverless.yml with the real Serverless Framework, offline:
#   scripts/serverless_package.sh [BUNDLE_ZIP]
# Installs serverless@3 + serverless-tencent-scf with npm into a temporary folder, neutralises the
# plugin's telemetry POST (serverless-tencent-tools' DataReport.report) and Serverless' own
# telemetry, runs `serverless package` on a copy of the service and checks the packaged zip.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
bundle=${1:-$repo/build/captcha-ocr-scf-python3.10.zip}
[ -f "$bundle" ] || { echo "no bundle at $bundle: run python scripts/build_bundle.py first" >&2; exit 2; }
command -v npm >/dev/null || { echo "npm not found" >&2; exit 3; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
tools="$work/tools"
mkdir -p "$tools" "$work/service/build"
(cd "$tools" && npm init -y >/dev/null && npm install --no-audit --no-fund --loglevel=error \
    serverless@3 serverless-tencent-scf@0.1.36 >/dev/null)

# The plugin reports every command to a Tencent endpoint; with no network that call fails the run.
cat >"$tools/no-telemetry.js" <<'JS'
const { DataReport } = require('serverless-tencent-tools').Others.DataReport;
DataReport.prototype.report = async function report() {};
JS

cp "$repo/serverless.yml" "$work/service/"
cp "$bundle" "$work/service/build/"
mkdir -p "$work/service/node_modules"
ln -s "$tools/node_modules/serverless-tencent-scf" "$work/service/node_modules/serverless-tencent-scf"

cd "$work/service"
export NODE_OPTIONS="--require $tools/no-telemetry.js" NODE_PATH="$tools/node_modules"
export SLS_TELEMETRY_DISABLED=1 SLS_NOTIFICATIONS_MODE=off SLS_DEPRECATION_DISABLE='*' CI=true HOME="$work"
"$tools/node_modules/.bin/serverless" package
"$tools/node_modules/.bin/serverless" print --format json >"$work/print.json"

python3 - "$work/print.json" "$work/service" <<'PY'
import json, sys, zipfile, pathlib
config = json.load(open(sys.argv[1]))
service = pathlib.Path(sys.argv[2])
provider, function = config["provider"], config["functions"]["captcha_ocr"]
assert provider["name"] == "tencent" and provider["runtime"].startswith("Python3"), provider
assert function["handler"] == "index.main_handler", function
assert not function.get("events"), "the function deploys alone: API Gateway triggers can no longer be created"
artifact = service / config["package"]["artifact"]
names = set(zipfile.ZipFile(artifact).namelist())
required = {"index.py", "captcha_ocr/models/default/config.json", "captcha_ocr/models/default/model_quantized.tflite",
            "captcha_ocr/app.py", "captcha_ocr/runtime.py"}
missing = required - names
assert not missing, f"bundle lacks {missing}"
assert any(n.startswith("numpy/") for n in names) and any(n.startswith("PIL/") for n in names)
assert not any(n.startswith(("captcha_ocr/training/", "tests/")) for n in names), "training code in the bundle"
print(f"serverless package OK: provider {provider['name']} {provider['runtime']}, {len(names)} files in {artifact.name}")
PY
