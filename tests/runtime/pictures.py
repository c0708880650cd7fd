"""Photo-like test images (noise over gradients) and the independent decoders that check our files."""

from __future__ import annotations

import subprocess
from pathlib import Path

from PIL import Image


def photo_like(width: int, height: int, mode: str = "RGB", seed: int = 40) -> Image.Image:
    """Return noise over gradients in `mode`: busy like a photo, with smooth regions and edges."""
    size = (width, height)
    noise = Image.effect_noise(size, seed)
    ramp = Image.linear_gradient("L").resize(size)
    ring = Image.radial_gradient("L").resize(size)
    rgb = Image.merge("RGB", (noise, ramp, Image.blend(ring, noise, 0.3)))
    if mode == "RGBA":
        return Image.merge("RGBA", (*rgb.split(), ramp.transpose(Image.Transpose.ROTATE_180)))
    return rgb.convert(mode)


def check_with_tool(tool: str, path: Path) -> str:
    """Run an independent checker (`pngcheck`, `jpeginfo -c`) on `path`; fail on a complaint."""
    argv = ["pngcheck", "-q", str(path)] if tool == "pngcheck" else ["jpeginfo", "-c", str(path)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"{tool} rejects {path.name}: {done.stdout}{done.stderr}"
    if tool == "jpeginfo":
        assert done.stdout.split()[-1] == "OK", done.stdout
    return done.stdout


def encode_in_bands(encoder, image: Image.Image, band_height: int) -> bytes:
    """Feed `image` to `encoder` in full-width bands, top to bottom; return the whole file."""
    out = [encoder.header()]
    for y0 in range(0, image.height, band_height):
        out.append(encoder.encode_band(image.crop((0, y0, image.width, min(y0 + band_height, image.height)))))
    out.append(encoder.finish())
    return b"".join(out)


def decode_with_libvips(path: Path) -> Image.Image:
    """Decode `path` with libvips (an independent decoder), failing on any warning; return it as a Pillow image."""
    import pyvips

    image = pyvips.Image.new_from_file(str(path), access="sequential", fail_on="warning")
    mode = {1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[image.bands]
    return Image.frombytes(mode, (image.width, image.height), image.cast("uchar").write_to_memory())
