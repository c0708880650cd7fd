"""What every figure shares: timing, medians, memory of a process, the machine's description, the result row."""

from __future__ import annotations

import os
import platform
import re
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path


def log(message: str) -> None:
    """Print a progress line to stderr (stdout carries only the table)."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


@dataclass
class Figure:
    """One line of the results table: a ratio, the goal it is held to, and the numbers behind it."""

    number: str
    name: str
    ratio: float | None
    goal: str  # "<= 0.15", ">= 1.0", or "" when the line is only reported
    detail: str
    runs: int
    notes: list[str] = field(default_factory=list)
    failures: int = 0  # runs that did not answer a complete image: any fails the figure
    unit: str = ""  # "" for a ratio; "ms" when the line is a latency held to an absolute goal

    @property
    def verdict(self) -> str:
        if self.failures:
            return "MISSED (failures)"
        if self.ratio is None:
            return "n/a"
        if not self.goal:
            return "reported"
        operator, value = self.goal.split()
        met = self.ratio <= float(value) if operator == "<=" else self.ratio >= float(value)
        return "met" if met else "MISSED"


def median(values: list[float]) -> float:
    """Return the median of `values`."""
    return statistics.median(values)


def fmt_seconds(value: float) -> str:
    """Return `value` seconds as a short human string."""
    return f"{value * 1000:.0f} ms" if value < 1 else f"{value:.2f} s"


def alternate(rounds: int, *contenders: Callable[[], None]) -> None:
    """Run each contender once per round, rotating who goes first so neither always has a warm cache."""
    for round_number in range(rounds):
        shift = round_number % len(contenders)
        for contender in contenders[shift:] + contenders[:shift]:
            contender()


def free_port() -> int:
    """Return a TCP port on the loopback interface that is free right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def proc_status_kb(pid: int, key: str) -> int:
    """Return a `VmRSS`/`VmHWM`-style field of /proc/PID/status in KiB."""
    text = Path(f"/proc/{pid}/status").read_text()
    match = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    if match is None:
        raise RuntimeError(f"/proc/{pid}/status has no {key}")
    return int(match.group(1))


class RssSampler:
    """Sample a process's resident set every `interval` seconds and keep the maximum (VmHWM cannot be reset)."""

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        self.pid = pid
        self.interval = interval
        self.baseline_kb = proc_status_kb(pid, "VmRSS")
        self.peak_kb = self.baseline_kb
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.peak_kb = max(self.peak_kb, proc_status_kb(self.pid, "VmRSS"))
            except (FileNotFoundError, ProcessLookupError):
                return
            time.sleep(self.interval)

    @contextmanager
    def sampling(self) -> Iterator[RssSampler]:
        """Sample while the block runs."""
        self._thread.start()
        try:
            yield self
        finally:
            self._stop.set()
            self._thread.join()


def machine_description() -> dict[str, str]:
    """Return the CPU model, cores, RAM, OS, Python and library versions of this machine."""
    import PIL

    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    flags = re.search(r"^flags\s*:\s*(.+)$", cpuinfo, re.MULTILINE)
    meminfo = Path("/proc/meminfo").read_text()
    total_kb = int(re.search(r"^MemTotal:\s+(\d+) kB", meminfo, re.MULTILINE).group(1))
    vector = [name for name in ("avx512f", "avx2", "sse4_2") if flags and name in flags.group(1).split()]
    cpu = (model.group(1).strip() if model else platform.processor()) + (f" ({', '.join(vector)})" if vector else "")
    description = {
        "CPU": cpu,
        "cores": f"{os.cpu_count()} logical ({len(os.sched_getaffinity(0))} usable)",
        "RAM": f"{total_kb / 1024 / 1024:.1f} GiB",
        "OS": f"{platform.system()} {platform.release()}",
        "load average at start": " ".join(f"{value:.2f}" for value in os.getloadavg()) + " (1, 5, 15 min)",
        "Python": platform.python_version(),
        "Pillow": PIL.__version__,
    }
    try:
        import pyvips

        release = ".".join(str(pyvips.version(part)) for part in range(3))
        description["libvips"] = f"{release} (pyvips {pyvips.__version__})"
    except (ImportError, OSError):
        description["libvips"] = "not installed"
    return description
