"""Read a source image's header, then decode it band by band in its working mode, EXIF orientation applied.

Streaming. A baseline (sequential) JPEG with orientation 1 is decoded by feeding Pillow's JPEG decoder the
file in 64 KiB pieces. The decoder writes into a target (RGB for colour, RGBX for gray) whose padding byte
libjpeg-turbo sets to 255 as each row is written (JCS_EXT_RGBX); the target starts all zero
(`zeroed_image`), so a row whose last pixel has X == 255 is done. A band is yielded as soon as its last
row is done; bands follow the rows given (the source grid's: 32 rows first), so the first comes after one
64 KiB read, ~3-5 ms. Measured on a 6000x4000 q90 baseline JPEG, 2 shared cores, 256-row bands: first
band after 19-27 ms, all 16 bands after ~230 ms (Pillow's
`load()`: ~150 ms; the difference was cropping and converting each band, which `decode_rows` no longer does
for colour: it hands out the target itself, and readers cut what they need). A progressive JPEG of the
same image: ~450 ms before the first band. The decoder releases the GIL in `decode()`, so this runs well
in a worker thread.
Grayscale JPEGs are decoded the same way (libjpeg expands gray to RGBX, and Pillow's RGB→L weights sum
to exactly 1, so converting back is lossless).

Memory. The target is full size. Band-sized targets are not safely possible through Pillow's decoder:
`setimage(im, extents)` does not reset the decoder's row counter and the decoder writes row
`y + yoff` of the target while `y < ysize`; aiming it at a band means a negative `yoff` (unchecked, so a
wrong guess writes outside the band) and a `ysize` that ends at the band, after which the decoder calls
`jpeg_finish_decompress` with rows still pending and fails. Pillow stores RGB at 4 bytes a pixel anyway,
so the RGBX target costs no more than Pillow's own `load()` (96 MP → 384 MB). A large target gives its
finished rows back to the kernel as the run goes (`runtime.targets`): a band copied out (a converted
colour space, gray) right after its copy, the target's own rows once the source store's readers are done.

Everything else (progressive and CMYK JPEG, PNG, GIF, WebP, TIFF, BMP, HEIC/HEIF, AVIF) is decoded whole,
transposed as `ImageOps.exif_transpose` does, and cut into bands; each band is normalised on its own. A
baseline JPEG with an orientation other than 1 is decoded by the streaming decoder, then transposed.
The orientation is read once, by `probe`, where `ImageOps.exif_transpose` finds it: EXIF (JPEG, MPO,
WebP, AVIF's irot/imir, which Pillow reports as EXIF), a PNG's eXIf chunk, "Raw profile type exif" text
or XMP (`runtime.headers`). TIFF (Pillow 13) and HEIC (libheif) apply theirs while they decode, so
their header says 1 and their size is already the oriented one.

Truncation. A sequential JPEG's decoder is fed its data up to its end-of-image marker, then a few
filler bytes (skipped as junk by a decoder that has finished the scan, read as more data by one that
has not), and only then the marker: if the last row is not done by then, the scan ended early and
libjpeg would fill the rest with grey ("premature end of data segment"), so the image is refused.
libjpeg outputs a progressive JPEG's rows only after the marker: its scans are checked at upload
(`runtime.headers.check_jpeg_data`: cut before its last scan), and while Pillow decodes it libvips
reads it again at 1/8 scale on a second core, where libjpeg's "premature end of data" is an error
(cut inside its last scan).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import io
import itertools
import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import pillow_heif
from PIL import Image, ImageFile, features

from runtime import vips
from runtime.colour import UNTAGGED, WorkingSpace, to_srgb
from runtime.headers import (
    ImageDamaged,
    ImageRejected,
    check_jpeg_data,
    exif_orientation,
    isobmff_nclx,
    jpeg_layout,
    png_facts,
)
from runtime.icc import nclx_profile
from runtime.images import normalize, working_mode
from runtime.targets import TARGETS
from runtime.tiles import Size

# HEIC/HEIF through libheif (the primary image; no thumbnails, depth or auxiliary images); AVIF is Pillow's.
pillow_heif.register_heif_opener(thumbnails=False, depth_images=False, aux_images=False)

# Multi-picture JPEGs from cameras open through the JPEG plugin as "MPO"; only the first picture is used.
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "HEIF", "AVIF")
# Formats whose opener applies the orientation itself while decoding (and reports the oriented size).
_ORIENTED_BY_DECODER = ("TIFF", "HEIF")

_READ_BLOCK = 65536
# Given to a JPEG decoder before its end-of-image marker: more than libjpeg's 25-bit look-ahead.
_FILLER = bytes(8)
_ROW_DONE = 255
_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


__all__ = ["ACCEPTED_FORMATS", "ImageDamaged", "ImageRejected", "SourceHeader", "decode_bands", "decode_rows", "probe"]


@dataclass(frozen=True, slots=True)
class SourceHeader:
    format: str
    stored_size: Size
    size: Size
    orientation: int
    mode: str
    streamable: bool
    source_mode: str = ""  # the mode Pillow opens it in (before normalisation)
    sequential: bool = False  # a baseline RGB or gray JPEG, read by the streaming decoder (then transposed)
    scan_start: int = 0  # JPEG: offset of the first scan's data
    icc_profile: bytes | None = None  # the embedded ICC profile, as stored
    exif: bytes | None = None  # the EXIF block, as stored (PNG: from eXIf or a raw profile text chunk)
    xmp: bytes | None = None


def probe(source: str | os.PathLike[str] | BinaryIO, max_pixels: int, *, complete: bool = True) -> SourceHeader:
    """Read the header of `source` and refuse what Tileflow cannot or will not decode, before any pixel.

    `complete=False`: `source` is still arriving (`runtime.upload`); a streamable JPEG is not read to its
    end to find truncation (the decoder finds it, and fails the run), everything else is.
    """
    if isinstance(source, str | os.PathLike):
        with open(source, "rb") as file:
            return _probe_open_file(file, max_pixels, complete)
    source.seek(0)
    return _probe_open_file(source, max_pixels, complete)


def decode_bands(
    path: str | os.PathLike[str], header: SourceHeader, bands: int | Sequence[int], space: WorkingSpace = UNTAGGED
) -> Iterator[tuple[int, Image.Image]]:
    """Yield (y0, band) top to bottom: full-width bands (see `decode_rows`), oriented, in `header.mode`."""
    for y0, y1, image, top in decode_rows(path, header, bands, space=space):
        if top == y0 and image.height == y1 - y0:
            yield y0, image
        else:
            yield y0, image.crop((0, y0 - top, image.width, y1 - top))


def decode_rows(
    source: str | os.PathLike[str] | bytes | BinaryIO,
    header: SourceHeader,
    bands: int | Sequence[int],
    shrink: int = 1,
    space: WorkingSpace = UNTAGGED,
) -> Iterator[tuple[int, int, Image.Image, int]]:
    """Yield (y0, y1, image, top) top to bottom, one per band, oriented, in `header.mode`.

    `bands` is either a band height, or the rows where bands start followed by the (shrunk) height, as
    `geometry.row_bounds` gives them: a band is yielded as soon as its last row is decoded, so short
    bands at the top come out after a few dozen rows.
    Rows [y0, y1) of the source are rows [y0 - top, y1 - top) of `image`, full width, and never change
    again: a streamed JPEG yields its full-size target (top 0) each time, with more rows final, so a
    reader cuts what it needs straight out of it; otherwise `image` is the band itself (top = y0).
    `shrink` (1, 2, 4 or 8; streamable JPEGs only) decodes at that fraction of the size, rounded up,
    by libjpeg's scaled inverse DCT. `source` is a file's path, its bytes already in memory, or an open
    binary file (such as an upload still arriving, whose reads wait for its bytes).
    Bands come in the working colour `space` (`runtime.colour`): converted band by band when it asks.
    """
    if shrink not in (1, 2, 4, 8) or (shrink > 1 and not header.streamable):
        raise ValueError(f"cannot decode this image at 1/{shrink} size")
    height = -(-header.size.height // shrink)
    bounds = _band_bounds(bands, height)
    if isinstance(source, bytes):
        opened = io.BytesIO(source)
    elif isinstance(source, str | os.PathLike):
        opened = open(source, "rb")
    else:
        opened = contextlib.nullcontext(source)  # an open file (an upload still arriving): the caller's to close
    with opened as file:
        if header.streamable:
            yield from _stream_jpeg(file, header, bounds, shrink, space)
        else:
            for y0, band in _bands_of_whole(file, header, bounds, space):
                yield y0, y0 + band.height, band, y0


def _band_bounds(bands: int | Sequence[int], height: int) -> list[int]:
    """Return the bands' boundaries, from 0 to `height`, for a band height or for given boundaries."""
    if isinstance(bands, int):
        if bands < 1:
            raise ValueError("band_height must be at least 1")
        return [*range(0, height, bands), height]
    bounds = list(bands)
    if not bounds or bounds[0] != 0 or bounds[-1] != height or any(a >= b for a, b in itertools.pairwise(bounds)):
        raise ValueError(f"band bounds must rise from 0 to the height {height}")
    return bounds


def _probe_open_file(file: BinaryIO, max_pixels: int, complete: bool = True) -> SourceHeader:
    if not file.read(1):
        raise ImageRejected("the file is empty")
    file.seek(0)
    try:
        image = Image.open(file, formats=ACCEPTED_FORMATS)
    except Image.DecompressionBombError as error:
        raise _too_many_pixels(error, max_pixels) from error
    except Image.UnidentifiedImageError as error:
        accepted = ", ".join(ACCEPTED_FORMATS)
        raise ImageRejected(f"not an image in an accepted format ({accepted})") from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageDamaged(f"the image header is damaged or truncated ({error})") from error
    with image:
        width, height = image.size
        if width < 1 or height < 1:
            raise ImageRejected(f"the image has no pixels ({width}x{height})")
        if width * height > max_pixels:
            raise ImageRejected(f"the image has {width}x{height} pixels, more than the limit of {max_pixels} pixels")
        try:
            mode = working_mode(image)
        except ValueError as error:
            raise ImageRejected(f"unsupported pixel format {image.mode}") from error
        exif = image.info.get("exif") or None
        xmp = image.info.get("xmp") or None
        scan_start = 0
        if image.format == "PNG":
            facts = png_facts(file)
            orientation, exif, xmp = facts.orientation, facts.exif, facts.xmp
        elif image.format in _ORIENTED_BY_DECODER:
            orientation = 1
        else:
            orientation = exif_orientation(image)
        if image.format in ("JPEG", "MPO"):
            layout = jpeg_layout(file)
            if complete or not (_sequential(image) and orientation == 1):
                check_jpeg_data(file, layout, image.size)  # a streamed one: the decoder finds truncation
            scan_start = layout.scan_start
        stored = Size(width, height)
        oriented = Size(height, width) if orientation >= 5 else stored
        return SourceHeader(
            format=image.format,
            stored_size=stored,
            size=oriented,
            orientation=orientation,
            mode=mode,
            streamable=_sequential(image) and orientation == 1,
            source_mode=image.mode,
            sequential=_sequential(image),
            scan_start=scan_start,
            icc_profile=image.info.get("icc_profile") or _nclx_icc(file, image.format),
            exif=exif if isinstance(exif, bytes) else None,
            xmp=xmp if isinstance(xmp, bytes) else None,
        )


def _nclx_icc(file: BinaryIO, format: str) -> bytes | None:
    """Return a profile for a HEIC/AVIF file's nclx colour box (Display P3, BT.2020, ...), or None."""
    if format not in ("HEIF", "AVIF"):
        return None
    nclx = isobmff_nclx(file)
    return nclx_profile(*nclx) if nclx is not None else None


def _sequential(image: Image.Image) -> bool:
    """Tell whether the streaming decoder reads `image`: a sequential (baseline) RGB or gray JPEG."""
    if image.format not in ("JPEG", "MPO") or len(image.tile) != 1:
        return False
    if image.info.get("progressive") or image.info.get("progression"):
        return False
    rawmode = image.tile[0].args[0]
    return rawmode in ("RGB", "L") and bool(features.check_feature("libjpeg_turbo"))


def _stream_jpeg(
    file: BinaryIO, header: SourceHeader, bounds: list[int], shrink: int, space: WorkingSpace
) -> Iterator[tuple[int, int, Image.Image, int]]:
    target, feed = _jpeg_target(file, header, shrink)
    width = target.width
    copied = space.converted or target.mode != header.mode  # bands are copies: the target's rows are done with
    releaser = TARGETS.releaser(target) if copied else None
    band = 0  # the next band to yield: rows [bounds[band], bounds[band + 1])
    for finished in feed:
        while band < len(bounds) - 1:
            y0, y1 = bounds[band], bounds[band + 1]
            if not finished and not _row_done(target, width - 1, y1 - 1):
                break
            if space.converted:
                yield y0, y1, _in_space(target.crop((0, y0, width, y1)), header.mode, space), y0
            elif not copied:
                yield y0, y1, target, 0
            else:
                yield y0, y1, normalize(target.crop((0, y0, width, y1)), header.mode), y0
            if releaser is not None:
                releaser.release(y1)
            band += 1


def _jpeg_target(file: BinaryIO, header: SourceHeader, shrink: int) -> tuple[Image.Image, Iterator[bool]]:
    """Return a sequential JPEG's decode target (as stored, not oriented) and the feed that fills it."""
    width, height = -(-header.stored_size.width // shrink), -(-header.stored_size.height // shrink)
    with Image.open(file, formats=ACCEPTED_FORMATS) as opened:
        (tile,) = opened.tile
        jpegmode = tile.args[1]
    # An RGB image stores 4 bytes a pixel too, and Pillow's RGBX unpacker copies X into the padding byte,
    # so for RGB the target is "RGB" itself: its bands need no conversion (a pass over every pixel).
    target_mode = "RGB" if header.mode == "RGB" else "RGBX"
    target = zeroed_image(target_mode, width, height)
    decoder = Image._getdecoder(target_mode, "jpeg", ("RGBX", jpegmode), (shrink, 0))
    decoder.setimage(target.im, (0, 0, width, height))
    last_row = (target.width - 1, target.height - 1)

    def ended_at() -> int | None:
        return None if _row_done(target, *last_row) else _first_row_not_done(target)

    return target, _feed_jpeg(decoder, file, header.scan_start, target.height, ended_at)


def _cmyk_jpeg(file: BinaryIO, header: SourceHeader) -> Image.Image | None:
    """Decode a sequential CMYK JPEG (Adobe-inverted too) whole, checked as `_feed_jpeg` does; None if not one.

    A CMYK target has no padding byte to tell written rows, so its last row starts as a pattern the
    decoder overwrites.
    """
    with Image.open(file, formats=ACCEPTED_FORMATS) as opened:
        progressive = opened.info.get("progressive") or opened.info.get("progression")
        if opened.mode != "CMYK" or len(opened.tile) != 1 or progressive:
            return None
        (tile,) = opened.tile
        width, height = opened.size
        config = opened.decoderconfig
    target = Image.new("CMYK", (width, height))
    pattern = bytes((i * 37 + 11) % 256 for i in range(width * 4))
    target.paste(Image.frombytes("CMYK", (width, 1), pattern), (0, height - 1))
    decoder = Image._getdecoder("CMYK", "jpeg", tile.args, config)
    decoder.setimage(target.im, (0, 0, width, height))

    def ended_at() -> int | None:
        return height - 1 if target.crop((0, height - 1, width, height)).tobytes() == pattern else None

    for _ in _feed_jpeg(decoder, file, header.scan_start, height, ended_at):
        pass
    return target


def _feed_jpeg(
    decoder: Any, file: BinaryIO, scan_start: int, height: int, ended_at: Callable[[], int | None]
) -> Iterator[bool]:
    """Feed the file to `decoder` in blocks; yield after each whether it has finished.

    Before the end-of-image marker comes filler: if the last row is not done then (`ended_at` gives the
    first row not written, None when all are), the data ended early.
    """
    pending = b""
    finished = False
    try:
        for block in _jpeg_blocks(file, scan_start):
            pending += _FILLER if block is None else block
            consumed, error_code = decoder.decode(pending)
            if consumed < 0:
                finished = True
                if error_code < 0:
                    raise ImageDamaged(f"the JPEG data is broken ({ImageFile.ERRORS.get(error_code, error_code)})")
                yield True
                return
            pending = pending[consumed:]
            if block is None and (row := ended_at()) is not None:
                raise ImageRejected(
                    f"the JPEG file is truncated: its pixel data ends at row {row} of {height} (premature end of data)"
                )
            yield False
        raise ImageDamaged("the JPEG file is truncated")
    finally:
        if not finished:
            decoder.cleanup()


def _jpeg_blocks(file: BinaryIO, scan_start: int) -> Iterator[bytes | None]:
    """Yield the file from its start in blocks, and None once, where its first end-of-image marker begins."""
    file.seek(0)
    offset = 0  # file position of data[0]
    carried = b""  # the last byte of the previous block, so that no marker is split
    found = False
    while block := file.read(_READ_BLOCK):
        data = carried + block
        if not found:
            at = data.find(b"\xff\xd9", max(0, scan_start - offset))
            if at >= 0:
                found = True
                yield data[:at]
                yield None
                data, offset = data[at:], offset + at
        yield data[:-1]
        carried, offset = data[-1:], offset + len(data) - 1
    if carried:
        yield carried


def _first_row_not_done(target: Image.Image) -> int:
    """Return the first row the decoder has not written (rows are written top to bottom; given back ones were).

    Rows may go back while this searches: a row read as zero is done if it was given back by then
    (the releaser counts rows before it gives their pages back, so it is asked after the read).
    """
    low, high = TARGETS.rows_released(target), target.height - 1
    while low < high:
        middle = (low + high) // 2
        if _row_done(target, target.width - 1, middle) or middle < TARGETS.rows_released(target):
            low = middle + 1
        else:
            high = middle
    return low


def zeroed_image(mode: str, width: int, height: int) -> Image.Image:
    """Return an all-zero RGB or RGBX image, on memory that is not Pillow's (see `runtime.targets`).

    `Image.new(mode, size, None)` callocs Pillow's 16 MB blocks; once glibc has raised its mmap threshold
    (it does when a large block is freed: after the first run) they come from the heap and calloc clears
    all of them first: ~35 ms for 24 MP before the decoder may write its first row, measured. The
    target's own mapping is zeroed again, ahead of time, once the previous image on it is gone.
    """
    return TARGETS.image(mode, width, height)


def _row_done(target: Image.Image, x: int, y: int) -> bool:
    """Tell whether the decoder has written pixel (x, y): its padding byte (X) is 255, not calloc's 0."""
    return target.crop((x, y, x + 1, y + 1)).tobytes("raw", "RGBX")[3] == _ROW_DONE


def _in_space(band: Image.Image, mode: str, space: WorkingSpace) -> Image.Image:
    """Return a decoded band in the working mode and colour space."""
    if space.decoded_from is None:
        return normalize(band, mode)
    if band.mode == "CMYK":
        return to_srgb(band, space.decoded_from)
    return to_srgb(normalize(band, mode), space.decoded_from)


def _bands_of_whole(
    file: BinaryIO, header: SourceHeader, bounds: list[int], space: WorkingSpace
) -> Iterator[tuple[int, Image.Image]]:
    if header.sequential:
        target, feed = _jpeg_target(file, header, 1)
        for _ in feed:
            pass
        method = _TRANSPOSE.get(header.orientation)
        image = target.transpose(method) if method is not None else target
    elif header.source_mode == "CMYK" and header.format in ("JPEG", "MPO") and (cmyk := _cmyk_jpeg(file, header)):
        method = _TRANSPOSE.get(header.orientation)
        image = cmyk.transpose(method) if method is not None else cmyk
    elif header.format in ("JPEG", "MPO"):
        image = _load_progressive(file, header.orientation)
    else:
        image = _load_oriented(file, header.orientation)
    width, height = image.size
    if (width, height) != (header.size.width, header.size.height):
        raise ImageRejected("the image changed since its header was read")
    for y0, y1 in itertools.pairwise(bounds):
        yield y0, _in_space(image.crop((0, y0, width, y1)), header.mode, space)


def _load_progressive(file: BinaryIO, orientation: int) -> Image.Image:
    """Decode a progressive JPEG as `_load_oriented` does; libvips checks on a second thread that its data is whole."""
    file.seek(0)
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="tileflow-jpeg-check") as pool:
        cut = pool.submit(vips.jpeg_ends_early, file.read())
        file.seek(0)
        image = _load_oriented(file, orientation)
        if cut.result():
            raise ImageDamaged("the JPEG file is truncated: its last scan ends early (premature end of data)")
    return image


def _too_many_pixels(bomb: Image.DecompressionBombError, max_pixels: int | None) -> ImageRejected:
    """Return the refusal of an image Pillow found too large, naming its pixels and our limit only.

    Pillow's own message names its error threshold, twice `Image.MAX_IMAGE_PIXELS`, which is not a
    limit a user can act on; our limit is the one that decides (`runtime.apps`).
    """
    found = re.search(r"\((\d+) pixels\)", str(bomb))
    limit = f"the limit of {max_pixels} pixels" if max_pixels else "the pixel limit"
    if found is None:
        return ImageRejected(f"the image is larger than {limit}")
    return ImageRejected(f"the image has {found.group(1)} pixels, more than {limit}")


def _load_oriented(file: BinaryIO, orientation: int) -> Image.Image:
    """Decode the whole first frame and transpose it as `ImageOps.exif_transpose` does."""
    try:
        image = Image.open(file, formats=ACCEPTED_FORMATS)
        image.load()
    except Image.DecompressionBombError as error:
        raise _too_many_pixels(error, Image.MAX_IMAGE_PIXELS) from error
    except (OSError, SyntaxError, ValueError, EOFError) as error:
        raise ImageDamaged(f"the image data is damaged or truncated ({error})") from error
    method = _TRANSPOSE.get(orientation)
    return image.transpose(method) if method is not None else image
