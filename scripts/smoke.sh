#!/usr/bin/env bash
# Smoke-test a running endpoint (local server or deployed function) with curl:
#   scripts/smoke.sh http://127.0.0.1:9000
#   scripts/smoke.sh https://service-xxxx.gz.apigw.tencentcs.com/release
# Checks /health, recognises the bundled sample (file name = its text) by GET and by POST, and
# that a bad request is answered 400 with its error code. Exits non-zero on the first failure.
set -euo pipefail
base=${1:?usage: scripts/smoke.sh URL}
base=${base%/}
sample=$(ls "$(dirname "$0")"/smoke/*.png | head -n 1)
expected=$(basename "$sample" .png)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
failures=0

check() {  # check NAME EXPECTED_STATUS PATTERN -- curl args...
  local name=$1 status=$2 pattern=$3
  shift 4
  local got
  got=$(curl -sS -o "$work/body" -w '%{http_code}' --max-time 30 "$@") || got="curl-failed"
  if [ "$got" = "$status" ] && grep -q -- "$pattern" "$work/body"; then
    echo "ok    $name"
  else
    echo "FAIL  $name: status $got, body: $(head -c 300 "$work/body" 2>/dev/null)"
    failures=$((failures + 1))
  fi
}

base64 -w0 "$sample" >"$work/image.b64"
printf '{"base64Image": "%s"}' "$(cat "$work/image.b64")" >"$work/request.json"

check "GET /health" 200 '"ok":true' -- "$base/health"
check "GET recognises $expected" 200 "\"text\":\"$expected\"" -- -G --data-urlencode "base64Image@$work/image.b64" "$base/"
check "POST JSON recognises $expected" 200 "\"text\":\"$expected\"" -- \
  -H 'Content-Type: application/json' --data-binary "@$work/request.json" "$base/"
check "bad base64 is a 400 InvalidBase64" 400 '"code":"InvalidBase64"' -- "$base/?base64Image=%40%40%40"
check "no image is a 400 MissingImage" 400 '"code":"MissingImage"' -- "$base/"

[ "$failures" -eq 0 ] && echo "smoke test passed: $base" || { echo "$failures check(s) failed"; exit 1; }
