"""Resize: exact tiled resampling, on libvips where it is faster, on Pillow otherwise.

libvips (`runtime.vips`) runs `lanczos` and `bilinear` on L and RGB images (its kernels `lanczos3`
and `linear`, through `vips_resize` with `gap=0`: `reducev` then `reduceh` with no integer box
pre-shrink, which at a factor of 10 gives 46.5 dB against Pillow where reduce alone gives 50.4)
when no axis shrinks by more than VIPS_MAX_FACTOR and the output's shorter side is VIPS_MIN_SIDE
or more (on smaller pictures the two libraries' different edges are most of it). Each tile runs in
place in a virtual whole image (see `runtime.vips`), so the tiled result is pixel-identical to
libvips' whole-image resize.
Against Pillow's, libvips sums 8-bit input with integer weights, which costs precision as the
factor grows; measured on random noise over gradients (RGB, the worst case): lanczos 53.7 dB at a
factor of 2, 51.6 dB at 6, 50.7 dB at 8; bilinear 52.8 dB at 2, 51.3 dB at 4, 49.2 dB at 8. Hence the
limits, 6 and 4, each keeping ~1.3 dB above 50. RGBA stays on Pillow: both premultiply alpha in
8 bits, and libvips' ±1 differences, divided again by small alphas, give 40-46 dB. `nearest` stays
on Pillow too: it is a pick, not arithmetic, and libvips picks other rows and columns than Pillow.
Speed: docs/benchmarks.md.
The figures above hold for photographs. On text and hard edges (a screenshot: black 13 px text and
1 px lines on white) libvips' Lanczos is 37-41 dB from Pillow's at factors 1.25-2.7, bilinear
46-49 dB (measured 2026-12-03; libvips' float path gives 41 dB too, so it is its kernel, not its
precision): the param `engine: "pillow"` keeps such a resize on Pillow, exactly.

Pillow (13) resamples in two separable passes (vertical, then horizontal); each output pixel is a
weighted sum of the input pixels within the filter's support around its centre. A tile reads the
input span that Pillow's own coefficient bounds reach, plus a pixel of safety, and is resampled in
two explicit passes whose `box=` places it where it lies in the whole image.

Pillow takes `box=` as 32-bit floats, and the coefficients are rounded to 22-bit fixed point: a box
edge that is not exactly representable (any `o * in/out` that is not a short dyadic number) moves
the filter centres by up to ~1e-4 px and changes pixels by 1-2 (measured: hundreds of cases in
300 random tiles). So each pass computes a slightly wider output range whose ends fall where
`o * in/out` is exact (multiples of the odd part of `out / gcd(in, out)`), and crops. For common
sizes the extra work is a few pixels, and the result is bit-identical to the whole-image resize.
For sizes with a large odd period (a 6000×4000 photo to 800 px wide: 4000 → 533 rows, a period of
533, the whole column) a pass would span the whole column, and the first output band would wait for
the last input row: `/run` stopped answering while its upload arrived. Where the widening would reach
more than EXACT_REACH input pixels on an axis longer than EXACT_AXIS, the pass takes the tile's own
box: its centres move by ~1e-4 px, which changes about one value in 10,000 by 1 (86-94 dB from
Pillow's whole-image result, measured on thumbnails of 600-1500 px pictures at factors 2.4-13; RGBA
within 2 of it once premultiplied, more in the colour of nearly transparent pixels).
"""

from __future__ import annotations

import math
from typing import Literal

from PIL import Image
from pydantic import Field, model_validator

from runtime import vips
from runtime.geometry import clip
from runtime.registry import ImageInfo, Step, StepContext, StepParams, TileKind, step
from runtime.tiles import Box, Size, Tile

RESAMPLE = {
    "lanczos": Image.Resampling.LANCZOS,
    "bilinear": Image.Resampling.BILINEAR,
    "nearest": Image.Resampling.NEAREST,
}
# Half-width of each filter's kernel at scale 1, as in Pillow's Resample.c.
FILTER_SUPPORT = {"lanczos": 3.0, "bilinear": 1.0, "nearest": 0.0}
# Pillow premultiplies alpha around a (non-nearest) resize; the tile code does the same, once (on both engines).
PREMULTIPLIED = {"RGBA": "RGBa", "LA": "La"}
VIPS_KERNEL = {"lanczos": "lanczos3", "bilinear": "linear"}
VIPS_MAX_FACTOR = {"lanczos": 6.0, "bilinear": 4.0}  # the largest input / output ratio of an axis (see above)
VIPS_MODES = ("L", "RGB")
# The shortest output side libvips resizes: its edges differ from Pillow's, and on small pictures the edges
# are most of it. Worst PSNR against Pillow over 1,000 random sizes and factors (shortest output side):
# 2-8 px 35-48 dB, 12-24 px 48.8-49.6, 28-44 px 50.2-51.2, 48 px and up 51.4-56.5.
VIPS_MIN_SIDE = 48


ENGINE_HELP = (
    "auto: libvips where it is faster (within 50 dB of Pillow on photographs; text and hard edges differ more); "
    "pillow: always Pillow's result, exactly"
)


def runs_on_libvips(resample: str, mode: str, in_size: Size, out_size: Size, engine: str = "auto") -> bool:
    """Return whether a resize of a `mode` image from `in_size` to `out_size` runs on libvips (else Pillow)."""
    if engine != "auto" or resample not in VIPS_KERNEL or mode not in VIPS_MODES or in_size == out_size:
        return False
    if min(out_size.width, out_size.height) < VIPS_MIN_SIDE:
        return False
    factor = max(in_size.width / out_size.width, in_size.height / out_size.height)
    return factor <= VIPS_MAX_FACTOR[resample]


def fit_inside(size: Size, width: int | None, height: int | None) -> Size:
    """Return `size` shrunk to fit inside `width` x `height`, as Pillow's `thumbnail` (never larger)."""
    box_width = size.width if width is None else min(width, size.width)
    box_height = size.height if height is None else min(height, size.height)
    if box_width >= size.width and box_height >= size.height:
        return size
    aspect = size.width / size.height
    if box_width / box_height >= aspect:
        candidates = (math.floor(box_height * aspect), math.ceil(box_height * aspect))
        new_width = max(min(candidates, key=lambda n: abs(aspect - n / box_height)), 1)
        return Size(new_width, box_height)
    candidates = (math.floor(box_width / aspect), math.ceil(box_width / aspect))
    new_height = max(min(candidates, key=lambda n: 0 if n == 0 else abs(aspect - box_width / n)), 1)
    return Size(box_width, new_height)


def resized_size(size: Size, scale: float | None, width: int | None, height: int | None) -> Size:
    """Return the output size: `side * scale` rounded half up (at least 1), or the fit inside width/height.

    Half up, as libvips' own `resize(scale)` sizes its output: Python's `round` takes halves to even,
    so 1999x1333 by 0.5 would be 1000x666, its two sides rounded in opposite directions.
    """
    if scale is not None:
        return Size(max(1, math.floor(size.width * scale + 0.5)), max(1, math.floor(size.height * scale + 0.5)))
    return fit_inside(size, width, height)


# How far (input pixels) a Pillow pass may reach past its tile to keep its box edges exact (see the top),
# unless its axis is this short anyway: spanning it all delays no band that matters.
EXACT_REACH = 128
EXACT_AXIS = 1024


def exact_period(in_length: int, out_length: int) -> int:
    """Return the output step at which `o * in_length / out_length` is exact in a 32-bit float."""
    period = out_length // math.gcd(in_length, out_length)
    odd = period
    while odd % 2 == 0:
        odd //= 2
    # A dyadic fraction is exact while it needs few bits; beyond 2^8 keep the full period.
    return odd if period // odd <= 256 else period


def pass_period(in_length: int, out_length: int) -> int:
    """Return the output step a Pillow pass aligns its ends to: the exact period, or 1 where it reaches too far."""
    period = exact_period(in_length, out_length)
    return period if in_length <= EXACT_AXIS or period * in_length <= EXACT_REACH * out_length else 1


def exact_on_pillow(in_size: Size, out_size: Size) -> bool:
    """Tell whether a tiled Pillow resize from `in_size` to `out_size` is bit-identical to the whole-image one."""
    return all(
        pass_period(length, out) == exact_period(length, out)
        for length, out in ((in_size.width, out_size.width), (in_size.height, out_size.height))
    )


def aligned_range(start: int, stop: int, period: int, out_length: int) -> tuple[int, int]:
    """Return [start, stop) widened to multiples of `period` (the image end counts as one)."""
    return start - start % period, min(out_length, -(-stop // period) * period)


def vips_input_span(start: int, stop: int, in_length: int, out_length: int, support: float) -> tuple[int, int]:
    """Return the input pixels [first, last) that libvips' reduce reads for output pixels [start, stop) of one axis.

    `reduceh`/`reducev` centre output pixel o near input (o + 0.5) * factor and read `support * factor`
    either side (rounded out to whole taps, and shifted by at most a pixel when the size rounds):
    two pixels of margin cover both.
    """
    if in_length == out_length:
        return start, stop
    factor = in_length / out_length
    reach = support * factor + 2
    return max(0, math.floor(start * factor - reach)), min(in_length, math.ceil(stop * factor + reach))


def input_span(start: int, stop: int, in_length: int, out_length: int, support: float) -> tuple[int, int]:
    """Return the input pixels [first, last) that output pixels [start, stop) of one axis read."""
    if in_length == out_length:
        return start, stop
    start, stop = aligned_range(start, stop, pass_period(in_length, out_length), out_length)
    scale = in_length / out_length
    if support == 0:
        # The tile's `box=` must start inside it, so reach back to the box edge, not the first centre.
        first = math.floor(start * scale)
        last = math.ceil(stop * scale)
    else:
        reach = support * max(scale, 1.0)
        first = math.floor((start + 0.5) * scale - reach + 0.5)
        last = math.floor((stop - 0.5) * scale + reach + 0.5)
    return max(0, first - 1), min(in_length, last + 1)


@step("resize", label="Resize", category="Transform")
class Resize(Step):
    """Scale the image down by a factor, or to fit inside a width and/or height, keeping its aspect ratio."""

    class Params(StepParams):
        scale: float | None = Field(None, gt=0, le=1, description="factor in (0, 1]")
        width: int | None = Field(None, ge=1, le=100_000, description="fit inside this width (px)")
        height: int | None = Field(None, ge=1, le=100_000, description="fit inside this height (px)")
        resample: Literal["lanczos", "bilinear", "nearest"] = "lanczos"
        engine: Literal["auto", "pillow"] = Field(
            "auto",
            description=ENGINE_HELP,
        )

        @model_validator(mode="after")
        def _one_way_to_size(self):
            if self.scale is None and self.width is None and self.height is None:
                raise ValueError("give either scale, or width and/or height")
            if self.scale is not None and (self.width is not None or self.height is not None):
                raise ValueError("give either scale, or width and/or height, not both")
            return self

    kind = TileKind.GEOMETRY

    def __init__(self, params: Params, input: ImageInfo) -> None:
        super().__init__(params, input)
        self.out_size = resized_size(input.size, params.scale, params.width, params.height)
        self.resample = RESAMPLE[params.resample]
        self.on_libvips = runs_on_libvips(params.resample, input.mode, input.size, self.out_size, params.engine)
        self.support = FILTER_SUPPORT[params.resample]
        self.work_mode = input.mode if params.resample == "nearest" else PREMULTIPLIED.get(input.mode, input.mode)
        in_width, in_height = input.size.width, input.size.height
        out_width, out_height = self.out_size.width, self.out_size.height
        self.x_period = pass_period(in_width, out_width)
        self.y_period = pass_period(in_height, out_height)
        # Pillow's own rule (Resample.c): vertical pass first when the height shrinks much more.
        self.horizontal_first = not (0 < in_height - out_height and in_height - out_height > (in_width - out_width) * 2)
        self.columns: list[int] | None = None
        self.rows: list[int] | None = None
        if params.resample == "nearest":
            self.columns = nearest_table(in_width, out_width)
            self.rows = nearest_table(in_height, out_height)

    def output_info(self) -> ImageInfo:
        return ImageInfo(self.out_size, self.input.mode)

    def needs(self, box: Box) -> Box:
        if self.columns is not None and self.rows is not None:
            return Box(self.columns[box.x0], self.rows[box.y0], self.columns[box.x1 - 1] + 1, self.rows[box.y1 - 1] + 1)
        span = vips_input_span if self.on_libvips else input_span
        x0, x1 = span(box.x0, box.x1, self.input.size.width, self.out_size.width, self.support)
        y0, y1 = span(box.y0, box.y1, self.input.size.height, self.out_size.height, self.support)
        return clip(Box(x0, y0, x1, y1), self.input.size)

    def process(self, tile: Tile, ctx: StepContext) -> None:
        out = ctx.out_box
        if self.input.size == self.out_size:
            ctx.write(tile)
            return
        if self.columns is not None:
            ctx.write(Tile.from_image(out, self._nearest(tile, out)))
            return
        if self.on_libvips:
            ctx.write(Tile.from_image(out, self._on_libvips(tile, out)))
            return
        image = tile.view()  # every pass below makes a new image
        if image.mode != self.work_mode:
            image = image.convert(self.work_mode)
        if self.horizontal_first:
            image = self._vertical(self._horizontal(image, tile.box, out), tile.box, out)
        else:
            image = self._horizontal(self._vertical(image, tile.box, out), tile.box, out)
        if image.mode != self.input.mode:
            image = image.convert(self.input.mode)
        ctx.write(Tile.from_image(out, image))

    def _on_libvips(self, tile: Tile, out: Box) -> Image.Image:
        """Return `out` of libvips' whole-image resize, computed from the tile alone (see `runtime.vips`).

        `vips_resize` with `gap=0` is `reducev` by `1 / vscale`, then `reduceh` by `1 / hscale` (the tests
        check it against `resize` itself). The vertical pass treats a row as a flat run of samples, so it
        runs on a decode target's 4-byte pixels as they are stored, and the padding is dropped after it,
        on half the rows (a 24 MP halving: ~30-100 ms of CPU less than repacking the whole region first).
        """
        kernel = VIPS_KERNEL[self.params.resample]
        image = vips.whole_target(tile, self.input.size)  # the decoder's own image: no region to place
        if image is None:
            image = vips.in_place(vips.from_tile(tile, padded=True), tile.box, self.input.size)
        if self.out_size.height != self.input.size.height:
            image = image.reducev(1.0 / (self.out_size.height / self.input.size.height), kernel=kernel, gap=0.0)
        image = vips.without_padding(image, tile.mode)
        if self.out_size.width != self.input.size.width:
            image = image.reduceh(1.0 / (self.out_size.width / self.input.size.width), kernel=kernel, gap=0.0)
        return vips.to_image(vips.crop(image, out), tile.mode)

    def _horizontal(self, image: Image.Image, region: Box, out: Box) -> Image.Image:
        if self.input.size.width == self.out_size.width:
            return image
        start, stop, left, right = _pass_box(
            out.x0, out.x1, region.x0, self.input.size.width, self.out_size.width, self.x_period
        )
        image = image.resize((stop - start, image.height), self.resample, box=(left, 0, right, image.height))
        return image.crop((out.x0 - start, 0, out.x1 - start, image.height)) if stop - start != out.width else image

    def _vertical(self, image: Image.Image, region: Box, out: Box) -> Image.Image:
        if self.input.size.height == self.out_size.height:
            return image
        start, stop, top, bottom = _pass_box(
            out.y0, out.y1, region.y0, self.input.size.height, self.out_size.height, self.y_period
        )
        image = image.resize((image.width, stop - start), self.resample, box=(0, top, image.width, bottom))
        return image.crop((0, out.y0 - start, image.width, out.y1 - start)) if stop - start != out.height else image

    def _nearest(self, tile: Tile, out: Box) -> Image.Image:
        """Pick the rows, then the columns, that Pillow's nearest resize picks for `out`."""
        rows, columns = self.rows or [], self.columns or []
        image = _pick_rows(tile, [y - tile.box.y0 for y in rows[out.y0 : out.y1]])
        image = image.transpose(Image.Transpose.TRANSPOSE)
        picked = Tile.from_image(Box(0, 0, image.width, image.height), image)
        image = _pick_rows(picked, [x - tile.box.x0 for x in columns[out.x0 : out.x1]])
        return image.transpose(Image.Transpose.TRANSPOSE)


def nearest_table(in_length: int, out_length: int) -> list[int]:
    """Return the input index Pillow's nearest resize reads for each output index of one axis.

    Pillow steps a double by `in/out` from the first centre (ImagingScaleAffine); the rounding of
    that running sum decides near-ties, so it is replayed here in the same order.
    """
    step_length = in_length / out_length
    position = step_length * 0.5
    table = []
    for _ in range(out_length):
        table.append(min(int(position), in_length - 1))
        position += step_length
    return table


def _pass_box(
    start: int, stop: int, region_start: int, in_length: int, out_length: int, period: int
) -> tuple[int, int, float, float]:
    """Return the aligned output range of one pass and its box edges in the tile's coordinates."""
    start, stop = aligned_range(start, stop, period, out_length)
    # Integer arithmetic first: the box edges are then exact, see the module docstring.
    low = (start * in_length - region_start * out_length) / out_length
    high = (stop * in_length - region_start * out_length) / out_length
    return start, stop, low, high


def _pick_rows(tile: Tile, rows: list[int]) -> Image.Image:
    stride = len(tile.data) // tile.box.height
    data = memoryview(tile.data)
    picked = b"".join(data[row * stride : (row + 1) * stride] for row in rows)
    return Image.frombytes(tile.mode, (tile.box.width, len(rows)), picked)
