"""Several models in what ships: the SCF bundle built with a models folder, run under Python 3.10
(`-I -S`, its own wheels), one fresh process per request as a cold instance would.

The request budget holds with eleven models loaded (the default, the general model and nine
more): each is an interpreter held for the instance's life, so the most expensive request
(tests/hostile.py's worst class) must still peak within BUDGET_PEAK_MB with all of them in memory.
Cold start times are measured in bench/models.py.
"""

from __future__ import annotations

import dataclasses
import sys
import zipfile

import numpy as np
import pytest
from conftest import MODEL_DIR, REPO, SHIPPED_NAMED, UPPER, b64, get_event, model_variant

from captcha_ocr.config import file_sha256, load_config
from captcha_ocr.deploy import bundle as build_bundle

sys.path.insert(0, str(REPO / "bench"))
from budget import BUDGET_PEAK_MB, run_in_bundle  # noqa: E402
from hostile import cases, webp_lossless_rgba  # noqa: E402

pytestmark = pytest.mark.slow
DEFAULT = load_config(MODEL_DIR).name
WORST_CLASS = "largest allowed lossless rgba webp"  # the highest peak of every hostile class (README)


@pytest.fixture(scope="module")
def three_models(tmp_path_factory) -> tuple[zipfile.ZipFile, str]:
    """The bundle with the shipped model as the default and two more in its models folder."""
    python = build_bundle.find_python("3.10")
    if python is None:
        pytest.skip("Python 3.10 is not installed here; the bundle cannot be run under it")
    models = tmp_path_factory.mktemp("models")
    model_variant(models, "upper", charset=UPPER)
    model_variant(models, "sized", charset=UPPER, source_sizes=((160, 60),))
    (models / "upper" / "notes.txt").write_text("not part of the model: not shipped")
    archive = build_bundle.build(tmp_path_factory.mktemp("build"), "3.10", "2.17", "3.4.19", MODEL_DIR,
                                 models_dir=models)
    root = tmp_path_factory.mktemp("unzipped")
    zipfile.ZipFile(archive).extractall(root)
    return root, python


def test_the_bundle_holds_each_model_once(three_models):
    root, _ = three_models
    shipped = sorted(p.relative_to(root).as_posix() for p in (root / "models").rglob("*") if p.is_file())
    assert shipped == ["models/sized/config.json", "models/sized/model_quantized.tflite",
                       "models/upper/config.json", "models/upper/model_quantized.tflite"]
    assert load_config(root / "captcha_ocr" / "models" / "default").name == DEFAULT  # where the package keeps it


@pytest.mark.parametrize(("name", "reads"), [(DEFAULT, str), ("upper", str.upper), ("sized", str.upper)])
def test_the_bundle_reads_with_each_model_by_name(three_models, fresh_captchas, name, reads):
    root, python = three_models
    sample = fresh_captchas[4]
    measured = run_in_bundle(root, python, {"base64Image": b64(sample.data), "model": name})
    assert (measured.status, measured.text, measured.model) == (200, reads(sample.text), name)


def test_the_bundle_picks_by_size_and_refuses_an_unknown_name(three_models, fresh_captchas):
    root, python = three_models
    sample = fresh_captchas[4]
    measured = run_in_bundle(root, python, {"base64Image": b64(sample.data)})  # 160x60: "sized" declares it
    assert (measured.status, measured.text, measured.model) == (200, sample.text.upper(), "sized")
    measured = run_in_bundle(root, python, {"base64Image": b64(sample.data), "model": "mine"})
    assert (measured.status, measured.code) == (404, "UnknownModel")


def test_eleven_models_keep_the_worst_request_within_the_budget(three_models, fresh_captchas, tmp_path):
    """Nine models beside the default and the package's general model, each of the nine declaring a
    size (so every request's size is read too)."""
    root, python = three_models
    for index in range(9):
        model_variant(tmp_path, f"site{index}", source_sizes=((100 + index, 40),))
    env = {"CAPTCHA_OCR_MODELS_DIR": str(tmp_path)}
    sample = fresh_captchas[4]
    named = run_in_bundle(root, python, {"base64Image": b64(sample.data), "model": "site8"}, env=env)
    assert (named.status, named.text, named.model) == (200, sample.text, "site8")
    for name in SHIPPED_NAMED:  # loaded at cold start like the rest: each answers by name
        assert run_in_bundle(root, python, {"base64Image": b64(sample.data), "model": name}, env=env).model == name
    worst = cases(sample.data, sample.text, [WORST_CLASS])[0]
    measured = run_in_bundle(root, python, worst.event, env=env)
    assert measured.status == worst.status
    assert measured.peak_mb <= BUDGET_PEAK_MB, f"eleven models: peak RSS {measured.peak_mb} MB"


def test_a_dynamic_range_model_serves_from_the_bundle_within_the_budget(three_models, fresh_captchas, tmp_path):
    """What `export` serves first (int8 weights, activations quantized as it runs) runs on the
    bundle's own runtime: a model of the shipped one's shape, its weights untrained."""
    pytest.importorskip("tensorflow")
    from captcha_ocr.training.export import DYNAMIC_FILE, convert
    from captcha_ocr.training.model import build_model

    root, python = three_models
    shipped = load_config(MODEL_DIR)
    model = build_model(shipped.height, shipped.width, shipped.num_classes)
    calibration = np.random.default_rng(0).random((4, shipped.height, shipped.width, 1), dtype=np.float32)
    folder = tmp_path / "dynamic"
    folder.mkdir()
    (folder / DYNAMIC_FILE).write_bytes(convert(model, shipped.height, shipped.width, calibration)[DYNAMIC_FILE])
    dataclasses.replace(shipped, name="dynamic", model_file=DYNAMIC_FILE,
                        sha256=file_sha256(folder / DYNAMIC_FILE)).save(folder)
    env = {"CAPTCHA_OCR_MODELS_DIR": str(tmp_path)}
    sample = fresh_captchas[4]
    named = run_in_bundle(root, python, {"base64Image": b64(sample.data), "model": "dynamic"}, env=env)
    assert (named.status, named.model) == (200, "dynamic")
    worst = run_in_bundle(root, python, get_event(b64(webp_lossless_rgba()), model="dynamic"), env=env)
    assert (worst.status, worst.model) == (200, "dynamic")  # the worst hostile class (WORST_CLASS)
    assert worst.peak_mb <= BUDGET_PEAK_MB, f"dynamic-range model: peak RSS {worst.peak_mb} MB"
