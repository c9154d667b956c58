"""The gap detector's serving side (captcha_ocr/detector): its output decoded into boxes in the
background's own pixels, and what a background alone gets from POST /slide."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hostile import slide_event

from captcha_ocr.detector import INPUT, STRIDE, GapDetector, decode_heat_map

GRID = (INPUT[0] // STRIDE, INPUT[1] // STRIDE)


def output_with_peaks(*peaks: tuple[int, int, float, float, float, float, float]) -> np.ndarray:
    """A model output in the first detectors' "centre-size" encoding: heat logits of -8 but at each
    (row, column, logit, dx, dy, width, height) given."""
    output = np.zeros((*GRID, 5), np.float32)
    output[..., 0] = -8
    for row, column, logit, dx, dy, width, height in peaks:
        output[row, column] = (logit, dx, dy, np.log(width), np.log(height))
    return output


def test_the_strongest_peak_is_the_gap_in_the_backgrounds_pixels():
    size = (352, 192)  # twice the input: every input pixel is two of the background's
    output = output_with_peaks((10, 20, 3.0, 0.5, 0.25, 20, 16), (4, 30, 1.0, 0, 0, 10, 10))
    boxes = decode_heat_map(output, size, encoding="centre-size")
    best = boxes[0]
    cx, cy = (20 + 0.5) * STRIDE * 2, (10 + 0.25) * STRIDE * 2
    assert (best.x, best.y, best.width, best.height) == (round(cx - 20), round(cy - 16), 40, 32)
    assert best.score > boxes[1].score and len(boxes) <= 3


def test_edges_are_read_from_the_peaks_cell_in_cells_from_its_corner():
    size = (352, 192)
    output = np.zeros((*GRID, 5), np.float32)
    output[..., 0] = -8
    output[10, 20] = (3.0, -2.5, -2.0, 2.5, 2.0)  # edges 2.5 cells left and right, 2 up and down
    best = decode_heat_map(output, size)[0]
    assert (best.x, best.y, best.width, best.height) == (17.5 * 8, 8 * 8, 5 * 8, 4 * 8)


def test_every_cell_round_the_centre_is_trained_to_read_the_same_box():
    """A heat peak one cell off the centre's (the common miss) still reads the gap's own box."""
    from captcha_ocr.slider_samples import Box
    from captcha_ocr.training.gap import targets

    box, size = Box(123, 57, 41, 38), (333, 180)
    heat, regression = targets(box, size)
    row, column = np.unravel_index(int(np.argmax(heat[..., 0])), GRID)
    assert regression[..., 4].sum() == 9
    for dy, dx in ((0, 0), (1, 0), (0, -1), (-1, 1)):
        output = np.zeros((*GRID, 5), np.float32)
        output[..., 0], output[..., 1:] = -8, regression[..., :4]
        output[row + dy, column + dx, 0] = 3
        found = decode_heat_map(output, size)[0]
        assert (found.x, found.y, found.width, found.height) == (box.x, box.y, box.width, box.height)


def test_an_unknown_box_encoding_is_a_config_error():
    from captcha_ocr.config import ConfigError

    with pytest.raises(ConfigError, match="box_encoding"):
        decode_heat_map(np.zeros((*GRID, 5), np.float32), (176, 96), encoding="corners")


def test_neighbouring_cells_of_one_peak_give_one_candidate():
    output = output_with_peaks((10, 20, 3.0, 0.5, 0.5, 20, 20), (10, 21, 2.5, 0.5, 0.5, 20, 20),
                               (3, 5, 0.5, 0.5, 0.5, 20, 20))
    boxes = decode_heat_map(output, (176, 96), encoding="centre-size")
    assert [(round(b.x), round(b.y)) for b in boxes[:2]] == [(72, 32), (12, 4)]


@pytest.mark.skipif(GapDetector.shipped() is None, reason="this checkout has no gap detector")
def test_a_background_alone_is_answered_by_the_shipped_detector(app):
    from captcha_ocr.slider_samples import generate_slider

    slider = generate_slider(424_242)
    reply = app.handle(slide_event(background=slider.background), None)
    body = json.loads(reply["body"])
    assert reply["statusCode"] == 200 and body["method"] == "detector"
    assert 1 <= len(body["candidates"]) <= 3 and 0 <= body["confidence"] <= 1


@pytest.mark.slow
@pytest.mark.skipif(GapDetector.shipped() is None, reason="this checkout has no gap detector")
def test_slide_train_goes_on_from_the_shipped_detector_and_its_export_serves(tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    from captcha_ocr.slider_samples import write_sliders

    write_sliders(20, 77, tmp_path / "sliders")
    run = tmp_path / "run"
    folder = str(tmp_path / "sliders")
    trained = subprocess.run([sys.executable, "-m", "captcha_ocr.cli", "slide-train", "--data", folder,
                              "--out", str(run), "--minutes", "0"], cwd=REPO, capture_output=True, text=True)
    assert trained.returncode == 0, trained.stderr[-3000:]
    assert "held-out within 5 px" in trained.stdout and (run / "export" / "gap.tflite").is_file()
    scored = subprocess.run([sys.executable, "-m", "captcha_ocr.cli", "slide-eval", "--data", folder,
                             "--mode", "background", "--detector", str(run / "export"), "--json",
                             str(tmp_path / "report.json")], cwd=REPO, capture_output=True, text=True)
    assert scored.returncode == 0, scored.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["sliders"] == 20 and report["within_10px"] >= 0.5 and not report["failures"]


@pytest.mark.slow
def test_a_detector_run_resumes_from_its_checkpoint_and_cached_sliders(tmp_path):
    """A training run stopped goes on: the same generated sliders (read back from the run folder,
    not drawn again) and the history, for the epochs asked for."""
    from captcha_ocr.training.gap import train

    run = tmp_path / "run"
    train(run, minutes=0, train_count=24, seed=3, validation_count=6)
    cache = next(run.glob("sliders-*.npz"))
    written = cache.stat().st_mtime_ns
    assert [row["epoch"] for row in json.loads((run / "history.json").read_text())] == [1]
    train(run, minutes=60, train_count=24, seed=3, validation_count=6, resume=True, learning_rate=5e-4, epochs=2)
    history = json.loads((run / "history.json").read_text())
    assert [row["epoch"] for row in history] == [1, 2, 3] and history[1]["resumed"]  # 2 epochs, not 60 minutes
    assert cache.stat().st_mtime_ns == written and (run / "best.keras").is_file()
