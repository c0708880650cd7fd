import io

import pytest
from PIL import Image, ImageChops

from runtime.colour import SRGB_PROFILE
from runtime.encoders import AvifEncoder, EncodeOptions, make_encoder
from runtime.tiles import Size
from tests.runtime.pictures import decode_with_libvips, encode_in_bands, photo_like


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
@pytest.mark.parametrize(("width", "height"), [(1, 1), (37, 1), (61, 43)])
def test_avif_equals_a_whole_image_save(mode, width, height, tmp_path):
    image = photo_like(width, height, mode)
    options = EncodeOptions(quality=60, speed=10, icc_profile=SRGB_PROFILE)
    data = encode_in_bands(make_encoder("avif", Size(width, height), mode, options=options), image, 16)
    reference = io.BytesIO()
    image.convert("RGB" if mode == "L" else mode).save(
        reference, "AVIF", quality=60, speed=10, icc_profile=SRGB_PROFILE
    )
    decoded = Image.open(io.BytesIO(data))
    assert decoded.format == "AVIF" and decoded.info["icc_profile"] == SRGB_PROFILE
    assert ImageChops.difference(decoded, Image.open(reference)).getbbox() is None
    path = tmp_path / "out.avif"
    path.write_bytes(data)
    assert decode_with_libvips(path).size == (width, height)


def test_avif_sends_nothing_before_finish_and_checks_its_params():
    encoder = AvifEncoder(Size(20, 20), "RGB", EncodeOptions(speed=10))
    assert encoder.header() == b"" and encoder.encode_band(photo_like(20, 20)) == b""
    assert encoder.finish()[4:12] == b"ftypavif"
    with pytest.raises(ValueError, match="speed"):
        AvifEncoder(Size(2, 2), "RGB", EncodeOptions(speed=11))
