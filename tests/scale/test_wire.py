"""Tiles and runs on the wire: raw and zlib-ng encoded tiles come back byte-identical, a run's limits whole."""

from __future__ import annotations

import msgpack
import pytest
from PIL import Image

from runtime.bridge import tile_from_wire, tile_to_wire
from runtime.placement import spec_to_wire
from runtime.spec import RunLimits, RunSpec
from runtime.tiles import Box, Tile
from tests.runtime.pictures import photo_like


def flat_tile() -> Tile:
    image = Image.new("RGBA", (200, 150), (10, 20, 30, 255))
    image.paste(photo_like(40, 30, "RGBA"), (5, 7))
    return Tile.from_image(Box(128, 256, 328, 406), image)


@pytest.mark.parametrize("codec", ["none", "zlib-ng"])
def test_tile_round_trips_through_msgpack(codec):
    tile = flat_tile()
    back = tile_from_wire(msgpack.unpackb(msgpack.packb(tile_to_wire(tile, codec))))
    assert (back.box, back.mode, back.data) == (tile.box, tile.mode, tile.data)


def test_zlib_ng_shrinks_a_flat_tile_and_raw_stays_raw():
    tile = flat_tile()
    assert len(tile_to_wire(tile, "none")) == 3 and tile_to_wire(tile, "none")[2] == tile.data
    encoded = tile_to_wire(tile, "zlib-ng")
    assert encoded[3] == "zlib-ng"
    assert len(encoded[2]) < len(tile.data) / 10


def test_configured_codec_is_used_by_default(settings):
    settings.TILEFLOW = {**settings.TILEFLOW, "WIRE_CODEC": "zlib-ng"}
    assert tile_to_wire(flat_tile())[3] == "zlib-ng"
    settings.TILEFLOW = {**settings.TILEFLOW, "WIRE_CODEC": "none"}
    assert len(tile_to_wire(flat_tile())) == 3


def test_unknown_codecs_are_refused():
    with pytest.raises(ValueError, match="unknown wire codec"):
        tile_to_wire(flat_tile(), "brotli")
    box, mode, data = tile_to_wire(flat_tile(), "none")
    with pytest.raises(ValueError, match="unknown wire codec"):
        tile_from_wire([box, mode, data, "brotli"])


@pytest.mark.parametrize("interactive", [True, False])
def test_a_placed_runs_limits_reach_the_worker_whole(interactive, tmp_path):
    limits = RunLimits(
        tile_size=1024, max_in_flight=3, lease_seconds=7.0, max_attempts=2, interactive=interactive, small_image_tiles=9
    )
    spec = RunSpec("run", {"nodes": [], "edges": []}, tmp_path / "in", tmp_path / "out", limits)
    wire = msgpack.unpackb(msgpack.packb(spec_to_wire(spec, ["piece-0"])))
    assert RunLimits(**wire["limits"]) == limits  # what the worker rebuilds (runtime.hosting)
