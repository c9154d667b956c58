"""settings: the function's request limits, apart from each model's contract."""

from __future__ import annotations

import json

import pytest
from conftest import MODEL_DIR, b64, call, model_variant, post_event

from captcha_ocr.app import create_app
from captcha_ocr.config import load_config
from captcha_ocr.settings import SETTINGS_ENV, Limits, SettingsError, load_settings


def test_the_default_limits_hold_together():
    limits = Limits()
    assert limits.max_decoded_bytes < limits.max_base64_chars <= limits.max_body_bytes
    assert limits.max_pixels <= limits.max_batch_pixels and limits.max_side ** 2 > limits.max_pixels


def test_a_settings_file_sets_the_functions_limits(tmp_path, monkeypatch, captcha_png):
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps({"limits": {"max_batch": 2}}))
    monkeypatch.setenv(SETTINGS_ENV, str(settings))
    app = create_app(MODEL_DIR)
    status, body = call(app, post_event(json.dumps({"images": [b64(captcha_png)] * 3})))
    assert (status, body["error"]["code"]) == (413, "BatchTooLarge")
    assert call(app, {"httpMethod": "GET", "path": "/health"})[1]["limits"]["max_batch"] == 2
    app.reader.decoder.close()


@pytest.mark.parametrize("content, message", [
    ({"limits": {"max_bach": 2}}, "no limit named 'max_bach'"),
    ({"limits": {"max_batch": 0}}, "positive integer"),
    ({"limits": {"max_batch": "8"}}, "positive integer"),
    ({"limit": {}}, "top level"),
    ([], "top level"),
])
def test_a_bad_settings_file_stops_the_cold_start_naming_the_key(tmp_path, monkeypatch, content, message):
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(content))
    monkeypatch.setenv(SETTINGS_ENV, str(settings))
    with pytest.raises(SettingsError, match=message):
        create_app(MODEL_DIR)


def test_a_missing_settings_file_is_an_error_not_the_defaults(tmp_path):
    with pytest.raises(SettingsError, match="settings file"):
        load_settings(tmp_path / "nope.json")


def test_an_earlier_config_json_with_limits_still_loads_and_does_not_set_the_functions(tmp_path, captcha_png):
    folder = model_variant(tmp_path, "old")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "limits": {"max_batch": 1}}))
    assert load_config(folder).name == "old"
    app = create_app(folder)
    status, body = call(app, post_event(json.dumps({"images": [b64(captcha_png)] * 3})))
    assert status == 200 and [entry["ok"] for entry in body["results"]] == [True] * 3
    app.reader.decoder.close()
