"""The exactness promise over a corpus: decoded band by band, then run tile by tile, equals Pillow's whole image.

Two corpora. One is generated here: every format x mode Pillow writes, crossed with where the
orientation is recorded (EXIF, XMP, PNG text chunks, TIFF tags, irot/imir), transparency (alpha, a
tRNS key, a palette entry) and an embedded profile (Display P3, gray, CMYK). The other is files nobody
here wrote: the image corpus of Debian's `gdk-pixbuf-tests` package (scripts/system-deps.sh), broken
files included. Pillow's reference is: open, load, `exif_transpose`, first frame, the working mode
(`runtime.images.normalize`); each file also goes through an identity, a resize and a rotate+grayscale
flow, and files with a profile through a conversion to sRGB, compared with ImageCms on the whole image.
A file Pillow decodes is never refused, except one whose pixel data ends early (issue 10).
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path

import pillow_heif
import pytest
from PIL import Image, ImageCms, ImageOps, PngImagePlugin

from runtime.colour import profile_space, working_space
from runtime.decode import ACCEPTED_FORMATS, ImageRejected, decode_bands, probe
from runtime.images import normalize
from runtime.testing import chain, reference_flow, run_flow
from tests.runtime._compare import max_difference
from tests.runtime.icc import debian_profile, display_p3
from tests.runtime.test_headers import _raw_profile, _xmp

GDK_PIXBUF_TESTS = Path("/usr/libexec/installed-tests/gdk-pixbuf")
WIDTH, HEIGHT = 37, 23
FLOWS = {
    "identity": chain(),
    "resize": chain(("resize", {"scale": 0.6})),
    "rotate+grayscale": chain(("rotate", {"angle": 90}), ("grayscale", {})),
}
pillow_heif.register_heif_opener()


def _picture(mode: str) -> Image.Image:
    base = Image.linear_gradient("L").resize((WIDTH, HEIGHT))
    noise = Image.effect_noise((WIDTH, HEIGHT), 60)
    rgb = Image.merge("RGB", (base, noise, base.transpose(Image.Transpose.FLIP_LEFT_RIGHT)))
    if mode == "RGBA":
        return Image.merge("RGBA", (*rgb.split(), noise.point(lambda v: 0 if v < 110 else v)))
    if mode == "LA":
        return Image.merge("LA", (rgb.convert("L"), noise.point(lambda v: 0 if v < 110 else v)))
    if mode == "P":
        return rgb.quantize(16)
    if mode == "I;16":
        return rgb.convert("L").convert("I").point(lambda v: v * 257).convert("I;16")
    return rgb.convert(mode)


def _exif(orientation: int) -> bytes:
    exif = Image.Exif()
    exif[0x0112] = orientation
    return exif.tobytes()


def _save(image: Image.Image, format: str, **params) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format, **params)
    return buffer.getvalue()


def _profile_for(mode: str) -> bytes | None:
    return {"RGB": display_p3(), "RGBA": display_p3(), "L": debian_profile("Gray.icc")}.get(mode)


def _generated() -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    for mode in ("L", "RGB", "CMYK"):
        for progressive in (False, True):
            for source, orientation in (("none", 1), ("exif", 6), ("xmp", 8)):
                params = {"quality": 90, "progressive": progressive}
                params |= {"exif": _exif(orientation)} if source == "exif" else {}
                params |= {"xmp": _xmp(orientation).encode()} if source == "xmp" else {}
                icc = debian_profile("default_cmyk.icc") if mode == "CMYK" else _profile_for(mode)
                if icc and source != "xmp":
                    params["icc_profile"] = icc
                kind = "progressive" if progressive else "baseline"
                files[f"jpeg-{mode}-{kind}-{source}"] = _save(_picture(mode), "JPEG", **params)
    for mode in ("1", "L", "LA", "P", "RGB", "RGBA", "I;16"):
        for key in (False, True):
            if key and mode in ("LA", "RGBA"):
                continue
            for source, orientation in (("none", 1), ("eXIf", 6), ("raw-text", 5), ("xmp", 7)):
                image = _picture(mode)
                info = PngImagePlugin.PngInfo()
                params: dict = {"pnginfo": info}
                if key:
                    params["transparency"] = image.getpixel((0, 0)) if mode != "P" else 3
                if source == "eXIf":
                    params["exif"] = _exif(orientation)
                elif source == "raw-text":
                    info.add_text("Raw profile type exif", _raw_profile(orientation), zip=True)
                elif source == "xmp":
                    info.add_itxt("XML:com.adobe.xmp", _xmp(orientation))
                if _profile_for(mode) and source in ("none", "xmp"):
                    params["icc_profile"] = _profile_for(mode)
                files[f"png-{mode}{'-trns' if key else ''}-{source}"] = _save(image, "PNG", **params)
    for mode in ("RGB", "RGBA"):
        for orientation in (1, 6):
            params = {"exif": _exif(orientation), "icc_profile": display_p3()}
            files[f"webp-{mode}-{orientation}"] = _save(_picture(mode), "WEBP", lossless=True, **params)
            files[f"avif-{mode}-{orientation}"] = _save(_picture(mode), "AVIF", quality=90, speed=10, **params)
            files[f"heic-{mode}-{orientation}"] = _save(_picture(mode), "HEIF", quality=90, **params)
    for mode in ("1", "L", "LA", "RGB", "RGBA", "CMYK", "I;16"):
        for orientation in (1, 6):
            params = {"exif": _exif(orientation)} | ({"icc_profile": icc} if (icc := _profile_for(mode)) else {})
            files[f"tiff-{mode}-{orientation}"] = _save(_picture(mode), "TIFF", **params)
    for mode in ("1", "L", "P", "RGB"):
        files[f"bmp-{mode}"] = _save(_picture(mode), "BMP")
    files["gif-P"] = _save(_picture("P"), "GIF")
    files["gif-P-transparent"] = _save(_picture("P"), "GIF", transparency=2)
    return files


@cache
def corpus() -> dict[str, bytes]:
    files = {f"generated/{name}": data for name, data in _generated().items()}
    assert GDK_PIXBUF_TESTS.is_dir(), "Debian's gdk-pixbuf-tests is missing: run scripts/system-deps.sh"
    for path in sorted(GDK_PIXBUF_TESTS.rglob("*")):
        if path.is_file() and path.suffix.lower() not in (".conf", ".so", "") and path.stat().st_size < 300_000:
            files[f"debian/{path.relative_to(GDK_PIXBUF_TESTS)}"] = path.read_bytes()
    return files


def _pillow_whole(data: bytes) -> Image.Image | None:
    """Pillow's reference, or None when Pillow cannot decode the file (in the formats Tileflow accepts)."""
    try:
        with Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS) as image:
            image.load()
            upright = ImageOps.exif_transpose(image)
    except (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError):
        return None
    icc = image.info.get("icc_profile")
    if upright.mode == "CMYK" and profile_space(icc) == "CMYK":  # converted through its profile
        return _imagecms_srgb(upright, icc)
    return normalize(upright)


def _decoded(data: bytes, graph: dict) -> tuple[Image.Image, bytes | None]:
    header = probe(io.BytesIO(data), 50_000_000)
    space = working_space(graph, header.icc_profile, header.source_mode, header.mode)
    result = Image.new(header.mode, (header.size.width, header.size.height))
    for y0, band in decode_bands(data, header, 16, space):
        result.paste(band, (0, y0))
    return result, header.icc_profile


def _names() -> list[str]:
    return sorted(corpus())


def _group(name: str) -> str:
    """Files are checked in groups (a test per file cost more in pytest than in checking)."""
    origin, rest = name.split("/", 1)
    return (
        f"{origin}/{rest.split('-', 1)[0]}" if origin == "generated" else f"{origin}/{rest.rsplit('.', 1)[-1].lower()}"
    )


@pytest.mark.parametrize("group", sorted({_group(name) for name in _names()}))
def test_every_file_decodes_and_flows_as_pillow(group):
    names = [name for name in _names() if _group(name) == group]
    for name in names:
        _check(name)


def _check(name: str) -> None:
    data = corpus()[name]
    expected = _pillow_whole(data)
    if expected is None:
        with pytest.raises(ImageRejected):
            _decoded(data, FLOWS["identity"])
            pytest.fail(f"{name}: Pillow cannot decode it, Tileflow accepted it")
        return
    try:
        decoded, icc = _decoded(data, FLOWS["identity"])
    except ImageRejected as rejected:
        assert "truncated" in str(rejected), f"Pillow decodes {name}, Tileflow refused it: {rejected}"
        return
    assert (decoded.mode, decoded.size) == (expected.mode, expected.size), name
    assert decoded.tobytes() == expected.tobytes(), f"{name}: decoded pixels differ from Pillow's"
    if decoded.width * decoded.height <= 20_000 and max(decoded.size) <= 512:  # a few tiles: seconds in all
        for flow, graph in FLOWS.items():
            result = run_flow(graph, decoded, tile_size=32)["out"]
            assert max_difference(result, reference_flow(graph, expected)["out"]) == 0, f"{name}: {flow}"
    space = profile_space(icc)
    if space in ("RGB", "GRAY") and decoded.mode in ("RGB", "RGBA", "L"):
        srgb = chain(output={"colour": "srgb"})
        converted, _ = _decoded(data, srgb)
        if (space == "GRAY") == (decoded.mode == "L"):
            assert max_difference(converted, _imagecms_srgb(expected, icc)) == 0, f"{name}: sRGB conversion"


def _imagecms_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    """ImageCms' conversion of the whole image to sRGB, perceptual intent (gray through RGB)."""
    out_mode = "RGB" if image.mode in ("L", "CMYK") else image.mode
    converted = ImageCms.applyTransform(image, _transform(icc, image.mode, out_mode))
    return converted.convert("L") if image.mode == "L" else converted


@cache
def _transform(icc: bytes, in_mode: str, out_mode: str) -> ImageCms.ImageCmsTransform:
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    return ImageCms.buildTransform(profile, ImageCms.createProfile("sRGB"), in_mode, out_mode, renderingIntent=0)


def test_the_corpus_covers_what_it_promises():
    names = _names()
    generated = [name for name in names if name.startswith("generated/")]
    debian = [name for name in names if name.startswith("debian/")]
    assert len(generated) >= 80 and len(debian) >= 200
    decodable = [name for name in debian if _pillow_whole(corpus()[name]) is not None]
    assert len(decodable) >= 150, "most of Debian's files are ones Pillow decodes"
