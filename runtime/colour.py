"""Colour spaces: the one a run works in, conversions with LittleCMS (`PIL.ImageCms`), and output tags.

A run works in one space, chosen from the source's embedded ICC profile and the outputs' `colour`:

- no profile (or one LittleCMS cannot read, or whose colour space does not fit the pixels): the pixels
  are taken as sRGB and left as they are; a `srgb` output is tagged sRGB, a `keep` one is untagged;
- a CMYK profile on a CMYK source (Adobe's inverted CMYK JPEGs included: Pillow un-inverts them): every
  band is converted to sRGB as it is decoded (perceptual intent), and outputs are tagged sRGB;
- an RGB or gray profile, every output `srgb`: bands are converted to sRGB as they are decoded, so every
  step (resize, watermark colours, grayscale weights) works on sRGB values; RGB outputs are tagged sRGB;
- an RGB or gray profile, some output `keep`: the pixels stay as decoded, in the source's space, and a
  `keep` output carries the profile unchanged; a `srgb` output of the same run converts its bands just
  before encoding. Steps that draw colours (watermark) draw their values in this working space: the
  source's profile, i.e. the space of its `keep` outputs.

A conversion is per pixel, so converting band by band equals converting the whole image. Gray outputs
(after `grayscale` of an RGB image) carry no RGB profile: they are untagged gray.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from PIL import Image, ImageCms

INTENT = ImageCms.Intent.PERCEPTUAL


def _reproducible(icc: bytes) -> bytes:
    """Return `icc` with its creation date and profile id zeroed: the same bytes in every process."""
    return icc[:24] + bytes(12) + icc[36:84] + bytes(16) + icc[100:]


# LittleCMS' own sRGB (what conversions target), as embedded in `srgb` outputs.
SRGB_PROFILE: bytes = _reproducible(ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes())
_SPACES = {b"RGB ": "RGB", b"GRAY": "GRAY", b"CMYK": "CMYK"}

Convert = Callable[[Image.Image], Image.Image]


def profile_space(icc: bytes | None) -> str | None:
    """Return "RGB", "GRAY" or "CMYK" for a profile LittleCMS reads, else None."""
    if not icc or len(icc) < 128 or _SPACES.get(icc[16:20]) is None:
        return None
    try:
        _profile(icc)
    except (OSError, ImageCms.PyCMSError, ValueError, TypeError):
        return None
    return _SPACES[icc[16:20]]


@lru_cache(maxsize=16)
def _profile(icc: bytes) -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(io.BytesIO(icc))


@lru_cache(maxsize=32)
def _to_srgb(icc: bytes, in_mode: str, out_mode: str) -> ImageCms.ImageCmsTransform:
    # Shared by the decode and writer threads of every run: without LittleCMS' 1-pixel cache, which
    # one transform's concurrent calls would share (the pixels are the same either way).
    srgb = ImageCms.createProfile("sRGB")
    return ImageCms.buildTransform(_profile(icc), srgb, in_mode, out_mode, INTENT, flags=ImageCms.Flags.NOCACHE)


def to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    """Return `image` (CMYK, RGB, RGBA or L in profile `icc`) converted to sRGB, keeping its mode (CMYK: RGB)."""
    if image.mode == "L":
        return ImageCms.applyTransform(image, _to_srgb(icc, "L", "RGB")).convert("L")
    out_mode = "RGB" if image.mode == "CMYK" else image.mode
    return ImageCms.applyTransform(image, _to_srgb(icc, image.mode, out_mode))


@dataclass(frozen=True, slots=True)
class WorkingSpace:
    """The colour space of a run's pixels, and how decoded bands get into it."""

    profile: bytes | None  # the ICC profile the working pixels are in; None: untagged, taken as sRGB
    decoded_from: bytes | None = None  # convert decoded bands from this profile to sRGB (None: as decoded)

    @property
    def converted(self) -> bool:
        return self.decoded_from is not None


UNTAGGED = WorkingSpace(None)


def working_space(graph: dict[str, Any], icc: bytes | None, source_mode: str, mode: str) -> WorkingSpace:
    """Return the space a run of `graph` works in, for a source with profile `icc` decoded to `mode`."""
    space = profile_space(icc)
    if space is None:
        return UNTAGGED
    if space == "CMYK":
        return WorkingSpace(SRGB_PROFILE, icc) if source_mode == "CMYK" else UNTAGGED
    fits = (space == "RGB" and mode in ("RGB", "RGBA")) or (space == "GRAY" and mode == "L")
    if not fits:
        return UNTAGGED
    outputs = [node for node in graph["nodes"] if node["type"] == "output"]
    if outputs and all((node.get("params") or {}).get("colour") == "srgb" for node in outputs):
        return WorkingSpace(SRGB_PROFILE if space == "RGB" else None, icc)
    return WorkingSpace(icc)


@dataclass(frozen=True, slots=True)
class OutputColour:
    """What one output does about colour: the profile it embeds, and a conversion of its bands."""

    icc_profile: bytes | None = None
    srgb: bool = False  # tagged sRGB (PNG writes an sRGB chunk instead of the profile)
    convert: Convert | None = None


def output_colour(space: WorkingSpace, colour: str, mode: str) -> OutputColour:
    """Return how an output asking `colour` ("keep" or "srgb") encodes bands of `mode` in `space`."""
    gray = mode == "L"
    tagged_srgb = OutputColour(None if gray else SRGB_PROFILE, srgb=not gray)
    if space.profile is None:
        return tagged_srgb if colour == "srgb" else OutputColour()
    if space.profile == SRGB_PROFILE and space.converted:
        return tagged_srgb
    fits = (profile_space(space.profile) == "GRAY") == gray
    if not fits:
        return OutputColour()
    if colour == "keep":
        return OutputColour(space.profile)
    icc = space.profile
    return OutputColour(None if gray else SRGB_PROFILE, srgb=not gray, convert=lambda band: to_srgb(band, icc))
