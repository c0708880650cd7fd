"""The output node: its params, and the encoder options they make for one run's source and colour space."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from runtime.colour import WorkingSpace, output_colour
from runtime.encoders import EncodeOptions
from runtime.metadata import kept_exif, kept_xmp
from runtime.registry import Step, StepParams, TileKind, step


@step("output", label="Image output", category="Input / output")
class Output(Step):
    """Encode the result file. PNG and baseline JPEG stream band by band as tiles finish; progressive
    JPEG, WebP and AVIF are encoded once the whole image is done (their encoders take a whole picture),
    so their first byte comes last. Colour: `keep` writes the source's ICC profile unchanged with the
    pixels as they are; `srgb` converts them to sRGB (LittleCMS, perceptual) and tags the file sRGB.
    Metadata: `strip` writes no EXIF, XMP or IPTC; `keep` copies EXIF and XMP without GPS, serial
    numbers or thumbnail, orientation set to 1."""

    class Params(StepParams):
        format: Literal["png", "jpeg", "webp", "avif"] = "png"
        quality: int = Field(85, ge=1, le=100, description="JPEG, WebP and AVIF quality")
        colour: Literal["keep", "srgb"] = Field(
            "keep", description="keep the embedded colour profile, or convert the pixels to sRGB"
        )
        metadata: Literal["strip", "keep"] = Field(
            "strip", description="strip EXIF and XMP, or keep them (never GPS positions or serial numbers)"
        )
        progressive: bool = Field(False, description="JPEG: progressive (the file is written at the end)")
        subsampling: Literal["4:2:0", "4:2:2", "4:4:4"] = Field("4:2:0", description="JPEG chroma subsampling")
        compression: int = Field(6, ge=0, le=9, description="PNG zlib level: 0 none, 9 smallest")
        speed: int = Field(6, ge=0, le=10, description="AVIF encoder speed: 0 slowest and smallest, 10 fastest")

    kind = TileKind.OUTPUT


def encode_options(
    params: Output.Params, mode: str, space: WorkingSpace, *, exif: bytes | None = None, xmp: bytes | None = None
) -> EncodeOptions:
    """Return what the encoder of an output with `params` does with bands of `mode` in `space`.

    `exif` and `xmp` are the source's (`SourceHeader`), written cleaned when the params keep metadata.
    """
    colour = output_colour(space, params.colour, mode)
    keep = params.metadata == "keep"
    return EncodeOptions(
        quality=params.quality,
        progressive=params.progressive,
        subsampling=params.subsampling,
        compression=params.compression,
        speed=params.speed,
        icc_profile=colour.icc_profile,
        srgb=colour.srgb,
        exif=kept_exif(exif) if keep else None,
        xmp=kept_xmp(xmp) if keep else None,
        convert=colour.convert,
    )
