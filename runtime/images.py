"""The pixel modes Tileflow works in, and how any decoded image is brought to one of them.

Every step sees 8-bit "L", "RGB" or "RGBA". `normalize` is per-pixel, so applying it to a band
of an image gives exactly the band of the normalised whole image: decoding may stream.
"""

from __future__ import annotations

from PIL import Image

WORKING_MODES = ("L", "RGB", "RGBA")

_DIRECT = {
    "1": "L",
    "L": "L",
    "LA": "RGBA",
    "La": "RGBA",
    "PA": "RGBA",
    "RGB": "RGB",
    "RGBA": "RGBA",
    "RGBa": "RGBA",
    "RGBX": "RGB",
    "CMYK": "RGB",
    "YCbCr": "RGB",
    "LAB": "RGB",
    "HSV": "RGB",
}


def working_mode(image: Image.Image) -> str:
    """Return the working mode that `image` (as opened, before load) will be normalised to."""
    if image.mode == "P":
        return "RGBA" if "transparency" in image.info or image.palette.mode == "RGBA" else "RGB"
    if image.mode in _DIRECT:
        return _DIRECT[image.mode]
    if image.mode.startswith("I") or image.mode == "F":
        return "L"
    raise ValueError(f"unsupported pixel mode {image.mode}")


def normalize(image: Image.Image, mode: str | None = None) -> Image.Image:
    """Return `image` in its working mode (or `mode`, as given by `working_mode` of the whole file).

    16-bit and 32-bit integer images keep their top 8 bits (v / 256 for 16-bit values), as image
    viewers show them; float images are clipped to 0..255.
    """
    target = mode or working_mode(image)
    if image.mode == target:
        return image
    if image.mode.startswith("I;16") or image.mode == "I":
        scaled = image.convert("I") if image.mode != "I" else image
        return scaled.point(lambda v: v * (1 / 256)).convert("L") if _is_16bit(image) else scaled.convert("L")
    if image.mode == "F":
        return image.convert("L")
    if image.mode == "P":
        return image.convert(target)
    if image.mode == "1":
        return image.convert("L")
    return image.convert(target)


def _is_16bit(image: Image.Image) -> bool:
    return image.mode.startswith("I;16") or image.info.get("bits", 16) > 8
