"""The model a new user gets: small, described by config.json, and accurate through the handler.

The recorded figure (2000 fresh captchas) comes from `captcha-ocr eval --synthetic 2000`; this
test is the regression guard on a smaller fresh set.
"""

import pytest
from conftest import MODEL_DIR, SHARED_DATASET, TEST_SEED

from captcha_ocr import Reader
from captcha_ocr.app import create_app
from captcha_ocr.config import load_config
from captcha_ocr.evaluation import handler_report, synthetic_samples
from captcha_ocr.labelled import list_labelled_files
from captcha_ocr.registry import general_model_dir


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


@pytest.mark.skipif(general_model_dir() is None, reason="this package ships no general model")
def test_the_shipped_general_model_is_small_and_served_by_name_beside_the_default():
    config = load_config(general_model_dir())
    assert (general_model_dir() / config.model_file).stat().st_size <= 2 * 2**20  # the bound as served
    reader, default = Reader(), load_config(MODEL_DIR)
    assert reader.models.names[:2] == [default.name, "general"]
    sample = synthetic_samples(1, TEST_SEED, default.charset, default.lengths)[0]
    assert reader.read(sample.data).model == default.name  # naming no model still gets the default


@pytest.mark.skipif(general_model_dir() is None or not SHARED_DATASET.is_dir(),
                    reason="needs the shipped general model and ../shared/datasets")
@pytest.mark.parametrize("data_set", ["captcha_images_v2", "tjsp_captchas"])
def test_the_shipped_general_model_reads_real_sites_it_never_saw_where_the_default_reads_nothing(data_set):
    """The first 200 of each shared real set (never trained on), case ignored: the regression guard
    of BENCHMARKS.md's zero-shot table, which counts every image ("The general model")."""
    items, _ = list_labelled_files(SHARED_DATASET.parent / data_set)
    reader = Reader()
    general = default = 0
    for path, text in items[:200]:
        data = path.read_bytes()
        general += reader.read(data, model="general").text.lower() == text.lower()
        default += reader.read(data).text.lower() == text.lower()
    assert general >= 0.45 * 200 and default <= 0.05 * 200, (general, default)
