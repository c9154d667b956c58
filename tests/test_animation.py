"""Animated captchas (GIF, APNG, animated WebP): the screen keeps the frames that fit the limits
(budget.py), and the one preprocessing reads every one of them into one gray image (imaging.py)."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from conftest import encode
from hostile import gif_with_growing_frames, gif_with_second_frame_far_away
from PIL import Image, ImageDraw

from captcha_ocr.budget import screen
from captcha_ocr.errors import UnsupportedImage
from captcha_ocr.imaging import preprocess
from captcha_ocr.settings import Limits

FORMATS = ("GIF", "PNG", "WEBP")
LIMITS = Limits()


def flashing_frames(count: int = 4, ink: str = "black", paper: str = "white") -> list[Image.Image]:
    """Frame i shows block i alone: no frame shows them all."""
    frames = []
    for index in range(count):
        frame = Image.new("RGB", (160, 60), paper)
        ImageDraw.Draw(frame).rectangle((10 + 36 * index, 15, 36 + 36 * index, 45), fill=ink)
        frames.append(frame)
    return frames


def animation(frames: list[Image.Image], file_format: str, **options) -> bytes:
    if file_format == "WEBP":
        options.setdefault("lossless", True)
    return encode(frames[0], file_format, save_all=True, append_images=frames[1:], **options)


def ink_columns(tensor: np.ndarray) -> set[int]:
    """Which of the four block positions are dark in a (32, 96, 1) tensor."""
    columns = tensor[:, :, 0].min(axis=0) < 0.5
    return {index for index in range(4) if columns[int((23 + 36 * index) * 96 / 160)]}


@pytest.mark.parametrize("file_format", FORMATS)
def test_every_frame_of_a_flashing_captcha_is_read(file_format):
    data = animation(flashing_frames(), file_format)
    assert screen(data, LIMITS).frames == 4
    assert ink_columns(preprocess(data, 32, 96).tensor) == {0, 1, 2, 3}
    assert ink_columns(preprocess(encode(flashing_frames()[0]), 32, 96).tensor) == {0}  # a still: its own pixels


@pytest.mark.parametrize("file_format", FORMATS)
def test_light_ink_on_a_dark_ground_is_read_from_every_frame_too(file_format):
    data = animation(flashing_frames(ink="white", paper="black"), file_format)
    tensor = preprocess(data, 32, 96).tensor[:, :, 0]
    bright = tensor.max(axis=0) > 0.5
    assert all(bright[int((23 + 36 * index) * 96 / 160)] for index in range(4))


@pytest.mark.parametrize("file_format", FORMATS)
def test_the_same_animation_reads_the_same_in_each_format(file_format):
    reference = preprocess(animation(flashing_frames(), "PNG"), 32, 96).tensor
    assert np.abs(preprocess(animation(flashing_frames(), file_format), 32, 96).tensor - reference).max() < 0.02


@pytest.mark.parametrize("file_format", FORMATS)
def test_frames_past_max_frames_are_left_out_before_decoding(file_format):
    data = animation(flashing_frames(4) * 10, file_format)
    screened = screen(data, Limits(max_frames=6))
    assert screened.frames == 6 and len(screened.data) < len(data)
    assert Image.open(io.BytesIO(screened.data)).n_frames == 6
    assert screen(data, LIMITS).frames == LIMITS.max_frames


@pytest.mark.parametrize("file_format", FORMATS)
def test_frames_past_the_animation_pixel_limit_are_left_out(file_format):
    data = animation(flashing_frames(4), file_format)
    limits = Limits(max_animation_pixels=160 * 60 * 3)
    screened = screen(data, limits)
    assert screened.frames == 3 and screened.pixels == 160 * 60 * 3
    assert ink_columns(preprocess(data, 32, 96, limits).tensor) == {0, 1, 2}


def test_a_gif_whose_frames_grow_past_its_screen_is_read_on_one_canvas_of_all_their_extents():
    screened = screen(gif_with_growing_frames(count=5, step=40), LIMITS)
    assert screened.size == (224, 224) and screened.frames == 5
    image = Image.open(io.BytesIO(screened.data))
    for index in range(image.n_frames):
        image.seek(index)
        assert image.size == (224, 224)
    assert preprocess(gif_with_growing_frames(count=5, step=40), 32, 96).tensor.shape == (32, 96, 1)


def test_a_gif_frame_beyond_the_size_limit_ends_the_animation_before_it():
    screened = screen(gif_with_second_frame_far_away(), LIMITS)
    assert (screened.size, screened.frames) == ((160, 60), 1)


def test_a_gif_truncated_in_a_later_frame_is_read_up_to_it():
    data = animation(flashing_frames(4), "GIF")
    truncated = data[:data.rindex(b"\x2c") + 30]  # into the last frame's data
    screened = screen(truncated, LIMITS)
    assert 1 <= screened.frames < 4
    assert preprocess(truncated, 32, 96).tensor.shape == (32, 96, 1)


def test_an_apng_whose_default_image_is_not_a_frame_counts_it_as_one():
    frames = flashing_frames(3)
    data = encode(frames[0], "PNG", save_all=True, append_images=frames[1:], default_image=True)
    screened = screen(data, LIMITS)
    assert screened.frames == Image.open(io.BytesIO(data)).n_frames == 3
    assert struct.unpack(">I", screened.data[screened.data.index(b"acTL") + 4:][:4])[0] == 2


def test_an_apng_frame_control_that_is_cut_short_is_refused():
    data = bytearray(animation(flashing_frames(2), "PNG"))
    control = data.index(b"fcTL")
    data[control - 4:control] = struct.pack(">I", 20)  # length 20 instead of 26: its CRC then fails too
    with pytest.raises(UnsupportedImage):
        screen(bytes(data), LIMITS)


def test_a_png_with_frame_chunks_but_no_animation_control_reads_as_a_still():
    apng = animation(flashing_frames(2), "PNG")
    control = apng.index(b"acTL")
    still = apng[:control - 4] + apng[control + 16:]  # the acTL chunk (8 bytes of body) taken out
    screened = screen(still, LIMITS)
    assert screened.frames == 1 and b"fcTL" not in screened.data and b"fdAT" not in screened.data
    assert ink_columns(preprocess(still, 32, 96).tensor) == {0}
