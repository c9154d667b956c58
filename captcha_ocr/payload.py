"""Base64 text from a client -> image bytes, tolerant of what real clients and gateways do to it.

Query strings turn '+' into spaces, some clients leave %-escapes or use the URL-safe alphabet, drop
the padding, wrap lines, or send a whole `data:image/png;base64,` URL. All of those decode here;
anything else is an `InvalidBase64`, and sizes are checked before any decoding work.
"""

from __future__ import annotations

import binascii
import re

from captcha_ocr.errors import InvalidBase64, MissingImage, PayloadTooLarge
from captcha_ocr.settings import Limits

_DATA_URL_HEADER_CHARS = 256  # "data:image/png;charset=utf-8;base64," needs 36
_PERCENT_ESCAPE = re.compile(r"%([0-9A-Fa-f]{2})")
_WHITESPACE = re.compile(r"[\t\n\r\f\v]+")
_BASE64 = re.compile(r"[A-Za-z0-9+/]*")
_CANONICAL = re.compile(r"[A-Za-z0-9+/]*={0,2}")  # standard, padded base64: no repair needed
_URL_SAFE = str.maketrans("-_", "+/")


def _strip_data_url(text: str) -> str:
    """`data:<type>;base64,<data>` -> `<data>`, looking no further than a short header for the comma."""
    if text[:5].lower() != "data:":
        return text
    comma = text.find(",", 0, _DATA_URL_HEADER_CHARS)
    if comma < 0 or not text[:comma].lower().endswith(";base64"):
        raise InvalidBase64("a data: URL must start data:<type>;base64, (a short header, then the base64)")
    return text[comma + 1 :]


def normalize_base64(text: str) -> str:
    """Undo the usual mangling; returns canonical, padded base64 (possibly empty).

    Every step is one bounded pass over the text (no per-character objects), so a value made of
    millions of '%' or ';' costs what a value of letters does.
    """
    text = _strip_data_url(text.strip("\t\n\r\f\v"))  # spaces may be mangled '+'
    if len(text) % 4 == 0 and _CANONICAL.fullmatch(text) and text[:1] != "=":
        return text  # what most clients send: one pass, nothing to repair
    if "%" in text:
        text = _PERCENT_ESCAPE.sub(lambda match: chr(int(match.group(1), 16)), text)
    text = _WHITESPACE.sub("", text).replace(" ", "+").translate(_URL_SAFE)
    stripped = text.rstrip("=")
    if text and not stripped:
        raise InvalidBase64("image base64 is only padding")
    if not _BASE64.fullmatch(stripped):
        raise InvalidBase64("image is not valid base64 (allowed: A-Z a-z 0-9 + / - _ and = padding)")
    if len(stripped) % 4 == 1:
        raise InvalidBase64("image base64 has an impossible length (truncated?)")
    return stripped + "=" * (-len(stripped) % 4)


def decode_image_base64(value: object, limits: Limits) -> bytes:
    """Client value -> image bytes, with every limit checked before the bytes are decoded."""
    if value is None or (isinstance(value, str) and not value.strip()):
        raise MissingImage("no image: send base64Image (query string, JSON body, form or raw body)")
    if not isinstance(value, str):
        raise InvalidBase64("image must be a base64 string")
    if len(value) > limits.max_base64_chars:
        raise PayloadTooLarge(f"image base64 is {len(value)} characters; the limit is {limits.max_base64_chars}")
    text = normalize_base64(value)
    if not text:
        raise MissingImage("image value is empty")
    if len(text) // 4 * 3 > limits.max_decoded_bytes + 2:
        raise PayloadTooLarge(f"image is over {limits.max_decoded_bytes} bytes")
    try:
        data = binascii.a2b_base64(text)  # normalize_base64 checked the alphabet: no second regex pass
    except (binascii.Error, ValueError) as exc:
        raise InvalidBase64("image is not valid base64") from exc
    if len(data) > limits.max_decoded_bytes:
        raise PayloadTooLarge(f"image is {len(data)} bytes; the limit is {limits.max_decoded_bytes}")
    return data
