"""Memory for the decoder's full-size targets, zeroed again and reused from one run to the next.

The streaming JPEG decoder writes into a full-size target that must start all zero (see `decode`): a
24 MP photo needs 96 MB. Fresh anonymous pages are zero, but each first touch is a page fault, and in
this VM those faults cost a 24 MP decode ~25-35 ms of its ~150 ms, on the run's critical path. So a
target's mapping outlives its image: when the image is gone (its tiles and the decoder with it), a
background thread zeroes the mapping again (~10 ms for 96 MB, off every run's path) and keeps it for
the next target of the same size. Decode of the 24 MP bench photo: 147 → 122 ms with the zeroing
counted, median of 8.

A mapping is handed out again only after `weakref.finalize` reported its image dead and the zeroing
finished, so no reader of an old image can see a new one's pixels. What is kept is bounded: at most
KEEP_BYTES of zeroed mappings, each dropped after IDLE_SECONDS unused, so an idle server gives the
memory back.

Large targets (RELEASE_FROM and up: a 96 MP one is 384 MB) give their rows back as the run goes: once
no reader needs rows [0, y) any more, their whole pages go back to the kernel (`MADV_DONTNEED`), so
such a run holds the band of rows between its readers and its decoder, not the whole image. Those
rows then read as zero. The caller vouches for "no reader": the source store once its tile rows are
released by every task and no tile cut from the target outlives its task (`runtime.chain` cuts what
it hands on), or the decoder itself once it copied a band out. A target that gave rows back is not
kept for reuse: zeroing it again would fault every page back in, the memory it just gave up.
"""

from __future__ import annotations

import ctypes
import mmap
import queue
import threading
import time
import weakref

from PIL import Image

KEEP_BYTES = 512 * 1024 * 1024  # a 96 MP target is 384 MB
IDLE_SECONDS = 30.0
RELEASE_FROM = 128 * 1024 * 1024  # targets this large give their rows back (> 32 MP); smaller ones are kept whole


def _fresh(size: int) -> mmap.mmap:
    # Private: a shared anonymous mapping is shmem, slower to fault in (a 24 MP decode: 151 → 138 ms).
    return mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)


def _zero(pages: mmap.mmap) -> None:
    view = (ctypes.c_char * len(pages)).from_buffer(pages)
    try:
        ctypes.memset(ctypes.addressof(view), 0, len(pages))  # a foreign call: the GIL is released
    finally:
        del view


class TargetMemory:
    """Hand out all-zero images on mappings that are reused once their previous image is gone."""

    def __init__(
        self, keep_bytes: int = KEEP_BYTES, idle_seconds: float = IDLE_SECONDS, release_from: int = RELEASE_FROM
    ) -> None:
        self.keep_bytes = keep_bytes
        self.idle_seconds = idle_seconds
        self.release_from = release_from
        self.reused = 0  # images made on a kept mapping (for tests and curiosity)
        self._lock = threading.Lock()  # never taken by a finalizer: GC may run one while it is held
        self._kept: list[tuple[mmap.mmap, float]] = []  # zeroed and unused, with when they were kept
        self._returned: queue.SimpleQueue = queue.SimpleQueue()  # mappings to zero; put() is reentrant
        self._zeroer: threading.Thread | None = None
        self._memory: dict[int, mmap.mmap] = {}  # id(image) -> its mapping, while the image lives
        self._releasers: dict[int, RowReleaser] = {}  # id(image) -> what gives its rows back, when large

    def image(self, mode: str, width: int, height: int) -> Image.Image:
        """Return an all-zero `mode` image (RGB or RGBX: 4 bytes a pixel) of `width` x `height`."""
        if mode not in ("RGB", "RGBX"):
            raise ValueError(f"no zeroed {mode} image: RGB and RGBX only (4 bytes a pixel)")
        self._start_zeroer()
        size = max(1, width * height * 4)
        pages = self._take(size)
        if pages is None:
            pages = _fresh(size)
        else:
            self.reused += 1
        # map_buffer is what Image.frombuffer uses; called directly since frombuffer refuses RGB, whose rows
        # Pillow nonetheless stores 4 bytes a pixel, exactly this layout. The image keeps `pages` alive.
        image = Image.Image()._new(Image.core.map_buffer(pages, (width, height), "raw", 0, (mode, width * 4, 1)))
        self._memory[id(image)] = pages
        weakref.finalize(image, self._give_back, pages, id(image)).atexit = False
        return image

    def memory_of(self, image: Image.Image) -> mmap.mmap | None:
        """Return the mapping under an image made here (rows of `width * 4` bytes), or None for any other image.

        For readers that take raw memory (libvips' `new_from_memory`); they must keep `image` alive while they read.
        """
        return self._memory.get(id(image))

    def releaser(self, image: Image.Image) -> RowReleaser | None:
        """Return what gives `image`'s finished rows back, or None: not a target made here, or not large enough.

        Asked once for an image, the same releaser comes back each time; the mapping is then not kept for reuse.
        """
        pages = self._memory.get(id(image))
        if pages is None or len(pages) < self.release_from:
            return None
        releaser = self._releasers.get(id(image))
        if releaser is None:
            releaser = self._releasers.setdefault(id(image), RowReleaser(pages, image.width * 4))
        return releaser

    def rows_released(self, image: Image.Image) -> int:
        """Return how many of `image`'s top rows were given back (they read as zero now); 0 for any other image."""
        releaser = self._releasers.get(id(image))
        return 0 if releaser is None else releaser.rows

    def kept_bytes(self) -> int:
        with self._lock:
            return sum(len(pages) for pages, _ in self._kept)

    def wait_idle(self, timeout: float = 5.0) -> bool:
        """Wait until every mapping returned so far is zeroed and kept (for tests); False on timeout."""
        self._start_zeroer()
        done = threading.Event()
        self._returned.put(done)  # the zeroer takes returns in order: when it gets here, the rest is done
        return done.wait(timeout)

    def _start_zeroer(self) -> None:
        with self._lock:
            if self._zeroer is None:
                self._zeroer = threading.Thread(target=self._zero_returned, name="tileflow-zeroer", daemon=True)
                self._zeroer.start()

    def _take(self, size: int) -> mmap.mmap | None:
        with self._lock:
            for position, (pages, _) in enumerate(self._kept):
                if len(pages) == size:
                    del self._kept[position]
                    return pages
        return None

    def _give_back(self, pages: mmap.mmap, image_id: int) -> None:
        """The image on `pages` is gone: queue the mapping for zeroing (a finalizer: takes no lock)."""
        self._memory.pop(image_id, None)  # atomic in CPython, so safe without the lock
        if self._releasers.pop(image_id, None) is not None:
            return  # rows given back: dropped, see the module's docstring
        if len(pages) <= self.keep_bytes:
            self._returned.put(pages)
        # else dropped: unmapped when the last reference (the dying image's core) goes

    def _zero_returned(self) -> None:
        while True:
            try:
                item = self._returned.get(timeout=self.idle_seconds)
            except queue.Empty:
                item = None
            if isinstance(item, threading.Event):
                item.set()
            elif item is not None:
                _zero(item)
                with self._lock:
                    self._kept.append((item, time.monotonic()))
                    while sum(len(pages) for pages, _ in self._kept) > self.keep_bytes:
                        self._kept.pop(0)  # the oldest first
            limit = time.monotonic() - self.idle_seconds
            with self._lock:
                self._kept = [(pages, since) for pages, since in self._kept if since >= limit]


class RowReleaser:
    """Give a target's top rows back to the kernel, whole pages at a time, as the rows finished with grow."""

    __slots__ = ("_given", "_lock", "_pages", "_row_bytes")

    def __init__(self, pages: mmap.mmap, row_bytes: int) -> None:
        self._pages = pages
        self._row_bytes = row_bytes
        self._given = 0  # bytes from the start given back: a multiple of the page size
        self._lock = threading.Lock()

    @property
    def rows(self) -> int:
        """Rows given back in full (they read as zero); the row the boundary cuts keeps its last pixel."""
        return self._given // self._row_bytes

    def release(self, rows: int) -> None:
        """Rows [0, rows) are read by nobody any more: give back the whole pages they fill."""
        end = min(rows * self._row_bytes, len(self._pages)) // mmap.PAGESIZE * mmap.PAGESIZE
        with self._lock:
            start = self._given
            if end <= start:
                return
            self._given = end
            self._pages.madvise(mmap.MADV_DONTNEED, start, end - start)


TARGETS = TargetMemory()
