"""Uploads and outputs give their page cache back once they are on disk (`runtime.pagecache`)."""

import asyncio
import ctypes
import mmap
import os

import pytest
from PIL import Image

from runtime import pagecache
from runtime.encoders import make_encoder
from runtime.outputs import FollowedFile, OutputWriter
from runtime.tiles import Size
from tests.runtime.pictures import photo_like

PAGE = mmap.PAGESIZE


def cached_pages(path) -> int:
    """How many of the file's pages are in the page cache (mincore over a mapping of it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mmap.restype = ctypes.c_void_p
    libc.mmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long)
    libc.munmap.argtypes = (ctypes.c_void_p, ctypes.c_size_t)
    libc.mincore.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_char_p)
    size = os.path.getsize(path)
    pages = (size + PAGE - 1) // PAGE
    with open(path, "rb") as file:
        address = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, file.fileno(), 0)
        assert address not in (None, ctypes.c_void_p(-1).value)
        try:
            vector = ctypes.create_string_buffer(pages)
            assert libc.mincore(address, size, vector) == 0, os.strerror(ctypes.get_errno())
            return sum(byte & 1 for byte in vector.raw)
        finally:
            libc.munmap(address, size)


@pytest.fixture
def dropping_filesystem(tmp_path):
    """Skip where the file system keeps pages whatever it is told (tmpfs: the cache is the file)."""
    probe = tmp_path / "probe"
    with open(probe, "wb") as file:
        file.write(os.urandom(64 * PAGE))
        assert cached_pages(probe) > 0
        pagecache.settle(file)
    if cached_pages(probe) > 0:
        pytest.skip("this file system keeps a synced file's pages after POSIX_FADV_DONTNEED")
    return tmp_path


def test_a_written_file_is_kept_whole_and_leaves_the_cache_once_settled(dropping_filesystem):
    data = os.urandom(256 * PAGE + 123)
    path = dropping_filesystem / "upload.jpg"
    with open(path, "wb") as file:
        file.write(data)
        assert cached_pages(path) == 257  # written, not yet on disk: all of it is in the cache
        pagecache.settle(file)
        assert cached_pages(path) == 0
    assert path.read_bytes() == data  # read back from the disk


def test_an_output_leaves_the_cache_when_it_is_finished(dropping_filesystem):
    picture = photo_like(640, 480)
    path = dropping_filesystem / "out.png"

    async def write() -> None:
        writer = OutputWriter("out", path, make_encoder("png", Size(640, 480), "RGB"))
        for top in range(0, 480, 96):
            await writer.write_band(picture.crop((0, top, 640, top + 96)))
        assert cached_pages(path) > 0  # still being written: followers read it from memory
        await writer.finish()

    asyncio.run(write())
    assert cached_pages(path) == 0
    with Image.open(path) as written:
        assert written.convert("RGB").tobytes() == picture.tobytes()


def test_a_follower_gives_back_what_it_read_from_the_disk(dropping_filesystem):
    path = dropping_filesystem / "out.png"
    with open(path, "wb") as file:
        photo_like(640, 480).save(file, "PNG")
        os.fsync(file.fileno())  # on disk, as a finished output is; its pages still cached
    data = path.read_bytes()
    assert cached_pages(path) > 0
    followed = FollowedFile("out", path, "image/png")
    followed.size, followed.complete = len(data), True

    async def download() -> bytes:
        return b"".join([chunk async for chunk in followed.follow()])

    assert asyncio.run(download()) == data
    assert cached_pages(path) == 0


def test_a_stored_upload_is_on_disk_and_out_of_the_cache(dropping_filesystem):
    from types import SimpleNamespace

    from flows.executions import store_input

    data = os.urandom(300 * PAGE)
    path = dropping_filesystem / "inputs" / "upload.jpg"
    pieces = [memoryview(data)[:1000], memoryview(data)[1000:]]  # as an upload arrives
    store_input(SimpleNamespace(input_file=SimpleNamespace(path=str(path))), pieces)
    assert cached_pages(path) == 0
    assert path.read_bytes() == data
