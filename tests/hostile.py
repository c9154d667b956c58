"""A corpus of hostile requests, generated in code: what an attacker on the public internet sends.

Each case is an SCF event with the answer it must get (status, code, and for a 200 the text when
it is known). The budget test runs every case against the SCF bundle under Python 3.10, one fresh
process per case, and checks peak memory and wall time too; bench/budget.py prints the same corpus
as a table for the README.
"""

from __future__ import annotations

import io
import json
import math
import struct
import zlib
from collections.abc import Callable, Collection
from dataclasses import dataclass

import numpy as np
from conftest import b64, encode, get_event, post_event
from PIL import Image

from captcha_ocr.settings import Limits

MAX_SIDE = math.isqrt(Limits().max_pixels)  # a square this large is inside the limits: it must fit the budget


@dataclass(frozen=True)
class Case:
    name: str
    event: object
    status: int
    code: str | None = None  # the error code, or None for a 200
    text: str | None = None  # for a 200 whose reading is known


# -- JPEG surgery -------------------------------------------------------------------------------
def segment(marker: int, payload: bytes) -> bytes:
    return struct.pack(">BBH", 0xFF, marker, len(payload) + 2) + payload


def jpeg_segments(data: bytes) -> list[bytes]:
    """Split a baseline/progressive JPEG into SOI, its marker segments (each scan with its data), EOI."""
    parts, position = [data[:2]], 2
    while position < len(data):
        marker = data[position + 1]
        if marker == 0xD9:
            parts.append(data[position:])
            break
        length = struct.unpack(">H", data[position + 2:position + 4])[0]
        end = position + 2 + length
        if marker == 0xDA:  # the scan's entropy-coded data runs to the next marker that is not RST or stuffing
            while not (data[end] == 0xFF and data[end + 1] not in (0x00, *range(0xD0, 0xD8))):
                end += 1
        parts.append(data[position:end])
        position = end
    return parts


def without_app_segments(jpeg: bytes) -> list[bytes]:
    return [part for part in jpeg_segments(jpeg) if not 0xE0 <= part[1] <= 0xEF]


def with_segments(jpeg: bytes, *extra: bytes) -> bytes:
    parts = without_app_segments(jpeg)
    return parts[0] + b"".join(extra) + b"".join(parts[1:])


def tiff_ifd(entries: list[tuple[int, int, int, bytes]], little: bool = False) -> bytes:
    """A TIFF header and one IFD: (tag, type, count, 4-byte value or offset)."""
    order = "<" if little else ">"
    head = (b"II*\x00" if little else b"MM\x00*") + struct.pack(order + "I", 8)
    body = struct.pack(order + "H", len(entries))
    for tag, kind, count, value in entries:
        body += struct.pack(order + "HHI", tag, kind, count) + value
    return head + body + b"\x00\x00\x00\x00"


def exif_orientation_app1(orientation: int) -> bytes:
    return segment(0xE1, b"Exif\x00\x00" + tiff_ifd([(0x0112, 3, 1, struct.pack(">HH", orientation, 0))]))


def exif_bomb_app1(tags: int = 5400) -> bytes:
    """Every tag claims 60,000 bytes at offset 8: a parser that reads each one reads 324 MB."""
    entries = [(0x1000 + i, 7, 60_000, struct.pack(">I", 8)) for i in range(tags)]
    return segment(0xE1, b"Exif\x00\x00" + tiff_ifd(entries))


def mpf_bomb_app2(tags: int = 2000) -> bytes:
    """An MPF index of thousands of entries, each claiming 8,000 rationals at offset 8: a parser that
    reads them all makes millions of Python objects."""
    entries = [(0xB000, 7, 4, b"0100"), (0xB001, 4, 1, struct.pack(">I", 2))]
    entries += [(0xB100 + i, 5, 8_000, struct.pack(">I", 8)) for i in range(tags)]
    return segment(0xE2, b"MPF\x00" + tiff_ifd(entries))


def blotches(side: int, seed: int = 1) -> Image.Image:
    """A large RGB image that still compresses well: coarse noise, enlarged."""
    noise = np.random.default_rng(seed).integers(0, 255, (side // 16, side // 16, 3), dtype=np.uint8)
    return Image.fromarray(noise).resize((side, side))


def repeated_scan_jpeg(side: int = MAX_SIDE, target_bytes: int = 1_990_000) -> bytes:
    """A progressive JPEG whose last, tiny refinement scan is repeated until the file is ~2 MB."""
    parts = jpeg_segments(encode(blotches(side), "JPEG", progressive=True, quality=60))
    scans = [part for part in parts if part[1] == 0xDA]
    tiny = min(scans, key=len)
    body = b"".join(parts[:-1])
    repeats = max(0, (target_bytes - len(body)) // len(tiny))
    return body + tiny * repeats + parts[-1]


def jpeg_with_size(jpeg: bytes, width: int, height: int) -> bytes:
    """The same JPEG with another size in its frame header (SOFn)."""
    parts = jpeg_segments(jpeg)
    for index, part in enumerate(parts):
        if 0xC0 <= part[1] <= 0xCF and part[1] not in (0xC4, 0xC8, 0xCC):
            parts[index] = part[:5] + struct.pack(">HH", height, width) + part[9:]
    return b"".join(parts)


def corrupt_jpeg(side: int = 1400) -> bytes:
    """A valid header of a large image followed by a little garbage entropy-coded data."""
    header = b"".join(part for part in jpeg_segments(encode(Image.new("L", (side, side), 200), "JPEG"))
                      if part[1] != 0xD9 and part[1] != 0xDA)
    sos = next(part for part in jpeg_segments(encode(Image.new("L", (8, 8)), "JPEG")) if part[1] == 0xDA)
    scan_header = sos[:4 + struct.unpack(">H", sos[2:4])[0] - 2]
    return header + scan_header + bytes(range(256)) * 16 + b"\xff\xd9"


# -- PNG surgery --------------------------------------------------------------------------------
def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_chunks(png: bytes, *chunks: bytes) -> bytes:
    """Insert chunks right after IHDR."""
    ihdr_end = 8 + 12 + 13
    return png[:ihdr_end] + b"".join(chunks) + png[ihdr_end:]


def ztxt_bomb_png(side: int = MAX_SIDE, megabytes: int = 63) -> bytes:
    text = zlib.compress(b"\x00" * 1_000_000, 9)
    chunks = [png_chunk(b"zTXt", b"k%d\x00\x00" % i + text) for i in range(megabytes)]
    return png_with_chunks(encode(Image.new("P", (side, side), 3)), *chunks)


def iccp_bomb_png() -> bytes:
    return png_with_chunks(encode(Image.new("RGB", (160, 60), "white")),
                           png_chunk(b"iCCP", b"icc\x00\x00" + zlib.compress(b"\x00" * 50_000_000, 9)))


def png_header_only(width: int, height: int, mode_byte: int = 2) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, mode_byte, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b"")) + png_chunk(
        b"IEND", b"")


def interlaced_png(side: int = MAX_SIDE) -> bytes:
    """An Adam7-interlaced 8-bit gray PNG (Pillow cannot write one): decoding needs the passes merged."""
    passes = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))
    raw = b"".join((b"\x00" + b"\x80" * -(-(side - x0) // dx)) * -(-(side - y0) // dy)
                   for x0, y0, dx, dy in passes if side > x0 and side > y0)
    ihdr = struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 1)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(
        b"IEND", b"")


def split_idat_png(pieces: int = 100_000) -> bytes:
    """The captcha's image data cut into 1-byte IDAT chunks."""
    png = encode(Image.new("L", (160, 60), 200))
    start = png.index(b"IDAT") - 4
    length = struct.unpack(">I", png[start:start + 4])[0]
    data = png[start + 8:start + 8 + length]
    chunks = b"".join(png_chunk(b"IDAT", data[i:i + 1]) for i in range(len(data)))
    filler = png_chunk(b"IDAT", b"") * max(0, pieces - len(data))
    return png[:start] + chunks + filler + png[start + 12 + length:]


def many_text_chunks_png(count: int = 100_000) -> bytes:
    return png_with_chunks(encode(Image.new("L", (160, 60), 255)), *[png_chunk(b"tEXt", b"k\x00v")] * count)


def apng_many_frames(frames: int = 500) -> bytes:
    images = [Image.new("RGB", (400, 400), (i % 256, 0, 0)) for i in range(frames)]
    return encode(images[0], "PNG", save_all=True, append_images=images[1:])


def noisy_frames(count: int, side: int, cell: int = 4) -> list[Image.Image]:
    """Frames of their own noise in cell x cell blocks: no two alike, so every one costs a full decode,
    yet small enough encoded to pass the request's size limit."""
    rng = np.random.default_rng(count * 7919 + side)
    cells = -(-side // cell)
    return [Image.fromarray(np.kron(rng.integers(0, 4, (cells, cells), dtype=np.uint8) * 60,
                                    np.ones((cell, cell), dtype=np.uint8))[:side, :side]).convert("RGB")
            for _ in range(count)]


def animation_at_the_pixel_limit(file_format: str, frames: int | None = None) -> bytes:
    """As many noisy frames as max_animation_pixels allows (max_frames of them), on the largest canvas that fits."""
    limits = Limits()
    frames = frames or limits.max_frames
    side = math.isqrt(limits.max_animation_pixels // frames)
    images = noisy_frames(frames, side)
    options = {"lossless": True} if file_format == "WEBP" else {}
    return encode(images[0], file_format, save_all=True, append_images=images[1:], **options)


def _gif_frame(image: Image.Image, left: int = 0) -> bytes:
    """One image's descriptor and data, as a GIF of its own encodes them, moved `left` pixels right."""
    gif = encode(image, "GIF")
    start = gif.index(b"\x2c", 13 + _gif_table_bytes(gif[10]))
    return gif[start:start + 1] + struct.pack("<H", left) + gif[start + 3:-1]


def _gif_head(width: int, height: int) -> bytes:
    gif = encode(Image.new("P", (width, height), 1), "GIF")
    return gif[:gif.index(b"\x2c", 13 + _gif_table_bytes(gif[10]))]


def gif_with_growing_frames(count: int = 40, step: int = 40) -> bytes:
    """A 64x64 logical screen whose frames grow past it."""
    frames = [_gif_frame(Image.new("P", (64 + step * i, 64 + step * i), i % 200)) for i in range(count)]
    return _gif_head(64, 64) + b"".join(frames) + b"\x3b"


def gif_with_second_frame_far_away(left: int = 60_000) -> bytes:
    """A GIF whose second frame lies `left` pixels right of its 160x60 screen."""
    frames = [_gif_frame(Image.new("P", (160, 60), 1)), _gif_frame(Image.new("P", (160, 60), 2), left)]
    return _gif_head(160, 60) + b"".join(frames) + b"\x3b"


def apng_with_frame_outside(offset: int = 1_000) -> bytes:
    """An APNG whose second frame control puts it `offset` pixels right of its 160x60 canvas."""
    png = encode(Image.new("RGB", (160, 60)), "PNG", save_all=True, append_images=[Image.new("RGB", (160, 60), 9)])
    control = png.index(b"fcTL", png.index(b"fcTL") + 4)
    body = bytearray(png[control + 4:control + 30])
    body[12:16] = struct.pack(">I", offset)
    return png[:control - 4] + png_chunk(b"fcTL", bytes(body)) + png[control + 34:]


def webp_with_frame_outside(offset: int = 1_000) -> bytes:
    """An animated WebP whose second frame lies `offset` pixels right of its 160x60 canvas."""
    webp = bytearray(encode(Image.new("RGB", (160, 60)), "WEBP", save_all=True, lossless=True,
                            append_images=[Image.new("RGB", (160, 60), (9, 9, 9))]))
    second = webp.index(b"ANMF", webp.index(b"ANMF") + 4)
    webp[second + 8:second + 11] = (offset // 2).to_bytes(3, "little")
    return bytes(webp)


# -- sliders (POST /slide) ------------------------------------------------------------------------
def slide_event(**images: bytes | str) -> dict:
    return post_event(json.dumps({k: v if isinstance(v, str) else b64(v) for k, v in images.items()}), path="/slide")


def slider_at_the_pixel_limit() -> tuple[bytes, bytes]:
    """A noisy background of max_slider_pixels, and a piece of half its size with a transparent border."""
    side = math.isqrt(Limits().max_slider_pixels)
    rng = np.random.default_rng(7)
    background = np.kron(rng.integers(0, 256, (side // 4 + 1, side // 4 + 1, 3), dtype=np.uint8),
                         np.ones((4, 4, 1), dtype=np.uint8))[:side, :side]
    piece = np.zeros((side // 2, side // 2, 4), dtype=np.uint8)
    piece[4:-4, 4:-4, :3] = background[100:100 + side // 2 - 8, 100:100 + side // 2 - 8]
    piece[4:-4, 4:-4, 3] = 255
    return encode(Image.fromarray(background, "RGB")), encode(Image.fromarray(piece, "RGBA"))


def slider_with_a_gap_at_the_pixel_limit() -> bytes:
    """slider_at_the_pixel_limit's background with a darkened square: the same picture with a gap."""
    pixels = np.asarray(Image.open(io.BytesIO(slider_at_the_pixel_limit()[0]))).copy()
    pixels[200:260, 300:360] //= 2
    return encode(Image.fromarray(pixels, "RGB"))


# -- other formats ------------------------------------------------------------------------------
def gif_with_big_screen() -> bytes:
    """A GIF whose logical screen is 30000x30000 around an 8x8 frame."""
    gif = bytearray(encode(Image.new("P", (8, 8), 1), "GIF"))
    gif[6:10] = struct.pack("<HH", 30_000, 30_000)
    return bytes(gif)


def gif_with_comments(count: int = 600_000) -> bytes:
    """Empty comment extensions before the first frame: 3 bytes each, one parser step each."""
    gif = encode(Image.new("P", (160, 60), 1), "GIF")
    first_image = gif.index(b"\x2c")
    return gif[:first_image] + b"\x21\xfe\x00" * count + gif[first_image:]


def gif_with_tiny_sub_blocks(side: int = MAX_SIDE) -> bytes:
    """The largest GIF allowed, its image data re-cut into 1-byte sub-blocks."""
    gif = encode(Image.new("P", (side, side), 1), "GIF")
    start = gif.index(b"\x2c") + 10 + 1  # image descriptor, then the LZW minimum code size
    data, position = b"", start
    while gif[position]:
        data += gif[position + 1:position + 1 + gif[position]]
        position += 1 + gif[position]
    return gif[:start] + b"".join(b"\x01" + data[i:i + 1] for i in range(len(data))) + gif[position:]


def bmp_with_header_size(size: int) -> bytes:
    """A captcha-sized BMP whose DIB header claims `size` bytes (Pillow took 3.8 s over 2 GB)."""
    bmp = bytearray(encode(Image.new("RGB", (160, 60), "white"), "BMP"))
    bmp[14:18] = struct.pack("<I", size)
    return bytes(bmp)


def bmp_rle_bomb() -> bytes:
    """An 8-bit RLE BMP: a few bytes that expand to the largest square allowed."""
    width = height = MAX_SIDE
    rows = (b"\xff\x01" * (width // 255) + bytes([width % 255, 1]) + b"\x00\x00") * height + b"\x00\x01"
    palette = b"".join(bytes([i, i, i, 0]) for i in range(256))
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 8, 1, len(rows), 2835, 2835, 256, 0)
    offset = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(rows), 0, 0, offset) + info + palette + rows


def webp_lossless_rgba(side: int = MAX_SIDE) -> bytes:
    return encode(Image.new("RGBA", (side, side), (10, 20, 30, 128)), "WEBP", lossless=True)


def webp_animated(frames: int = 200) -> bytes:
    images = [Image.new("RGB", (500, 500), (i % 256, 0, 0)) for i in range(frames)]
    return encode(images[0], "WEBP", save_all=True, append_images=images[1:], lossless=True)


def sixteen_bit_rgba_png(side: int = MAX_SIDE) -> bytes:
    """The most expensive PNG mode Pillow keeps: 16-bit RGBA is read as RGBA, 16-bit gray as I;16."""
    raw = b"".join(b"\x00" + b"\x12\x34" * 4 * side for _ in range(side))
    ihdr = struct.pack(">IIBBBBB", side, side, 16, 6, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(raw, 9)) + png_chunk(
        b"IEND", b"")


def jpeg_with_coding(jpeg: bytes, sof: int, width: int | None = None, height: int | None = None,
                     precision: int = 8, arithmetic_tables: bool = False, pad_to: int = 0) -> bytes:
    """A JPEG's frame header turned into another coding (SOF3 lossless, SOF9/SOF10 arithmetic, ...),
    optionally another size and precision, DAC tables instead of DHT and its scan data padded: what a
    decoder of that coding is asked to read."""
    parts = jpeg_segments(jpeg)
    out = []
    for part in parts:
        if part[1] in (0xC0, 0xC1, 0xC2):
            body = bytearray(part)
            body[1], body[4] = sof, precision
            if width is not None:
                body[5:9] = struct.pack(">HH", height, width)
            part = bytes(body)
        elif part[1] == 0xC4 and arithmetic_tables:
            part = segment(0xCC, bytes([0x00, 0x10, 0x10, 0x05]))  # DAC: conditioning of DC and AC table 0
        elif part[1] == 0xDA and pad_to:
            part = part + bytes(range(1, 255)) * max(0, (pad_to - len(jpeg)) // 254)
        out.append(part)
    return b"".join(out)


def arithmetic_progressive_jpeg(side: int = MAX_SIDE, refinements: int = 62) -> bytes:
    """SOF10 (arithmetic, progressive) at the largest size: a DC scan, then many empty refinement scans."""
    base = encode(Image.new("L", (8, 8), 128), "JPEG")
    parts = jpeg_segments(jpeg_with_coding(base, 0xCA, side, side, arithmetic_tables=True))
    scans = [part for part in parts if part[1] == 0xDA]
    refinement = segment(0xDA, bytes([1, 1, 0x00, 1, 63, 0x10])) + b"\x00"
    return b"".join(parts[:-1]) + refinement * refinements + scans[0][:0] + parts[-1]


def rle4_absolute_bmp(side: int = MAX_SIDE) -> bytes:
    """A 4-bit RLE BMP whose rows are absolute runs (the slowest of Pillow's pure-Python RLE paths)."""
    row = b""
    for start in range(0, side, 254):
        count = min(254, side - start)
        data = bytes([0x12]) * ((count + 1) // 2)
        row += bytes([0, count]) + data + b"\x00" * (len(data) % 2)  # runs are padded to 16 bits
    rows = (row + b"\x00\x00") * side + b"\x00\x01"
    palette = b"".join(bytes([i * 16, i * 16, i * 16, 0]) for i in range(16))
    info = struct.pack("<IiiHHIIiiII", 40, side, side, 1, 4, 2, len(rows), 2835, 2835, 16, 0)
    offset = 14 + len(info) + len(palette)
    return b"BM" + struct.pack("<IHHI", offset + len(rows), 0, 0, offset) + info + palette + rows


def gif_frame_outside_screen(frame_side: int = MAX_SIDE, left: int = 0) -> bytes:
    """A GIF whose logical screen is 1x1 around a large first frame (Pillow grows its canvas to the frame)."""
    gif = bytearray(encode(Image.new("P", (frame_side, frame_side), 1), "GIF"))
    gif[6:10] = struct.pack("<HH", 1, 1)
    descriptor = gif.index(b"\x2c", 13 + _gif_table_bytes(gif[10]))
    gif[descriptor + 1:descriptor + 3] = struct.pack("<H", left)
    return bytes(gif)


def _gif_table_bytes(packed: int) -> int:
    return 3 * 2 ** ((packed & 7) + 1) if packed & 0x80 else 0


def webp_with_orientation(captcha_png: bytes, orientation: int) -> bytes:
    """The captcha stored turned as a WebP, with the EXIF orientation that turns it back."""
    image = Image.open(io.BytesIO(captcha_png)).convert("RGB")
    stored = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation]
    exif = b"Exif\x00\x00" + tiff_ifd([(0x0112, 3, 1, struct.pack(">HH", orientation, 0))])
    return encode(image.transpose(stored), "WEBP", lossless=True, exif=exif)


class _Bits:
    """A VP8L bit writer: values packed least significant bit first, each whole byte written out as
    soon as it is full (one growing integer made the bomb's 2.3 Mbit a minute of quadratic shifts)."""

    def __init__(self) -> None:
        self.out, self.value, self.count = bytearray(), 0, 0

    def put(self, value: int, bits: int) -> None:
        self.value |= value << self.count
        self.count += bits
        while self.count >= 8:
            self.out.append(self.value & 0xFF)
            self.value >>= 8
            self.count -= 8

    def code(self, symbol: int, bits: int) -> None:
        """A canonical prefix code of `bits` bits: its first bit is read first."""
        self.put(int(format(symbol, f"0{bits}b")[::-1], 2), bits)

    def bytes(self) -> bytes:
        return bytes(self.out) + (self.value.to_bytes(1, "little") if self.count else b"")


def _single_symbol_code(bits: _Bits) -> None:
    bits.put(1, 1)  # a simple code
    bits.put(0, 1)  # of one symbol
    bits.put(0, 1)  # given in 1 bit
    bits.put(0, 1)  # symbol 0: reading it takes no bits


def _eight_bit_code(bits: _Bits, alphabet: int) -> None:
    """A normal code giving symbols 0-255 eight bits each and the rest of the alphabet none."""
    bits.put(0, 1)  # a normal code
    bits.put(12 - 4, 4)  # 12 code-length code lengths, in the order 17 18 0 1 2 3 4 5 16 6 7 8
    for length in (0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 1):  # lengths 0 and 8 get 1-bit codes: '0' and '1'
        bits.put(length, 3)
    bits.put(0, 1)  # every symbol's length follows
    for symbol in range(alphabet):
        bits.put(1 if symbol < 256 else 0, 1)


def webp_huffman_group_bomb(side: int = 1024) -> bytes:
    """A valid lossless WebP whose entropy image gives every 4x4 block its own set of prefix codes:
    (side / 4)^2 groups, each allocated by libwebp before a pixel is decoded (1024: 65,536, ~295 KB)."""
    blocks = -(-side // 4)
    bits = _Bits()
    bits.put(0x2F, 8)
    bits.put(side - 1, 14)
    bits.put(side - 1, 14)
    bits.put(0, 1)  # no alpha
    bits.put(0, 3)  # version 0
    bits.put(0, 1)  # no transforms
    bits.put(0, 1)  # no colour cache
    bits.put(1, 1)  # meta prefix codes follow
    bits.put(0, 3)  # prefix bits 2: one group per 4x4 block
    bits.put(0, 1)  # the entropy image: no colour cache
    _eight_bit_code(bits, 256 + 24)  # green, with the 24 length prefixes
    _eight_bit_code(bits, 256)  # red
    for _ in range(3):  # blue, alpha, distance
        _single_symbol_code(bits)
    for group in range(blocks * blocks):  # a distinct group number in red and green of each block
        bits.code(group & 0xFF, 8)
        bits.code((group >> 8) & 0xFF, 8)
    for _ in range(blocks * blocks):  # each group's five codes
        for _ in range(5):
            _single_symbol_code(bits)
    payload = bits.bytes()
    chunk = b"VP8L" + struct.pack("<I", len(payload)) + payload + b"\x00" * (len(payload) % 2)
    return b"RIFF" + struct.pack("<I", 4 + len(chunk)) + b"WEBP" + chunk


def rotated_captcha_jpeg(captcha_png: bytes, orientation: int) -> bytes:
    """The captcha stored turned, with the EXIF orientation that tells a viewer how to turn it back."""
    image = Image.open(io.BytesIO(captcha_png)).convert("RGB")
    stored = {3: Image.Transpose.ROTATE_180, 6: Image.Transpose.ROTATE_90, 8: Image.Transpose.ROTATE_270}[orientation]
    return with_segments(encode(image.transpose(stored), "JPEG", quality=95), exif_orientation_app1(orientation))


def _class_names() -> tuple[str, ...]:
    """Every class's name, read from this module's source (the `Case(...)` calls of _builders), so the
    tests can be parametrized by name without building the corpus at collection."""
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(_builders))
    return tuple(node.args[0].value for node in ast.walk(tree) if isinstance(node, ast.Call)
                 and getattr(node.func, "id", "") == "Case")


def cases(captcha_png: bytes, captcha_text: str, names: Collection[str] | None = None) -> list[Case]:
    """Every hostile class (or those of `names`, the others not built), from one real captcha (PNG
    bytes and its text)."""
    builders = _builders(captcha_png, captcha_text)
    return [build() for name, build in zip(CLASS_NAMES, builders, strict=True) if names is None or name in names]


def _builders(captcha_png: bytes, text: str) -> list[Callable[[], Case]]:
    good = b64(captcha_png)
    jpeg = encode(Image.open(io.BytesIO(captcha_png)).convert("RGB"), "JPEG", quality=95)
    big_rgb = np.asarray(blotches(MAX_SIDE))
    image_path = "/" + good
    return [
        # -- from the attack report ---------------------------------------------------------
        lambda: Case("jpeg mpf bomb", get_event(b64(with_segments(jpeg, mpf_bomb_app2()))), 200, None, text),
        lambda: Case("jpeg exif bomb", get_event(b64(with_segments(jpeg, exif_bomb_app1()))), 200, None, text),
        lambda: Case("progressive jpeg repeating a scan", get_event(b64(repeated_scan_jpeg())), 413,
                     "ImageTooComplex"),
        lambda: Case("1x4000000 png", get_event(b64(encode(Image.new("RGB", (1, 4_000_000), "white")))), 413,
                     "ImageTooLarge"),
        lambda: Case("largest allowed lossless rgba webp", get_event(b64(webp_lossless_rgba())), 200),
        lambda: Case("2000x2000 lossless rgba webp", get_event(b64(webp_lossless_rgba(2000))), 413, "ImageTooLarge"),
        lambda: Case("palette png with 63 MB of ztxt", get_event(b64(ztxt_bomb_png())), 200),
        lambda: Case("batch of 16 ztxt pngs", post_event(json.dumps({"images": [b64(ztxt_bomb_png())] * 16})), 413,
                     "BatchTooLarge"),
        lambda: Case("2.8 million percent signs", get_event("%" * 2_799_000), 400, "InvalidBase64"),
        lambda: Case("data url of 2.8 million semicolons", get_event("data:" + ";" * 2_799_000), 400,
                     "InvalidBase64"),
        lambda: Case("json number of 5000 digits", post_event('{"base64Image": ' + "9" * 5000 + "}"), 400,
                     "InvalidJson"),
        lambda: Case("form body with 70 fields", post_event("&".join(f"f{i}=1" for i in range(70)),
                                                           "application/x-www-form-urlencoded"), 400, "InvalidRequest"),
        lambda: Case("path made of an image's base64", get_event(path=image_path), 404, "NotFound"),
        lambda: Case("method made of letters of an image's base64",
                     {"httpMethod": "".join(filter(str.isalpha, good)), "path": "/"}, 400, "InvalidRequest"),
        lambda: Case("jpeg upside down with exif orientation 3",
                     get_event(b64(rotated_captcha_jpeg(captcha_png, 3))), 200, None, text),
        lambda: Case("jpeg turned with exif orientation 6",
                     get_event(b64(rotated_captcha_jpeg(captcha_png, 6))), 200, None, text),
        lambda: Case("corrupt jpeg claiming 1400x1400", get_event(b64(corrupt_jpeg())), 415, "UnsupportedImage"),
        lambda: Case("captcha jpeg patched to claim 1400x1400", get_event(b64(jpeg_with_size(jpeg, 1400, 1400))), 415,
                     "UnsupportedImage"),
        lambda: Case("repeated form field", post_event(f"base64Image={good}&base64Image={good}",
                                                       "application/x-www-form-urlencoded"), 400, "InvalidRequest"),
        lambda: Case("prefix cut only at a slash", get_event(good, path="/releasehealth",
                                                             requestContext={"path": "/release"}), 404, "NotFound"),
        # -- more of the same family --------------------------------------------------------
        lambda: Case("jpeg with 30 icc profile chunks of 65 kB", get_event(b64(with_segments(
            jpeg, *[segment(0xE2, b"ICC_PROFILE\x00" + bytes([i + 1, 200]) + b"\x00" * 65_000) for i in range(30)]))),
            200, None, text),
        lambda: Case("jpeg with 900 comment segments", get_event(b64(with_segments(
            jpeg, *[segment(0xFE, b"x" * 2000)] * 900))), 200, None, text),
        lambda: Case("jpeg exif bomb, little-endian", get_event(b64(with_segments(jpeg, segment(
            0xE1, b"Exif\x00\x00" + tiff_ifd([(0x9000, 7, 60_000, struct.pack("<I", 8))] * 5000, little=True))))),
            200, None, text),
        lambda: Case("exif orientation out of range", get_event(b64(with_segments(jpeg, exif_orientation_app1(77)))),
                     200, None, text),
        lambda: Case("truncated exif segment", get_event(b64(with_segments(jpeg, segment(0xE1, b"Exif\x00\x00MM")))),
                     200, None, text),
        lambda: Case("largest allowed progressive cmyk jpeg", get_event(b64(encode(
            Image.fromarray(big_rgb).convert("CMYK"), "JPEG", progressive=True, quality=90))), 200),
        lambda: Case("largest allowed noisy baseline jpeg", get_event(b64(encode(Image.fromarray(big_rgb), "JPEG",
                                                                           quality=30))), 200),
        lambda: Case("jpeg claiming 30000x30000", get_event(b64(jpeg_with_size(jpeg, 30_000, 30_000))), 413,
                     "ImageTooLarge"),
        lambda: Case("png with 100000 text chunks", get_event(b64(many_text_chunks_png())), 200),
        lambda: Case("palette png with 150000 trns chunks", get_event(b64(png_with_chunks(
            encode(Image.new("P", (160, 60), 1)), *[png_chunk(b"tRNS", b"\x00")] * 150_000))), 200),
        lambda: Case("largest allowed interlaced png", get_event(b64(interlaced_png())), 200),
        lambda: Case("png split into 100000 idat chunks", get_event(b64(split_idat_png())), 200),
        lambda: Case("png with a 50 MB iccp profile", get_event(b64(iccp_bomb_png())), 200),
        lambda: Case("largest allowed 16-bit rgba png", get_event(b64(sixteen_bit_rgba_png())), 200),
        lambda: Case("largest allowed 16-bit gray png", get_event(b64(encode(Image.fromarray(
            big_rgb[..., 0].astype(np.uint16) * 257)))), 200),
        lambda: Case("largest allowed 1-bit png", get_event(b64(encode(Image.fromarray(big_rgb[..., 0]).convert("1")))),
                     200),
        lambda: Case("largest allowed la png", get_event(b64(encode(Image.fromarray(big_rgb[..., :2].copy()).convert(
            "L").convert("LA")))), 200),
        lambda: Case("4000000x1 png", get_event(b64(encode(Image.new("L", (4_000_000, 1), 0)))), 413,
                     "ImageTooLarge"),
        lambda: Case("8000x500 png, far too long for the model", get_event(b64(encode(Image.new("L", (8000, 500))))),
                     413, "ImageTooLarge"),
        lambda: Case("apng with 500 frames", get_event(b64(apng_many_frames())), 200),
        lambda: Case("webp with 200 frames", get_event(b64(webp_animated())), 200),
        lambda: Case("largest allowed lossy webp", get_event(b64(encode(Image.fromarray(big_rgb), "WEBP", quality=50))),
                     200),
        lambda: Case("gif with a 30000x30000 screen", get_event(b64(gif_with_big_screen())), 413, "ImageTooLarge"),
        lambda: Case("gif with 600000 comment blocks", get_event(b64(gif_with_comments())), 413, "ImageTooComplex"),
        lambda: Case("largest gif in 1-byte sub-blocks", get_event(b64(gif_with_tiny_sub_blocks())), 200),
        lambda: Case("gif with 1000 frames", get_event(b64(encode(Image.new("P", (300, 300)), "GIF", save_all=True,
                     append_images=[Image.new("P", (300, 300), i % 200) for i in range(999)]))), 200),
        lambda: Case("rle bmp expanding to the largest allowed", get_event(b64(bmp_rle_bomb())), 413,
                     "ImageTooComplex"),
        lambda: Case("bmp declaring a 2 GB header", get_event(b64(bmp_with_header_size(2**31 - 1))), 415,
                     "UnsupportedImage"),
        lambda: Case("largest 32-bit bmp", get_event(b64(encode(Image.fromarray(big_rgb).convert("RGBA"), "BMP"))),
                     413, "PayloadTooLarge"),
        lambda: Case("tiff, a format not served", get_event(b64(encode(Image.new("RGB", (160, 60)), "TIFF"))), 415,
                     "UnsupportedImage"),
        lambda: Case("svg", get_event(b64(b'<svg xmlns="http://www.w3.org/2000/svg" width="9" height="9"/>')), 415,
                     "UnsupportedImage"),
        lambda: Case("png bomb header 65535x65535", get_event(b64(png_header_only(65_535, 65_535))), 413,
                     "ImageTooLarge"),
        # -- base64 and JSON shapes -----------------------------------------------------------
        lambda: Case("2.8 million newlines", get_event("A" + "\n" * 2_799_000), 400, "InvalidBase64"),
        lambda: Case("2.8 million equals signs", get_event("=" * 2_799_000), 400, "InvalidBase64"),
        lambda: Case("percent escapes of every character", get_event("".join(f"%{ord(c):02X}" for c in good)), 200,
                     None, text),
        lambda: Case("data url with a 100 kB media type", get_event("data:" + "a" * 100_000 + ";base64," + good),
                     400, "InvalidBase64"),
        lambda: Case("json body of a million empty objects", post_event("[" + ",".join(["{}"] * 1_000_000) + "]"),
                     400, "InvalidJson"),
        lambda: Case("json body of a million short strings", post_event(
            '{"images": [' + ",".join(['"ab"'] * 800_000) + "]}"), 400, "InvalidJson"),
        lambda: Case("json body nested 100000 deep", post_event('{"a":' * 100_000 + "1" + "}" * 100_000), 400,
                     "InvalidJson"),
        lambda: Case("json float of 5000 digits", post_event('{"x": 0.' + "1" * 5000 + ', "base64Image": "' + good
                                                             + '"}'), 200, None, text),
        lambda: Case("json with a 5 MB key", post_event('{"' + "k" * 5_000_000 + '": 1}'), 400, "MissingImage"),
        lambda: Case("json base64Image of 2.8 million percent signs",
                     post_event(json.dumps({"base64Image": "%" * 2_799_000})), 400, "InvalidBase64"),
        lambda: Case("batch of non-strings", post_event(json.dumps({"images": [1, None, {"a": 1}, [2]]})), 200),
        lambda: Case("batch of 16 images at the pixel limit", post_event(json.dumps(
            {"images": [b64(webp_lossless_rgba())] * 16})), 413, "BatchTooLarge"),
        lambda: Case("batch at the batch pixel limit", post_event(json.dumps(
            {"images": [b64(webp_lossless_rgba())] * (Limits().max_batch_pixels // MAX_SIDE ** 2)})), 200),
        lambda: Case("form body of 5 MB of ampersands", post_event("&" * 5_000_000,
                                                                    "application/x-www-form-urlencoded"), 400,
                     "InvalidRequest"),
        lambda: Case("isBase64Encoded body of 6 MB", post_event(b64(b"\x00" * 4_400_000), "image/png",
                                                                isBase64Encoded=True), 413, "PayloadTooLarge"),
        lambda: Case("raw image body that is a bomb", post_event(b64(png_header_only(50_000, 50_000)), "image/png",
                                                                 isBase64Encoded=True), 413, "ImageTooLarge"),
        lambda: Case("content type of 1 MB", post_event(good, "x" * 1_000_000), 415, "UnsupportedMediaType"),
        lambda: Case("header names of 1 MB", {**get_event(good), "headers": {"x" * 1_000_000: "y"}}, 200, None, text),
        lambda: Case("5000 query parameters", get_event(None, queryString={f"p{i}": "1" for i in range(5000)}), 400,
                     "MissingImage"),
        lambda: Case("path of 1 MB", get_event(good, path="/" + "a" * 1_000_000), 404, "NotFound"),
        lambda: Case("method of 1 MB", {"httpMethod": "G" * 1_000_000, "path": "/"}, 400, "InvalidRequest"),
        lambda: Case("request id of 1 MB", get_event(good, requestContext={"requestId": "r" * 1_000_000}), 200, None,
                     text),
        lambda: Case("direct invoke with a bomb", {"base64Image": b64(png_header_only(40_000, 40_000))}, 413,
                     "ImageTooLarge"),
        lambda: Case("direct invoke with a number", {"base64Image": 12345}, 400, "InvalidBase64"),
        lambda: Case("the demo page", {"httpMethod": "GET", "path": "/demo"}, 200),
        lambda: Case("a fresh sample for the demo page", {"httpMethod": "GET", "path": "/sample"}, 200),
        lambda: Case("unicode in every field", {"httpMethod": "GÉT", "path": "/☃", "queryString": {"☃": "☃"}}, 400,
                     "InvalidRequest"),
        # -- container variants no browser shows, and decoders' own worst cases (issue 23) ----
        lambda: Case("lossless jpeg of 8 kB claiming 1414x1414", get_event(b64(jpeg_with_coding(
            jpeg, 0xC3, MAX_SIDE, MAX_SIDE, pad_to=8_000))), 415, "UnsupportedImage"),
        lambda: Case("lossless jpeg at 640x240", get_event(b64(jpeg_with_coding(
            encode(blotches(640).crop((0, 0, 640, 240)), "JPEG", quality=95), 0xC3))), 415, "UnsupportedImage"),
        lambda: Case("lossless jpeg of 310 bytes claiming 400x130", get_event(b64(jpeg_with_coding(
            encode(Image.new("L", (8, 8), 9), "JPEG"), 0xC3, 400, 130)[:310] + b"\xff\xd9")), 415,
            "UnsupportedImage"),
        lambda: Case("arithmetic progressive jpeg with 62 empty refinement scans",
                     get_event(b64(arithmetic_progressive_jpeg())), 415, "UnsupportedImage"),
        lambda: Case("batch of 4 arithmetic progressive jpegs", post_event(json.dumps(
            {"images": [b64(arithmetic_progressive_jpeg())] * 4})), 200),
        lambda: Case("arithmetic jpeg claiming 1400x1400 over 300 bytes of garbage", get_event(b64(jpeg_with_coding(
            encode(Image.new("L", (8, 8), 9), "JPEG"), 0xC9, 1400, 1400, arithmetic_tables=True, pad_to=300))),
            415, "UnsupportedImage"),
        lambda: Case("captcha jpeg relabelled as arithmetic coded", get_event(b64(jpeg_with_coding(
            jpeg, 0xC9, arithmetic_tables=True))), 415, "UnsupportedImage"),
        lambda: Case("hierarchical jpeg frame", get_event(b64(jpeg_with_coding(jpeg, 0xC5))), 415, "UnsupportedImage"),
        lambda: Case("12-bit jpeg", get_event(b64(jpeg_with_coding(jpeg, 0xC1, precision=12))), 415,
                     "UnsupportedImage"),
        lambda: Case("rle4 bmp in absolute mode at 1414x1414", get_event(b64(rle4_absolute_bmp())), 413,
                     "ImageTooComplex"),
        lambda: Case("batch of 4 rle4 bmps in absolute mode", post_event(json.dumps(
            {"images": [b64(rle4_absolute_bmp())] * 4})), 200),
        lambda: Case("rle4 bmp in absolute mode at the run-length limit", get_event(b64(rle4_absolute_bmp(
            math.isqrt(Limits().max_rle_pixels)))), 200),
        lambda: Case("lossless webp giving each 4x4 block its own prefix codes, 1024x1024",
                     get_event(b64(webp_huffman_group_bomb(1024))), 415, "UnsupportedImage"),
        lambda: Case("lossless webp giving each 4x4 block its own prefix codes, 512x512",
                     get_event(b64(webp_huffman_group_bomb(512))), 415, "UnsupportedImage"),
        lambda: Case("batch of 7 webps of 65536 prefix-code groups", post_event(json.dumps(
            {"images": [b64(webp_huffman_group_bomb(1024))] * 7})), 200),
        lambda: Case("webp upside down with exif orientation 3", get_event(b64(webp_with_orientation(
            captcha_png, 3))), 200, None, text),
        lambda: Case("webp turned with exif orientation 6", get_event(b64(webp_with_orientation(
            captcha_png, 6))), 200, None, text),
        lambda: Case("gif with a 1x1 screen around a 1414x1414 frame", get_event(b64(gif_frame_outside_screen())),
                     200),
        lambda: Case("batch of 16 gifs with a 1x1 screen around a 1414x1414 frame", post_event(json.dumps(
            {"images": [b64(gif_frame_outside_screen())] * 16})), 413, "BatchTooLarge"),
        lambda: Case("gif with a 1x1 screen and its frame 60000 pixels to the right", get_event(b64(
            gif_frame_outside_screen(64, left=60_000))), 413, "ImageTooLarge"),
        # -- animations: every frame read, within max_frames and max_animation_pixels --------
        lambda: Case("gif of 32 noisy frames at the animation pixel limit", get_event(b64(
            animation_at_the_pixel_limit("GIF"))), 200),
        lambda: Case("apng of 32 noisy frames at the animation pixel limit", get_event(b64(
            animation_at_the_pixel_limit("PNG"))), 200),
        lambda: Case("webp of 32 noisy frames at the animation pixel limit", get_event(b64(
            animation_at_the_pixel_limit("WEBP"))), 200),
        lambda: Case("gif of 2 noisy frames of 1414x1414", get_event(b64(animation_at_the_pixel_limit("GIF", 2))),
                     200),
        lambda: Case("batch of 2 gifs at the animation pixel limit", post_event(json.dumps(
            {"images": [b64(animation_at_the_pixel_limit("GIF"))] * 2})), 200),
        lambda: Case("batch of 3 gifs at the animation pixel limit", post_event(json.dumps(
            {"images": [b64(animation_at_the_pixel_limit("GIF"))] * 3})), 413, "BatchTooLarge"),
        lambda: Case("gif of 40 frames growing past its screen", get_event(b64(gif_with_growing_frames())), 200),
        lambda: Case("gif whose second frame lies 60000 pixels to the right", get_event(b64(
            gif_with_second_frame_far_away())), 200),
        lambda: Case("apng whose second frame lies outside its canvas", get_event(b64(apng_with_frame_outside())),
                     415, "UnsupportedImage"),
        lambda: Case("animated webp whose second frame lies outside its canvas", get_event(b64(
            webp_with_frame_outside())), 415, "UnsupportedImage"),
        # -- sliders: POST /slide, two images a request, searched at their own size ------------
        lambda: Case("slide: piece and background at the slider pixel limit", slide_event(
            background=slider_at_the_pixel_limit()[0], piece=slider_at_the_pixel_limit()[1]), 200),
        lambda: Case("slide: two different noisy backgrounds at the slider pixel limit", slide_event(
            background=slider_at_the_pixel_limit()[0], full=encode(Image.open(io.BytesIO(
                slider_at_the_pixel_limit()[0])).transpose(Image.Transpose.FLIP_LEFT_RIGHT))), 200),
        lambda: Case("slide: two backgrounds at the slider pixel limit, a gap between them", slide_event(
            background=slider_at_the_pixel_limit()[0], full=slider_with_a_gap_at_the_pixel_limit()), 200),
        lambda: Case("slide: a background over the slider pixel limit", slide_event(
            background=encode(Image.new("RGB", (1000, 600))), piece=encode(Image.new("RGBA", (40, 40), 9))), 413,
            "ImageTooLarge"),
        lambda: Case("slide: a png bomb header as the background", slide_event(
            background=png_header_only(65_535, 65_535), full=png_header_only(65_535, 65_535)), 413, "ImageTooLarge"),
        lambda: Case("slide: a piece larger than its background", slide_event(
            background=encode(Image.new("RGB", (60, 40))), piece=encode(Image.new("RGBA", (80, 80), (9, 9, 9, 255)))),
            400, "InvalidRequest"),
        lambda: Case("slide: two backgrounds of different sizes", slide_event(
            background=encode(Image.new("RGB", (300, 150))), full=encode(Image.new("RGB", (301, 150)))), 400,
            "InvalidRequest"),
        lambda: Case("slide: a transparent piece", slide_event(
            background=encode(Image.new("RGB", (300, 150))), piece=encode(Image.new("RGBA", (40, 40)))), 422,
            "NoGapFound"),
        lambda: Case("slide: a blank background alone", slide_event(background=encode(Image.new("RGB", (300, 150)))),
                     200),
        lambda: Case("slide: a noisy background alone at the slider pixel limit", slide_event(
            background=slider_at_the_pixel_limit()[0]), 200),
        lambda: Case("slide: a 1000-frame gif as the background", slide_event(
            background=encode(Image.new("P", (300, 150)), "GIF", save_all=True,
                              append_images=[Image.new("P", (300, 150), i % 200) for i in range(999)]),
            full=encode(Image.new("RGB", (300, 150), (40, 40, 40)))), 422, "NoGapFound"),
        lambda: Case("slide: 3000 unknown fields", post_event(json.dumps({f"k{i}": 1 for i in range(3000)}),
                                                              path="/slide"), 400, "InvalidJson"),
        lambda: Case("gif of 5000 one-pixel frames", get_event(b64(encode(Image.new("P", (1, 1)), "GIF", save_all=True,
                     append_images=[Image.new("P", (1, 1), i % 200) for i in range(4999)]))), 200),
    ]


CLASS_NAMES = _class_names()  # in the order of cases(); the tests check that the two agree
CLASS_COUNT = len(CLASS_NAMES)
