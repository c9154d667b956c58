import struct
import time
import zlib

import numpy as np
import pytest
from conftest import encode
from PIL import Image

from captcha_ocr.errors import ImageTooLarge, UnsupportedImage
from captcha_ocr.imaging import preprocess

H, W = 32, 96


def text_image(mode: str = "RGB") -> Image.Image:
    image = Image.new("RGB", (160, 60), (230, 240, 250))
    for x in range(20, 140, 30):
        image.paste((40, 20, 120), (x, 15, x + 12, 45))
    return image.convert(mode)


def tensor(data: bytes):
    return preprocess(data, H, W).tensor


@pytest.mark.parametrize("format", ["PNG", "JPEG", "GIF", "BMP", "WEBP"])
def test_every_supported_format_gives_a_model_tensor(format):
    prepared = preprocess(encode(text_image(), format), H, W)
    assert prepared.tensor.shape == (H, W, 1) and prepared.tensor.dtype == np.float32
    assert prepared.tensor.min() == 0.0 and prepared.tensor.max() == 1.0
    assert prepared.source_size == (160, 60) and prepared.source_format == format


@pytest.mark.parametrize("mode", ["L", "P", "RGBA", "LA", "1", "CMYK"])
def test_every_mode_matches_the_rgb_tensor(mode):
    reference = tensor(encode(text_image()))
    image = text_image().convert("P", palette=Image.Palette.ADAPTIVE) if mode == "P" else text_image(mode)
    result = tensor(encode(image, "JPEG" if mode == "CMYK" else "PNG"))
    tolerance = {"1": 0.1, "CMYK": 0.03}.get(mode, 0.005)  # '1' dithers, JPEG is lossy
    assert result.shape == reference.shape and np.abs(result - reference).mean() < tolerance


def test_sixteen_bit_png_uses_the_full_depth():
    ramp = (np.linspace(0, 65535, 160 * 60).reshape(60, 160)).astype(np.uint16)
    image = Image.fromarray(ramp)
    assert image.mode == "I;16"
    result = tensor(encode(image))
    assert result.min() == 0.0 and result.max() == 1.0 and np.all(np.diff(result[0, :, 0]) >= 0)


def test_transparency_is_composited_onto_white():
    transparent = Image.new("RGBA", (160, 60), (0, 0, 0, 0))  # black but fully transparent
    transparent.paste((0, 0, 0, 255), (40, 20, 60, 40))
    opaque = Image.new("RGB", (160, 60), (255, 255, 255))
    opaque.paste((0, 0, 0), (40, 20, 60, 40))
    assert np.array_equal(tensor(encode(transparent)), tensor(encode(opaque)))


def test_gif_uses_the_first_frame():
    first, second = text_image("P"), Image.new("P", (160, 60), 0)
    animated = encode(first, "GIF", save_all=True, append_images=[second], duration=100)
    assert np.allclose(tensor(animated), tensor(encode(first, "GIF")))


def test_blank_image_is_all_white():
    assert np.all(tensor(encode(Image.new("L", (1, 1), 17))) == 1.0)


def png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    pixels = chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + pixels + chunk(b"IEND", b"")


@pytest.mark.parametrize("size", [(30000, 30000), (2001, 2000), (100_000, 41)])
def test_decompression_bombs_are_refused_from_the_header(size):
    bomb = png_header_only(*size)
    assert len(bomb) < 2000
    started = time.perf_counter()
    with pytest.raises(ImageTooLarge):
        preprocess(bomb, H, W)
    assert time.perf_counter() - started < 0.5  # no pixel buffer was allocated


@pytest.mark.parametrize("data", [b"", b"hello world", b"\x89PNG\r\n\x1a\n", b"<svg xmlns='x'/>"])
def test_non_images_are_unsupported(data):
    with pytest.raises(UnsupportedImage):
        preprocess(data, H, W)


@pytest.mark.parametrize("format", ["PNG", "JPEG"])
def test_truncated_images_are_unsupported(format):
    data = encode(text_image(), format)
    with pytest.raises(UnsupportedImage):
        preprocess(data[: len(data) // 2], H, W)


def test_unsupported_format_is_refused():
    with pytest.raises(UnsupportedImage):
        preprocess(encode(text_image(), "TIFF"), H, W)


def yellow_text_with_a_dark_line() -> bytes:
    """Pale yellow strokes on white, with one thin black line: luminance leaves the text at 0.9 of
    white, stretched against the line; the darkest channel turns the strokes as dark as the line."""
    image = Image.new("RGB", (96, 32), "white")
    for x in range(10, 86, 12):
        image.paste((250, 240, 60), (x, 8, x + 6, 24))
    image.paste((0, 0, 0), (0, 30, 96, 31))
    return encode(image)


@pytest.mark.parametrize("gray", ["luminance", "darkest", "max_contrast"])
def test_a_gray_source_reads_the_same_in_every_gray_mode(gray):
    pixels = np.random.default_rng(3).integers(0, 256, (40, 120), dtype=np.uint8)
    source = encode(Image.fromarray(pixels, "L").convert("RGB"))
    assert np.array_equal(preprocess(source, 32, 96, gray=gray).tensor, preprocess(source, 32, 96).tensor)


def test_darkest_keeps_pale_coloured_text_visible():
    data = yellow_text_with_a_dark_line()
    stroke = (slice(10, 22), slice(12, 14))  # inside the first stroke, away from its blurred edges
    luminance = preprocess(data, 32, 96).tensor[stroke].mean()
    darkest = preprocess(data, 32, 96, gray="darkest").tensor[stroke].mean()
    assert luminance > 0.8 and darkest < 0.3


def test_max_contrast_reads_the_channel_of_widest_spread():
    image = Image.new("RGB", (96, 32), (200, 255, 120))
    image.paste((200, 255, 0), (20, 8, 70, 24))  # differs in blue alone
    tensor = preprocess(encode(image), 32, 96, gray="max_contrast").tensor
    assert tensor[16, 40, 0] < 0.05 and tensor[2, 2, 0] > 0.95


def test_a_narrowed_view_squeezes_the_content_and_continues_the_edges():
    from captcha_ocr.imaging import narrowed

    tensor = np.full((16, 40, 1), 0.25, dtype=np.float32)
    tensor[:, 36:] = 1.0  # a bright right edge
    tensor[:, 18:22] = 0.0  # a dark bar in the middle
    assert narrowed(tensor, 1.0) is tensor
    view = narrowed(tensor, 0.5)
    assert view.shape == tensor.shape and view.dtype == np.float32
    assert np.allclose(view[:, :10], 0.25) and np.allclose(view[:, 31:], 1.0)  # margins repeat each edge
    dark = np.flatnonzero(view[0, :, 0] < 0.2)
    assert 0 < len(dark) <= 3 and 18 <= dark.mean() <= 21  # the bar, half as wide, still in the middle
    assert view.min() >= 0.0 and view.max() <= 1.0
