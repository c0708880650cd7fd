import io
import zlib

import pytest
from PIL import Image

from runtime.encoders import PngEncoder, make_encoder
from runtime.tiles import Size
from tests.runtime.pictures import check_with_tool, encode_in_bands, photo_like

SIZES = [(1, 1), (1, 37), (37, 1), (15, 17), (203, 141), (640, 480), (1500, 900)]


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_png_is_lossless_and_valid(tmp_path, mode, width, height):
    image = photo_like(width, height, mode)
    data = encode_in_bands(make_encoder("png", Size(width, height), mode), image, 64)
    path = tmp_path / "out.png"
    path.write_bytes(data)
    check_with_tool("pngcheck", path)
    with Image.open(path) as decoded:
        assert (decoded.mode, decoded.size) == (mode, (width, height))
        assert decoded.tobytes() == image.tobytes()


@pytest.mark.parametrize("band_height", [1, 5, 256, 1000])
def test_png_any_band_heights(band_height):
    image = photo_like(300, 257, "RGBA")
    data = encode_in_bands(PngEncoder(Size(300, 257), "RGBA"), image, band_height)
    assert Image.open(io.BytesIO(data)).tobytes() == image.tobytes()


def test_png_is_one_zlib_stream_with_rows_filtered_up():
    image = photo_like(700, 600)
    data = encode_in_bands(PngEncoder(Size(700, 600), "RGB"), image, 128)
    stream = b""
    position = 8
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        if data[position + 4 : position + 8] == b"IDAT":
            stream += data[position + 8 : position + 8 + length]
        position += 12 + length
    rows = zlib.decompress(stream)
    row_bytes = 700 * 3 + 1
    assert len(rows) == 600 * row_bytes
    assert {rows[y * row_bytes] for y in range(600)} == {2}


def test_first_bytes_come_before_the_last_band():
    encoder = PngEncoder(Size(100, 100), "L")
    assert encoder.header().startswith(b"\x89PNG\r\n\x1a\n")
    assert encoder.encode_band(photo_like(100, 50, "L"))[4:8] == b"IDAT"


def test_png_refuses_wrong_bands_and_early_finish():
    encoder = PngEncoder(Size(10, 10), "RGB")
    encoder.header()
    with pytest.raises(ValueError):
        encoder.encode_band(photo_like(9, 5))
    with pytest.raises(ValueError):
        encoder.encode_band(photo_like(10, 5, "L"))
    encoder.encode_band(photo_like(10, 5))
    with pytest.raises(ValueError):
        encoder.finish()
    with pytest.raises(ValueError):
        encoder.encode_band(photo_like(10, 6))


def test_make_encoder_refuses_an_unknown_format():
    with pytest.raises(ValueError, match="gif"):
        make_encoder("gif", Size(2, 2), "RGB")
