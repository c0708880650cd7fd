"""Metadata: stripped by default; kept without GPS, serial numbers or thumbnail, orientation 1."""

from __future__ import annotations

import io
import struct

import pytest
from PIL import ExifTags, Image

from runtime.metadata import kept_exif, kept_xmp
from tests.runtime.pictures import photo_like

XMP = (
    b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">'
    b'<rdf:Description xmlns:tiff="http://ns.adobe.com/tiff/1.0/" xmlns:exif="http://ns.adobe.com/exif/1.0/"'
    b' xmlns:aux="http://ns.adobe.com/exif/1.0/aux/" xmlns:dc="http://purl.org/dc/elements/1.1/"'
    b' tiff:Orientation="6" exif:GPSLatitude="48,51.5N" aux:SerialNumber="0123456"'
    b' exif:GPSLongitude="2,21.0E"><dc:rights>(c) ACME</dc:rights>'
    b"<exif:GPSAltitude>35/1</exif:GPSAltitude><aux:LensSerialNumber>99</aux:LensSerialNumber>"
    b"</rdf:Description></rdf:RDF></x:xmpmeta>"
)


def camera_exif() -> Image.Exif:
    """EXIF as a phone writes it: orientation, copyright, a GPS position, serial numbers, a maker note."""
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = "Pixelphone"
    exif[ExifTags.Base.Copyright] = "(c) ACME"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (48.0, 51.0, 29.0)
    details = exif.get_ifd(ExifTags.IFD.Exif)
    details[ExifTags.Base.DateTimeOriginal] = "2026:05:01 10:00:00"
    details[ExifTags.Base.BodySerialNumber] = "SN-0123456"
    details[ExifTags.Base.LensSerialNumber] = "LENS-99"
    details[ExifTags.Base.MakerNote] = b"vendor serial SN-0123456"
    return exif


def camera_jpeg() -> bytes:
    buffer = io.BytesIO()
    photo_like(96, 64).save(buffer, "JPEG", quality=90, exif=camera_exif(), xmp=XMP)
    return buffer.getvalue()


def test_kept_exif_has_no_gps_no_serials_and_orientation_1():
    with Image.open(io.BytesIO(camera_jpeg())) as image:
        data = image.info["exif"]
    assert b"SN-0123456" in data
    kept = kept_exif(data)
    assert kept.startswith(b"Exif\x00\x00")
    for secret in (b"SN-0123456", b"LENS-99", b"vendor serial"):
        assert secret not in kept
    exif = Image.Exif()
    exif.load(kept)
    assert exif[ExifTags.Base.Orientation] == 1
    assert exif[ExifTags.Base.Copyright] == "(c) ACME"
    assert ExifTags.IFD.GPSInfo not in exif and not exif.get_ifd(ExifTags.IFD.GPSInfo)
    assert exif.get_ifd(ExifTags.IFD.Exif)[ExifTags.Base.DateTimeOriginal] == "2026:05:01 10:00:00"


def _exif_with_thumbnail() -> bytes:
    """EXIF (little-endian TIFF) whose IFD0 holds an orientation and whose IFD1 points at a JPEG thumbnail."""
    thumb = io.BytesIO()
    photo_like(16, 16).save(thumb, "JPEG")
    jpeg = thumb.getvalue()
    ifd0 = struct.pack("<H", 1) + struct.pack("<HHII", 0x0112, 3, 1, 6) + struct.pack("<I", 26)
    thumbnail_at = 26 + 2 + 2 * 12 + 4
    ifd1 = struct.pack("<H", 2) + struct.pack("<HHII", 0x0201, 4, 1, thumbnail_at)
    ifd1 += struct.pack("<HHII", 0x0202, 4, 1, len(jpeg)) + struct.pack("<I", 0)
    return b"Exif\x00\x00" + b"II*\x00" + struct.pack("<I", 8) + ifd0 + ifd1 + jpeg


def test_kept_exif_drops_the_thumbnail():
    data = _exif_with_thumbnail()
    exif = Image.Exif()
    exif.load(data)
    assert exif.get_ifd(ExifTags.IFD.IFD1), "the thumbnail is there to begin with"
    kept = kept_exif(data)
    assert b"\xff\xd8" not in kept
    again = Image.Exif()
    again.load(kept)
    assert again[ExifTags.Base.Orientation] == 1 and not again.get_ifd(ExifTags.IFD.IFD1)


def test_kept_xmp_is_cleaned():
    kept = kept_xmp(XMP)
    assert b"GPS" not in kept and b"SerialNumber" not in kept
    assert b'tiff:Orientation="1"' in kept and b"(c) ACME" in kept


@pytest.mark.parametrize("data", [None, b"", b"Exif\x00\x00garbage"])
def test_unreadable_exif_is_left_out(data):
    assert kept_exif(data) is None
