"""Several models in one function: found and checked at cold start, picked per request by name or by
the image's size, listed by /health, added with `captcha-ocr models add`.

The models are the shipped model's file under other configs (conftest.model_variant): "upper" reads
with an upper-case charset, so its answer to a captcha is the shipped answer upper-cased, and a
reply's text shows which model read it, not only the name the reply gives.
"""

from __future__ import annotations

import io
import json
import re
import threading
import urllib.parse
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from conftest import MODEL_DIR, SHIPPED_NAMED, UPPER, b64, call, encode, get_event, model_variant, post_event
from PIL import Image

from captcha_ocr import app as app_module
from captcha_ocr.app import create_app
from captcha_ocr.cli import main
from captcha_ocr.config import ConfigError, load_config
from captcha_ocr.registry import MODELS_DIR_ENV, ModelExists, add_model, load_registry

DEFAULT = load_config(MODEL_DIR).name


@pytest.fixture(scope="module")
def models_dir(tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    model_variant(models, "upper", charset=UPPER)
    model_variant(models, "sized", charset=UPPER, source_sizes=((160, 60),))
    return models


@pytest.fixture(scope="module")
def multi(models_dir):
    return create_app(MODEL_DIR, models_dir)


@pytest.fixture(scope="module")
def by_name(tmp_path_factory):
    """No model declares a size here: a request naming none goes to the default."""
    models = tmp_path_factory.mktemp("models")
    model_variant(models, "upper", charset=UPPER)
    return create_app(MODEL_DIR, models)


@pytest.fixture(scope="module")
def captcha(fresh_captchas):
    return fresh_captchas[2]


def test_no_model_is_the_default_and_a_name_picks_one(by_name, captcha):
    image = b64(captcha.data)
    for event, text, name in [
        (get_event(image), captcha.text, DEFAULT),
        (get_event(image, model=""), captcha.text, DEFAULT),
        (get_event(image, model="upper"), captcha.text.upper(), "upper"),
        (get_event(image, model=DEFAULT), captcha.text, DEFAULT),
    ]:
        status, body = call(by_name, event)
        assert status == 200 and body["text"] == text and body["model"]["name"] == name


@pytest.mark.parametrize("way", ["json", "form", "direct", "raw image + query", "text body + query"])
def test_every_way_of_sending_an_image_can_name_the_model(multi, captcha, way):
    image = b64(captcha.data)
    event = {
        "json": post_event(json.dumps({"base64Image": image, "model": "upper"})),
        "form": post_event(urllib.parse.urlencode({"base64Image": image, "model": "upper"}),
                           "application/x-www-form-urlencoded"),
        "direct": {"base64Image": image, "model": "upper"},
        "raw image + query": post_event(image, "image/png", isBase64Encoded=True, queryString={"model": "upper"}),
        "text body + query": post_event(image, "text/plain", queryString={"model": "upper"}),
    }[way]
    status, body = call(multi, event)
    assert status == 200 and body["text"] == captcha.text.upper() and body["model"]["name"] == "upper"


def test_an_unknown_model_is_a_404_listing_the_names(multi, captcha):
    status, body = call(multi, {"base64Image": b64(captcha.data), "model": "nope" * 100})
    assert status == 404 and body["error"]["code"] == "UnknownModel"
    message = body["error"]["message"]
    assert all(name in message for name in (DEFAULT, "upper", "sized")) and len(message) < 300
    status, body = call(multi, {"base64Image": b64(captcha.data), "model": 7})
    assert status == 400 and body["error"]["code"] == "InvalidRequest"


def test_the_one_model_declaring_the_image_size_reads_it(multi, captcha):
    status, body = call(multi, {"base64Image": b64(captcha.data)})  # 160x60, declared by "sized" alone
    assert (status, body["text"], body["model"]["name"]) == (200, captcha.text.upper(), "sized")
    # "upper" and "sized" are the same file: the answer differs from the default only by the charset
    other_size = encode(Image.open(io.BytesIO(captcha.data)).resize((170, 64)))
    status, body = call(multi, {"base64Image": b64(other_size)})
    assert status == 200 and body["model"]["name"] == DEFAULT
    status, body = call(multi, {"base64Image": b64(captcha.data), "model": DEFAULT})
    assert body["model"]["name"] == DEFAULT  # a name always wins over the size


def test_a_size_declared_by_two_models_goes_to_the_default(tmp_path, captcha):
    for name in ("one", "two"):
        model_variant(tmp_path, name, source_sizes=((160, 60),))
    status, body = call(create_app(MODEL_DIR, tmp_path), {"base64Image": b64(captcha.data)})
    assert status == 200 and body["model"]["name"] == DEFAULT


def test_a_batch_names_one_model_for_all_its_images(multi, fresh_captchas):
    images = [b64(sample.data) for sample in fresh_captchas[:3]] + ["not an image"]
    status, body = call(multi, {"images": images, "model": "upper"})
    assert status == 200 and body["model"]["name"] == "upper"
    readings = [result.get("text") for result in body["results"]]
    assert readings[:3] == [sample.text.upper() for sample in fresh_captchas[:3]]
    assert [result.get("model", {}).get("name") for result in body["results"]] == ["upper"] * 3 + [None]
    assert body["results"][3]["error"]["code"] == "UnsupportedImage"  # "not an image" is valid base64
    status, body = call(multi, {"images": images[:2]})  # no name: each image by its size, here "sized"
    assert [result["model"]["name"] for result in body["results"]] == ["sized", "sized"]


def test_health_lists_every_model(multi):
    status, body = call(multi, get_event(path="/health"))
    assert status == 200 and body["model"]["name"] == DEFAULT
    listed = {model["name"]: model for model in body["models"]}
    assert list(listed) == [DEFAULT, *SHIPPED_NAMED, "sized", "upper"]
    assert listed["upper"]["charset"] == UPPER and listed["sized"]["sourceSizes"] == [[160, 60]]
    assert listed["upper"]["lengths"] == [4]
    assert listed["upper"]["input"] == {"height": 32, "width": 96, "gray": "luminance", "views": [1.0]}
    assert listed["general"]["input"]["views"] == [1.0, 0.9]  # the shipped general model reads two views
    assert listed["upper"]["sha256"] == load_config(MODEL_DIR).sha256


def test_a_sample_is_drawn_in_the_named_models_charset(multi):
    status, body = call(multi, get_event(path="/sample", model="upper"))
    if status == 503:
        pytest.skip("the captcha library is not installed")
    assert status == 200 and set(body["text"]) <= set(UPPER)


def test_threads_reading_with_several_models_get_each_models_answer(multi, fresh_captchas):
    names = [DEFAULT, "upper", "sized"]
    jobs = [(fresh_captchas[i % 20], names[i % 3]) for i in range(150)]
    alone = {(sample.text, name): call(multi, {"base64Image": b64(sample.data), "model": name})[1]["text"]
             for sample, name in jobs}
    barrier = threading.Barrier(8)

    def one(index):
        if index < 8:
            barrier.wait(timeout=30)  # the first eight start together
        sample, name = jobs[index]
        status, body = call(multi, {"base64Image": b64(sample.data), "model": name})
        return status, body["text"], body["model"]["name"]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, range(len(jobs))))
    assert answers == [(200, alone[sample.text, name], name) for sample, name in jobs]
    assert {text for _, text, name in answers if name != DEFAULT} <= {s.text.upper() for s, _ in jobs}


# -- cold start: every model checked, a bad one named ---------------------------------------------

def test_a_bad_model_among_good_ones_stops_the_start_and_is_named(tmp_path, monkeypatch):
    logged = []
    monkeypatch.setattr(app_module, "log_event", lambda **fields: logged.append(fields))
    model_variant(tmp_path, "good")
    bad = model_variant(tmp_path, "broken", sha256="0" * 64)
    with pytest.raises(ConfigError, match="broken.*sha256"):
        create_app(MODEL_DIR, tmp_path)
    assert logged[0]["event"] == "startup_failed" and str(bad) in logged[0]["error"]
    bad.joinpath("config.json").unlink()
    model_variant(tmp_path, "broken", height=40)  # the file's input is 32 high
    with pytest.raises(ConfigError, match=r"broken.*input shape \[1, 32, 96, 1\] != config.json \[1, 40, 96, 1\]"):
        create_app(MODEL_DIR, tmp_path)


@pytest.mark.parametrize(("problem", "message"), [
    ("two of one name", "two models are named 'good'"),
    ("the default's name", f"two models are named '{DEFAULT}'"),
    ("a name unfit for a URL", "model name 'my model\\?'"),
    ("a folder with no config", "empty has no config.json"),
])
def test_models_folder_problems_are_refused_at_start(tmp_path, problem, message):
    model_variant(tmp_path, "good")
    if problem == "two of one name":
        model_variant(tmp_path, "again", name="good")
    elif problem == "the default's name":
        model_variant(tmp_path, "again", name=DEFAULT)
    elif problem == "a name unfit for a URL":
        model_variant(tmp_path, "again", name="my model?")
    else:
        (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=message):
        load_registry(MODEL_DIR, tmp_path)


def test_the_models_folder_comes_from_the_environment_and_holds_the_default_once(tmp_path, monkeypatch):
    model_variant(tmp_path, "upper", charset=UPPER)
    monkeypatch.setenv(MODELS_DIR_ENV, str(tmp_path))
    assert load_registry(MODEL_DIR).names == [DEFAULT, *SHIPPED_NAMED, "upper"]
    assert load_registry(tmp_path / "upper").names == ["upper", *SHIPPED_NAMED]  # the default is not loaded twice


# -- captcha-ocr models add ------------------------------------------------------------------------

def test_models_add_copies_checks_and_refuses_a_clash(tmp_path, captcha):
    export = model_variant(tmp_path / "runs", "export", charset=UPPER)
    (export / "model.tflite").write_bytes(b"the float file is not served, so not copied")
    models = tmp_path / "models"
    added = add_model(export, models, "mysite")
    assert added.name == "mysite" and sorted(p.name for p in (models / "mysite").iterdir()) == [
        "config.json", "model_quantized.tflite"]
    with pytest.raises(ModelExists, match="--replace"):
        add_model(export, models, "mysite")
    with pytest.raises(ModelExists, match="default"):
        add_model(export, models, DEFAULT)
    add_model(export, models, "mysite", replace=True)
    status, body = call(create_app(MODEL_DIR, models), {"base64Image": b64(captcha.data), "model": "mysite"})
    assert status == 200 and body["text"] == captcha.text.upper()


def test_models_add_leaves_nothing_behind_when_the_export_does_not_load(tmp_path):
    export = model_variant(tmp_path / "runs", "export", height=40)
    models = tmp_path / "models"
    with pytest.raises(ConfigError, match="input shape"):
        add_model(export, models, "mysite")
    assert list(models.iterdir()) == []


def test_models_add_and_list_on_the_command_line(tmp_path, capsys):
    export = model_variant(tmp_path / "runs", "export", charset=UPPER, source_sizes=((118, 51),))
    models = tmp_path / "models"
    assert main(["models", "add", str(export), "--name", "mysite", "--models-dir", str(models)]) == 0
    assert "model=mysite" in capsys.readouterr().out
    assert main(["models", "add", str(export), "--name", "mysite", "--models-dir", str(models)]) == 1
    assert "already has a model named 'mysite'" in capsys.readouterr().err
    assert main(["models", "add", str(export), "--name", "bad name", "--models-dir", str(models)]) == 1
    assert main(["models", "list", "--model-dir", str(MODEL_DIR), "--models-dir", str(models)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].startswith(DEFAULT) and lines[1].endswith("(default)")
    assert [line.split()[0] for line in lines[2:2 + len(SHIPPED_NAMED)]] == SHIPPED_NAMED
    assert lines[2 + len(SHIPPED_NAMED)].startswith("mysite") and "118x51" in lines[2 + len(SHIPPED_NAMED)]


def test_predict_and_eval_read_with_a_named_model(tmp_path, capsys, fresh_captchas):
    models = tmp_path / "models"
    model_variant(models, "upper", charset=UPPER)
    image = tmp_path / "captcha.png"
    image.write_bytes(fresh_captchas[3].data)
    args = ["--model-dir", str(MODEL_DIR), "--models-dir", str(models)]
    assert main(["predict", str(image), "--model", "upper", *args]) == 0
    assert capsys.readouterr().out.split("\t")[1::2] == [fresh_captchas[3].text.upper(), "upper\n"]
    assert main(["predict", str(image), "--model", "nope", *args]) == 1
    assert "no model named 'nope'" in capsys.readouterr().err
    assert main(["eval", "--synthetic", "5", "--model", "upper", *args]) == 0
    assert "upper (model_quantized.tflite) on 5 synthetic captchas" in capsys.readouterr().out


def test_eval_can_ignore_case(tmp_path, capsys, fresh_captchas):
    """Labels in one case of glyphs a model reads in both (tjsp_captchas): --ignore-case compares lower-cased."""
    models = tmp_path / "models"
    model_variant(models, "upper", charset=UPPER)
    data = tmp_path / "data"
    data.mkdir()
    for sample in fresh_captchas[:5]:
        (data / f"{sample.text.lower()}.png").write_bytes(sample.data)
    args = ["--model-dir", str(models / "upper"), "--data", str(data), "--json", str(tmp_path / "r.json")]
    assert main(["eval", *args]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["sequence_accuracy"] == 0
    assert main(["eval", *args, "--ignore-case"]) == 0
    assert "case ignored" in capsys.readouterr().out
    assert json.loads((tmp_path / "r.json").read_text())["sequence_accuracy"] == 1


# -- models add keeps every read inside the export and every write inside the models folder (issue 23)
def _export_pointing_at(tmp_path: Path, model_file: str) -> Path:
    export = model_variant(tmp_path / "runs", "export")
    config = json.loads((export / "config.json").read_text())
    (export / "config.json").write_text(json.dumps({**config, "model_file": model_file}))
    return export


@pytest.mark.parametrize("model_file", ["../../index.py", "../victim.tflite", "/etc/passwd", "sub/model.tflite",
                                        "..", ".hidden.tflite", "model.tflite\x00.py"])
def test_models_add_refuses_a_model_file_outside_the_export(tmp_path, capsys, model_file):
    victim = tmp_path / "runs" / "victim.tflite"
    victim.parent.mkdir(parents=True)
    victim.write_bytes(b"keep me")
    export = _export_pointing_at(tmp_path, model_file)
    models = tmp_path / "models"
    assert main(["models", "add", str(export), "--name", "mysite", "--models-dir", str(models)]) == 1
    error = capsys.readouterr().err
    assert "model_file" in error and not re.search(r"[0-9a-f]{64}", error)  # no file's sha256 is told
    assert victim.read_bytes() == b"keep me" and not (models / "mysite").exists()
    assert not models.exists() or [p for p in models.iterdir() if not p.name.startswith(".")] == []


@pytest.mark.parametrize("linked", ["config.json", "model_quantized.tflite"])
def test_models_add_refuses_links_out_of_the_export(tmp_path, capsys, linked):
    export = model_variant(tmp_path / "runs", "export")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (export / linked).rename(outside / linked)
    (export / linked).symlink_to(outside / linked)
    models = tmp_path / "models"
    assert main(["models", "add", str(export), "--name", "mysite", "--models-dir", str(models)]) == 1
    assert "link" in capsys.readouterr().err and not (models / "mysite").exists()


def test_models_add_replace_swaps_in_one_rename_and_keeps_the_old_model_when_the_new_fails(tmp_path):
    models = tmp_path / "models"
    add_model(model_variant(tmp_path / "runs", "first", charset=UPPER), models, "mysite")
    broken = model_variant(tmp_path / "runs", "broken", height=40)  # does not load in the serving runtime
    with pytest.raises(ConfigError):
        add_model(broken, models, "mysite", replace=True)
    assert load_config(models / "mysite").charset == UPPER
    assert sorted(p.name for p in models.iterdir()) == ["mysite"]  # no staging or retired folder left


# -- the package's named models (the general model) ------------------------------------------------
@pytest.fixture
def shipped(tmp_path, monkeypatch):
    """A package whose models folder holds its default and a model named "general"."""
    from captcha_ocr import registry

    package_models = tmp_path / "package-models"
    model_variant(package_models, "default")
    model_variant(package_models, registry.GENERAL_MODEL, charset=UPPER)
    monkeypatch.setattr(registry, "SHIPPED_MODELS_DIR", package_models)
    monkeypatch.setattr(registry, "SHIPPED_MODEL_DIR", package_models / "default")
    monkeypatch.delenv(MODELS_DIR_ENV, raising=False)
    monkeypatch.delenv("CAPTCHA_OCR_MODEL_DIR", raising=False)
    return package_models


def test_the_packages_named_models_are_served_beside_any_default(shipped, tmp_path, captcha):
    from captcha_ocr.registry import general_model_dir

    assert general_model_dir() == shipped / "general"
    assert load_registry(shipped / "default").names == ["default", "general"]
    assert load_registry(shipped / "general").names == ["general"]  # the default is not loaded twice
    others = tmp_path / "others"
    model_variant(others, "mine")
    assert load_registry(MODEL_DIR, others).names == [DEFAULT, "general", "mine"]
    app = create_app(MODEL_DIR, others)
    status, body = call(app, get_event(b64(captcha.data), model="general"))
    assert status == 200 and body["text"] == captcha.text.upper() and body["model"]["name"] == "general"
    from captcha_ocr import Reader

    reading = Reader().read(captcha.data, model="general")  # the library, with no folder named
    assert (reading.text, reading.model) == (captcha.text.upper(), "general")


def test_the_first_reading_is_the_general_models_unless_a_default_is_set(shipped, tmp_path, monkeypatch):
    from captcha_ocr import registry

    assert registry.first_reading_model_dir() == shipped / "general"
    monkeypatch.setenv("CAPTCHA_OCR_MODEL_DIR", str(tmp_path / "mine"))
    assert registry.first_reading_model_dir() == tmp_path / "mine"
    monkeypatch.delenv("CAPTCHA_OCR_MODEL_DIR")
    (shipped / "general" / "config.json").unlink()
    assert registry.general_model_dir() is None and registry.first_reading_model_dir() == shipped / "default"
