import io
import itertools

import pytest
from PIL import Image, ImageChops

from runtime.colour import SRGB_PROFILE
from runtime.encoders import EncodeOptions, JpegEncoder, jpeg, make_encoder
from runtime.geometry import row_bounds
from runtime.tiles import Size
from tests.runtime.pictures import check_with_tool, decode_with_libvips, encode_in_bands, photo_like

SIZES = [(1, 1), (1, 37), (37, 1), (15, 17), (203, 141), (640, 480), (1500, 900)]


@pytest.fixture(params=["one part", "parts on threads"])
def parts(request, monkeypatch):
    """Encode bands whole (small bands), or cut into parts encoded on the pool (bands of a megapixel or more)."""
    if request.param == "parts on threads":
        monkeypatch.setattr(jpeg, "_PARALLEL_MIN_PIXELS", 0)
    return request.param


def _pillow_whole_image(image: Image.Image, quality: int) -> bytes:
    buffer = io.BytesIO()
    params = {"subsampling": "4:2:0"} if image.mode != "L" else {}
    image.convert("L" if image.mode == "L" else "RGB").save(
        buffer, "JPEG", quality=quality, restart_marker_rows=1, **params
    )
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
@pytest.mark.parametrize(("width", "height"), SIZES)
def test_jpeg_is_valid_and_equals_a_whole_image_save(tmp_path, mode, width, height, parts):
    image = photo_like(width, height, mode)
    data = encode_in_bands(make_encoder("jpeg", Size(width, height), mode, 85), image, 64)
    path = tmp_path / "out.jpg"
    path.write_bytes(data)
    check_with_tool("jpeginfo", path)
    reference = Image.open(io.BytesIO(_pillow_whole_image(image, 85)))
    with Image.open(path) as decoded:
        assert (decoded.mode, decoded.size) == ("L" if mode == "L" else "RGB", (width, height))
        assert decoded.tobytes() == reference.tobytes()


@pytest.mark.parametrize("band_height", [1, 7, 16, 100, 256])
@pytest.mark.parametrize("quality", [1, 50, 100])
def test_jpeg_is_byte_identical_to_pillows_save_for_any_band_height(band_height, quality, parts):
    image = photo_like(333, 250)
    data = encode_in_bands(JpegEncoder(Size(333, 250), "RGB", quality), image, band_height)
    assert data == _pillow_whole_image(image, quality)


@pytest.mark.parametrize(("mode", "tile_size"), [("RGB", 512), ("L", 512), ("RGB", 100)])
def test_the_grids_short_first_rows_stream_and_equal_pillows_save(mode, tile_size, parts):
    image = photo_like(700, 1100, mode)
    encoder = JpegEncoder(Size(700, 1100), mode, 85)
    out = [encoder.header()]
    for y0, y1 in itertools.pairwise(row_bounds(1100, tile_size)):
        out.append(encoder.encode_band(image.crop((0, y0, 700, y1))))
        if tile_size == 512:  # 32, 64, 128, 256 rows: whole MCU rows, so nothing waits in the encoder
            assert out[-1], f"rows {y0}..{y1} were buffered"
    out.append(encoder.finish())
    assert b"".join(out) == _pillow_whole_image(image, 85)


def test_restart_markers_do_not_change_pixels_against_a_plain_pillow_save():
    image = photo_like(640, 480)
    data = encode_in_bands(JpegEncoder(Size(640, 480), "RGB", 90), image, 128)
    plain = io.BytesIO()
    image.save(plain, "JPEG", quality=90)
    difference = ImageChops.difference(Image.open(io.BytesIO(data)).convert("RGB"), Image.open(plain))
    assert difference.getbbox() is None


def test_jpeg_restart_markers_run_in_sequence():
    image = photo_like(64, 16 * 20)
    data = encode_in_bands(JpegEncoder(Size(64, 320), "RGB", 80), image, 48)
    scan = data[data.index(b"\xff\xda") :]
    markers = [scan[i + 1] for i in range(len(scan) - 1) if scan[i] == 0xFF and 0xD0 <= scan[i + 1] <= 0xD7]
    assert markers == [0xD0 + i % 8 for i in range(19)]


def test_rgba_drops_alpha():
    image = Image.new("RGBA", (32, 32), (200, 10, 10, 0))
    data = encode_in_bands(JpegEncoder(Size(32, 32), "RGBA", 95), image, 16)
    red, green, blue = Image.open(io.BytesIO(data)).getpixel((16, 16))
    assert red > 180 and green < 30 and blue < 30


def test_header_comes_before_any_band_and_holds_the_full_height():
    encoder = JpegEncoder(Size(100, 4000), "RGB", 85)
    header = encoder.header()
    assert header.startswith(b"\xff\xd8") and header.endswith(b"\x00\x3f\x00")
    sof = header.index(b"\xff\xc0")
    assert int.from_bytes(header[sof + 5 : sof + 7], "big") == 4000


@pytest.mark.parametrize("quality", [0, 101])
def test_quality_out_of_range_is_refused(quality):
    with pytest.raises(ValueError):
        JpegEncoder(Size(8, 8), "RGB", quality)


def test_too_tall_for_jpeg_is_refused():
    with pytest.raises(ValueError, match="65535"):
        JpegEncoder(Size(8, 70000), "RGB", 85)


def _saved(image: Image.Image, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", **params)
    return buffer.getvalue()


@pytest.mark.parametrize("subsampling", ["4:2:0", "4:2:2", "4:4:4"])
@pytest.mark.parametrize("band_height", [8, 37])
def test_every_subsampling_streams_byte_identical_to_pillows_save(subsampling, band_height, tmp_path):
    image = photo_like(211, 95)
    options = EncodeOptions(quality=80, subsampling=subsampling)
    data = encode_in_bands(make_encoder("jpeg", Size(211, 95), "RGB", options=options), image, band_height)
    reference = _saved(image, quality=80, subsampling=subsampling, restart_marker_rows=1)
    assert Image.open(io.BytesIO(data)).tobytes() == Image.open(io.BytesIO(reference)).tobytes()
    path = tmp_path / "out.jpg"
    path.write_bytes(data)
    check_with_tool("jpeginfo", path)
    assert decode_with_libvips(path).tobytes() == Image.open(path).tobytes()


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_progressive_jpeg_is_buffered_and_equals_pillows_save(mode, tmp_path):
    image = photo_like(150, 90, mode)
    options = EncodeOptions(quality=75, progressive=True, subsampling="4:4:4", icc_profile=None)
    encoder = make_encoder("jpeg", Size(150, 90), mode, options=options)
    assert encoder.header() == b"" and encoder.encode_band(image.crop((0, 0, 150, 40))) == b""
    data = encoder.header() + encoder.encode_band(image.crop((0, 40, 150, 90))) + encoder.finish()
    flat = image.convert("L" if mode == "L" else "RGB")
    params = {"subsampling": "4:4:4"} if mode != "L" else {}
    assert data == _saved(flat, quality=75, progressive=True, **params)
    path = tmp_path / "p.jpg"
    path.write_bytes(data)
    assert "Progressive" in check_with_tool("jpeginfo", path) or Image.open(path).info.get("progressive")
    assert decode_with_libvips(path).tobytes() == Image.open(path).tobytes()


def test_the_header_carries_the_profile_exif_and_xmp(tmp_path):
    icc = SRGB_PROFILE
    exif = Image.Exif()
    exif[0x8298] = "(c) ACME"
    options = EncodeOptions(icc_profile=icc, exif=exif.tobytes(), xmp=b"<x:xmpmeta>kept</x:xmpmeta>")
    image = photo_like(64, 40)
    data = encode_in_bands(make_encoder("jpeg", Size(64, 40), "RGB", options=options), image, 16)
    path = tmp_path / "meta.jpg"
    path.write_bytes(data)
    check_with_tool("jpeginfo", path)
    with Image.open(path) as decoded:
        assert decoded.info["icc_profile"] == icc
        assert decoded.getexif()[0x8298] == "(c) ACME"
        assert b"kept" in decoded.info["xmp"]
        assert decoded.tobytes() == Image.open(io.BytesIO(_saved(image, quality=85, restart_marker_rows=1))).tobytes()
