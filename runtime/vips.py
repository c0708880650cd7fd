"""The bridge to libvips: tiles into pyvips images and back, and libvips run as a tile engine.

A step that runs on libvips works on one tile at a time, like a Pillow step, and must give exactly
what libvips gives for the whole image. libvips' operations place their kernels by their own centre
conventions (`reduceh`/`reducev` centre each output pixel on the input it covers, shifted when the
output size rounds), and those depend on the image's size, not the tile's. So a tile is never
processed as an image of its own: `in_place` puts it where it lies in a *virtual* image of the
whole input's size (`embed`, the rest copied from its edges, never computed), the operation runs on
that, and `crop` asks for the output box only. libvips evaluates on demand, so only the pixels of
that box are computed, from the tile's pixels alone when the tile covers the operation's reach
(the step's `needs`), and with the same kernel phase, weights and edge handling as the whole-image
run. At the image's border the tile ends where the image ends, so libvips' edge extension sees the
same pixels too.

Pixels cross without extra copies where the memory allows: a tile that is an uncut part of the
decoder's full-size target (`runtime.targets`) is read by libvips in place (`new_from_memory` on the
mapping, then `crop`), as its 4 stored bytes a pixel when the step can drop the padding later
(`padded`); any other tile once through `tobytes`. Results come back through one
`write_to_memory`. Pillow stores RGB at 4 bytes a pixel and libvips at 3, so one copy back is the floor.

libvips' operation cache is off: every tile's operations are new, and a cache would only hold
references to finished tiles' memory. Each tile is computed by one libvips thread: the step threads
already run tiles in parallel, and libvips' own pool per tile only added hand-offs (24 MP chain
in-process, loaded machine: 0.63-0.83 s of CPU per run with libvips' default of one thread per core,
0.56-0.64 s with one; `VIPS_CONCURRENCY` in the environment still overrides it).
"""

from __future__ import annotations

import os
import threading
import weakref

import pyvips
from PIL import Image

from runtime.targets import TARGETS
from runtime.tiles import Box, Size, Tile

pyvips.cache_set_max(0)
pyvips.cache_set_max_mem(0)
pyvips.cache_set_max_files(0)
if "VIPS_CONCURRENCY" not in os.environ:
    pyvips.concurrency_set(1)

_WHOLE: dict[int, tuple[weakref.ref, pyvips.Image]] = {}  # id(decode target) -> (its weak ref, its libvips image)
_WHOLE_LOCK = threading.Lock()

# Pillow modes as libvips band counts (all 8-bit); "RGBa"/"La" are Pillow's premultiplied forms.
BANDS = {"L": 1, "LA": 2, "La": 2, "RGB": 3, "RGBA": 4, "RGBa": 4}


def jpeg_ends_early(data: bytes) -> bool:
    """Tell whether libjpeg finds the scan data of JPEG `data` ending early ("premature end of data segment").

    A progressive JPEG cut inside its last scan and closed by an end-of-image marker holds every scan
    header, and libjpeg, which decodes it with Pillow too, only warns and fills in zeros: libvips turns
    that warning into an error. Decoded at 1/8 scale, so only the entropy decoding costs; a JPEG libvips
    cannot read for another reason is left to Pillow to judge.
    """
    try:
        pyvips.Image.jpegload_buffer(data, shrink=8, fail_on="warning").avg()
    except pyvips.Error as error:
        return "premature end of data" in str(error).lower()
    return False


def version() -> str:
    """Return the version of the libvips the wheel brought, e.g. "8.18.7"."""
    return ".".join(str(pyvips.version(part)) for part in range(3))


def from_image(image: Image.Image) -> pyvips.Image:
    """Return a libvips image of a Pillow image's pixels (one copy, through `tobytes`)."""
    bands = BANDS.get(image.mode)
    if bands is None:
        raise ValueError(f"no libvips image for mode {image.mode}")
    return pyvips.Image.new_from_memory(image.tobytes(), image.width, image.height, bands, "uchar")


def from_tile(tile: Tile, *, padded: bool = False) -> pyvips.Image:
    """Return a libvips image of the tile's pixels, read in place when they lie in a decode target.

    A decode target stores RGB at 4 bytes a pixel. With `padded`, such a tile comes as those 4 bands
    (the fourth is padding), which spares repacking every pixel to 3 bands before a step that reduces
    the image first; the caller drops the padding (`without_padding`) where the result has fewer
    pixels. The result reads memory the tile holds: keep the tile alive until its pixels are computed.
    """
    parent = tile.parent()
    if parent is not None and tile.mode == "RGB":
        image, (left, top) = parent
        pages = TARGETS.memory_of(image)
        if pages is not None:
            whole = pyvips.Image.new_from_memory(pages, image.width, image.height, 4, "uchar")
            box = tile.box.translate(-left, -top)
            region = whole.crop(box.x0, box.y0, box.width, box.height)
            return region if padded else without_padding(region, "RGB")
    return from_image(tile.view())


def whole_target(tile: Tile, size: Size) -> pyvips.Image | None:
    """Return the decode target the tile is an uncut part of, read in place as 4 bands, if it is the whole `size` image.

    Such a target *is* the virtual whole image `in_place` would build, with real pixels where the tile
    lies: an operation on it reads only the rows and columns its output needs, which the tile covers,
    so pixels not decoded yet are never used. One libvips image per target, shared by its tiles.
    """
    parent = tile.parent()
    if parent is None or tile.mode != "RGB" or parent[1] != (0, 0) or parent[0].size != (size.width, size.height):
        return None
    image = parent[0]
    with _WHOLE_LOCK:
        known = _WHOLE.get(id(image))
        if known is not None and known[0]() is image:
            return known[1]
    pages = TARGETS.memory_of(image)
    if pages is None:
        return None
    whole = pyvips.Image.new_from_memory(pages, image.width, image.height, 4, "uchar")
    key = id(image)

    def forget(_: weakref.ref) -> None:  # the target is gone: let its mapping go too
        _WHOLE.pop(key, None)  # atomic: no lock in a weakref callback

    with _WHOLE_LOCK:
        _WHOLE[key] = (weakref.ref(image, forget), whole)
    return whole


def without_padding(image: pyvips.Image, mode: str) -> pyvips.Image:
    """Return `image` with only the bands of `mode` (a padded RGB image loses its fourth band)."""
    return image.extract_band(0, n=BANDS[mode]) if image.bands > BANDS[mode] else image


def to_image(image: pyvips.Image, mode: str) -> Image.Image:
    """Return libvips image `image` (8-bit, with the bands of `mode`) computed into a Pillow image."""
    if BANDS.get(mode) != image.bands or image.format != "uchar":
        raise ValueError(f"a {image.bands}-band {image.format} image is not {mode}")
    return Image.frombytes(mode, (image.width, image.height), image.write_to_memory())


def in_place(region: pyvips.Image, box: Box, size: Size) -> pyvips.Image:
    """Return a virtual `size` image holding `region` at `box`, its edges copied outwards (never computed)."""
    if (region.width, region.height) != (box.width, box.height):
        raise ValueError(f"a {region.width}x{region.height} region does not fill {box}")
    if box == size.box:
        return region
    return region.embed(box.x0, box.y0, size.width, size.height, extend="copy")


def crop(image: pyvips.Image, box: Box) -> pyvips.Image:
    """Return `box` of `image` (lazily: only that box is computed when its pixels are asked for)."""
    if (box.x0, box.y0, box.x1, box.y1) == (0, 0, image.width, image.height):
        return image
    return image.crop(box.x0, box.y0, box.width, box.height)
