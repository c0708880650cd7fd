"""How this process asks the C allocator for memory: reuse freed blocks instead of faulting in new pages.

A run's buffers are megabytes each (a 10 MB upload is copied four times on its way to the view, tiles
and their regions are 1-4 MB). glibc serves blocks above its mmap threshold (128 kB at start, rising
only as large blocks are freed) with fresh mappings, and gives freed memory at the top of its heaps
back to the kernel: every run then touched new pages, and each first touch is a page fault, costly
in a virtual machine. With the threshold at 32 MB (the top of glibc's own dynamic range) and up to
128 MB of free heap kept, those buffers come from memory the process already has. Measured with
`bench/` (A/B, 16 alternating runs of each): first byte of the 24 MP chain 66 → 62 ms and total
308 → 301 ms; with fast decode (figure 4) 65 → 55 ms and 189 → 169 ms.

The decoder's full-size targets are mapped separately, kept for reuse by `runtime.targets` under
bounds of their own; what malloc keeps is bounded by the trim threshold per heap.
An operator's own `MALLOC_*` environment variables win: nothing is changed when one is set.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3

MMAP_THRESHOLD = 32 * 1024 * 1024
TRIM_THRESHOLD = 128 * 1024 * 1024

LARGE_RUN_BYTES = 256 * 1024 * 1024  # a run that held this much gives its freed memory back when it ends
TRIM_EVERY_SECONDS = 5.0  # after smaller runs, while others are still going: at most this often


def tune_allocator() -> bool:
    """Set glibc's mmap and trim thresholds for this process; return False where that is not possible."""
    if any(name.startswith("MALLOC_") for name in os.environ):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc (or no symbol table to look it up in)
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


def give_back_free_memory() -> bool:
    """Return the free memory of every malloc arena to the kernel (glibc's malloc_trim); False if not glibc.

    With the thresholds above, a run's tiles and Pillow's 16 MB image blocks come from the heap, and
    each run's threads may use an arena of their own: what a finished run freed stayed resident in
    its arenas, so twelve 144 MP runs, never more than two at a time, left the server at 5.7 GB.
    Called when a run ends, before its memory budget is released: the next run then finds the
    memory the budget says is free. Takes a few ms, in a thread.
    """
    try:
        malloc_trim = ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError):
        return False
    malloc_trim.argtypes = (ctypes.c_size_t,)
    malloc_trim.restype = ctypes.c_int
    malloc_trim(0)
    return True


class FreeMemoryPolicy:
    """Decide when a run's end gives the freed memory back (`give_back_free_memory`), and do it.

    A trim costs a few ms and, worse, hands back pages the next run faults in again: after every
    2 MP batch item it was ~3 ms of CPU a photo (43-45 -> 40-42 ms; batch of 200, 3 batches each). So it is
    done at once after a large run (the 144 MP case above), when the last run of the process ends (an
    idle server keeps nothing), and otherwise at most every TRIM_EVERY_SECONDS, which bounds what a
    stream of small runs leaves in the arenas.
    """

    def __init__(self, large_run_bytes: int = LARGE_RUN_BYTES, every_seconds: float = TRIM_EVERY_SECONDS) -> None:
        self.large_run_bytes = large_run_bytes
        self.every_seconds = every_seconds
        self.trims = 0
        self._last = time.monotonic()
        self._lock = threading.Lock()

    def run_ended(self, run_bytes: int, *, others_running: bool) -> bool:
        """Give the freed memory back if it is due after a run that held `run_bytes`; return whether it was."""
        with self._lock:
            now = time.monotonic()
            due = run_bytes >= self.large_run_bytes or not others_running or now - self._last >= self.every_seconds
            if not due:
                return False
            self._last = now
            self.trims += 1
        give_back_free_memory()
        return True


FREE_MEMORY = FreeMemoryPolicy()
