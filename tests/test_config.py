import dataclasses
import json
import shutil

import pytest
from conftest import MODEL_DIR

from captcha_ocr.app import create_app
from captcha_ocr.config import ConfigError, file_sha256, load_config, parse_config


def copy_model(tmp_path):
    config = load_config(MODEL_DIR)
    shutil.copy(MODEL_DIR / "config.json", tmp_path / "config.json")
    shutil.copy(config.model_path(MODEL_DIR), tmp_path / config.model_file)
    return json.loads((tmp_path / "config.json").read_text())


def test_shipped_config_describes_the_shipped_model():
    config = load_config(MODEL_DIR)
    assert config.sha256 == file_sha256(config.model_path(MODEL_DIR))
    assert config.blank_index == len(config.charset) and config.num_classes == len(config.charset) + 1
    assert not hasattr(config, "limits")  # the request budget is the function's (settings.py), not a model's


def test_config_round_trips(tmp_path):
    config = load_config(MODEL_DIR)
    config.save(tmp_path)
    assert load_config(tmp_path) == config
    assert config.gray == "luminance" and config.source_sizes == ()  # what a config without them means
    assert config.views == (1.0,) and "views" not in (tmp_path / "config.json").read_text()
    other = dataclasses.replace(config, gray="darkest", source_sizes=((118, 51), (200, 50)), views=(1.0, 0.9))
    other.save(tmp_path)
    assert load_config(tmp_path) == other


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda c: c.pop("charset"), "missing key 'charset'"),
        (lambda c: c.update(charset="aa"), "repeated"),
        (lambda c: c.update(lengths=[]), "lengths"),
        (lambda c: c["input"].update(height="32"), "'height' must be int"),
        (lambda c: c.update(decoding={"type": "beam"}), "ctc_greedy"),
        (lambda c: c["decoding"].update(blank_index=0), "blank_index"),
        (lambda c: c["input"].update(gray="sepia"), "input.gray must be one of luminance, darkest"),
        (lambda c: c.update(source_sizes=[[118]]), "source_sizes"),
        (lambda c: c.update(source_sizes=[[118, True]]), "source_sizes"),
        (lambda c: c["input"].update(views=[]), "input.views"),
        (lambda c: c["input"].update(views=[1.0, 0.4]), "input.views"),
        (lambda c: c["input"].update(views=[1.0, 1.5]), "input.views"),
        (lambda c: c["input"].update(views=[1.0, 1.0]), "input.views"),
        (lambda c: c["input"].update(views=[1.0, True]), "input.views"),
        (lambda c: c["input"].update(views=[1.0, "0.9"]), "input.views"),
        (lambda c: c["input"].update(views=[1.0, [0.9]]), "input.views"),
        (lambda c: c["input"].update(views=0.9), "input.views"),
        (lambda c: c["input"].update(views=[1.0, 0.9, 0.8, 0.7, 0.6]), "input.views"),
    ],
)
def test_invalid_configs_name_the_problem(change, message):
    data = json.loads((MODEL_DIR / "config.json").read_text())
    change(data)
    with pytest.raises(ConfigError, match=message):
        parse_config(data)


def test_cold_start_refuses_a_model_whose_sha256_differs(tmp_path, capsys):
    data = copy_model(tmp_path)
    data["sha256"] = "0" * 64
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="sha256"):
        create_app(tmp_path)


def test_cold_start_refuses_mismatched_shapes(tmp_path):
    data = copy_model(tmp_path)
    data["input"]["width"] += 4
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="input shape"):
        create_app(tmp_path)
    data["input"]["width"] -= 4
    data["charset"] = data["charset"][:-1]
    data["decoding"]["blank_index"] -= 1
    (tmp_path / "config.json").write_text(json.dumps(data))
    with pytest.raises(ConfigError, match="output shape"):
        create_app(tmp_path)


def test_missing_files(tmp_path):
    with pytest.raises(ConfigError, match="no config.json"):
        load_config(tmp_path)
    data = copy_model(tmp_path)
    (tmp_path / data["model_file"]).unlink()
    with pytest.raises(ConfigError, match="not found"):
        create_app(tmp_path)


def test_a_task_is_read_written_and_checked(tmp_path):
    import dataclasses

    config = dataclasses.replace(load_config(MODEL_DIR), task="arithmetic")
    config.save(tmp_path)
    shutil.copy(config.model_path(MODEL_DIR), tmp_path / config.model_file)
    assert load_config(tmp_path).task == "arithmetic"
    data = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({**data, "task": "poetry"}))
    with pytest.raises(ConfigError, match="task"):
        load_config(tmp_path)
    assert load_config(MODEL_DIR).task == "text"  # a config.json without one reads text


def test_the_general_model_declares_the_views_it_ships_with():
    import sys

    from conftest import REPO

    sys.path.insert(0, str(REPO / "scripts"))
    try:
        import ship_model
    finally:
        sys.path.pop(0)
    from captcha_ocr.registry import GENERAL_MODEL, SHIPPED_MODELS_DIR

    assert load_config(SHIPPED_MODELS_DIR / GENERAL_MODEL).views == ship_model.GENERAL_VIEWS == (1.0, 0.9)
