import io
import zlib

import pytest
from PIL import Image

from runtime.colour import SRGB_PROFILE
from runtime.encoders import EncodeOptions, PngEncoder, make_encoder
from runtime.tiles import Size
from tests.runtime.pictures import check_with_tool, decode_with_libvips, encode_in_bands, photo_like

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


@pytest.mark.parametrize("compression", [0, 1, 9])
@pytest.mark.parametrize("mode", ["L", "RGBA"])
def test_every_compression_level_is_lossless_and_valid(compression, mode, tmp_path):
    image = photo_like(120, 70, mode)
    options = EncodeOptions(compression=compression)
    data = encode_in_bands(make_encoder("png", Size(120, 70), mode, options=options), image, 16)
    path = tmp_path / "level.png"
    path.write_bytes(data)
    check_with_tool("pngcheck", path)
    assert decode_with_libvips(path).tobytes() == image.tobytes()
    assert Image.open(path).tobytes() == image.tobytes()


def test_stronger_compression_makes_smaller_files():
    image = photo_like(200, 120)
    encoders = [make_encoder("png", Size(200, 120), "RGB", options=EncodeOptions(compression=c)) for c in (0, 9)]
    sizes = [len(encode_in_bands(encoder, image, 32)) for encoder in encoders]
    assert sizes[0] > sizes[1]


@pytest.mark.parametrize("tag", ["icc", "srgb"])
def test_colour_and_metadata_chunks(tag, tmp_path):
    exif = Image.Exif()
    exif[0x8298] = "(c) ACME"
    options = EncodeOptions(
        icc_profile=SRGB_PROFILE, srgb=tag == "srgb", exif=exif.tobytes(), xmp=b"<x:xmpmeta>kept</x:xmpmeta>"
    )
    image = photo_like(40, 30, "RGBA")
    data = encode_in_bands(make_encoder("png", Size(40, 30), "RGBA", options=options), image, 8)
    path = tmp_path / "meta.png"
    path.write_bytes(data)
    check_with_tool("pngcheck", path)
    with Image.open(path) as decoded:
        decoded.load()
        if tag == "srgb":
            assert decoded.info["srgb"] == 0 and "icc_profile" not in decoded.info
        else:
            assert decoded.info["icc_profile"] == SRGB_PROFILE
        assert decoded.getexif()[0x8298] == "(c) ACME"
        assert "kept" in decoded.info["XML:com.adobe.xmp"]
        assert decoded.tobytes() == image.tobytes()
    assert decode_with_libvips(path).tobytes() == image.tobytes()


def test_a_gray_png_carries_no_rgb_profile():
    options = EncodeOptions(icc_profile=SRGB_PROFILE)
    data = encode_in_bands(make_encoder("png", Size(10, 10), "L", options=options), photo_like(10, 10, "L"), 5)
    assert b"iCCP" not in data


def test_adler32_sums_of_pieces_combine_into_the_sum_of_the_whole():
    import random

    from runtime.encoders.png import adler32_combine

    rng = random.Random(5)
    for _ in range(50):
        first = rng.randbytes(rng.choice([0, 1, 100, 70_000, 200_003]))
        second = rng.randbytes(rng.choice([0, 1, 65_521, 65_522, 300_000]))
        combined = adler32_combine(zlib.adler32(first), zlib.adler32(second), len(second))
        assert combined == zlib.adler32(first + second)
    assert adler32_combine(1, zlib.adler32(b"\xff" * 10**6), 10**6) == zlib.adler32(b"\xff" * 10**6)


@pytest.mark.parametrize("band_height", [300, 1023])
def test_a_band_encoded_in_pieces_on_several_threads_is_one_stream_with_its_checksum(band_height):
    image = photo_like(1500, 1023, "RGB")  # each band is over 256 kB filtered: cut into pieces
    data = encode_in_bands(PngEncoder(Size(1500, 1023), "RGB"), image, band_height)
    stream = b"".join(_idat_chunks(data))
    assert zlib.decompress(stream)  # checks the adler32 at the end of the stream
    assert Image.open(io.BytesIO(data)).tobytes() == image.tobytes()


def _idat_chunks(data: bytes):
    position = 8
    while position < len(data):
        length = int.from_bytes(data[position : position + 4], "big")
        if data[position + 4 : position + 8] == b"IDAT":
            yield data[position + 8 : position + 8 + length]
        position += 12 + length
