"""Metadata policy of an output (`metadata` param): what EXIF and XMP of the source may leave with it.

- `strip` (the default): no EXIF, XMP or IPTC at all.
- `keep`: EXIF and XMP are copied, cleaned: Orientation is set to 1 (the pixels are upright now), the
  EXIF thumbnail (IFD1) is dropped, and neither the GPS block nor serial numbers ever leave: the GPS
  IFD, the maker note (where cameras keep serials in vendor formats), `BodySerialNumber`,
  `LensSerialNumber`, `CameraSerialNumber`, `ImageUniqueID` and their XMP counterparts (`exif:GPS…`,
  `…SerialNumber`, `aux:ImageNumber`-style ids are left) are removed. IPTC is never copied.

ICC profiles are the `colour` param's business (`runtime.colour`), not this one's.
"""

from __future__ import annotations

import re
import struct

from PIL import ExifTags, Image

from runtime.headers import ORIENTATION_TAG

_EXIF_IFD = ExifTags.IFD.Exif
_GPS_IFD = ExifTags.IFD.GPSInfo
_PRIVATE_EXIF_TAGS = (
    ExifTags.Base.MakerNote,
    ExifTags.Base.BodySerialNumber,
    ExifTags.Base.LensSerialNumber,
    ExifTags.Base.ImageUniqueID,
    0xC62F,  # CameraSerialNumber (DNG)
)
_PRIVATE_XMP = r"[\w-]+:(?:GPS\w*|\w*SerialNumber|ImageUniqueID)"
_XMP_ATTRIBUTE = re.compile(rf'\s{_PRIVATE_XMP}="[^"]*"'.encode())
_XMP_ELEMENT = re.compile(rf"<({_PRIVATE_XMP})\b[^>]*?(?:/>|>.*?</\1>)".encode(), re.DOTALL)
_XMP_ORIENTATION_ATTRIBUTE = re.compile(rb'(tiff:Orientation=")[0-9]+(")')
_XMP_ORIENTATION_ELEMENT = re.compile(rb"(<tiff:Orientation>)[0-9]+(</tiff:Orientation>)")


def kept_exif(data: bytes | None) -> bytes | None:
    """Return the EXIF block to write ("Exif\\0\\0" + TIFF data) cleaned as `keep` says, or None."""
    if not data:
        return None
    exif = Image.Exif()
    try:
        exif.load(data)
        details = exif.get_ifd(_EXIF_IFD)  # loaded so that it is written back
    except (OSError, SyntaxError, ValueError, TypeError, KeyError, EOFError, struct.error):
        return None
    for tag in _PRIVATE_EXIF_TAGS:
        details.pop(tag, None)
        exif.pop(tag, None)
    exif.pop(_GPS_IFD, None)
    exif._ifds.pop(_GPS_IFD, None)
    if ORIENTATION_TAG in exif:
        exif[ORIENTATION_TAG] = 1
    try:
        return exif.tobytes()  # IFD0 and its sub-IFDs only: the thumbnail's IFD1 is not written
    except (ValueError, TypeError, struct.error):
        return None


def kept_xmp(data: bytes | None) -> bytes | None:
    """Return the XMP packet without GPS positions and serial numbers, its orientation set to 1, or None."""
    if not data:
        return None
    cleaned = _XMP_ELEMENT.sub(b"", _XMP_ATTRIBUTE.sub(b"", data))
    cleaned = _XMP_ORIENTATION_ATTRIBUTE.sub(rb"\g<1>1\g<2>", cleaned)
    return _XMP_ORIENTATION_ELEMENT.sub(rb"\g<1>1\g<2>", cleaned)
