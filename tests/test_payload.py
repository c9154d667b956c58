import base64
from urllib.parse import quote

import pytest

from captcha_ocr.errors import InvalidBase64, MissingImage, PayloadTooLarge
from captcha_ocr.payload import decode_image_base64
from captcha_ocr.settings import Limits

DATA = bytes(range(256)) * 3 + b"\xfb\xff\xfe"  # exercises '+', '/' and padding
STANDARD = base64.b64encode(DATA).decode()
LIMITS = Limits()


@pytest.mark.parametrize(
    "mangled",
    [
        STANDARD,
        STANDARD.replace("+", " "),  # '+' turned into spaces by form/URL decoding
        quote(STANDARD, safe=""),  # left percent-encoded
        quote(STANDARD, safe="").replace("%2B", " "),  # both at once
        base64.urlsafe_b64encode(DATA).decode(),  # URL-safe alphabet
        STANDARD.rstrip("="),  # padding dropped
        "\n".join(STANDARD[i : i + 76] for i in range(0, len(STANDARD), 76)),  # MIME line wrapping
        "\t" + STANDARD + "\r\n",
        "data:image/png;base64," + STANDARD,
        "DATA:image/png;charset=utf-8;base64," + STANDARD,
    ],
)
def test_tolerates_what_real_clients_send(mangled):
    assert decode_image_base64(mangled, LIMITS) == DATA


@pytest.mark.parametrize("value", ["not*base64", "abc\x00def", "абвг", "Zm9v!", "A", "=====A"])
def test_rejects_non_base64(value):
    with pytest.raises(InvalidBase64):
        decode_image_base64(value, LIMITS)


@pytest.mark.parametrize("value", [None, "", "   ", "data:image/png;base64,"])
def test_empty_is_missing_image(value):
    with pytest.raises(MissingImage):
        decode_image_base64(value, LIMITS)


@pytest.mark.parametrize("value", [123, ["a"], {"a": 1}, b"Zm9v"])
def test_non_string_values_are_invalid(value):
    with pytest.raises(InvalidBase64):
        decode_image_base64(value, LIMITS)


def test_limits_are_checked_before_decoding():
    limits = Limits(max_base64_chars=100, max_decoded_bytes=30)
    with pytest.raises(PayloadTooLarge):
        decode_image_base64("A" * 101, limits)
    with pytest.raises(PayloadTooLarge):
        decode_image_base64(base64.b64encode(b"x" * 31).decode(), limits)
    assert decode_image_base64(base64.b64encode(b"x" * 30).decode(), limits) == b"x" * 30


@pytest.mark.parametrize("size", range(0, 13))
def test_every_padding_decodes_as_the_standard_library_does(size):
    data = bytes(range(200, 200 + size))
    encoded = base64.b64encode(data).decode()
    if size:
        assert decode_image_base64(encoded, LIMITS) == base64.b64decode(encoded, validate=True) == data
        assert decode_image_base64(encoded.rstrip("="), LIMITS) == data


@pytest.mark.parametrize("value", ["AB=C", "A==A", "=AAA", "AAAA=AAA", "AA=A===="])
def test_padding_inside_the_text_is_refused(value):
    with pytest.raises(InvalidBase64):
        decode_image_base64(value, LIMITS)
