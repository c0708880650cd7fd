"""The baselines Tileflow is compared with, each doing the same work the way its user would write it.

- `pillow_chain`: a plain sequential Pillow script (decode, resize 0.5 Lanczos, text on an RGBA overlay,
  alpha composite, encode);
- `vips_chain`: the same with libvips through pyvips, as a user who cares about speed would;
  `vips_thumbnail_chain` with libvips' `thumbnail` (shrink-on-load), `vips_blur_png` (`gaussblur` to PNG),
  `vips_chains_in_threads` (many chains at once);
- Thumbor runs as its own server (see `thumbor_server.py`): it needs Pillow < 13, so it lives in its own venv.

Run as a script (`python bench/baselines.py pillow SRC --format jpeg`) it does one Pillow chain in a fresh
process and prints its time and memory as JSON, so its peak RSS is measured alone.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
import warnings
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

WATERMARK_TEXT = "© ACME"
WATERMARK_OPACITY = 0.5
WATERMARK_FONT_SIZE = 100  # px; Tileflow's flows set the same size, so both draw the same text
JPEG_QUALITY = 85

# 96 MP is over Pillow's decompression-bomb warning threshold; a user who opens such photos silences it.
Image.MAX_IMAGE_PIXELS = 200_000_000
warnings.simplefilter("ignore", Image.DecompressionBombWarning)


def pillow_watermark(
    image: Image.Image,
    text: str = WATERMARK_TEXT,
    font_size: int = WATERMARK_FONT_SIZE,
    opacity: float = WATERMARK_OPACITY,
) -> Image.Image:
    """Return `image` with `text` in its bottom-right corner, drawn on an RGBA overlay and alpha-composited."""
    overlay = Image.new("RGBA", image.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    font = ImageFont.load_default(size=font_size)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
    margin = font_size // 2
    corner = (image.width - (right - left) - margin - left, image.height - (bottom - top) - margin - top)
    draw.text(corner, text, font=font, fill=(255, 255, 255, round(255 * opacity)))
    return Image.alpha_composite(image.convert("RGBA"), overlay).convert("RGB")


def pillow_chain(source: Path, output_format: str = "jpeg", scale: float = 0.5) -> bytes:
    """Decode `source`, resize by `scale` (Lanczos), watermark, and encode as JPEG q85 or PNG."""
    with Image.open(source) as opened:
        image = opened.convert("RGB")
    image = image.resize((round(image.width * scale), round(image.height * scale)), Image.Resampling.LANCZOS)
    image = pillow_watermark(image)
    buffer = io.BytesIO()
    if output_format == "jpeg":
        image.save(buffer, "JPEG", quality=JPEG_QUALITY)
    else:
        image.save(buffer, "PNG")
    return buffer.getvalue()


def vips_watermark(image):
    """Return pyvips image `image` with the watermark text composited over its bottom-right corner."""
    import pyvips

    mask = pyvips.Image.text(WATERMARK_TEXT, font=f"sans {WATERMARK_FONT_SIZE}px", dpi=72)
    alpha = (mask * WATERMARK_OPACITY).cast("uchar")
    overlay = (mask.new_from_image([255, 255, 255]).copy(interpretation="srgb")).bandjoin(alpha)
    margin = WATERMARK_FONT_SIZE // 2
    image = image.composite2(
        overlay, "over", x=image.width - mask.width - margin, y=image.height - mask.height - margin
    )
    return image.flatten().cast("uchar")


def vips_chain(source: Path, scale: float = 0.5) -> bytes:
    """Do `pillow_chain`'s JPEG work with libvips: lanczos3 resize, pyvips text composited over, jpegsave q85."""
    import pyvips

    image = pyvips.Image.new_from_file(str(source), access="sequential")
    image = image.resize(scale, kernel="lanczos3")
    return vips_watermark(image).jpegsave_buffer(Q=JPEG_QUALITY)


def vips_thumbnail_chain(source: Path, width: int = 3000, height: int = 2000) -> bytes:
    """Fit `source` inside width x height with libvips' `thumbnail` (JPEG shrink-on-load), watermark, jpegsave q85."""
    import pyvips

    image = pyvips.Image.thumbnail(str(source), width, height=height)
    return vips_watermark(image).jpegsave_buffer(Q=JPEG_QUALITY)


def vips_blur_png(source: Path, radius: float = 8.0) -> bytes:
    """Blur `source` with libvips' `gaussblur(radius)` (its defaults) and save it as PNG (its defaults)."""
    import pyvips

    image = pyvips.Image.new_from_file(str(source), access="sequential")
    return image.gaussblur(radius).pngsave_buffer()


def vips_chains_in_threads(source: Path, count: int) -> list[bytes]:
    """Run `vips_chain` on `source` `count` times at once, one thread each (as a Python service would)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: vips_chain(source), range(count)))


def vips_ready() -> bool:
    """Tell whether pyvips and its libvips load here; turn libvips' operation cache off so runs are not reused."""
    try:
        import pyvips
    except (ImportError, OSError):
        return False
    pyvips.cache_set_max(0)
    return True


def _status_kb(key: str) -> int:
    for line in Path(f"/proc/{os.getpid()}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"no {key} in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("engine", choices=["pillow", "vips"])
    parser.add_argument("source", type=Path)
    parser.add_argument("--format", choices=["jpeg", "png"], default="jpeg")
    args = parser.parse_args()
    if args.engine == "vips":
        vips_ready()
    # Fonts are part of the imports: the first text drawing loads FreeType, count it as start-up.
    ImageFont.load_default(size=WATERMARK_FONT_SIZE)
    before = _status_kb("VmRSS")
    started = time.perf_counter()
    data = pillow_chain(args.source, args.format) if args.engine == "pillow" else vips_chain(args.source)
    seconds = time.perf_counter() - started
    json.dump(
        {"seconds": seconds, "rss_before_kb": before, "hwm_kb": _status_kb("VmHWM"), "bytes": len(data)}, sys.stdout
    )


if __name__ == "__main__":
    main()
