"""The model a new user gets: small, described by config.json, and accurate through the handler.

The recorded figure (2000 fresh captchas) comes from `captcha-ocr eval --synthetic 2000`; this
test is the regression guard on a smaller fresh set.
"""

from conftest import MODEL_DIR, TEST_SEED

from captcha_ocr.app import create_app
from captcha_ocr.config import load_config
from captcha_ocr.evaluation import handler_report, synthetic_samples


def test_shipped_model_is_small_and_matches_its_config():
    config = load_config(MODEL_DIR)
    assert config.model_file == "model_quantized.tflite"
    assert (MODEL_DIR / config.model_file).stat().st_size <= 300 * 1024
    assert config.charset == "0123456789abcdefghjkmnpqrstuvwxyz" and config.lengths == (4,)


def test_shipped_model_recognises_fresh_captchas_through_the_handler():
    app = create_app(MODEL_DIR)
    config = app.models.default.config
    samples = synthetic_samples(400, TEST_SEED + 1, config.charset, config.lengths)
    report = handler_report(app.handle, samples)
    assert report["sequence_accuracy"] >= 0.98, report["errors"][:5]
    confident = next(row for row in report["thresholds"] if row["threshold"] == 0.9)
    assert confident["accuracy"] >= 0.99 and confident["coverage"] >= 0.9
