import io

import pytest
from PIL import Image, ImageChops

from runtime.encoders import WebpEncoder, make_encoder
from runtime.tiles import Size
from tests.runtime.pictures import decode_with_libvips, encode_in_bands, photo_like


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
@pytest.mark.parametrize(("width", "height"), [(1, 1), (1, 37), (37, 1), (203, 141)])
def test_webp_equals_a_whole_image_save(mode, width, height, tmp_path):
    image = photo_like(width, height, mode)
    data = encode_in_bands(make_encoder("webp", Size(width, height), mode, 70), image, 32)
    reference = io.BytesIO()
    image.convert("RGB" if mode == "L" else mode).save(reference, "WEBP", quality=70)
    decoded = Image.open(io.BytesIO(data))
    assert decoded.format == "WEBP"
    assert ImageChops.difference(decoded, Image.open(reference)).getbbox() is None
    path = tmp_path / "out.webp"
    path.write_bytes(data)
    assert decode_with_libvips(path).size == (width, height)


def test_webp_sends_nothing_before_finish():
    encoder = WebpEncoder(Size(20, 20), "RGB", 80)
    assert encoder.header() == b""
    assert encoder.encode_band(photo_like(20, 20)) == b""
    assert encoder.finish().startswith(b"RIFF")
