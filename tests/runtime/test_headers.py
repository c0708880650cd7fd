"""Orientation from wherever `ImageOps.exif_transpose` finds it, and truncation found before decoding."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image, ImageOps, PngImagePlugin

from runtime.decode import ImageRejected, decode_bands, probe
from runtime.images import normalize
from tests.runtime.pictures import photo_like

WIDTH, HEIGHT = 61, 37


def _exif(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def _xmp(orientation: int, attribute: bool = True) -> str:
    value = f'tiff:Orientation="{orientation}"' if attribute else ""
    element = "" if attribute else f"<tiff:Orientation>{orientation}</tiff:Orientation>"
    return (
        '<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
        f'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" {value}>{element}</rdf:Description>'
        "</rdf:RDF></x:xmpmeta>"
    )


def _raw_profile(orientation: int) -> str:
    data = b"Exif\x00\x00" + _exif(orientation).tobytes()
    return f"\nexif\n{len(data):8}\n{data.hex()}\n"


def _save(format: str, image: Image.Image | None = None, **params) -> bytes:
    buffer = io.BytesIO()
    (image or photo_like(WIDTH, HEIGHT)).save(buffer, format, **params)
    return buffer.getvalue()


def _png_text(orientation: int, kind: str) -> bytes:
    info = PngImagePlugin.PngInfo()
    if kind == "raw-tEXt":
        info.add_text("Raw profile type exif", _raw_profile(orientation))
    elif kind == "raw-zTXt":
        info.add_text("Raw profile type exif", _raw_profile(orientation), zip=True)
    elif kind == "xmp-iTXt":
        info.add_itxt("XML:com.adobe.xmp", _xmp(orientation), zip=True)
    else:
        info.add_itxt("XML:com.adobe.xmp", _xmp(orientation, attribute=False))
    return _save("PNG", pnginfo=info)


def _png_text_after_image_data(orientation: int) -> bytes:
    """The raw profile chunk after IDAT, where ImageMagick may put it."""
    png = _save("PNG")
    text = b"Raw profile type exif\x00" + _raw_profile(orientation).encode("latin-1")
    chunk = struct.pack(">I", len(text)) + b"tEXt" + text + struct.pack(">I", zlib.crc32(b"tEXt" + text))
    return png[:-12] + chunk + png[-12:]


SOURCES = {
    "jpeg-exif": lambda o: _save("JPEG", exif=_exif(o), quality=95),
    "jpeg-xmp": lambda o: _save("JPEG", xmp=_xmp(o).encode(), quality=95),
    "progressive-jpeg": lambda o: _save("JPEG", exif=_exif(o), quality=95, progressive=True),
    "png-eXIf": lambda o: _save("PNG", exif=_exif(o)),
    "png-raw-tEXt": lambda o: _png_text(o, "raw-tEXt"),
    "png-raw-zTXt": lambda o: _png_text(o, "raw-zTXt"),
    "png-raw-after-IDAT": _png_text_after_image_data,
    "png-xmp-iTXt": lambda o: _png_text(o, "xmp-iTXt"),
    "png-xmp-element": lambda o: _png_text(o, "xmp-element"),
    "tiff": lambda o: _save("TIFF", exif=_exif(o)),
    "webp": lambda o: _save("WEBP", exif=_exif(o), lossless=True),
    "avif": lambda o: _save("AVIF", exif=_exif(o), quality=90, speed=10),
    # pillow-heif turns the EXIF orientation into irot/imir only when given the EXIF as bytes.
    "heic": lambda o: _save("HEIF", exif=_exif(o).tobytes(), quality=90),
}


def _pillow_whole(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return normalize(ImageOps.exif_transpose(image))


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("source", SOURCES)
def test_orientation_as_exif_transpose_for_every_source(source, orientation, tmp_path):
    data = SOURCES[source](orientation)
    path = tmp_path / "image"
    path.write_bytes(data)
    header = probe(path, 10**8)
    expected = _pillow_whole(data)
    assert expected.size == ((HEIGHT, WIDTH) if orientation >= 5 else (WIDTH, HEIGHT)), "Pillow itself"
    assert (header.size.width, header.size.height) == expected.size
    result = Image.new(header.mode, expected.size)
    for y0, image in decode_bands(path, header, 16):
        result.paste(image, (0, y0))
    assert result.tobytes() == expected.tobytes()


@pytest.mark.parametrize("value", [0, 9])
def test_an_xmp_orientation_outside_2_to_8_is_ignored(value):
    header = probe(io.BytesIO(_png_text(value, "xmp-iTXt")), 10**8)
    assert header.orientation == 1


def test_exif_wins_over_xmp_as_in_pillow():
    info = PngImagePlugin.PngInfo()
    info.add_itxt("XML:com.adobe.xmp", _xmp(6))
    data = _save("PNG", pnginfo=info, exif=_exif(3))
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        assert image.getexif()[0x0112] == 3
    assert probe(io.BytesIO(data), 10**8).orientation == 3


def _jpeg(width: int = 320, height: int = 240, **params) -> bytes:
    return _save("JPEG", photo_like(width, height), quality=92, **params)


def test_a_jpeg_too_short_for_its_blocks_is_refused_at_once():
    data = bytearray(_jpeg(16, 16))
    sof = data.index(b"\xff\xc0")
    data[sof + 5 : sof + 9] = struct.pack(">HH", 12000, 12000)
    with pytest.raises(ImageRejected, match=r"truncated: its .* bytes of pixel data cannot hold 12000x12000"):
        probe(io.BytesIO(bytes(data)), 150_000_000)


@pytest.mark.parametrize("progressive", [False, True])
def test_a_whole_jpeg_passes_the_length_check(progressive):
    # A flat image costs the fewest bits a block: still above the bound.
    flat = Image.new("RGB", (640, 480), (90, 120, 30))
    data = _save("JPEG", flat, quality=50, progressive=progressive, optimize=True)
    assert probe(io.BytesIO(data), 10**8).size.width == 640


@pytest.mark.parametrize("fraction", [0.2, 0.5, 0.9, 0.99])
@pytest.mark.parametrize(("orientation", "mode"), [(1, "RGB"), (6, "RGB"), (1, "L"), (1, "CMYK"), (3, "CMYK")])
def test_a_baseline_jpeg_cut_then_closed_by_its_marker_fails_while_decoding(fraction, orientation, mode, tmp_path):
    data = _save("JPEG", photo_like(320, 240).convert(mode), quality=92, exif=_exif(orientation))
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: int(len(data) * fraction)] + b"\xff\xd9")
    header = probe(path, 10**8)
    with pytest.raises(ImageRejected, match="premature end of data"):
        for _ in decode_bands(path, header, 32):
            pass


@pytest.mark.parametrize("fraction", [0.1, 0.3, 0.5, 0.7, 0.9, 0.99])
@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_a_progressive_jpeg_cut_then_closed_by_its_marker_is_refused(fraction, mode, tmp_path):
    """Cut before its last scan: refused at upload; inside it: the decode fails, naming libjpeg's reason."""
    data = _save("JPEG", photo_like(320, 240).convert(mode), quality=92, progressive=True)
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: int(len(data) * fraction)] + b"\xff\xd9")
    with pytest.raises(ImageRejected, match="truncated"):
        header = probe(path, 10**8)
        for _ in decode_bands(path, header, 32):
            pass


def test_an_early_progressive_cut_is_refused_at_upload_naming_the_scans(tmp_path):
    data = _save("JPEG", photo_like(320, 240), quality=92, progressive=True)
    with pytest.raises(ImageRejected, match="progressive scans end before the image is whole"):
        probe(io.BytesIO(data[: len(data) // 3] + b"\xff\xd9"), 10**8)


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_a_whole_progressive_jpeg_decodes_as_pillow(mode, tmp_path):
    data = _save("JPEG", photo_like(320, 240).convert(mode), quality=92, progressive=True, optimize=True)
    path = tmp_path / "whole.jpg"
    path.write_bytes(data)
    header = probe(path, 10**8)
    bands = [band for _, band in decode_bands(path, header, 64)]
    assert sum(band.height for band in bands) == 240


def test_a_whole_baseline_jpeg_with_restart_markers_decodes(tmp_path):
    data = _jpeg(restart_marker_rows=1)
    path = tmp_path / "restart.jpg"
    path.write_bytes(data)
    header = probe(path, 10**8)
    bands = [image for _, image in decode_bands(path, header, 32)]
    assert sum(band.height for band in bands) == 240


def test_a_png_whose_image_data_cannot_fill_its_rows_is_refused():
    ihdr = struct.pack(">IIBBBBB", 8000, 8000, 8, 6, 0, 0, 0)
    idat = zlib.compress(b"\x00" * 1000)

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    with pytest.raises(ImageRejected, match="cannot inflate to 8000x8000"):
        probe(io.BytesIO(data), 10**8)


def test_a_flat_png_passes_the_inflate_bound():
    data = _save("PNG", Image.new("RGBA", (1200, 800), (1, 2, 3, 4)), compress_level=9)
    assert probe(io.BytesIO(data), 10**8).size.height == 800
