"""Rotate, grayscale and blur against the same operation on the whole image."""

import pytest

from runtime.steps.blur import blur_halo
from runtime.testing import chain, make_image, reference_flow, run_flow
from tests.runtime._compare import max_difference


def difference(graph, image, tile_size=32):
    return max_difference(run_flow(graph, image, tile_size=tile_size)["out"], reference_flow(graph, image)["out"])


@pytest.mark.parametrize("angle", [90, 180, 270])
@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_rotate_is_pixel_identical(angle, mode):
    assert difference(chain(("rotate", {"angle": angle})), make_image(75, 41, mode)) == 0


def test_rotate_turns_clockwise():
    image = make_image(3, 2)
    rotated = run_flow(chain(("rotate", {"angle": 90})), image)["out"]
    assert rotated.size == (2, 3)
    assert rotated.getpixel((1, 0)) == image.getpixel((0, 0))  # top-left goes to top-right


@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_grayscale_is_pixel_identical(mode):
    graph = chain(("grayscale", {}))
    image = make_image(70, 45, mode)
    result = run_flow(graph, image)["out"]
    assert result.mode == ("RGBA" if mode == "RGBA" else "L")
    assert difference(graph, image) == 0
    if mode == "RGBA":
        assert result.getchannel("A") == image.getchannel("A")


@pytest.mark.parametrize("radius", [0, 0.5, 1, 2.5, 7, 20])
@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_blur_is_pixel_identical(radius, mode):
    # The contract allows 1; with the full box-blur halo the passes see the same pixels, so it is exact.
    assert difference(chain(("blur", {"radius": radius})), make_image(90, 67, mode), tile_size=16) == 0


def test_blur_halo_grows_with_radius():
    assert blur_halo(0) == 0
    assert blur_halo(1) < blur_halo(5) < blur_halo(20)
