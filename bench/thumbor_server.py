"""Thumbor, the thumbnail server, as a baseline: its own venv and a server process on a loopback port.

Thumbor 7.8 requires Pillow < 13 while Tileflow pins Pillow 13, so it cannot share the project's venv;
`ensure_thumbor_venv` builds `var/bench/thumbor-venv` from `bench/requirements-thumbor.txt` on first use.
Its PIL engine calls `Image.draft` before resizing a JPEG (fast DCT-domain downscale), which stays on.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from baselines import JPEG_QUALITY, WATERMARK_FONT_SIZE, WATERMARK_OPACITY, WATERMARK_TEXT
from measure import free_port, log
from photos import CACHE
from PIL import Image, ImageDraw, ImageFont

BENCH = Path(__file__).resolve().parent
VENV = CACHE / "thumbor-venv"
REQUIREMENTS = BENCH / "requirements-thumbor.txt"
WATERMARK_NAME = "thumbor-watermark.png"


def ensure_thumbor_venv() -> Path:
    """Return the thumbor executable, creating its venv and installing the pinned thumbor when needed."""
    stamp = VENV / ".requirements.sha256"
    wanted = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    executable = VENV / "bin" / "thumbor"
    if executable.exists() and stamp.exists() and stamp.read_text() == wanted:
        return executable
    log(f"installing thumbor into {VENV} (it needs Pillow < 13, so not into the project's venv) …")
    if not (VENV / "bin" / "python").exists():
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    subprocess.run(
        [
            str(VENV / "bin" / "python"),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "-r",
            str(REQUIREMENTS),
        ],
        check=True,
    )
    stamp.write_text(wanted)
    return executable


def ensure_watermark_image() -> str:
    """Write the watermark Thumbor composites (the same text and size as the others') and return its name."""
    path = CACHE / WATERMARK_NAME
    if not path.exists():
        font = ImageFont.load_default(size=WATERMARK_FONT_SIZE)
        left, top, right, bottom = ImageDraw.Draw(Image.new("L", (1, 1))).textbbox((0, 0), WATERMARK_TEXT, font=font)
        mark = Image.new("RGBA", (right - left, bottom - top), (255, 255, 255, 0))
        ImageDraw.Draw(mark).text((-left, -top), WATERMARK_TEXT, font=font, fill=(255, 255, 255, 255))
        mark.save(path)
    return WATERMARK_NAME


class ThumborServer:
    """A thumbor server reading photos from var/bench/, with no storage and no result storage (no caching)."""

    def __init__(self) -> None:
        self.executable = ensure_thumbor_venv()
        self.watermark = ensure_watermark_image()
        self.port = free_port()
        self.process: subprocess.Popen | None = None
        self.config = CACHE / "thumbor.conf"
        self.log_path = CACHE / "thumbor.log"

    def url_path(self, photo: Path, width: int, height: int) -> str:
        """Return the unsafe URL path that resizes `photo` to width x height and adds the watermark."""
        transparency = round(100 * (1 - WATERMARK_OPACITY))
        margin = WATERMARK_FONT_SIZE // 2
        return (
            f"/unsafe/{width}x{height}/filters:watermark({self.watermark},-{margin},-{margin},{transparency})"
            f":quality({JPEG_QUALITY})/{photo.name}"
        )

    def __enter__(self) -> ThumborServer:
        self.config.write_text(
            "\n".join(
                [
                    "LOADER = 'thumbor.loaders.file_loader'",
                    f"FILE_LOADER_ROOT_PATH = {str(CACHE)!r}",
                    "STORAGE = 'thumbor.storages.no_storage'",
                    "RESULT_STORAGE = None",
                    "ENGINE = 'thumbor.engines.pil'",
                    f"QUALITY = {JPEG_QUALITY}",
                    "ALLOW_UNSAFE_URL = True",
                    "AUTO_WEBP = False",
                    "PRESERVE_EXIF_INFO = False",
                    "RESPECT_ORIENTATION = False",
                    "MAX_AGE = 0",
                    "",
                ]
            )
        )
        with self.log_path.open("wb") as output:
            self.process = subprocess.Popen(
                [
                    str(self.executable),
                    "--ip",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--conf",
                    str(self.config),
                    "--log-level",
                    "warning",
                ],
                stdout=output,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONUNBUFFERED": "1"},
            )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"thumbor exited at start: {self.log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthcheck", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.2)
        raise RuntimeError("thumbor did not answer /healthcheck within 60 s")

    def __exit__(self, *exc_info: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
