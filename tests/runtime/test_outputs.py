import asyncio

from PIL import Image

from runtime.encoders import make_encoder
from runtime.outputs import OutputWriter
from runtime.store import join_row
from runtime.tiles import Box, Size, Tile
from tests.runtime.pictures import photo_like

PICTURE = photo_like(200, 96)


def bands() -> list[Image.Image]:
    return [PICTURE.crop((0, y, 200, y + 32)) for y in range(0, 96, 32)]


async def write(path, *, header_first: bool, lazy: bool) -> OutputWriter:
    writer = OutputWriter("out", path, make_encoder("png", Size(200, 96), "RGB"))
    if header_first:
        await writer.write_header()
        assert writer.size > 0 and path.read_bytes().startswith(b"\x89PNG")
    for band in bands():
        if lazy:
            tiles = [
                Tile.from_image(Box(x, 0, min(x + 64, 200), 32), band.crop((x, 0, min(x + 64, 200), 32)))
                for x in range(0, 200, 64)
            ]
            await writer.write_band(lambda tiles=tiles: join_row(tiles, "RGB", 200))
        else:
            await writer.write_band(band)
    await writer.finish()
    return writer


def test_the_header_goes_out_once_whether_written_first_or_with_the_first_band(tmp_path):
    early = asyncio.run(write(tmp_path / "early.png", header_first=True, lazy=True))
    late = asyncio.run(write(tmp_path / "late.png", header_first=False, lazy=False))
    data = early.path.read_bytes()
    assert data == late.path.read_bytes()
    assert early.size == len(data) and early.complete
    with Image.open(early.path) as decoded:
        assert decoded.convert("RGB").tobytes() == PICTURE.tobytes()


def test_the_first_bytes_a_follower_sees_carry_image_data(tmp_path):
    async def first_visible_bytes() -> bytes:
        writer = OutputWriter("out", tmp_path / "first.png", make_encoder("png", Size(200, 96), "RGB"))
        assert writer.path.read_bytes() == b""  # nothing before a band: a failure can still be answered
        await writer.write_band(bands()[0])
        seen = writer.path.read_bytes()
        writer.abort(remove=True)
        return seen

    seen = asyncio.run(first_visible_bytes())
    assert seen.startswith(b"\x89PNG") and b"IDAT" in seen


def test_a_follower_that_comes_after_a_failed_run_removed_the_file_gets_nothing_not_an_error(tmp_path):
    async def follow_after_the_failure() -> list[bytes]:
        writer = OutputWriter("out", tmp_path / "gone.png", make_encoder("png", Size(200, 96), "RGB"))
        await writer.write_band(bands()[0])
        writer.abort(remove=True)
        assert not writer.path.exists()
        return [chunk async for chunk in writer.follow()]

    assert asyncio.run(follow_after_the_failure()) == []
