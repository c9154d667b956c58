"""The package as a user gets it: the wheel built from this checkout, installed into a fresh venv
outside the repo (its dependencies from the package index), reads a captcha from three lines of
Python, from `captcha-ocr predict` and through `captcha-ocr serve`."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
import urllib.request
import zipfile
from pathlib import Path

import pytest
from conftest import REPO, SHIPPED_NAMED_FILES, b64
from packaging.requirements import Requirement

import captcha_ocr


def _pins() -> dict[str, str]:
    lines = (REPO / "runtime-pins.txt").read_text().splitlines()
    pins = [line.split("#")[0].strip() for line in lines]
    return dict(pin.split("==") for pin in pins if pin)


def test_every_pin_satisfies_the_packages_own_range():
    import tomllib

    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    ranges = {Requirement(line).name: Requirement(line).specifier for line in declared}
    pins = _pins()
    assert set(ranges) == set(pins)  # one list of serving dependencies, two strictnesses
    for name, version in pins.items():
        assert version in ranges[name], f"{name}=={version} is outside {ranges[name]}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel `pip wheel .` builds from this checkout."""
    out = tmp_path_factory.mktemp("dist")
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", str(REPO), "-w", str(out)],
                           capture_output=True, text=True, timeout=600)
    assert built.returncode == 0, built.stderr[-3000:]
    (path,) = out.glob(f"captcha_ocr_scf-{captcha_ocr.__version__}-*.whl")
    return path


@pytest.fixture(scope="module")
def installed(tmp_path_factory, wheel, fresh_captchas) -> tuple[Path, Path, str]:
    """(the venv's bin folder, a captcha file, its text), the wheel installed with the local extra."""
    work = tmp_path_factory.mktemp("user")
    subprocess.run([sys.executable, "-m", "venv", str(work / "venv")], check=True, timeout=300)
    bin_dir = work / "venv" / "bin"
    done = subprocess.run([str(bin_dir / "pip"), "install", "--quiet", f"{wheel}[local]"], capture_output=True,
                          text=True, timeout=900)
    if done.returncode != 0 and "No matching distribution" in done.stderr + done.stdout:
        pytest.skip("the package index is not reachable: the wheel cannot be installed with its dependencies")
    assert done.returncode == 0, done.stderr[-3000:]
    sample = fresh_captchas[3]
    image = work / "captcha.png"
    image.write_bytes(sample.data)
    return bin_dir, image, sample.text


def _run(installed, *command: str) -> str:
    bin_dir, image, _ = installed
    done = subprocess.run(command, cwd=image.parent, capture_output=True, text=True, timeout=300,
                          env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(image.parent)})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_wheel_carries_the_model_and_nothing_of_the_checkout(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"captcha_ocr/models/default/config.json", "captcha_ocr/models/default/model_quantized.tflite",
            "captcha_ocr/web/index.html"} <= names
    assert not {"index.py", "captcha_ocr/models/default/model.tflite"} & names  # no top-level module, no float file
    named = {name for name in names if name.startswith("captcha_ocr/models/") and "/default/" not in name}
    assert named == SHIPPED_NAMED_FILES  # the general model: its config and served file, nothing else
    assert any(re.fullmatch(r"captcha_ocr_scf-[^/]+\.dist-info/licenses/LICENSE", name) for name in names)


@pytest.mark.slow
def test_three_lines_of_python_read_a_captcha(installed):
    _, image, text = installed
    program = f"from captcha_ocr import Reader\nreader = Reader()\nprint(reader.read({str(image)!r}).text)\n"
    assert _run(installed, "python", "-c", program).split() == [text]


@pytest.mark.slow
def test_predict_from_the_installed_package(installed):
    _, image, text = installed
    assert _run(installed, "captcha-ocr", "predict", str(image)).split("\t")[1] == text


@pytest.mark.slow
def test_serve_from_the_installed_package(installed):
    bin_dir, image, text = installed
    server = subprocess.Popen([str(bin_dir / "captcha-ocr"), "serve", "--port", "0"], cwd=image.parent,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                              env={"PATH": f"{bin_dir}:/usr/bin:/bin", "HOME": str(image.parent)})
    try:
        url = None
        started = time.monotonic()
        while url is None and time.monotonic() - started < 60:
            line = server.stdout.readline()
            found = re.search(r"http://127\.0\.0\.1:\d+/", line)
            url = found.group(0) if found else None
        assert url, "the server printed no URL"
        health = json.loads(urllib.request.urlopen(url + "health", timeout=30).read())
        assert health["ok"] and health["model"]["name"] == "captcha-ocr-synthetic-v1"
        request = urllib.request.Request(url, data=json.dumps({"base64Image": b64(image.read_bytes())}).encode(),
                                         headers={"Content-Type": "application/json"})
        assert json.loads(urllib.request.urlopen(request, timeout=30).read())["text"] == text
    finally:
        server.terminate()
        server.wait(30)
