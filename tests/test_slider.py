"""Slider captchas: the gap found from the piece or from the background without it (slider.py), through
the Reader, POST /slide and `captcha-ocr slide`, on generated sliders no choice here was tuned on."""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, encode, post_event
from hostile import slide_event
from PIL import Image

from captcha_ocr.errors import GapDetectorMissing, ImageTooLarge, InvalidRequest, NoGapFound
from captcha_ocr.reader import Reader
from captcha_ocr.settings import Limits
from captcha_ocr.slider import compare_backgrounds, match_piece
from captcha_ocr.slider_samples import generate_slider

SEEDS = range(50_000, 50_120)  # not the seeds the methods were developed on (10,000-10,599)


def rgba(data: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA"))


def off_by(gap, truth) -> int:
    return max(abs(gap.x - truth.x), abs(gap.y - truth.y))


def test_the_piece_is_placed_within_3_px_on_generated_sliders_with_decoys_and_the_piece_drawn():
    errors = [off_by(match_piece(rgba(s.background), rgba(s.piece)), s.gap) for s in map(generate_slider, SEEDS)]
    assert np.mean(np.array(errors) <= 3) >= 0.97, sorted(errors)[-10:]


def test_two_backgrounds_give_the_gap_within_3_px():
    sliders = [generate_slider(seed, piece_drawn=False, decoy=False) for seed in SEEDS]
    errors = [off_by(compare_backgrounds(rgba(s.background), rgba(s.full)), s.gap) for s in sliders]
    assert np.mean(np.array(errors) <= 3) >= 0.97, sorted(errors)[-10:]


def test_photo_backgrounds_with_their_own_edges_still_give_the_gap():
    from captcha_ocr.training.photos import photo_background as photos

    sliders = [generate_slider(seed, photos=photos) for seed in range(51_000, 51_060)]
    errors = [off_by(match_piece(rgba(s.background), rgba(s.piece)), s.gap) for s in sliders]
    plain = [generate_slider(seed, piece_drawn=False, decoy=False, photos=photos) for seed in range(51_000, 51_060)]
    differences = [off_by(compare_backgrounds(rgba(s.background), rgba(s.full)), s.gap) for s in plain]
    assert np.mean(np.array(errors) <= 3) >= 0.9 and np.mean(np.array(differences) <= 3) >= 0.9


def test_the_piece_drawn_at_its_start_is_not_taken_for_the_gap():
    """The piece drawn where it starts has the piece's very outline; the gap is still the answer."""
    drawn = [s for s in map(generate_slider, range(60_000, 60_060)) if s.piece_drawn][:20]
    found = [match_piece(rgba(s.background), rgba(s.piece)) for s in drawn]
    assert sum(off_by(gap, s.gap) <= 3 for gap, s in zip(found, drawn)) >= 19


def _two_equal_gaps(seed: int) -> tuple[np.ndarray, np.ndarray, tuple[int, int], tuple[int, int]]:
    """A background holding its gap twice, pixel for pixel, on rows 20+ px apart, and the piece: only
    the slider's row can tell which one the piece slides to."""
    slider = generate_slider(seed, piece_drawn=False, decoy=False)
    background, piece, g = rgba(slider.background).copy(), rgba(slider.piece), slider.gap
    copy = background[g.y:g.y + g.height, g.x:g.x + g.width].copy()
    height, width = background.shape[:2]
    x2 = g.x + g.width + 8 if g.x + 2 * g.width + 8 < width else g.x - g.width - 8  # right of it, or left
    y2 = g.y + 24 if g.y + g.height + 24 < height else g.y - 24
    assert x2 >= 2 * g.width and 0 <= y2, "the seed leaves no room for a second gap"
    background[y2:y2 + g.height, x2:x2 + g.width] = copy
    return background, piece, (g.x, g.y), (x2, y2)


ROOMY = [20, 21, 22]  # seeds whose background has room for a second gap (_two_equal_gaps asserts it)


@pytest.mark.parametrize("seed", ROOMY)
def test_a_piece_as_tall_as_the_background_slides_along_its_own_row(seed):
    """Sites that send the piece as a strip as tall as the background (the rest transparent) say its row."""
    background, piece, first, second = _two_equal_gaps(seed)
    for x, y in (first, second):
        strip = np.zeros((background.shape[0], piece.shape[1], 4), np.uint8)
        strip[y:y + piece.shape[0]] = piece
        found = match_piece(background, strip)
        assert max(abs(found.x - x), abs(found.y - y)) <= 3, (found, (x, y))


def test_a_wide_slider_is_searched_at_half_size_and_placed_at_full_size():
    """Sliders run to 680 px wide; one wider than 440 px is searched at half its size, its places then
    refined at full size: generated sliders drawn at twice their size (every pixel a 2x2 block) are
    placed within 5 px of twice their gap (their own errors, doubled, reach 4-6 px)."""
    sliders = [generate_slider(seed) for seed in range(62_000, 62_040)]
    doubled = [(rgba(s.background).repeat(2, 0).repeat(2, 1), rgba(s.piece).repeat(2, 0).repeat(2, 1), s.gap)
               for s in sliders]
    assert all(background.shape[1] > 440 for background, _, _ in doubled)
    errors = [max(abs(gap.x - 2 * truth.x), abs(gap.y - 2 * truth.y))
              for background, piece, truth in doubled for gap in [match_piece(background, piece)]]
    assert np.mean(np.array(errors) <= 5) >= 0.95, sorted(errors)[-5:]


@pytest.mark.parametrize("seed", range(61_000, 61_006))
def test_a_piece_drawn_at_its_start_unlike_the_piece_sent_is_still_not_the_gap(seed):
    """A screenshot draws the piece at its start brighter, or at another scale, than the piece sent,
    so it is not told as the piece drawn; it still is no gap: no gap lies where the slider starts."""
    slider = generate_slider(seed, piece_drawn=False, decoy=False)
    background, piece = rgba(slider.background).copy(), rgba(slider.piece)
    alpha = piece[..., 3:4] / 255
    region = background[slider.gap.y:slider.gap.y + piece.shape[0], 3:3 + piece.shape[1], :3]
    region[:] = (region * (1 - alpha) + np.minimum(piece[..., :3] + 14.0, 255) * alpha).round()
    assert off_by(match_piece(background, piece), slider.gap) <= 3


@pytest.mark.parametrize("seed", ROOMY)
def test_the_piece_drawn_at_its_start_gives_the_row_of_its_gap(seed):
    background, piece, first, second = _two_equal_gaps(seed)
    for x, y in (first, second):
        drawn = background.copy()
        alpha = piece[..., 3:4] / 255
        region = drawn[y:y + piece.shape[0], 5:5 + piece.shape[1], :3]
        region[:] = (region * (1 - alpha) + piece[..., :3] * alpha).round()
        found = match_piece(drawn, piece)
        assert max(abs(found.x - x), abs(found.y - y)) <= 3, (found, (x, y))
        assert all(box.x > 5 + piece.shape[1] // 2 for box in found.candidates[:2])  # the drawn piece comes last


def test_candidates_are_ranked_and_at_most_three():
    slider = generate_slider(3, piece_drawn=False)  # the piece drawn at its start is ranked last whatever its score
    gap = match_piece(rgba(slider.background), rgba(slider.piece))
    scores = [box.score for box in gap.candidates]
    assert 1 <= len(scores) <= 3 and scores == sorted(scores, reverse=True) and 0 <= gap.confidence <= 1
    assert (gap.x, gap.y) == (gap.candidates[0].x, gap.candidates[0].y)


def test_a_piece_without_transparency_is_matched_as_its_rectangle():
    slider = generate_slider(8, piece_drawn=False, decoy=False)
    background = rgba(slider.background)
    g = slider.gap
    square = background[g.y - 4:g.y + g.height + 4, g.x - 4:g.x + g.width + 4].copy()
    square[..., 3] = 255  # an opaque crop of the gap region itself: its border is what is matched
    found = match_piece(background, square)
    assert abs(found.x - (g.x - 4)) <= 3 and abs(found.y - (g.y - 4)) <= 3


def test_a_gap_shaded_half_on_dark_ground_is_found_whole():
    """Darkening by half moves a pixel of 30 by 15 levels and one of 200 by 100: the gap is where the
    share of the way to black is even, not where the difference is large."""
    rng = np.random.default_rng(5)
    full = np.full((160, 320, 4), 255, np.uint8)
    full[..., :3] = np.where(np.arange(320)[None, :, None] < 150, 30, 200) + rng.integers(-3, 4, (160, 320, 3))
    background = full.copy()
    background[50:100, 120:170, :3] = (full[50:100, 120:170, :3] * 0.5).round()  # 30 px dark, 20 px bright
    found = compare_backgrounds(background, full)
    assert max(abs(found.x - 120), abs(found.y - 50)) <= 3 and abs(found.width - 50) <= 6, found


@pytest.mark.parametrize(("ground", "form", "share"), [("white", "JPEG", 0.9), ("black", "PNG", 0.75)])
def test_an_opaque_piece_on_a_plain_ground_is_matched_by_its_shape(ground, form, share):
    """Sites that send the piece as a JPEG fill round its shape with white or black: the shape is
    read from that ground (without it, the rectangle's edges found about half of these)."""
    sliders = [generate_slider(seed) for seed in range(61_000, 61_040)]
    right = 0
    for slider in sliders:
        piece = Image.open(io.BytesIO(slider.piece)).convert("RGBA")
        flat = Image.new("RGB", piece.size, ground)
        flat.paste(piece, (0, 0), piece)
        right += off_by(match_piece(rgba(slider.background), rgba(encode(flat, form))), slider.gap) <= 3
    assert right >= share * len(sliders), right


def test_a_gap_moved_only_a_little_of_its_way_is_still_found():
    """Greyed on near-black ground, a gap moves its pixels a few levels, a thirtieth of their way to
    white: too little a share, so the large differences are the gap."""
    full = np.full((150, 300, 4), 255, np.uint8)
    full[..., :3] = 20
    background = full.copy()
    background[40:90, 200:250, :3] = 28
    found = compare_backgrounds(background, full)
    assert max(abs(found.x - 200), abs(found.y - 40)) <= 3, found


def test_what_has_no_gap_is_a_clear_error():
    slider = generate_slider(4)
    background, piece = rgba(slider.background), rgba(slider.piece)
    with pytest.raises(NoGapFound):
        compare_backgrounds(background, background)
    with pytest.raises(InvalidRequest, match="differ in size"):
        compare_backgrounds(background, background[:-1])
    transparent = piece.copy()
    transparent[..., 3] = 0
    with pytest.raises(NoGapFound, match="transparent"):
        match_piece(background, transparent)
    with pytest.raises(InvalidRequest, match="larger than the background"):
        match_piece(piece, background)


def test_the_reader_takes_paths_bytes_and_pil_images_and_keeps_the_size_limits(tmp_path):
    slider = generate_slider(9, piece_drawn=False, decoy=False)
    (tmp_path / "bg.png").write_bytes(slider.background)
    reader = Reader()
    by_path = reader.slide(tmp_path / "bg.png", piece=Image.open(io.BytesIO(slider.piece)))
    by_bytes = reader.slide(slider.background, full=slider.full)
    assert off_by(by_path, slider.gap) <= 3 and off_by(by_bytes, slider.gap) <= 3
    assert reader.slide(slider.background).method == "detector"
    with pytest.raises(InvalidRequest, match="not both"):
        reader.slide(slider.background, slider.piece, slider.full)
    big = encode(Image.new("RGB", (1000, 600)))
    with pytest.raises(ImageTooLarge, match="slider image"):
        Reader(limits=Limits()).slide(big, full=big)


def test_post_slide_answers_in_both_modes_and_with_clear_errors(app):
    slider = generate_slider(11)
    reply = app.handle(slide_event(background=slider.background, piece=slider.piece), None)
    body = json.loads(reply["body"])
    assert reply["statusCode"] == 200 and body["method"] == "piece"
    assert off_by(type("Gap", (), body), slider.gap) <= 3
    assert set(body) >= {"x", "y", "width", "height", "confidence", "candidates"}
    assert set(body["candidates"][0]) == {"x", "y", "width", "height", "score"}
    plain = generate_slider(11, piece_drawn=False, decoy=False)
    body = json.loads(app.handle(slide_event(background=plain.background, full=plain.full), None)["body"])
    assert body["method"] == "difference" and off_by(type("Gap", (), body), plain.gap) <= 3
    body = json.loads(app.handle(slide_event(background=slider.background), None)["body"])
    assert body["method"] == "detector" and 1 <= len(body["candidates"]) <= 3
    for event, status, code in [
        (slide_event(piece=slider.piece), 400, "MissingImage"),
        (slide_event(background=slider.background, piece=slider.piece, full=slider.full), 400, "InvalidRequest"),
        (slide_event(background=slider.background, pieces=slider.piece), 400, "InvalidRequest"),
        (slide_event(background="not base64!", piece=slider.piece), 400, "InvalidBase64"),
        (slide_event(background=b"GIF89a", piece=slider.piece), 415, "UnsupportedImage"),
        (post_event("[1, 2]", path="/slide"), 400, "InvalidJson"),
        (post_event("raw image bytes", "image/png", path="/slide"), 400, "InvalidRequest"),
        ({"httpMethod": "GET", "path": "/slide", "queryString": {}, "headers": {}}, 405, "MethodNotAllowed"),
    ]:
        reply = app.handle(event, None)
        assert (reply["statusCode"], json.loads(reply["body"])["error"]["code"]) == (status, code)


def test_health_says_what_finds_a_gap(app):
    health = json.loads(app.handle({"httpMethod": "GET", "path": "/health", "queryString": {}, "headers": {}},
                                   None)["body"])
    assert health["slider"]["methods"] == ["piece", "difference", "detector"]
    assert health["slider"]["detector"]["file"] == "gap.tflite" and len(health["slider"]["detector"]["sha256"]) == 64


def test_a_package_built_without_the_detector_says_so_for_a_background_alone(monkeypatch):
    from captcha_ocr.app import App
    from captcha_ocr.detector import GapDetector

    monkeypatch.setattr(GapDetector, "shipped", classmethod(lambda cls: None))
    app = App(Reader().models)
    reply = app.handle(slide_event(background=generate_slider(13).background), None)
    assert (reply["statusCode"], json.loads(reply["body"])["error"]["code"]) == (501, "GapDetectorMissing")
    health = json.loads(app.handle({"httpMethod": "GET", "path": "/health", "queryString": {}, "headers": {}},
                                   None)["body"])
    assert health["slider"] == {"methods": ["piece", "difference"], "detector": None}
    with pytest.raises(GapDetectorMissing):
        Reader().slide(generate_slider(13).background)


def test_the_slide_command_prints_the_reply(tmp_path):
    slider = generate_slider(12, piece_drawn=False, decoy=False)
    for name in ("background", "piece"):
        (tmp_path / f"{name}.png").write_bytes(getattr(slider, name))
    done = subprocess.run([sys.executable, "-m", "captcha_ocr.cli", "slide", str(tmp_path / "background.png"),
                           "--piece", str(tmp_path / "piece.png")], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert off_by(type("Gap", (), json.loads(done.stdout)), slider.gap) <= 3
    alone = subprocess.run([sys.executable, "-m", "captcha_ocr.cli", "slide", str(tmp_path / "background.png")],
                           cwd=REPO, capture_output=True, text=True)
    assert alone.returncode == 0 and json.loads(alone.stdout)["method"] == "detector"


def test_a_folder_of_labelled_sliders_is_scored_in_each_mode(tmp_path):
    from captcha_ocr.slider_labels import evaluate, list_sliders, parse_yolo
    from captcha_ocr.slider_samples import write_sliders, yolo_line

    written = write_sliders(12, 5, tmp_path)
    sliders = list_sliders(tmp_path)
    assert [s.gap for s in sliders] == [parse_yolo(yolo_line(w.gap, w.size), w.size) for w in written]
    assert all(abs(s.gap.x - w.gap.x) <= 1 and abs(s.gap.width - w.gap.width) <= 1 for s, w in zip(sliders, written))
    reader = Reader()
    piece = evaluate(reader.slide, sliders, "piece")
    assert piece["sliders"] == 12 and piece["within_10px"] >= piece["within_5px"] >= piece["within_3px"] >= 0.75
    done = subprocess.run([sys.executable, "-m", "captcha_ocr.cli", "slide-eval", "--data", str(tmp_path), "--mode",
                           "full", "--json", str(tmp_path / "report.json")], cwd=REPO, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "report.json").read_text())["within_5px"] >= 0.75 and "within 3 px" in done.stdout


def test_a_yolo_line_that_is_not_one_is_refused():
    from captcha_ocr.labelled import DatasetError
    from captcha_ocr.slider_labels import parse_yolo

    for line in ("0 0.5 0.5 0.2", "0 a b c d", "0 0.5 0.5 1.5 0.2"):
        with pytest.raises(DatasetError, match="YOLO"):
            parse_yolo(line, (300, 150))
    assert parse_yolo("0 0.5 0.5 0.2 0.4", (300, 150)).x == 120
