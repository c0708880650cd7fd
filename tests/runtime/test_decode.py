import ctypes
import gc
import io
import os
import zlib
from pathlib import Path

import pytest
from PIL import Image, ImageOps

from runtime import decode
from runtime.decode import ACCEPTED_FORMATS, ImageRejected, decode_bands, probe
from runtime.geometry import row_bounds
from runtime.images import normalize
from tests.runtime.pictures import photo_like

WIDTH, HEIGHT = 203, 141


def _with_orientation(orientation: int) -> Image.Exif:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif


def _gif_with_transparency(path: Path) -> None:
    photo_like(WIDTH, HEIGHT).quantize(100).save(path, "GIF", transparency=7)


def _interlaced_png(path: Path) -> None:
    # Pillow cannot write Adam7; a third of the file is built here, the pixels still come from Pillow's reader.
    image = photo_like(WIDTH, HEIGHT)
    raw = b""
    passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
    for x0, y0, dx, dy in passes:
        columns = range(x0, WIDTH, dx)
        if not columns:
            continue
        for y in range(y0, HEIGHT, dy):
            raw += b"\x00" + b"".join(bytes(image.getpixel((x, y))) for x in columns)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return len(data).to_bytes(4, "big") + kind + data + zlib.crc32(kind + data).to_bytes(4, "big")

    header = WIDTH.to_bytes(4, "big") + HEIGHT.to_bytes(4, "big") + bytes([8, 2, 0, 0, 1])
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    )


def _save(mode: str, format: str, **params):
    def write(path: Path) -> None:
        _converted(mode).save(path, format, **params)

    return write


def _converted(mode: str) -> Image.Image:
    if mode == "P":
        return photo_like(WIDTH, HEIGHT).quantize(200)
    if mode == "I;16":
        return photo_like(WIDTH, HEIGHT, "L").convert("I").point(lambda v: v * 257 - 100).convert("I;16")
    if mode == "LA":
        return photo_like(WIDTH, HEIGHT, "RGBA").convert("LA")
    return photo_like(WIDTH, HEIGHT, mode)


SOURCES = {
    "jpeg-baseline": (_save("RGB", "JPEG", quality=90), True),
    "jpeg-progressive": (_save("RGB", "JPEG", quality=90, progressive=True), False),
    "jpeg-gray": (_save("L", "JPEG", quality=90), True),
    "jpeg-cmyk": (_save("CMYK", "JPEG", quality=90), False),
    "jpeg-444": (_save("RGB", "JPEG", quality=95, subsampling=0), True),
    "png-rgb": (_save("RGB", "PNG"), False),
    "png-rgba": (_save("RGBA", "PNG"), False),
    "png-p": (_save("P", "PNG"), False),
    "png-p-transparency": (_save("P", "PNG", transparency=3), False),
    "png-l": (_save("L", "PNG"), False),
    "png-la": (_save("LA", "PNG"), False),
    "png-16bit": (_save("I;16", "PNG"), False),
    "png-interlaced": (_interlaced_png, False),
    "gif": (_gif_with_transparency, False),
    "webp": (_save("RGB", "WEBP", quality=80), False),
    "webp-alpha": (_save("RGBA", "WEBP", lossless=True), False),
    "tiff": (_save("RGB", "TIFF", compression="tiff_lzw"), False),
    "tiff-cmyk": (_save("CMYK", "TIFF"), False),
    "bmp": (_save("RGB", "BMP"), False),
    "bmp-1bit": (_save("1", "BMP"), False),
}


def _assemble(path: Path, bands: int | tuple[int, ...]) -> tuple[Image.Image, list[int]]:
    header = probe(path, max_pixels=10**8)
    whole = Image.new(header.mode, (header.size.width, header.size.height))
    starts = []
    for y0, band in decode_bands(path, header, bands):
        assert band.mode == header.mode
        assert band.width == header.size.width
        whole.paste(band, (0, y0))
        starts.append(y0)
    return whole, starts


def _reference(path: Path) -> Image.Image:
    with Image.open(path) as opened:
        return normalize(ImageOps.exif_transpose(opened))


@pytest.mark.parametrize("name", SOURCES)
def test_bands_concatenate_to_pillows_whole_image(tmp_path, name):
    write, streams = SOURCES[name]
    path = tmp_path / "source.bin"
    write(path)
    assert probe(path, 10**8).streamable is streams
    decoded, starts = _assemble(path, 32)
    assert starts == list(range(0, HEIGHT, 32))
    reference = _reference(path)
    assert decoded.mode == reference.mode
    assert decoded.tobytes() == reference.tobytes()


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("format", ["JPEG", "PNG", "WEBP"])
def test_every_exif_orientation_is_applied(tmp_path, orientation, format):
    path = tmp_path / "source.bin"
    photo_like(WIDTH, HEIGHT).save(path, format, exif=_with_orientation(orientation), quality=90)
    header = probe(path, 10**8)
    assert header.orientation == orientation
    assert header.stored_size.width == WIDTH
    assert (header.size.width, header.size.height) == ((HEIGHT, WIDTH) if orientation >= 5 else (WIDTH, HEIGHT))
    decoded, _ = _assemble(path, 48)
    assert decoded.tobytes() == _reference(path).tobytes()


@pytest.mark.parametrize("bad", [0, 9, 65535])
def test_a_bad_orientation_counts_as_1(tmp_path, bad):
    path = tmp_path / "source.jpg"
    photo_like(40, 20).save(path, exif=_with_orientation(bad))
    header = probe(path, 10**8)
    assert header.orientation == 1 and header.streamable


@pytest.mark.parametrize("band_height", [1, 7, 16, 141, 500])
def test_streamed_jpeg_any_band_height(tmp_path, band_height):
    path = tmp_path / "source.jpg"
    photo_like(WIDTH, HEIGHT).save(path, quality=85)
    decoded, starts = _assemble(path, band_height)
    assert starts == list(range(0, HEIGHT, band_height))
    assert decoded.tobytes() == _reference(path).tobytes()


@pytest.mark.parametrize("name", SOURCES)
def test_bands_follow_the_grid_rows_short_ones_first(tmp_path, name):
    path = tmp_path / "source.bin"
    SOURCES[name][0](path)
    bounds = row_bounds(HEIGHT, 64)
    assert bounds == (0, 16, 48, 112, HEIGHT)
    decoded, starts = _assemble(path, bounds)
    assert starts == list(bounds[:-1])
    assert decoded.tobytes() == _reference(path).tobytes()


@pytest.mark.parametrize("bounds", [(), (0, 50), (0, 50, 50, HEIGHT), (10, HEIGHT), (0, 100, 60, HEIGHT)])
def test_band_bounds_must_rise_from_0_to_the_height(tmp_path, bounds):
    path = tmp_path / "source.jpg"
    photo_like(WIDTH, HEIGHT).save(path, quality=85)
    with pytest.raises(ValueError, match="must rise from 0 to the height"):
        next(decode_bands(path, probe(path, 10**8), bounds))


def _first_band(monkeypatch, path: Path, bands) -> tuple[int, Image.Image, int]:
    """Return the first (y0, band) decoded from `path`, and how far the decoder had read the file by then."""
    header = probe(path, 10**8)
    opened = []
    real_open = open

    def recording_open(*args, **kwargs):
        opened.append(real_open(*args, **kwargs))
        return opened[-1]

    monkeypatch.setattr("builtins.open", recording_open)
    iterator = decode_bands(path, header, bands)
    y0, band = next(iterator)
    monkeypatch.undo()
    (file,) = opened
    position = file.tell()
    iterator.close()
    assert file.closed
    return y0, band, position


def test_streamed_jpeg_yields_a_short_first_band_after_the_first_block(tmp_path, monkeypatch):
    path = tmp_path / "source.jpg"
    photo_like(1500, 2000).save(path, quality=95)
    y0, band, position = _first_band(monkeypatch, path, row_bounds(2000, 512))
    assert (y0, band.size) == (0, (1500, 32))
    assert position <= 2 * 65536 < os.path.getsize(path) / 8  # one read block past the header, not 512 rows


def test_streamed_jpeg_yields_the_first_band_before_reading_the_whole_file(tmp_path, monkeypatch):
    path = tmp_path / "source.jpg"
    photo_like(600, 2000).save(path, quality=95)
    assert probe(path, 10**8).streamable
    y0, band, position = _first_band(monkeypatch, path, 64)
    assert (y0, band.size) == (0, (600, 64))
    assert position < os.path.getsize(path) / 2


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks")
    ]


@pytest.mark.parametrize("mode", ["RGB", "RGBX"])
def test_a_decode_target_is_zero_and_takes_nothing_from_malloc(mode):
    libc = ctypes.CDLL(None)
    libc.mallinfo2.restype = _MallInfo2
    Image.new(mode, (1500, 1000), (255, 255, 255, 255)).load()  # leaves freed, dirty heap behind
    before = libc.mallinfo2()
    target = decode.zeroed_image(mode, 1500, 1000)
    after = libc.mallinfo2()
    # Neither the heap nor malloc's own mappings grew by the image: calloc had nothing to clear.
    assert after.uordblks + after.hblkhd - before.uordblks - before.hblkhd < 100_000
    assert (target.mode, target.size) == (mode, (1500, 1000))
    assert target.tobytes("raw", "RGBX") == bytes(1500 * 1000 * 4)
    target.paste((1, 2, 3), (0, 0, 2, 1))
    assert target.getpixel((1, 0))[:3] == (1, 2, 3)


def test_uncoloured_images_start_at_zero_even_after_a_white_one_is_freed():
    # The streaming decoder reads "row done" from the padding byte, which must start at 0.
    for _ in range(3):
        Image.new("RGBX", (1500, 1000), (255, 255, 255, 255)).load()
        assert Image.new("RGBX", (1500, 1000), None).getextrema()[3] == (0, 0)


@pytest.mark.parametrize("name", ["jpeg-baseline", "png-rgb"])
def test_abandoning_the_iterator_closes_the_file(tmp_path, name):
    path = tmp_path / "source.bin"
    SOURCES[name][0](path)
    bands = decode_bands(path, probe(path, 10**8), 16)
    next(bands)
    bands.close()
    del bands
    gc.collect()
    open_paths = [Path(os.readlink(f"/proc/self/fd/{fd}")) for fd in os.listdir("/proc/self/fd") if _is_link(fd)]
    assert path not in open_paths


def _is_link(fd: str) -> bool:
    try:
        os.readlink(f"/proc/self/fd/{fd}")
    except OSError:
        return False
    return True


def test_probe_accepts_a_file_object():
    buffer = io.BytesIO()
    photo_like(30, 20).save(buffer, "PNG")
    header = probe(buffer, 10**8)
    assert (header.format, header.size.width, header.size.height, header.mode) == ("PNG", 30, 20, "RGB")


def test_probe_refuses_more_pixels_than_the_limit(tmp_path):
    path = tmp_path / "big.png"
    photo_like(100, 100).save(path)
    with pytest.raises(ImageRejected, match="9999 pixels"):
        probe(path, max_pixels=9999)
    assert probe(path, max_pixels=10000).size.width == 100


def _png_header_claiming(width: int, height: int) -> bytes:
    data = width.to_bytes(4, "big") + height.to_bytes(4, "big") + bytes([8, 2, 0, 0, 0])
    ihdr = len(data).to_bytes(4, "big") + b"IHDR" + data + zlib.crc32(b"IHDR" + data).to_bytes(4, "big")
    idat = zlib.compress(b"\x00" * 64)
    return (
        b"\x89PNG\r\n\x1a\n"
        + ihdr
        + len(idat).to_bytes(4, "big")
        + b"IDAT"
        + idat
        + zlib.crc32(b"IDAT" + idat).to_bytes(4, "big")
        + b"\x00\x00\x00\x00IEND\xae\x42\x60\x82"
    )


# Pillow warns before it refuses; the refusal is what this test checks.
@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("claimed", [(100000, 100000), (20000, 20000)])
def test_a_huge_header_is_refused_before_decoding(claimed, monkeypatch):
    # Pillow's own bomb check (at twice MAX_IMAGE_PIXELS) catches the first, our limit the second: one message.
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 50_000_000)
    width, height = claimed
    with pytest.raises(ImageRejected) as refused:
        probe(io.BytesIO(_png_header_claiming(width, height)), max_pixels=50_000_000)
    assert str(refused.value) in (
        f"the image has {width * height} pixels, more than the limit of 50000000 pixels",
        f"the image has {width}x{height} pixels, more than the limit of 50000000 pixels",
    )


def test_refuses_by_content_not_by_name(tmp_path):
    svg = tmp_path / "picture.png"
    svg.write_text('<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"/>')
    with pytest.raises(ImageRejected, match="accepted format"):
        probe(svg, 10**8)
    disguised = tmp_path / "picture.svg"
    photo_like(10, 10).save(disguised, "JPEG")
    assert probe(disguised, 10**8).format == "JPEG"


@pytest.mark.parametrize("format", ["ICO", "TGA", "PPM"])
def test_formats_outside_the_list_are_refused(tmp_path, format):
    assert format not in ACCEPTED_FORMATS
    path = tmp_path / "image"
    photo_like(16, 16).save(path, format)
    with pytest.raises(ImageRejected, match="accepted format"):
        probe(path, 10**8)


@pytest.mark.parametrize(("content", "reason"), [(b"", "empty"), (b"hello, world" * 10, "accepted format")])
def test_not_an_image(content, reason):
    with pytest.raises(ImageRejected, match=reason):
        probe(io.BytesIO(content), 10**8)


def test_a_truncated_png_is_refused_by_probe(tmp_path):
    path = tmp_path / "cut.png"
    photo_like(200, 200).save(path)
    path.write_bytes(path.read_bytes()[:-3000])
    with pytest.raises(ImageRejected, match="truncated"):
        probe(path, 10**8)


@pytest.mark.parametrize("format", ["JPEG", "WEBP", "GIF", "TIFF", "BMP"])
def test_a_truncated_body_is_refused_while_decoding(tmp_path, format):
    path = tmp_path / "cut"
    photo_like(300, 300).save(path, format)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageRejected):
        header = probe(path, 10**8)
        list(decode_bands(path, header, 64))


def test_a_truncated_header_is_refused(tmp_path):
    path = tmp_path / "cut.jpg"
    photo_like(50, 50).save(path)
    path.write_bytes(path.read_bytes()[:20])
    with pytest.raises(ImageRejected):
        probe(path, 10**8)


@pytest.mark.parametrize("cut", [0.3, 0.9, 0.9999])
def test_a_jpeg_cut_anywhere_in_its_scan_is_refused_by_probe(cut):
    data = _jpeg_bytes_for_end_marker_tests()
    with pytest.raises(ImageRejected, match=r"truncated .*end-of-image marker"):
        probe(io.BytesIO(data[: int(len(data) * cut)]), 10**9)
    assert probe(io.BytesIO(data), 10**9).format == "JPEG"
    assert probe(io.BytesIO(data + b"\0" * 5000), 10**9).format == "JPEG"  # padding after the end is fine


def _jpeg_bytes_for_end_marker_tests() -> bytes:
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 1
    photo_like(700, 500).save(buffer, "JPEG", quality=90, exif=exif, progressive=False)
    return buffer.getvalue()


def gray_jpeg(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    photo_like(width, height).convert("L").save(buffer, "JPEG", quality=95)
    return buffer.getvalue()


def test_a_large_gray_jpegs_target_gives_each_band_back_once_it_is_copied_out(monkeypatch):
    from runtime.targets import TARGETS

    data = gray_jpeg(600, 900)
    header = probe(io.BytesIO(data), 10**8)
    monkeypatch.setattr(TARGETS, "release_from", 1)  # every target is "large"
    made = []
    original = TARGETS.releaser
    monkeypatch.setattr(TARGETS, "releaser", lambda image: made.append(original(image)) or made[-1])

    decoded = Image.new("L", (600, 900))
    released = []
    for y0, y1, band, top in decode.decode_rows(data, header, 64):
        decoded.paste(band.crop((0, y0 - top, band.width, y1 - top)), (0, y0))
        released.append(made[0].rows)

    assert decoded.tobytes() == Image.open(io.BytesIO(data)).convert("L").tobytes()  # copies taken first
    assert released == sorted(released) and released[-2] >= 900 - 64 - 8  # rows go back band by band


def test_a_cut_gray_jpeg_names_the_same_row_its_data_ends_at_when_its_rows_went_back(monkeypatch):
    from runtime.targets import TARGETS

    data = gray_jpeg(600, 900)
    cut = data[: len(data) * 2 // 3] + b"\xff\xd9"
    header = probe(io.BytesIO(cut), 10**8)

    def named_row(release_from: int) -> int:
        monkeypatch.setattr(TARGETS, "release_from", release_from)
        with pytest.raises(ImageRejected, match="premature end of data") as refused:
            for _ in decode.decode_rows(cut, header, 64):
                pass
        return int(str(refused.value).split("ends at row ")[1].split()[0])

    kept = named_row(10**12)
    assert 900 * 0.5 < kept < 900 * 0.8
    assert named_row(1) == kept  # given back rows read as zero, yet they were written


def test_the_first_row_not_written_is_found_though_rows_go_back_while_it_is_searched(monkeypatch):
    from runtime.targets import TargetMemory

    memory = TargetMemory(release_from=1)
    monkeypatch.setattr(decode, "TARGETS", memory)
    target = memory.image("RGBX", 1024, 900)
    target.paste((1, 2, 3, 255), (0, 0, 1024, 600))  # the decoder wrote rows [0, 600)
    releaser = memory.releaser(target)
    releaser.release(10)
    reads = []
    row_done = decode._row_done

    def and_meanwhile_rows_go_back(image, x, y):  # the readers finish every written row after the first read
        reads.append(y)
        if len(reads) == 2:
            releaser.release(600)
        return row_done(image, x, y)

    monkeypatch.setattr(decode, "_row_done", and_meanwhile_rows_go_back)

    assert decode._first_row_not_done(target) == 600
    assert memory.rows_released(target) == 600 and len(reads) > 2


def test_a_jpeg_cut_short_is_told_from_a_whole_one():
    from runtime.headers import cut_before_its_end, jpeg_layout

    def told(data: bytes) -> bool:
        return cut_before_its_end(io.BytesIO(data), jpeg_layout(io.BytesIO(data)).scan_start)

    exif = Image.Exif()
    exif[0x0112] = 1
    whole = io.BytesIO()
    Image.effect_noise((640, 480), 60).convert("RGB").save(whole, "JPEG", quality=90, exif=exif)
    whole = whole.getvalue()
    progressive = io.BytesIO()
    Image.effect_noise((640, 480), 60).convert("RGB").save(progressive, "JPEG", progressive=True)
    progressive = progressive.getvalue()
    assert not told(whole) and not told(progressive)
    assert not told(whole + b"trailing data a phone appended")
    assert told(whole[: len(whole) // 2]) and told(progressive[: len(progressive) - 100])
    assert told(whole[:-2])  # only the EOI missing: the decoder judges what that means
