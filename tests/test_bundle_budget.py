"""The request budget on what ships: every hostile class against the SCF bundle under Python 3.10.

One fresh `python -I -S` process per case inside the unzipped bundle (bench/budget.py runs the
same cases and prints the table in the README). Each case must get its documented answer within
BUDGET_PEAK_MB of peak RSS and BUDGET_SECONDS of wall time, and its log lines must stay short and
free of the image.
"""

from __future__ import annotations

import sys

import pytest
from conftest import REPO, b64

sys.path.insert(0, str(REPO / "bench"))
from budget import BUDGET_PEAK_MB, BUDGET_SECONDS, run_in_bundle  # noqa: E402
from hostile import CLASS_COUNT, CLASS_NAMES, Case, cases  # noqa: E402

MIN_CLASSES = 60


@pytest.fixture(scope="session")
def hostile_cases(captcha_sample) -> list[Case]:
    return cases(captcha_sample.data, captcha_sample.text)


@pytest.fixture(scope="session")
def captcha_sample(fresh_captchas):
    return fresh_captchas[1]


def test_the_corpus_has_every_class_once(hostile_cases):
    names = [case.name for case in hostile_cases]
    assert len(names) == len(set(names)) == CLASS_COUNT >= MIN_CLASSES
    assert tuple(names) == CLASS_NAMES  # the test ids name the cases they run


@pytest.mark.slow
@pytest.mark.parametrize("index", range(CLASS_COUNT), ids=CLASS_NAMES)
def test_hostile_class_on_the_bundle(unzipped_bundle, hostile_cases, captcha_sample, index):
    root, python = unzipped_bundle
    check_case(run_in_bundle(root, python, hostile_cases[index].event), hostile_cases[index], captcha_sample)


@pytest.mark.slow
@pytest.mark.parametrize("index", range(CLASS_COUNT), ids=CLASS_NAMES)
def test_hostile_class_on_the_layered_deploy(unzipped_layered, hostile_cases, captcha_sample, index):
    """The function's zip and its dependency layer in two folders, on the path as SCF puts them."""
    code, layer, python = unzipped_layered
    check_case(run_in_bundle(code, python, hostile_cases[index].event, layer_dir=layer), hostile_cases[index],
               captcha_sample)


def check_case(measured, case: Case, captcha_sample) -> None:
    assert (measured.status, measured.code) == (case.status, case.code), case.name
    if case.text is not None:
        assert measured.text == case.text, case.name
    assert measured.peak_mb <= BUDGET_PEAK_MB, f"{case.name}: peak RSS {measured.peak_mb} MB"
    assert measured.seconds <= BUDGET_SECONDS, f"{case.name}: {measured.seconds} s"
    image = b64(captcha_sample.data)
    for line in measured.log_lines:
        assert len(line) < 600 and image[20:60] not in line, f"{case.name}: log line {line[:200]!r}"


# Runs inside the unzipped bundle: the function's own pool, made again with a decode that crashes
# (abort, as glibc does on a corrupted heap), spins or allocates without bound on magic payloads.
_FAULTY_CHILD = r"""
import json, os, sys
sys.path.insert(0, ".")
import index
from captcha_ocr.imaging import preprocess
from captcha_ocr.isolation import DecoderPool

def faulty(data, height, width, limits, gray):
    if data == b"abort":
        os.abort()
    if data == b"spin":
        while True:
            pass
    if data == b"hog":
        hoard = [bytearray(1 << 20) for _ in range(10_000)]
    return preprocess(data, height, width, limits, gray)

index._app.reader.decoder.close()
index._app.reader.decoder = DecoderPool(index._app.limits, decode=faulty)
replies = []
for value in json.loads(sys.stdin.read()):
    reply = index.main_handler({"httpMethod": "GET", "path": "/", "queryString": {"base64Image": value}}, None)
    replies.append([reply["statusCode"], json.loads(reply["body"])])
print(json.dumps(replies))
"""


@pytest.mark.slow
def test_a_crashing_decoder_on_the_bundle_costs_one_reply(unzipped_bundle, captcha_sample):
    import json
    import subprocess

    root, python = unzipped_bundle
    good = b64(captcha_sample.data)
    values = [good, b64(b"abort"), good, b64(b"spin"), good, b64(b"hog"), good]
    done = subprocess.run([python, "-I", "-S", "-c", _FAULTY_CHILD], cwd=root, input=json.dumps(values), text=True,
                          capture_output=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    replies = json.loads(done.stdout.strip().splitlines()[-1])
    answers = [(status, body.get("text") or body["error"]["code"]) for status, body in replies]
    text = captcha_sample.text
    assert answers == [(200, text), (415, "UnsupportedImage"), (200, text), (413, "ImageTooComplex"), (200, text),
                       (413, "ImageTooComplex"), (200, text)]


_SMALL_CAP_CHILD = r"""
import base64, dataclasses, json, sys
sys.path.insert(0, ".")
import index
from captcha_ocr.isolation import DecoderPool

app = index._app
app.reader.decoder.close()
app.reader.decoder = DecoderPool(dataclasses.replace(app.limits, max_decode_mb=int(sys.argv[1])))
replies = []
for value in json.loads(sys.stdin.read()):
    reply = index.main_handler({"base64Image": value}, None)
    replies.append([reply["statusCode"], json.loads(reply["body"])])
print(json.dumps(replies))
"""


@pytest.mark.slow
@pytest.mark.parametrize("cap_mb", [8, 48])
def test_the_workers_memory_cap_on_the_bundle(unzipped_bundle, captcha_sample, cap_mb):
    """A cap below what the largest allowed lossless RGBA WebP needs refuses it (a 4xx, the process
    alive) and still reads a captcha; the shipped cap decodes it. (In a fresh process: the cap
    bounds the worker's address space, so a parent with much free heap at the fork would blur it.)"""
    import json
    import subprocess

    from hostile import webp_lossless_rgba

    root, python = unzipped_bundle
    values = [b64(webp_lossless_rgba()), b64(captcha_sample.data)]
    done = subprocess.run([python, "-I", "-S", "-c", _SMALL_CAP_CHILD, str(cap_mb)], cwd=root, capture_output=True,
                          input=json.dumps(values), text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    (big_status, _), (status, body) = json.loads(done.stdout.strip().splitlines()[-1])
    assert big_status in ((200,) if cap_mb == 48 else (413, 415))
    assert (status, body["text"]) == (200, captcha_sample.text)


@pytest.mark.slow
def test_the_layered_deploy_keeps_dependencies_in_the_layer_alone(unzipped_layered, captcha_sample):
    import json
    import subprocess

    code, layer, python = unzipped_layered
    assert not any((code / name).exists() for name in ("numpy", "PIL", "ai_edge_litert", "captcha"))
    assert all((layer / name).is_dir() for name in ("numpy", "PIL", "ai_edge_litert"))
    program = ("import json, sys; sys.path[:0] = ['.', sys.argv[1]]; import index, numpy, PIL, ai_edge_litert; "
               "reply = index.main_handler({'base64Image': sys.stdin.read()}, None); "
               "print(json.dumps([m.__file__ for m in (numpy, PIL, ai_edge_litert)] + [json.loads(reply['body'])]))")
    done = subprocess.run([python, "-I", "-S", "-c", program, str(layer)], cwd=code, input=b64(captcha_sample.data),
                          capture_output=True, text=True, timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    *files, body = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(path.startswith(str(layer)) for path in files) and body["text"] == captcha_sample.text


@pytest.mark.slow
def test_a_code_update_uploads_at_most_1_5_mb_and_the_layer_is_reproducible(layered_build, tmp_path):
    """UpdateFunctionCode takes 20 MB; the code zip is what an update sends, as base64. The layer's
    bytes are the same on every build, so its digest decides alone whether it is published again."""
    import base64
    import hashlib

    from captcha_ocr.deploy import bundle as build_bundle
    from captcha_ocr.registry import SHIPPED_MODEL_DIR

    assert len(base64.b64encode(layered_build.code.read_bytes())) <= 1.5 * 2**20
    again = build_bundle.build_layered(tmp_path, "3.10", "2.17", "3.4.19", SHIPPED_MODEL_DIR)
    digest = hashlib.sha256(layered_build.layer.read_bytes()).digest()
    assert hashlib.sha256(again.layer.read_bytes()).digest() == digest
