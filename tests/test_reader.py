"""captcha_ocr.Reader: the one way from an image to its reading, for Python callers and the handler alike."""

from __future__ import annotations

import io

import pytest
from conftest import MODEL_DIR, UPPER, b64, call, encode, get_event, model_variant, readings_disagree_across_threads
from PIL import Image

import captcha_ocr
from captcha_ocr import CaptchaOcrError, ImageTooLarge, PayloadTooLarge, Reader, Reading, UnknownModel, UnsupportedImage


@pytest.fixture(scope="module")
def reader() -> Reader:
    return Reader()


def test_three_lines_read_a_captcha_from_bytes_a_path_and_a_pil_image(reader, fresh_captchas, tmp_path):
    sample = fresh_captchas[0]
    path = tmp_path / "captcha.png"
    path.write_bytes(sample.data)
    readings = [reader.read(sample.data), reader.read(path), reader.read(str(path)),
                reader.read(Image.open(io.BytesIO(sample.data))), reader.read(bytearray(sample.data))]
    assert {reading.text for reading in readings} == {sample.text}
    reading = readings[0]
    assert isinstance(reading, Reading) and 0 < reading.confidence <= 1
    assert "".join(c.char for c in reading.chars) == reading.text
    assert reading.model == "captcha-ocr-synthetic-v1" and reading.source_size == (160, 60)
    assert reading.source_format == "PNG"


def test_the_reader_reads_what_the_handler_replies(reader, app, fresh_captchas):
    for sample in fresh_captchas[:10]:
        reading = reader.read(sample.data)
        _, body = call(app, get_event(b64(sample.data)))
        assert (reading.text, reading.confidence) == (body["text"], body["confidence"])


@pytest.mark.parametrize("image, error", [
    (b"not an image", UnsupportedImage),
    (encode(Image.new("L", (3000, 3000))), ImageTooLarge),
    (b"\x00" * 2_000_001, PayloadTooLarge),
    (12345, UnsupportedImage),
    ("/no/such/file.png", UnsupportedImage),
])
def test_bad_images_raise_typed_errors_under_one_base(reader, image, error):
    with pytest.raises(error) as raised:
        reader.read(image)
    assert isinstance(raised.value, CaptchaOcrError) and raised.value.status in (413, 415)


def test_a_file_over_the_limit_is_refused_before_it_is_read(reader, tmp_path):
    big = tmp_path / "big.png"
    with big.open("wb") as out:
        out.truncate(50_000_000)  # sparse: reading it would cost 50 MB
    with pytest.raises(PayloadTooLarge, match="big.png"):
        reader.read(big)


def test_read_many_gives_each_image_its_reading_or_its_error(reader, fresh_captchas):
    results = reader.read_many([fresh_captchas[0].data, b"junk", fresh_captchas[1].data])
    assert results[0].text == fresh_captchas[0].text and results[2].text == fresh_captchas[1].text
    assert isinstance(results[1], UnsupportedImage)


def test_a_trained_export_and_a_models_folder(tmp_path, fresh_captchas):
    sample = fresh_captchas[2]
    export = model_variant(tmp_path, "upper", charset=UPPER)
    assert Reader(export).read(sample.data).text == sample.text.upper()
    both = Reader(MODEL_DIR, tmp_path)
    assert both.read(sample.data).text == sample.text
    assert both.read(sample.data, model="upper").text == sample.text.upper()
    with pytest.raises(UnknownModel):
        both.read(sample.data, model="nope")


def test_an_isolated_reader_decodes_in_a_worker_and_reads_the_same(reader, fresh_captchas):
    isolated = Reader(isolate=True)
    try:
        assert isolated.decoder is not None and isolated.decoder.pids
        for sample in fresh_captchas[:5]:
            assert isolated.read(sample.data) == reader.read(sample.data)
    finally:
        isolated.close()


def test_the_reader_is_thread_safe(reader, fresh_captchas):
    samples = fresh_captchas[:8]
    assert readings_disagree_across_threads(lambda image: reader.read(image).text, [s.data for s in samples]) == []


def test_importing_the_package_loads_no_numpy():
    import subprocess
    import sys

    probe = "import sys, captcha_ocr; print('numpy' in sys.modules, captcha_ocr.__version__)"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["False", captcha_ocr.__version__]


@pytest.fixture(scope="module")
def arithmetic(tmp_path_factory):
    """The shipped model under a charset whose 'a' is '+' and 'z' is '?': a captcha drawn as "3a5z"
    reads "3+5?" as an arithmetic model; and that captcha's PNG."""
    from captcha_ocr.synthetic import _generator, seeded_captcha

    shipped = Reader()
    for seed in range(20):  # the first drawing the shipped model reads right
        with seeded_captcha(seed):
            png = _generator.generate("3a5z", format="png").getvalue()
        if shipped.read(png).text == "3a5z":
            break
    folder = model_variant(tmp_path_factory.mktemp("arithmetic"), "sums", task="arithmetic",
                           charset=shipped.models.default.config.charset.replace("a", "+").replace("z", "?"))
    return folder, png


def test_an_arithmetic_model_reads_the_answer_the_captcha_asks_for(arithmetic, captcha_png):
    folder, png = arithmetic
    reading = Reader(folder).read(png)
    assert (reading.text, reading.task, reading.answer, reading.answer_error) == ("3+5?", "arithmetic", 8, None)
    unanswerable = Reader(folder).read(captcha_png)  # a text captcha read by the arithmetic model
    assert unanswerable.answer is None and unanswerable.answer_error
    assert Reader().read(png).answer is None and Reader().read(png).task == "text"


def test_the_reply_of_an_arithmetic_model_carries_the_answer(arithmetic, captcha_png, app):
    from captcha_ocr.app import create_app

    folder, png = arithmetic
    sums = create_app(folder)
    try:
        assert call(sums, get_event(b64(png)))[1]["answer"] == 8
        body = call(sums, get_event(b64(captcha_png)))[1]
        assert body["ok"] and body["answer"] is None and body["answerError"]
    finally:
        sums.reader.decoder.close()
    assert "answer" not in call(app, get_event(b64(png)))[1]  # a text model's reply is as before


def test_eval_scores_an_arithmetic_models_answers(arithmetic, captcha_png):
    from captcha_ocr.app import create_app
    from captcha_ocr.evaluation import Labelled, format_report, handler_report

    folder, png = arithmetic
    sums = create_app(folder)
    try:
        report = handler_report(sums.handle, [Labelled("3+5?", png, "sum"), Labelled("3+6?", png, "wrong")])
    finally:
        sums.reader.decoder.close()
    assert report["answer_accuracy"] == 0.5 and report["answer_accuracy_where_text_right"] == 1.0
    assert "answer accuracy" in format_report(report, "sums")
