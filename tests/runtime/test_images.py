import io
import struct

import pytest
from PIL import Image

from runtime.images import WORKING_MODES, normalize, working_mode
from tests.runtime.pictures import photo_like


def _reopened(image: Image.Image, format: str, **params) -> Image.Image:
    buffer = io.BytesIO()
    image.save(buffer, format, **params)
    buffer.seek(0)
    reopened = Image.open(buffer)
    reopened.load()
    return reopened


def _palette_with_transparency() -> Image.Image:
    image = photo_like(40, 30).quantize(64)
    image.info["transparency"] = 5
    return _reopened(image, "PNG", transparency=5)


def _sixteen_bit_gray() -> Image.Image:
    image = Image.new("I;16", (256, 3))
    image.putdata([v * 257 if y == 0 else v * 256 + 255 - v if y == 1 else v for y in range(3) for v in range(256)])
    return _reopened(image, "PNG")


def _keyed(mode: str, key) -> Image.Image:
    """A PNG in `mode` with a tRNS key colour that some pixels match."""
    image = {"1": photo_like(33, 17, "L").convert("1"), "RGB": photo_like(33, 17).quantize(6).convert("RGB")}.get(
        mode
    ) or photo_like(33, 17, "L").quantize(6).convert("L")
    if mode == "I;16":
        image = image.convert("I").point(lambda v: v * 257).convert("I;16")
    return _reopened(image, "PNG", transparency=key(image))


def _first_pixel(image: Image.Image):
    return image.getpixel((0, 0))


SOURCES = {
    "1": lambda: photo_like(33, 17, "L").convert("1"),
    "L": lambda: photo_like(33, 17, "L"),
    "LA": lambda: photo_like(33, 17, "RGBA").convert("LA"),
    "P": lambda: photo_like(33, 17).quantize(50),
    "P+transparency": _palette_with_transparency,
    "RGB": lambda: photo_like(33, 17),
    "RGBA": lambda: photo_like(33, 17, "RGBA"),
    "CMYK": lambda: photo_like(33, 17).convert("CMYK"),
    "CMYK JPEG": lambda: _reopened(photo_like(33, 17).convert("CMYK"), "JPEG"),
    "YCbCr": lambda: photo_like(33, 17).convert("YCbCr"),
    "I;16 PNG": _sixteen_bit_gray,
    "1+tRNS": lambda: _keyed("1", _first_pixel),
    "L+tRNS": lambda: _keyed("L", _first_pixel),
    "RGB+tRNS": lambda: _keyed("RGB", _first_pixel),
    "I;16+tRNS": lambda: _keyed("I;16", _first_pixel),
    "I": lambda: photo_like(33, 17, "L").convert("I").point(lambda v: v * 300 - 2000),
    "F": lambda: photo_like(33, 17, "L").convert("F").point(lambda v: v * 1.5 - 60),
}


@pytest.mark.parametrize("name", SOURCES)
def test_normalize_band_by_band_equals_whole(name):
    image = SOURCES[name]()
    whole = normalize(image)
    mode = working_mode(image)
    assert whole.mode == mode in WORKING_MODES
    for y0 in range(0, image.height, 5):
        band = normalize(image.crop((0, y0, image.width, min(y0 + 5, image.height))), mode)
        assert band.tobytes() == whole.crop((0, y0, image.width, y0 + band.height)).tobytes()


def test_sixteen_bit_gray_keeps_the_high_byte():
    image = _sixteen_bit_gray()
    assert image.mode.startswith("I;16")
    assert list(normalize(image).tobytes()) == [*range(256), *range(256)] + [0] * 256


def test_thirty_two_bit_is_clipped_to_sixteen_then_high_byte():
    image = Image.new("I", (5, 1))
    image.putdata([-7, 255, 256, 65535, 1 << 20])
    assert list(normalize(image).tobytes()) == [0, 0, 1, 255, 255]


def test_float_is_clipped():
    image = Image.new("F", (3, 1))
    image.putdata([-3.0, 100.0, 300.0])
    assert list(normalize(image).tobytes()) == [0, 100, 255]


def test_palette_transparency_becomes_alpha():
    image = _palette_with_transparency()
    assert working_mode(image) == "RGBA"
    alpha = normalize(image).getchannel("A")
    index = image.tobytes()
    assert [a for a in alpha.tobytes()] == [0 if i == 5 else 255 for i in index]


def test_one_bit_becomes_black_and_white_gray():
    image = Image.new("1", (4, 1))
    image.putdata([0, 1, 0, 1])
    assert list(normalize(image).tobytes()) == [0, 255, 0, 255]


def test_gray_alpha_becomes_rgba():
    image = Image.new("LA", (1, 1), (90, 30))
    assert normalize(image).getpixel((0, 0)) == (90, 90, 90, 30)


def test_cmyk_jpeg_is_not_inverted():
    original = Image.new("RGB", (16, 16), (200, 40, 10))
    decoded = normalize(_reopened(original.convert("CMYK"), "JPEG", quality=95))
    assert max(abs(a - b) for a, b in zip(decoded.getpixel((8, 8)), (200, 40, 10), strict=True)) < 8


def test_normalize_refuses_a_target_that_is_not_a_working_mode():
    with pytest.raises(ValueError):
        normalize(Image.new("RGB", (1, 1)), "CMYK")


@pytest.mark.parametrize("mode", ["1", "L", "RGB"])
def test_a_trns_key_becomes_alpha_as_pillows_convert(mode):
    image = _keyed(mode, _first_pixel)
    assert working_mode(image) == "RGBA"
    result = normalize(image)
    assert result.tobytes() == image.convert("RGBA").tobytes()
    alpha = result.getchannel("A")
    assert alpha.getextrema() == (0, 255), "some pixels transparent, some opaque"


def test_a_trns_key_on_16_bit_gray_compares_all_16_bits():
    image = Image.frombytes("I;16", (4, 1), struct.pack("<4H", 0x1234, 0x1235, 0x3412, 0xFFFF))
    image = _reopened(image, "PNG", transparency=0x1234)
    result = normalize(image)
    assert list(result.get_flattened_data()) == [
        (0x12, 0x12, 0x12, 0),
        (0x12, 0x12, 0x12, 255),
        (0x34, 0x34, 0x34, 255),
        (0xFF, 0xFF, 0xFF, 255),
    ]
