"""The pixel modes Tileflow works in, and how any decoded image is brought to one of them.

Every step sees 8-bit "L", "RGB" or "RGBA". `normalize` is per-pixel, so applying it to a band
of an image gives exactly the band of the normalised whole image: decoding may stream.

Deep and odd modes, as Pillow 13 opens them:

- 16-bit grayscale PNG/TIFF opens as "I;16" (or "I;16B"): we keep the high byte (v >> 8), as Pillow
  itself does for 16-bit RGB PNGs ("RGB;16B" unpacking). Pillow's own `convert("L")` clips instead,
  which turns almost every 16-bit image white.
- "I" (32-bit signed) is read as a 16-bit range: clipped to 0..65535, then the high byte.
- "F" is clipped to 0..255, as Pillow's `convert("L")` does.
- "1" becomes 0/255 "L"; "LA"/"La"/"PA" become "RGBA"; "P" becomes "RGBA" when it has transparency
  (a `transparency` entry or an RGBA palette), "RGB" otherwise.
- A `tRNS` key colour on "1", "L", "RGB" (a `transparency` entry) makes "RGBA", as Pillow's
  `convert("RGBA")` does: alpha 0 exactly where a pixel equals the key. On 16-bit gray ("I;16") the key
  is compared with the full 16-bit sample (what browsers do; Pillow's own conversion compares clipped
  values) and the gray is the high byte, as without a key.
- "CMYK" becomes "RGB" by Pillow's naive conversion; Adobe-inverted CMYK JPEGs are already un-inverted
  by Pillow's decoder ("CMYK;I" raw mode).
"""

from __future__ import annotations

from PIL import Image, ImageChops

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

# Raw modes that store the high byte of each 16-bit sample last (little endian) or first.
_HIGH_BYTE_RAWMODE = {"I;16": "L;16", "I;16L": "L;16", "I;16B": "L;16B", "I;16N": "L;16"}


def working_mode(image: Image.Image) -> str:
    """Return the working mode that `image` (as opened, before load) will be normalised to."""
    if image.mode == "P":
        return "RGBA" if "transparency" in image.info or image.palette.mode == "RGBA" else "RGB"
    if _keyed(image):
        return "RGBA"
    if image.mode in _DIRECT:
        return _DIRECT[image.mode]
    if image.mode.startswith("I") or image.mode == "F":
        return "L"
    raise ValueError(f"unsupported pixel mode {image.mode}")


def normalize(image: Image.Image, mode: str | None = None) -> Image.Image:
    """Return `image` in its working mode (or `mode`, as given by `working_mode` of the whole file)."""
    target = mode or working_mode(image)
    if target not in WORKING_MODES:
        raise ValueError(f"{target} is not a working mode")
    if image.mode == target:
        return image
    if image.mode.startswith("I"):
        gray = _deep_to_8bit(image)
        if target == "RGBA" and _keyed(image):
            return _with_alpha(gray.convert("RGB"), _key_mask(image))
        return gray.convert(target)
    return image.convert(target)


def _keyed(image: Image.Image) -> bool:
    """Tell whether `image` has a tRNS key colour (a `transparency` entry on a mode without alpha)."""
    key = image.info.get("transparency")
    if image.mode in ("1", "L", "RGB") or image.mode in _HIGH_BYTE_RAWMODE:
        return key is not None and not isinstance(key, bytes)
    return False


def _key_mask(image: Image.Image) -> Image.Image:
    """Return an "L" mask of a 16-bit image: 0 where a sample equals the tRNS key, 255 elsewhere."""
    key = image.info["transparency"]
    data = image.tobytes()
    high, low = (data[0::2], data[1::2]) if image.mode == "I;16B" else (data[1::2], data[0::2])
    masks = [
        Image.frombytes("L", image.size, part).point([0 if value == wanted else 255 for value in range(256)])
        for part, wanted in ((high, key >> 8), (low, key & 0xFF))
    ]
    return ImageChops.lighter(*masks)


def _with_alpha(rgb: Image.Image, alpha: Image.Image) -> Image.Image:
    rgb.putalpha(alpha)
    return rgb


def _deep_to_8bit(image: Image.Image) -> Image.Image:
    """Return the high byte of each 16-bit sample (32-bit values first clipped to 0..65535)."""
    if image.mode not in _HIGH_BYTE_RAWMODE:
        image = image.convert("I").convert("I;16")
        if image.mode != "I;16":
            raise ValueError(f"cannot bring {image.mode} to 16 bits")
    rawmode = _HIGH_BYTE_RAWMODE[image.mode]
    return Image.frombytes("L", image.size, image.tobytes("raw", image.mode), "raw", rawmode)
