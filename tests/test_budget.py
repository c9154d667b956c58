"""budget.screen: what an image may cost, judged from its container before Pillow decodes a pixel."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from conftest import encode
from hostile import (
    exif_bomb_app1,
    exif_orientation_app1,
    jpeg_segments,
    jpeg_with_size,
    mpf_bomb_app2,
    png_chunk,
    png_with_chunks,
    repeated_scan_jpeg,
    segment,
    tiff_ifd,
    with_segments,
)
from PIL import Image

from captcha_ocr.budget import exif_orientation, screen
from captcha_ocr.errors import ImageTooComplex, ImageTooLarge, UnsupportedImage
from captcha_ocr.imaging import preprocess
from captcha_ocr.settings import Limits

LIMITS = Limits()


def photo(size=(160, 60)) -> Image.Image:
    pixels = np.random.default_rng(5).integers(0, 255, (size[1] // 4, size[0] // 4, 3), dtype=np.uint8)
    return Image.fromarray(pixels).resize(size)


def test_jpeg_metadata_is_stripped_and_orientation_kept():
    jpeg = encode(photo(), "JPEG")
    hostile = with_segments(jpeg, exif_orientation_app1(6), mpf_bomb_app2(50), exif_bomb_app1(50),
                            segment(0xFE, b"comment"))
    screened = screen(hostile, LIMITS)
    assert screened.orientation == 6 and screened.size == (160, 60)
    markers = [part[1] for part in jpeg_segments(screened.data)]
    assert not any(0xE0 <= marker <= 0xEF or marker == 0xFE for marker in markers)
    assert Image.open(io.BytesIO(screened.data)).size == (160, 60)


@pytest.mark.parametrize("little", [False, True])
def test_exif_orientation_reads_one_tag_in_either_byte_order(little):
    order = "<" if little else ">"
    tiff = tiff_ifd([(0x010F, 2, 4, b"Cam\x00"), (0x0112, 3, 1, struct.pack(order + "HH", 8, 0))], little=little)
    assert exif_orientation(b"Exif\x00\x00" + tiff) == 8
    assert exif_orientation(tiff[:10]) == 1  # cut inside the directory
    assert exif_orientation(b"garbage") == 1


def test_too_many_scans_is_too_complex():
    with pytest.raises(ImageTooComplex):
        screen(repeated_scan_jpeg(400, 200_000), LIMITS)


def test_too_many_segments_is_too_complex():
    jpeg = encode(photo(), "JPEG")
    dqt = next(part for part in jpeg_segments(jpeg) if part[1] == 0xDB)
    parts = jpeg_segments(jpeg)
    with pytest.raises(ImageTooComplex):
        screen(b"".join(parts[:2]) + dqt * LIMITS.max_segments + b"".join(parts[2:]), LIMITS)


def test_data_too_short_for_the_declared_size_is_corrupt():
    jpeg = encode(photo(), "JPEG")
    assert screen(jpeg_with_size(jpeg, 200, 80), LIMITS)  # a little larger: plausible
    with pytest.raises(UnsupportedImage, match="too short"):
        screen(jpeg_with_size(jpeg, 1400, 1400), LIMITS)


def test_png_text_and_animation_chunks_are_dropped_and_idat_merged():
    png = png_with_chunks(encode(photo(), "PNG", compress_level=1), png_chunk(b"tEXt", b"k\x00v"),
                          png_chunk(b"zTXt", b"k\x00\x00" + b"x"))
    screened = screen(png, LIMITS)
    kinds = []
    position = 8
    while position < len(screened.data):
        length, kind = struct.unpack_from(">I4s", screened.data, position)
        kinds.append(kind)
        position += 12 + length
    assert kinds == [b"IHDR", b"IDAT", b"IEND"]
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(screened.data))), np.asarray(Image.open(io.BytesIO(png))))


def test_a_png_with_a_bad_crc_is_corrupt():
    png = bytearray(encode(photo(), "PNG"))
    png[40] ^= 0xFF  # inside the first IDAT
    with pytest.raises(UnsupportedImage, match="CRC"):
        screen(bytes(png), LIMITS)


@pytest.mark.parametrize("format, options", [("GIF", {}), ("BMP", {}), ("WEBP", {"lossless": True}),
                                             ("WEBP", {"quality": 50}), ("PNG", {}), ("JPEG", {})])
def test_every_format_size_is_read_from_its_header(format, options):
    assert screen(encode(photo((123, 45)), format, **options), LIMITS).size == (123, 45)


@pytest.mark.parametrize("size", [(2000, 2000), (5000, 10), (1, 5000)])
def test_sizes_over_the_limits_are_refused_before_pillow_opens_them(size):
    image = Image.new("L", size)
    for format in ("PNG", "GIF", "BMP", "WEBP"):
        with pytest.raises(ImageTooLarge):
            screen(encode(image, format, **({"lossless": True} if format == "WEBP" else {})), LIMITS)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_is_applied(orientation):
    upright = photo()
    stored = upright.transpose({1: Image.Transpose.ROTATE_180, 2: Image.Transpose.FLIP_LEFT_RIGHT,
                                3: Image.Transpose.ROTATE_180, 4: Image.Transpose.FLIP_TOP_BOTTOM,
                                5: Image.Transpose.TRANSPOSE, 6: Image.Transpose.ROTATE_90,
                                7: Image.Transpose.TRANSVERSE, 8: Image.Transpose.ROTATE_270}[orientation])
    if orientation == 1:
        stored = upright
    expected = preprocess(encode(upright, "PNG"), 32, 96).tensor
    jpeg = with_segments(encode(stored, "JPEG", quality=98), exif_orientation_app1(orientation))
    png = png_with_chunks(encode(stored, "PNG"), png_chunk(b"eXIf", exif_orientation_app1(orientation)[10:]))
    for data in (jpeg, png):
        assert np.abs(preprocess(data, 32, 96).tensor - expected).mean() < 0.02


def test_extraneous_bytes_between_segments_are_skipped_as_libjpeg_does():
    parts = jpeg_segments(encode(photo(), "JPEG"))
    sloppy = parts[0] + parts[1] + b"\x00\x00\x00" + b"".join(parts[2:])
    assert Image.open(io.BytesIO(sloppy)).size == (160, 60)  # Pillow and libjpeg read it
    assert np.abs(preprocess(sloppy, 32, 96).tensor - preprocess(b"".join(parts), 32, 96).tensor).max() == 0
