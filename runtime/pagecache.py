"""Files written once and read rarely (uploads, outputs) give their page cache back once they are on disk.

Writing a file copies it into page-cache pages; in this virtual machine a page the guest has not used
lately is slow to fill (the host backs freed guest memory lazily): writing 8 MB took 25-27 ms of CPU
into such pages and 2-3 ms into pages freed just before. Each 24 MP run writes its 7.7 MB upload and
its output, so every run paid the slow copy, and the cache filled with files nobody reads again soon.
Dropping a file's pages as soon as it is synced keeps a small set of pages in circulation: the next
run's writes reuse them. Measured (8 MB files, one after another, 0.3 s apart): write + fsync + drop
3.1-3.9 ms of CPU and ~8 ms of wall time, against 25-27 ms of CPU for the write alone.

What it costs: a file read again soon after (a download of a result) comes from the disk, ~1.4 ms a
megabyte here; and every file is synced, which the uploads were not (they should have been).
"""

from __future__ import annotations

import contextlib
import os
from typing import IO


def settle(file: IO[bytes]) -> None:
    """Sync `file` (open for writing) to the disk and drop its pages from the page cache."""
    file.flush()
    descriptor = file.fileno()
    os.fsync(descriptor)
    release(descriptor)


def release(descriptor: int) -> None:
    """Drop the clean cached pages of an open file (best effort: a no-op where the call is missing)."""
    with contextlib.suppress(OSError, AttributeError):  # AttributeError: no posix_fadvise (macOS)
        os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
