"""What one image may cost, judged from its container before a single pixel is decoded.

Pillow parses metadata when it opens a file: every EXIF tag's data, MPF indexes, ICC profiles,
compressed PNG text. On bytes from the internet that parsing is itself the attack (a 68 KB JPEG
whose MPF index declares thousands of entries cost gigabytes). So JPEG and PNG are walked here
first, with bounded loops over their markers and chunks: the declared size is checked, work that
cannot fit is refused (too many scans or segments), data too short for its declared size is
refused as corrupt, the EXIF orientation is read by a parser that looks at one tag, and the file
Pillow sees holds only what decoding needs. GIF, BMP and WebP carry nothing Pillow parses at open
beyond their headers, but Pillow's WebP reader allocates its canvases when it opens a file, so the
size of every format is read here from its header and judged before Pillow sees the bytes.

It is also an allowlist: only the variants a captcha needs reach a decoder. JPEG: 8-bit baseline,
extended sequential and progressive Huffman coding (no lossless, hierarchical or arithmetic coding,
which no browser displays); BMP: run-length coding only up to `max_rle_pixels`; animations (GIF, APNG,
animated WebP): the first frames, up to `max_frames` and `max_animation_pixels` of canvas in all, each
frame's extent counted. What a decoder may still do wrong on the rest is contained by isolation.py.
"""

from __future__ import annotations

import ctypes
import re
import struct
import zlib
from collections.abc import Iterator
from typing import NamedTuple

from captcha_ocr.errors import ApiError, ImageTooComplex, ImageTooLarge, UnsupportedImage
from captcha_ocr.settings import Limits

JPEG_SIGNATURE = b"\xff\xd8\xff"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
GIF_SIGNATURES = (b"GIF87a", b"GIF89a")
_BMP_HEADER_SIZES = (12, 16, 40, 52, 56, 64, 108, 124)  # every DIB header Windows and OS/2 define
ORIENTATION_TAG = 0x0112
_NEXT_MARKER = re.compile(rb"\xff+[^\x00\xd0-\xd7\xff]")  # skips stuffed 0xFF00 and restart markers
_MARKER = re.compile(rb"\xff+([^\x00\xff])")  # fill bytes, then a marker
# The codings served: baseline, extended sequential and progressive, all Huffman-coded, 8-bit. The
# rest (lossless SOF3, hierarchical SOF5-7, arithmetic SOF9-15 and its DAC tables, 12-bit samples)
# no browser displays, so no site can show them as a captcha; and they are where libjpeg's rarely
# used code is (a scaled decode of a lossless JPEG corrupted the heap). Refused before any decoder runs.
_SERVED_SOF = {0xC0, 0xC1, 0xC2}  # baseline, extended sequential, progressive
_PROGRESSIVE_SOF = {0xC2}
_TABLES = {0xC4, 0xDB, 0xDD}  # DHT, DQT, DRI: all decoding needs besides SOF and SOS
_REFUSED_CODING = {0xC3: "lossless", 0xC5: "hierarchical", 0xC6: "hierarchical", 0xC7: "hierarchical",
                   0xCC: "arithmetic", 0xDE: "hierarchical", 0xDF: "hierarchical",
                   **{marker: "arithmetic" for marker in (0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF)}}
_BMP_RLE = {1: "RLE8", 2: "RLE4"}
_WEBP_ANIMATED = 0x02  # VP8X flags
_WEBP_METADATA = 0x20 | 0x08 | 0x04  # ICC profile, EXIF, XMP: their chunks are not kept
_PNG_KEPT = {b"IHDR", b"PLTE", b"tRNS"}


class Screened(NamedTuple):
    data: bytes  # what the decoder may see
    size: tuple[int, int]  # (width, height) as the header declares it, already checked against the limits
    orientation: int = 1  # EXIF orientation 1-8 (1: as stored)
    frames: int = 1  # an animation's frames left in `data` for the decoder, each `size` at most

    @property
    def pixels(self) -> int:
        """What decoding it walks: every frame's canvas."""
        return self.size[0] * self.size[1] * self.frames


M_MMAP_THRESHOLD = -3  # glibc mallopt parameter
MMAP_THRESHOLD_BYTES = 1 << 20


def return_freed_buffers_to_the_os() -> bool:
    """Fix glibc's mmap threshold at 1 MB, once per process (cold start).

    By default glibc raises the threshold each time a large buffer is freed, so the next image's
    buffers come from the heap and stay there: a batch's peak then grows image by image (measured
    on the bundle: 95 MB for four images at the limit against 85 MB for one). With the threshold
    fixed, every decoded image goes back to the system when it is freed. False where libc has no
    mallopt (not glibc).
    """
    try:
        return bool(ctypes.CDLL("libc.so.6").mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):
        return False


def check_size(width: int, height: int, limits: Limits) -> None:
    """The declared size against the limits; called before any pixel is decoded."""
    if width < 1 or height < 1:
        raise UnsupportedImage("image has no pixels")
    if width * height > limits.max_pixels:
        raise ImageTooLarge(f"image is {width}x{height} = {width * height} pixels; the limit is {limits.max_pixels}")
    if max(width, height) > limits.max_side:
        raise ImageTooLarge(f"image is {width}x{height}; no side may be over {limits.max_side} pixels")


def screen(data: bytes, limits: Limits) -> Screened:
    """JPEG and PNG walked, checked and stripped to what decoding needs; the other formats' sizes read
    from their headers. Bytes of no served format pass through for Pillow to refuse."""
    if data.startswith(JPEG_SIGNATURE):
        return _screen_jpeg(data, limits)
    if data.startswith(PNG_SIGNATURE):
        return _screen_png(data, limits)
    if data[:6] in GIF_SIGNATURES:
        return _screen_gif(data, limits)
    try:
        if data[:2] == b"BM":
            return _screen_bmp(data, limits)
        if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
            return _screen_webp(data, limits)
    except struct.error as exc:
        raise UnsupportedImage("image header is truncated") from exc
    return Screened(data, (0, 0))  # no served format: Pillow refuses it


def _screen_bmp(data: bytes, limits: Limits) -> Screened:
    """The size from the DIB header; run-length coding bounded, since Pillow decodes it in Python."""
    header = int.from_bytes(data[14:18], "little")
    if header not in _BMP_HEADER_SIZES:  # Pillow would try to read a header of any size
        raise UnsupportedImage(f"BMP header of {header} bytes is corrupt")
    if header == 12:  # OS/2 BITMAPCOREHEADER: no compression field
        width, height = struct.unpack_from("<HH", data, 18)
        check_size(width, height, limits)
        return Screened(data, (width, height))
    width, height, _, _, compression = struct.unpack_from("<iiHHI", data, 18)
    size = abs(width), abs(height)  # a negative height means top-down rows
    check_size(*size, limits)
    if compression in _BMP_RLE and size[0] * size[1] > limits.max_rle_pixels:
        raise ImageTooComplex(f"{_BMP_RLE[compression]} BMP of {size[0]}x{size[1]} pixels; run-length coded "
                              f"BMPs are served up to {limits.max_rle_pixels} pixels")
    return Screened(data, size)


def _screen_webp(data: bytes, limits: Limits) -> Screened:
    """The size from the first chunk's header; an extended file's chunks walked (bounded) for its
    EXIF orientation, which Pillow's WebP reader does not apply."""
    chunk = data[12:16]
    if chunk == b"VP8X":
        size = int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1
        check_size(*size, limits)
        if data[20] & _WEBP_ANIMATED:
            return _screen_animated_webp(data, size, limits)
        return Screened(data, size, _webp_orientation(data, limits))
    if chunk == b"VP8L":
        (bits,) = struct.unpack_from("<I", data, 21)
        size = (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    elif chunk == b"VP8 ":
        width, height = struct.unpack_from("<HH", data, 26)
        size = width & 0x3FFF, height & 0x3FFF
    else:
        raise UnsupportedImage("WebP has no image chunk where its first chunk must be")
    check_size(*size, limits)
    return Screened(data, size)


def _webp_chunks(data: bytes, limits: Limits) -> Iterator[tuple[bytes, int, int]]:
    """An extended WebP's chunks after VP8X as (kind, start, end), counted against max_segments, as a
    JPEG's segments are; a chunk running past the end of the file ends the walk."""
    position, chunks = 30, 0
    while position + 8 <= len(data):
        kind, length = data[position:position + 4], int.from_bytes(data[position + 4:position + 8], "little")
        end = position + 8 + length
        if end > len(data):
            return
        chunks += 1
        if chunks > limits.max_segments:
            raise ImageTooComplex(f"WebP has more than {limits.max_segments} chunks")
        yield kind, position, end
        position = end + (length & 1)  # chunks are padded to an even length


def _webp_orientation(data: bytes, limits: Limits) -> int:
    """The orientation in an extended WebP's EXIF chunk (1 without one)."""
    for kind, start, end in _webp_chunks(data, limits):
        if kind == b"EXIF":
            return exif_orientation(data[start + 8:end])
    return 1


def _screen_animated_webp(data: bytes, canvas: tuple[int, int], limits: Limits) -> Screened:
    """An animated WebP rebuilt from its VP8X (metadata flags cleared), ANIM and the frames that fit the
    limits: libwebp decodes every frame onto the whole canvas."""
    animation, frames, orientation = b"", [], 1
    for kind, start, end in _webp_chunks(data, limits):
        if kind == b"ANIM" and not animation:
            animation = data[start:end]
        elif kind == b"ANMF" and animation and (not frames or _animation_fits(len(frames) + 1, canvas, limits)):
            if end - start < 24:
                raise UnsupportedImage("WebP animation frame is corrupt")
            left, top = 2 * int.from_bytes(data[start + 8:start + 11], "little"), \
                2 * int.from_bytes(data[start + 11:start + 14], "little")
            width, height = int.from_bytes(data[start + 14:start + 17], "little") + 1, \
                int.from_bytes(data[start + 17:start + 20], "little") + 1
            if left + width > canvas[0] or top + height > canvas[1]:
                raise UnsupportedImage("WebP animation frame lies outside its canvas")
            frames.append(data[start:end] + b"\x00" * ((end - start) & 1))
        elif kind == b"EXIF":
            orientation = exif_orientation(data[start + 8:end])
    if not frames:
        raise UnsupportedImage("animated WebP has no frame")
    extended = data[12:20] + bytes([data[20] & ~_WEBP_METADATA]) + data[21:30]
    body = b"WEBP" + extended + animation + (b"\x00" * (len(animation) & 1)) + b"".join(frames)
    return Screened(b"RIFF" + struct.pack("<I", len(body)) + body, canvas, orientation, len(frames))


def exif_orientation(tiff: bytes) -> int:
    """The Orientation tag of IFD0 in a TIFF-structured EXIF block; 1 when absent or malformed.

    Reads one directory and one tag, never a tag's data elsewhere: bounded by the block's length.
    """
    if tiff.startswith(b"Exif\x00\x00"):
        tiff = tiff[6:]
    order = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if order is None or len(tiff) < 8:
        return 1
    (directory,) = struct.unpack_from(order + "I", tiff, 4)
    if directory + 2 > len(tiff):
        return 1
    (count,) = struct.unpack_from(order + "H", tiff, directory)
    for entry in range(min(count, (len(tiff) - directory - 2) // 12)):
        offset = directory + 2 + 12 * entry
        tag, kind = struct.unpack_from(order + "HH", tiff, offset)
        if tag == ORIENTATION_TAG:
            (value,) = struct.unpack_from(order + "H", tiff, offset + 8)
            return value if kind == 3 and 1 <= value <= 8 else 1
    return 1


# -- JPEG -------------------------------------------------------------------------------------
class _Frame(NamedTuple):
    size: tuple[int, int]
    blocks: int  # 8x8 blocks over all components
    min_bits_per_block: int  # Huffman codes are 1 bit or more: a sequential block codes its DC and at least
    # one AC symbol (EOB), a progressive one at least its DC


def _parse_frame(marker: int, payload: bytes, limits: Limits) -> _Frame:
    if len(payload) < 6:
        raise UnsupportedImage("JPEG frame header is truncated")
    precision, height, width, count = struct.unpack_from(">BHHB", payload, 0)
    if precision != 8:
        raise UnsupportedImage(f"{precision}-bit JPEG is not served (no browser displays it); send 8-bit")
    check_size(width, height, limits)
    components = [payload[6 + 3 * i + 1] for i in range(count) if 6 + 3 * i + 2 < len(payload)]
    if not components or len(components) != count:
        raise UnsupportedImage("JPEG frame header is corrupt")
    sampling = [(c >> 4, c & 15) for c in components]
    h_max, v_max = max(h for h, _ in sampling), max(v for _, v in sampling)
    if not h_max or not v_max:
        raise UnsupportedImage("JPEG frame header is corrupt")
    blocks = sum(_ceil_div(_ceil_div(width * h, h_max), 8) * _ceil_div(_ceil_div(height * v, v_max), 8)
                 for h, v in sampling)
    floor = 1 if marker in _PROGRESSIVE_SOF else 2
    return _Frame((width, height), blocks, floor)


def _ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def _screen_jpeg(data: bytes, limits: Limits) -> Screened:
    kept, orientation, frame = [data[:2]], None, None
    position, segments, scans, entropy_bytes = 2, 0, 0, 0
    while True:
        # like libjpeg, skip extraneous bytes between segments (some encoders leave a few)
        found = _MARKER.match(data, position) or _MARKER.search(data, position)
        if found is None:
            raise UnsupportedImage("JPEG is truncated or corrupt (no marker where one must be)")
        marker, position = found.group(1)[0], found.start(1) - 1
        if marker == 0xD9:  # end of image; whatever follows (MPO's other images, junk) is dropped
            break
        length = int.from_bytes(data[position + 2:position + 4], "big")
        end = position + 2 + length
        if length < 2 or end > len(data):
            raise UnsupportedImage("JPEG is truncated")
        segments += 1
        if segments > limits.max_segments:
            raise ImageTooComplex(f"JPEG has more than {limits.max_segments} marker segments")
        payload = data[position + 4:end]
        if 0xE0 <= marker <= 0xEF or marker == 0xFE:  # APPn and comments: metadata, not pixels
            if marker == 0xE1 and orientation is None and payload.startswith(b"Exif\x00\x00"):
                orientation = exif_orientation(payload)  # the first EXIF block counts, as in viewers
            elif marker == 0xEE and payload.startswith(b"Adobe"):  # colour transform of CMYK/YCCK files
                kept.append(data[position:end])
            position = end
            continue
        if marker in _REFUSED_CODING:
            raise UnsupportedImage(f"{_REFUSED_CODING[marker]} JPEG is not served (no browser displays it); "
                                   "send a baseline or progressive JPEG")
        if marker in _SERVED_SOF:
            if frame is not None:
                raise UnsupportedImage("JPEG declares more than one frame")
            frame = _parse_frame(marker, payload, limits)
        elif marker != 0xDA and marker not in _TABLES:
            raise UnsupportedImage(f"JPEG is corrupt (unexpected marker 0xFF{marker:02X})")
        kept.append(data[position:end])
        position = end
        if marker == 0xDA:
            if frame is None:
                raise UnsupportedImage("JPEG scan before its frame header")
            scans += 1
            if scans > limits.max_jpeg_scans:
                raise ImageTooComplex(f"JPEG has more than {limits.max_jpeg_scans} scans")
            next_marker = _NEXT_MARKER.search(data, position)
            if next_marker is None:
                raise UnsupportedImage("JPEG is truncated (no end of image)")
            entropy_bytes += next_marker.start() - position
            kept.append(data[position:next_marker.start()])
            position = next_marker.start()
    if frame is None or scans == 0:
        raise UnsupportedImage("JPEG has no image data")
    if entropy_bytes * 8 < frame.blocks * frame.min_bits_per_block:
        raise UnsupportedImage("JPEG data is too short for its declared size: truncated or corrupt")
    kept.append(b"\xff\xd9")
    return Screened(b"".join(kept), frame.size, orientation or 1)


# -- PNG --------------------------------------------------------------------------------------
def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(body, zlib.crc32(kind)))


def _screen_png(data: bytes, limits: Limits) -> Screened:
    """Every chunk's CRC checked; kept: the header chunks decoding needs, the image data as one IDAT,
    and an APNG's frames that fit the limits (its acTL rewritten to their count). Text, profiles and
    everything after the frames read are left out."""
    header, stream, idat = [PNG_SIGNATURE], [], []  # stream: the frames' chunks in order, None for the IDAT
    kept_kinds: set[bytes] = set()
    orientation, size, animated, frames, default_image = 1, (0, 0), False, 0, False
    position = len(PNG_SIGNATURE)
    while True:
        if position + 12 > len(data):
            raise UnsupportedImage("PNG is truncated")
        length, kind = struct.unpack_from(">I4s", data, position)
        end = position + 12 + length
        if end > len(data):
            raise UnsupportedImage("PNG is truncated")
        body = data[position + 8:end - 4]
        if zlib.crc32(body, zlib.crc32(kind)) != int.from_bytes(data[end - 4:end], "big"):
            raise UnsupportedImage(f"PNG chunk {kind!r} is corrupt (CRC mismatch)")
        if position == len(PNG_SIGNATURE):
            if kind != b"IHDR" or length != 13:
                raise UnsupportedImage("PNG does not start with its header chunk")
            size = struct.unpack_from(">II", body)
            check_size(*size, limits)
        if kind in _PNG_KEPT and not idat and kind not in kept_kinds:  # each once, as the format allows
            header.append(data[position:end])
            kept_kinds.add(kind)
        elif kind == b"acTL" and not idat and not animated and length == 8:
            animated = True
        elif kind == b"fcTL" and animated:
            if frames + default_image and not _animation_fits(frames + default_image + 1, size, limits):
                break  # this frame and the rest are not read
            _check_apng_frame(body, size)
            stream.append(data[position:end])
            frames += 1
        elif kind == b"IDAT":
            if not idat:
                stream.append(None)
                default_image = animated and frames == 0  # an image before any frame: shown, not animated
            idat.append(body)
        elif kind == b"fdAT" and animated and idat and frames:
            stream.append(data[position:end])
        elif kind == b"eXIf":
            orientation = exif_orientation(body)
        elif kind == b"IEND":
            break
        position = end
    if not idat:
        raise UnsupportedImage("PNG has no image data")
    merged = _chunk(b"IDAT", b"".join(idat))  # one IDAT chunk however many the file had
    if not animated or not frames:
        return Screened(b"".join(header) + merged + _chunk(b"IEND", b""), size, orientation)
    control = _chunk(b"acTL", struct.pack(">II", frames, 0))
    chunks = [merged if chunk is None else chunk for chunk in stream]
    return Screened(b"".join([*header, control, *chunks, _chunk(b"IEND", b"")]), size, orientation,
                    frames + default_image)


def _check_apng_frame(control: bytes, canvas: tuple[int, int]) -> None:
    """An APNG frame control chunk: 26 bytes, a frame of pixels inside the canvas."""
    if len(control) != 26:
        raise UnsupportedImage("APNG frame control chunk is corrupt")
    width, height, left, top = struct.unpack_from(">IIII", control, 4)
    if width < 1 or height < 1 or left + width > canvas[0] or top + height > canvas[1]:
        raise UnsupportedImage("APNG frame lies outside its canvas")


# -- GIF --------------------------------------------------------------------------------------
def _sub_blocks_end(data: bytes, position: int) -> int:
    """Where a run of GIF data sub-blocks (size byte, bytes, ..., a zero size) ends."""
    while True:
        if position >= len(data):
            raise UnsupportedImage("GIF is truncated")
        size = data[position]
        position += 1 + size
        if size == 0:
            return position


def _color_table_bytes(packed: int) -> int:
    return 3 * 2 ** ((packed & 7) + 1) if packed & 0x80 else 0


def _screen_gif(data: bytes, limits: Limits) -> Screened:
    """The header and the frames read (_animation_fits), each with at most one graphic control
    extension (its transparency and disposal): Pillow's reader walks every other block one Python
    call at a time, and 600,000 empty comments took it 26 s. The logical screen is rewritten to the
    extent of all frames kept, which Pillow would otherwise grow frame by frame. Refused if the
    blocks before the first frame are too many; a later frame that is truncated or corrupt ends the
    animation there, as browsers show it."""
    if len(data) < 13:
        raise UnsupportedImage("GIF is truncated")
    canvas = struct.unpack_from("<HH", data, 6)  # the logical screen, which Pillow allocates
    check_size(*canvas, limits)
    position = 13 + _color_table_bytes(data[10])
    table, frames, control, blocks = data[13:position], [], b"", 0
    while position < len(data) and len(frames) < limits.max_frames:
        introducer = data[position]
        blocks += 1
        try:
            if blocks > limits.max_segments:
                raise ImageTooComplex(f"GIF has more than {limits.max_segments} blocks before its first frame")
            if introducer == 0x21 and position + 1 < len(data):  # extension: label, then sub-blocks
                end = _sub_blocks_end(data, position + 2)
                if data[position + 1] == 0xF9:
                    control = data[position:end]
            elif introducer == 0x2C and position + 10 <= len(data):  # an image (a frame)
                left, top, width, height = struct.unpack_from("<HHHH", data, position + 1)
                extent = max(canvas[0], left + width), max(canvas[1], top + height)
                check_size(*extent, limits)
                if frames and not _animation_fits(len(frames) + 1, extent, limits):
                    break
                start_of_data = position + 10 + _color_table_bytes(data[position + 9])
                end = _sub_blocks_end(data, start_of_data + 1)  # after the LZW minimum code size
                frames.append(control + data[position:end])
                canvas, control = extent, b""
            elif introducer == 0x3B and frames:  # the trailer
                break
            else:
                raise UnsupportedImage("GIF has no image before its end")
        except ApiError:
            if frames:
                break  # what came before is a whole animation
            raise
        position = end
    if not frames:
        raise UnsupportedImage("GIF is truncated")
    head = data[:6] + struct.pack("<HH", *canvas) + data[10:13] + table
    return Screened(head + b"".join(frames) + b"\x3b", canvas, frames=len(frames))


def _animation_fits(frames: int, canvas: tuple[int, int], limits: Limits) -> bool:
    """Whether `frames` frames on this canvas are within the limits of one animation."""
    return frames <= limits.max_frames and frames * canvas[0] * canvas[1] <= limits.max_animation_pixels
