"""Colour: the working space of a run, profiles kept unchanged, conversions to sRGB as ImageCms makes them."""

from __future__ import annotations

import asyncio
import io
import random

import pytest
from PIL import Image, ImageCms, ImageOps

from runtime import api
from runtime.colour import SRGB_PROFILE, UNTAGGED, output_colour, profile_space, to_srgb, working_space
from runtime.conductor import RunLimits, RunSpec
from runtime.images import normalize
from runtime.testing import chain
from tests.runtime._compare import max_difference
from tests.runtime.icc import adobe_rgb_like, debian_profile, display_p3
from tests.runtime.pictures import photo_like

pytestmark = pytest.mark.usefixtures("fresh_channel_layer")

SRGB = ImageCms.createProfile("sRGB")


def _cms(icc: bytes) -> ImageCms.ImageCmsProfile:
    return ImageCms.ImageCmsProfile(io.BytesIO(icc))


def _pillow_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    """ImageCms' whole-image conversion to sRGB, perceptual intent (the reference)."""
    out_mode = "RGB" if image.mode == "CMYK" else image.mode
    return ImageCms.profileToProfile(image, _cms(icc), SRGB, renderingIntent=0, outputMode=out_mode)


def test_the_built_display_p3_profile_loads_in_littlecms():
    profile = _cms(display_p3())
    assert ImageCms.getProfileDescription(profile).strip() == "Display P3"
    assert profile.profile.xcolor_space.strip() == "RGB"
    # A saturated P3 orange is outside sRGB and moves when converted; P3 white stays white.
    converted = _pillow_srgb(Image.new("RGB", (2, 1), (200, 100, 50)), display_p3())
    assert converted.getpixel((0, 0)) != (200, 100, 50)
    white = _pillow_srgb(Image.new("RGB", (1, 1), (255, 255, 255)), display_p3())
    assert all(v >= 254 for v in white.getpixel((0, 0)))


def test_profile_spaces():
    assert profile_space(display_p3()) == "RGB"
    assert profile_space(debian_profile("default_cmyk.icc")) == "CMYK"
    assert profile_space(debian_profile("Gray.icc")) == "GRAY"
    assert profile_space(b"not a profile" * 20) is None
    assert profile_space(None) is None


def _graph(*colours: str) -> dict:
    nodes = [{"id": "in", "type": "source", "params": {}}]
    nodes += [{"id": f"o{i}", "type": "output", "params": {"colour": c}} for i, c in enumerate(colours)]
    return {"nodes": nodes, "edges": [{"from": "in", "to": f"o{i}"} for i in range(len(colours))]}


def test_working_space_rules():
    p3 = display_p3()
    assert working_space(_graph("keep"), None, "RGB", "RGB") is UNTAGGED
    assert working_space(_graph("keep"), p3, "RGB", "RGB").profile == p3
    srgb_only = working_space(_graph("srgb", "srgb"), p3, "RGB", "RGB")
    assert srgb_only.profile == SRGB_PROFILE and srgb_only.decoded_from == p3
    mixed = working_space(_graph("srgb", "keep"), p3, "RGB", "RGB")
    assert mixed.profile == p3 and not mixed.converted
    cmyk = debian_profile("default_cmyk.icc")
    assert working_space(_graph("keep"), cmyk, "CMYK", "RGB").decoded_from == cmyk
    assert working_space(_graph("keep"), p3, "L", "L") is UNTAGGED, "an RGB profile on gray pixels is ignored"
    assert output_colour(mixed, "keep", "RGB").icc_profile == p3
    assert output_colour(mixed, "srgb", "RGB").convert is not None
    assert output_colour(mixed, "keep", "L").icc_profile is None, "gray outputs carry no RGB profile"


@pytest.mark.parametrize("mode", ["RGB", "RGBA", "L"])
def test_converting_band_by_band_equals_the_whole(mode):
    icc = debian_profile("Gray.icc") if mode == "L" else adobe_rgb_like()
    image = photo_like(64, 40, mode)
    whole = to_srgb(image, icc)
    bands = [to_srgb(image.crop((0, y, 64, y + 8)), icc) for y in range(0, 40, 8)]
    assert b"".join(band.tobytes() for band in bands) == whole.tobytes()
    if mode == "RGBA":
        assert whole.getchannel("A").tobytes() == image.getchannel("A").tobytes()


async def _run(graph: dict, data: bytes, tmp_path, **limits) -> api.Conductor:
    source = tmp_path / "in.bin"
    source.write_bytes(data)
    spec = RunSpec(f"colour-{random.random()}", graph, source, tmp_path / "out", RunLimits(**limits))
    conductor = await api.start(spec, owner="tests")
    await asyncio.wait_for(conductor.finished.wait(), 60)
    assert conductor.status == "succeeded", conductor.error
    return conductor


def _opened(conductor: api.Conductor, node: str) -> Image.Image:
    image = Image.open(conductor.outputs[node].path)
    image.load()
    return image


def _p3_jpeg(**params) -> bytes:
    buffer = io.BytesIO()
    photo_like(150, 100).save(buffer, "JPEG", quality=92, icc_profile=display_p3(), **params)
    return buffer.getvalue()


def _decoded_jpeg(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return normalize(ImageOps.exif_transpose(image))


@pytest.mark.parametrize("format", ["png", "jpeg", "webp", "avif"])
async def test_a_display_p3_jpeg_keeps_its_profile_and_pixels(format, tmp_path):
    data = _p3_jpeg()
    graph = chain(output={"format": format, "colour": "keep", "quality": 100, "speed": 10})
    result = _opened(await _run(graph, data, tmp_path, tile_size=32), "out")
    assert result.info.get("icc_profile") == display_p3()
    if format == "png":
        assert result.tobytes() == _decoded_jpeg(data).tobytes()


@pytest.mark.parametrize("format", ["png", "jpeg", "webp", "avif"])
async def test_a_display_p3_jpeg_to_srgb_equals_imagecms(format, tmp_path):
    data = _p3_jpeg()
    graph = chain(output={"format": format, "colour": "srgb", "quality": 100, "speed": 10})
    result = _opened(await _run(graph, data, tmp_path, tile_size=32), "out")
    expected = _pillow_srgb(_decoded_jpeg(data), display_p3())
    if format == "png":
        assert result.info.get("srgb") == 0 and "icc_profile" not in result.info
        assert max_difference(result, expected) == 0
    else:
        assert result.info.get("icc_profile") == SRGB_PROFILE
        assert max_difference(result, _saved_by_pillow(expected, format)) == 0


def _saved_by_pillow(image: Image.Image, format: str) -> Image.Image:
    """`image` saved whole by Pillow as the output saves it (quality 100, speed 10), then decoded."""
    buffer = io.BytesIO()
    params = {"quality": 100, "speed": 10} if format == "avif" else {"quality": 100}
    image.save(buffer, format.upper(), **params)
    reopened = Image.open(buffer)
    reopened.load()
    return reopened


async def test_mixed_outputs_keep_one_and_convert_the_other(tmp_path):
    data = _p3_jpeg()
    result = await _run(_graph("keep", "srgb"), data, tmp_path, tile_size=32)
    decoded = _decoded_jpeg(data)
    kept, converted = _opened(result, "o0"), _opened(result, "o1")
    assert kept.info["icc_profile"] == display_p3() and kept.tobytes() == decoded.tobytes()
    assert max_difference(converted, _pillow_srgb(decoded, display_p3())) == 0


async def test_a_resize_in_srgb_works_on_converted_pixels(tmp_path):
    data = _p3_jpeg()
    graph = chain(("grayscale", {}), output={"colour": "srgb"})
    result = _opened(await _run(graph, data, tmp_path, tile_size=32), "out")
    expected = _pillow_srgb(_decoded_jpeg(data), display_p3()).convert("L")
    assert result.mode == "L" and max_difference(result, expected) == 0


@pytest.mark.parametrize("adobe", [False, True])
async def test_a_cmyk_jpeg_with_a_profile_converts_through_it(adobe, tmp_path):
    cmyk = debian_profile("default_cmyk.icc")
    image = photo_like(120, 80).convert("CMYK")
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=95, icc_profile=cmyk)
    data = buffer.getvalue()
    if adobe:  # Photoshop's inverted CMYK: an Adobe APP14 marker; Pillow reads it as "CMYK;I"
        data = _adobe_inverted(image, cmyk)
    result = _opened(await _run(chain(output={"colour": "keep"}), data, tmp_path, tile_size=32), "out")
    with Image.open(io.BytesIO(data)) as opened:
        opened.load()
        expected = _pillow_srgb(opened, cmyk)
    assert result.info.get("srgb") == 0
    assert max_difference(result, expected) == 0


def _adobe_inverted(image: Image.Image, icc: bytes) -> bytes:
    """A CMYK JPEG with an Adobe APP14 segment (transform 0), its samples inverted as Photoshop stores them."""
    inverted = Image.merge("CMYK", [ImageOps.invert(band) for band in image.split()])
    buffer = io.BytesIO()
    inverted.save(buffer, "JPEG", quality=95, icc_profile=icc)
    data = buffer.getvalue()
    adobe = b"\xff\xee\x00\x0eAdobe\x00\x64\x00\x00\x00\x00\x00"
    return data[:2] + adobe + data[2:]
