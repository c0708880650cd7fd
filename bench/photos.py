"""Test photos for the benchmarks: gradients, noise and shapes saved as JPEG q90, cached under var/bench/.

Flat synthetic images compress and decode unrealistically fast; sensor-like noise on smooth gradients
with hard-edged structure gives a JPEG whose size per megapixel (~1–2 bytes/px at q90) and decode
cost are close to a camera photo's.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageFilter, ImageFont

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "var" / "bench"
SIZES = {"2mp": (1732, 1155), "6mp": (3000, 2000), "24mp": (6000, 4000), "96mp": (12000, 8000)}
GENERATOR_VERSION = 1  # bump to regenerate cached photos after changing the recipe


def photo_path(name: str) -> Path:
    """Return the cache path of the named test photo (one of SIZES)."""
    width, height = SIZES[name]
    return CACHE / f"photo-{name}-{width}x{height}-v{GENERATOR_VERSION}.jpg"


def make_photo(size: tuple[int, int], seed: int = 1) -> Image.Image:
    """Return a synthetic RGB photo of `size`: gradients, shapes, text, then grain."""
    width, height = size
    rng = random.Random(seed)
    red = Image.linear_gradient("L").resize(size, Image.Resampling.BILINEAR)
    green = Image.radial_gradient("L").resize(size, Image.Resampling.BILINEAR)
    blue = Image.linear_gradient("L").rotate(90).resize(size, Image.Resampling.BILINEAR)
    image = Image.merge("RGB", (red, green, blue))
    draw = ImageDraw.Draw(image)
    scale = min(width, height)
    for _ in range(120):
        x, y = rng.randrange(width), rng.randrange(height)
        extent = rng.randrange(scale // 40, scale // 6)
        colour = tuple(rng.randrange(256) for _ in range(3))
        box = (x, y, x + extent, y + rng.randrange(scale // 40, scale // 6))
        shape = rng.choice(("rectangle", "ellipse", "line"))
        if shape == "rectangle":
            draw.rectangle(box, fill=colour)
        elif shape == "ellipse":
            draw.ellipse(box, fill=colour, outline=(0, 0, 0), width=max(1, scale // 800))
        else:
            draw.line(box, fill=colour, width=max(1, scale // 300))
    font = ImageFont.load_default(size=max(12, scale // 25))
    for row in range(6):
        draw.text(
            (scale // 20, row * height // 6 + scale // 40),
            f"Tileflow bench {width}x{height} row {row}",
            fill=(250, 250, 250),
            font=font,
        )
    # Soften the synthetic edges a little, as a lens would, before the grain.
    image = image.filter(ImageFilter.BoxBlur(1))
    grain = Image.merge("RGB", [Image.effect_noise(size, 10) for _ in range(3)])
    return ImageChops.add(image, grain, scale=1.0, offset=-128)


def ensure_photo(name: str) -> Path:
    """Return the path of the named test photo, generating and caching it on first use."""
    path = photo_path(name)
    if path.exists():
        return path
    print(f"bench: generating {path.name} …", file=sys.stderr, flush=True)
    path.parent.mkdir(parents=True, exist_ok=True)
    image = make_photo(SIZES[name], seed=len(name))
    partial = path.with_suffix(".partial")
    image.save(partial, "JPEG", quality=90)
    partial.rename(path)
    return path


if __name__ == "__main__":
    for photo in sys.argv[1:] or SIZES:
        print(ensure_photo(photo))
