"""Photos as phones make them, through a real console (Daphne): colour profiles, orientation, metadata."""

from __future__ import annotations

import io
import itertools

import pillow_heif
import pytest
from PIL import ExifTags, Image, ImageCms, ImageOps

from runtime.colour import SRGB_PROFILE
from runtime.images import normalize
from tests.runtime.icc import display_p3
from tests.runtime.pictures import photo_like
from tests.runtime.test_metadata import XMP, camera_exif
from tests.support.http import Client
from tests.support.services import live_console


@pytest.fixture(scope="module")
def console(tmp_path_factory):
    with live_console(tmp_path_factory.mktemp("photos")) as console:
        yield console


@pytest.fixture(scope="module")
def client(console) -> Client:
    return Client(console.url, console.auth)


_names = itertools.count()


def _flow(client: Client, **output) -> str:
    graph = {
        "nodes": [{"id": "in", "type": "source"}, {"id": "out", "type": "output", "params": output}],
        "edges": [{"from": "in", "to": "out"}],
    }
    name = f"photos {next(_names)} {output}"  # names are unique per user
    status, flow = client.json("POST", "/api/flows", {"name": name, "graph": graph})
    assert status == 201, flow
    return flow["id"]


def _run(client: Client, data: bytes, name: str = "photo.jpg", **output) -> Image.Image:
    status, _, body = client.upload(f"/api/flows/{_flow(client, **output)}/run", data, name)
    assert status == 200, body[:300]
    image = Image.open(io.BytesIO(body))
    image.load()
    return image


def _pillow(data: bytes) -> Image.Image:
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return normalize(ImageOps.exif_transpose(image))


def _to_srgb(image: Image.Image, icc: bytes) -> Image.Image:
    profile = ImageCms.ImageCmsProfile(io.BytesIO(icc))
    return ImageCms.profileToProfile(image, profile, ImageCms.createProfile("sRGB"), renderingIntent=0)


def _within_one(a: Image.Image, b: Image.Image) -> bool:
    from PIL import ImageChops

    return a.size == b.size and max(high for _, high in ImageChops.difference(a, b).getextrema()) <= 1


@pytest.fixture(scope="module")
def p3_jpeg_with_gps() -> bytes:
    buffer = io.BytesIO()
    photo_like(160, 120).save(buffer, "JPEG", quality=92, icc_profile=display_p3(), exif=camera_exif(), xmp=XMP)
    return buffer.getvalue()


def test_display_p3_jpeg_keep_and_srgb(client, p3_jpeg_with_gps):
    kept = _run(client, p3_jpeg_with_gps, format="png", colour="keep")
    assert kept.info["icc_profile"] == display_p3()
    assert kept.tobytes() == _pillow(p3_jpeg_with_gps).tobytes(), "keep leaves the pixels untouched"
    converted = _run(client, p3_jpeg_with_gps, format="png", colour="srgb")
    assert converted.info.get("srgb") == 0
    assert _within_one(converted, _to_srgb(_pillow(p3_jpeg_with_gps), display_p3()))
    jpeg = _run(client, p3_jpeg_with_gps, format="jpeg", colour="srgb")
    assert jpeg.info["icc_profile"] == SRGB_PROFILE


def test_gps_jpeg_metadata_strip_and_keep(client, p3_jpeg_with_gps):
    stripped = _run(client, p3_jpeg_with_gps, format="jpeg")
    assert "exif" not in stripped.info and "xmp" not in stripped.info
    kept = _run(client, p3_jpeg_with_gps, format="jpeg", metadata="keep")
    exif = kept.getexif()
    assert exif[ExifTags.Base.Copyright] == "(c) ACME" and exif[ExifTags.Base.Orientation] == 1
    assert not exif.get_ifd(ExifTags.IFD.GPSInfo)
    assert b"SN-0123456" not in kept.info["exif"] and b"GPS" not in kept.info["xmp"]
    assert kept.size == (120, 160), "orientation 6 applied to the pixels"
    webp = _run(client, p3_jpeg_with_gps, format="webp", metadata="keep")
    assert webp.getexif()[ExifTags.Base.Copyright] == "(c) ACME"


def _iphone_heic() -> bytes:
    """A HEIC as an iPhone writes it: Display P3 profile, rotated by irot (EXIF orientation 6), EXIF."""
    pillow_heif.register_heif_opener()
    buffer = io.BytesIO()
    exif = camera_exif()
    photo_like(96, 64).save(buffer, "HEIF", quality=80, icc_profile=display_p3(), exif=exif.tobytes())
    return buffer.getvalue()


def _android_avif() -> bytes:
    """An AVIF with an nclx box saying Display P3 (primaries 12, sRGB transfer) and orientation 8."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 8
    buffer = io.BytesIO()
    photo_like(96, 64).save(buffer, "AVIF", quality=80, speed=10, exif=exif.tobytes())
    data = bytearray(buffer.getvalue())
    at = data.index(b"colrnclx") + 8
    data[at : at + 2] = (12).to_bytes(2, "big")
    return bytes(data)


def test_an_iphone_heic_comes_out_upright_and_in_p3(client):
    data = _iphone_heic()
    result = _run(client, data, "IMG_0001.HEIC", format="png")
    assert result.size == (64, 96)
    assert result.info["icc_profile"] == display_p3()
    assert result.tobytes() == _pillow(data).tobytes()


def test_an_avif_with_nclx_p3_is_tagged_and_converted(client):
    data = _android_avif()
    kept = _run(client, data, "photo.avif", format="png")
    assert kept.size == (64, 96) and kept.tobytes() == _pillow(data).tobytes()
    assert ImageCms.getProfileDescription(ImageCms.ImageCmsProfile(io.BytesIO(kept.info["icc_profile"]))).startswith(
        "P3-D65"
    )
    converted = _run(client, data, "photo.avif", format="avif", colour="srgb", speed=10)
    assert converted.format == "AVIF" and converted.info["icc_profile"] == SRGB_PROFILE


def test_the_631_byte_jpeg_of_12000x12000_is_refused(client):
    from tests.hardening.corpus import corpus

    data = corpus()["jpeg-144-mp-in-600-bytes"].data
    status, _, body = client.upload(f"/api/flows/{_flow(client)}/run", data)
    assert status in (400, 422) and b"truncated" in body  # refused at upload, or the run fails naming it
