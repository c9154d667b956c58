"""The SCF bundle: built for the target Python, glibc-checked, and run unzipped in a clean process."""

from __future__ import annotations

import base64
import importlib.metadata
import json
import shutil
import subprocess
import sys
import zipfile

import pytest
from conftest import BUNDLE_PYTHON, REPO, SHIPPED_NAMED, SHIPPED_NAMED_FILES, build_bundle

from captcha_ocr.evaluation import synthetic_samples


@pytest.mark.slow
def test_bundle_holds_only_what_the_function_needs(bundle):
    names = zipfile.ZipFile(bundle).namelist()
    assert {"index.py", "captcha_ocr/models/default/config.json", "captcha_ocr/models/default/model_quantized.tflite",
            "captcha_ocr/app.py"} <= set(names)
    assert "captcha_ocr/models/default/model.tflite" not in names  # the float file is for comparison only
    named = {name for name in names if name.startswith("captcha_ocr/models/") and "/default/" not in name}
    assert named == SHIPPED_NAMED_FILES  # the general model, where the package keeps it
    assert build_bundle.bundled_models(bundle.read_bytes())[1:1 + len(SHIPPED_NAMED)] == SHIPPED_NAMED
    assert any(n.startswith("ai_edge_litert/") for n in names)  # the runtime a glibc-2.17 system can load
    assert not any(n.startswith(("captcha_ocr/training", "tflite_runtime/", "tensorflow/")) for n in names)
    assert not any("/tests/" in n for n in names)
    sources = [n for n in names if n.endswith(".py")]
    bytecode = {n for n in names if n.endswith(".pyc")}
    assert {compiled_name(n) for n in sources} == bytecode  # SCF's code folder is read-only: compiled here
    assert bundle.stat().st_size < 50 * 2**20  # SCF's zip upload limit


def compiled_name(source: str) -> str:
    folder, _, file = source.rpartition("/")
    return "/".join(filter(None, (folder, "__pycache__", file[:-3] + f".cpython-{BUNDLE_PYTHON.replace('.', '')}.pyc")))


@pytest.mark.slow
def test_the_bundle_s_bytecode_is_the_target_python_s_and_checked_against_its_source(unzipped_bundle):
    """Hash-checked pycs of the target's magic number: used as they are on a read-only folder, and
    compiled afresh (not ignored) for a source edited in the console."""
    root, python = unzipped_bundle
    magic = subprocess.run([python, "-c", "import importlib.util; print(importlib.util.MAGIC_NUMBER.hex())"],
                           capture_output=True, text=True, check=True).stdout.strip()
    header = (root / compiled_name("captcha_ocr/app.py")).read_bytes()[:16]
    assert header[:4].hex() == magic
    assert int.from_bytes(header[4:8], "little") == 0b11  # hash-based, checked against the source
    # every module the handler imports, at cold start and in a request, loads from its pyc: none compiled
    program = ("import importlib._bootstrap_external as loaders, json, sys; compiled = []; "
               "to_code = loaders.SourceLoader.source_to_code; "
               "loaders.SourceLoader.source_to_code = lambda self, data, path, **kw: "
               "compiled.append(path) or to_code(self, data, path, **kw); "
               "sys.path.insert(0, '.'); import index; "
               "index.main_handler({'base64Image': sys.stdin.read()}, None); print(json.dumps(compiled))")
    done = subprocess.run([python, "-I", "-S", "-B", "-c", program], cwd=root, capture_output=True, text=True,
                          input=base64.b64encode(webp_sample()).decode(), timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout.strip().splitlines()[-1]) == []


def webp_sample() -> bytes:
    import io

    from PIL import Image

    stream = io.BytesIO()
    Image.new("RGB", (120, 40), "white").save(stream, "WEBP")
    return stream.getvalue()


@pytest.mark.slow
def test_bundle_runs_in_the_target_python(unzipped_bundle):
    root, python = unzipped_bundle
    config = json.loads((root / "captcha_ocr" / "models" / "default" / "config.json").read_text())
    sample = synthetic_samples(1, 515, config["charset"], tuple(config["lengths"]))[0]
    program = (
        "import json, sys; sys.path.insert(0, '.'); import index; "
        "event = {'httpMethod': 'GET', 'path': '/', 'queryString': {'base64Image': sys.stdin.read()}}; "
        "print(index.main_handler(event, {'request_id': 'bundle'})['body']); "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'tensorflow', 'tflite_runtime', 'ai_edge_litert'}))"
    )
    # -I -S: no user site, no environment variables, no site-packages: only what the bundle holds
    result = subprocess.run([python, "-I", "-S", "-c", program], cwd=root, capture_output=True, text=True,
                            input=base64.b64encode(sample.data).decode(), timeout=120, env={"PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert json.loads(lines[-2])["text"] == sample.text
    assert lines[-1] == "['ai_edge_litert']"


@pytest.mark.slow
def test_glibc_check_names_a_library_that_is_too_new(tmp_path):
    download = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version",
         BUNDLE_PYTHON, "--platform", "manylinux2014_x86_64", "-d", str(tmp_path), "tflite-runtime==2.14.0"],
        capture_output=True, text=True)
    assert download.returncode == 0, download.stderr
    zipfile.ZipFile(next(tmp_path.glob("*.whl"))).extractall(tmp_path / "unpacked")
    problems = build_bundle.check_native_libraries(tmp_path / "unpacked", "2.17", "3.4.19")
    assert len(problems) == 1 and "_pywrap_tensorflow_interpreter_wrapper.so needs" in problems[0]
    assert "GLIBC_2.29" in problems[0]
    assert build_bundle.check_native_libraries(tmp_path / "unpacked", "2.31", "3.4.30") == []


def test_version_comparisons():
    old_enough = {"GLIBC_2.17", "GLIBC_2.2.5", "GLIBCXX_3.4.19", "GLIBC_PRIVATE"}
    assert build_bundle.too_new(old_enough, "2.17", "3.4.19") == []
    assert build_bundle.too_new({"GLIBC_2.18", "GLIBCXX_3.4.20"}, "2.17", "3.4.19") == ["GLIBCXX_3.4.20", "GLIBC_2.18"]



def test_bundle_and_package_install_the_same_pinned_runtime():
    pins = build_bundle.runtime_pins()
    assert {pin.split("==")[0] for pin in pins} == {"ai-edge-litert", "numpy", "pillow", "captcha"}
    assert all("==" in pin for pin in pins)
    installed = {name: importlib.metadata.version(name) for name in ("ai-edge-litert", "numpy", "pillow", "captcha")}
    assert sorted(f"{name}=={version}" for name, version in installed.items()) == sorted(pins)
    alternative = build_bundle.runtime_pins("tflite-runtime")
    assert "tflite-runtime==2.14.0" in alternative and not any("ai-edge-litert" in pin for pin in alternative)


@pytest.mark.slow
def test_serverless_package_offline(bundle):
    if shutil.which("npm") is None or shutil.which("node") is None:
        pytest.skip("node/npm not installed: cannot run the Serverless Framework")
    result = subprocess.run(["bash", str(REPO / "scripts" / "serverless_package.sh"), str(bundle)],
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "serverless package OK: provider tencent Python3.10" in result.stdout


@pytest.mark.slow
def test_smoke_script_against_the_local_server(base_url):
    if shutil.which("curl") is None:
        pytest.skip("curl not installed")
    result = subprocess.run(["bash", str(REPO / "scripts" / "smoke.sh"), base_url], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.count("ok    ") == 5 and "smoke test passed" in result.stdout


def test_function_compute_s_yaml_matches_serverless_yml():
    """s.yaml deploys the same bundle and handler with the same budget as serverless.yml."""
    import yaml

    scf = yaml.safe_load((REPO / "serverless.yml").read_text())
    props = yaml.safe_load((REPO / "s.yaml").read_text())["resources"]["captcha_ocr"]["props"]
    assert props["runtime"] == scf["provider"]["runtime"].lower()
    assert props["handler"] == scf["functions"]["captcha_ocr"]["handler"]
    assert (props["memorySize"], props["timeout"]) == (scf["provider"]["memorySize"], scf["provider"]["timeout"])
    assert props["code"] == "./" + scf["package"]["artifact"]
    assert props["environmentVariables"] == scf["provider"]["environment"]["variables"]
    trigger = props["triggers"][0]
    assert trigger["triggerType"] == "http" and set(trigger["triggerConfig"]["methods"]) == {"GET", "POST", "OPTIONS"}


def test_without_the_target_python_the_bundle_is_built_without_bytecode_and_says_so(tmp_path, monkeypatch, capsys):
    (tmp_path / "index.py").write_text("x = 1\n")
    monkeypatch.setattr(build_bundle, "find_python", lambda version: None)
    assert build_bundle.compile_bytecode(tmp_path, "3.10") is False
    assert "no Python 3.10 here" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["index.py"]
