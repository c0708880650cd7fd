"""The libvips bridge: tiles into libvips and back, read in place from decode targets, run in a virtual whole image."""

import gc
import io

import pytest
from PIL import Image

from runtime import vips
from runtime.decode import decode_rows, probe
from runtime.targets import TARGETS
from runtime.testing import make_image
from runtime.tiles import Box, Size, Tile


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_pixels_cross_both_ways_unchanged(mode):
    image = make_image(37, 23, mode, seed=2)

    crossed = vips.to_image(vips.from_image(image), mode)

    assert crossed.tobytes() == image.tobytes()


def test_unknown_modes_and_mismatched_bands_are_refused():
    with pytest.raises(ValueError, match="mode P"):
        vips.from_image(make_image(8, 8, "P"))
    with pytest.raises(ValueError, match="is not RGB"):
        vips.to_image(vips.from_image(make_image(8, 8, "L")), "RGB")


def test_a_part_of_a_decode_target_is_read_in_place():
    buffer = io.BytesIO()
    make_image(120, 80, "RGB", seed=5).save(buffer, "JPEG", quality=90)
    data = buffer.getvalue()
    header = probe(io.BytesIO(data), 10**8)
    *_, (_, _, target, _) = decode_rows(data, header, [0, 80])
    assert TARGETS.memory_of(target) is not None
    tile = Tile.of_parent(Box(10, 20, 70, 65), target)

    region = vips.from_tile(tile)

    assert vips.to_image(region, "RGB").tobytes() == target.crop((10, 20, 70, 65)).tobytes()
    assert tile.parent() is not None  # libvips read the target itself: the tile was never cut


def test_memory_is_known_only_for_live_targets():
    target = TARGETS.image("RGB", 16, 8)
    key = id(target)
    assert TARGETS.memory_of(target) is not None
    assert TARGETS.memory_of(Image.new("RGB", (16, 8))) is None
    del target
    gc.collect()
    assert key not in TARGETS._memory


def test_an_operation_in_place_gives_the_whole_image_result_for_the_box():
    image = make_image(200, 150, "RGB", seed=3)
    whole = vips.from_image(image).gaussblur(2.5)
    region, out = Box(40, 30, 150, 120), Box(50, 40, 140, 110)  # 10 px of margin: the blur reaches ~5

    tiled = vips.crop(
        vips.in_place(vips.from_image(image.crop(region.as_tuple())), region, Size(200, 150)).gaussblur(2.5), out
    )

    assert vips.to_image(tiled, "RGB").tobytes() == vips.to_image(vips.crop(whole, out), "RGB").tobytes()


def test_in_place_checks_the_region_fills_its_box():
    with pytest.raises(ValueError, match="does not fill"):
        vips.in_place(vips.from_image(make_image(10, 10)), Box(0, 0, 11, 10), Size(20, 20))


def test_the_whole_image_and_box_pass_through():
    image = vips.from_image(make_image(10, 10))
    assert vips.in_place(image, Box(0, 0, 10, 10), Size(10, 10)) is image
    assert vips.crop(image, Box(0, 0, 10, 10)) is image
    assert vips.version().count(".") == 2


def test_a_tile_of_a_whole_decode_target_runs_on_the_target_itself():
    buffer = io.BytesIO()
    make_image(120, 80, "RGB", seed=6).save(buffer, "JPEG", quality=90)
    header = probe(io.BytesIO(buffer.getvalue()), 10**8)
    *_, (_, _, target, _) = decode_rows(buffer.getvalue(), header, [0, 80])
    tile = Tile.of_parent(Box(10, 20, 70, 65), target)

    whole = vips.whole_target(tile, Size(120, 80))

    assert (whole.width, whole.height, whole.bands) == (120, 80, 4)  # the stored pixels, padding included
    assert vips.whole_target(Tile.of_parent(Box(0, 0, 5, 5), target), Size(120, 80)) is whole  # one per target
    assert vips.to_image(vips.without_padding(whole, "RGB"), "RGB").tobytes() == target.tobytes()
    assert vips.whole_target(tile, Size(121, 80)) is None  # not the image the step reads
    assert vips.whole_target(Tile.from_image(tile.box, tile.view()), Size(120, 80)) is None  # not a target's part
    key = id(target)
    del target, tile
    gc.collect()
    assert key not in vips._WHOLE  # its mapping is not kept alive by the libvips image
