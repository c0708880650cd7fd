import random

import pytest

from runtime.steps.resize import fit_inside, resized_size
from runtime.testing import chain, make_image, reference_flow, run_flow
from runtime.tiles import Size
from tests.runtime._compare import max_difference


def check(params, width, height, mode="RGB", tile_size=32, seed=0):
    graph = chain(("resize", params))
    image = make_image(width, height, mode, seed)
    assert max_difference(run_flow(graph, image, tile_size=tile_size)["out"], reference_flow(graph, image)["out"]) == 0


@pytest.mark.parametrize("resample", ["lanczos", "bilinear", "nearest"])
@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_scale_is_pixel_identical(resample, mode):
    for scale, width, height in [(0.5, 130, 97), (1 / 3, 101, 140), (0.37, 257, 63), (0.9, 80, 81)]:
        check({"scale": scale, "resample": resample}, width, height, mode)


def test_random_sizes_and_tiles_are_pixel_identical():
    rng = random.Random(7)
    for seed in range(40):
        width, height = rng.randint(1, 260), rng.randint(1, 260)
        params = {"resample": rng.choice(["lanczos", "bilinear", "nearest"])}
        if rng.random() < 0.5:
            params["scale"] = rng.uniform(0.02, 1)
        else:
            params["width"] = rng.randint(1, 300)
            if rng.random() < 0.5:
                params["height"] = rng.randint(1, 300)
        check(params, width, height, rng.choice(["L", "RGB", "RGBA"]), rng.choice([7, 16, 32, 64]), seed)


def test_pass_order_follows_pillow_both_ways():
    check({"width": 60, "height": 20}, 70, 200)  # height shrinks most: Pillow runs the vertical pass first
    check({"width": 20, "height": 190}, 200, 200)  # width shrinks most: horizontal pass first


def test_fit_inside_never_upscales_and_keeps_aspect():
    assert fit_inside(Size(400, 200), 1000, None) == Size(400, 200)
    assert fit_inside(Size(400, 200), 100, None) == Size(100, 50)
    assert fit_inside(Size(400, 200), 100, 10) == Size(20, 10)
    assert fit_inside(Size(400, 200), None, 50) == Size(100, 50)
    assert resized_size(Size(3, 1000), 0.1, None, None) == Size(1, 100)
    image = make_image(333, 111)
    image.thumbnail((50, 50), reducing_gap=None)
    assert fit_inside(Size(333, 111), 50, 50) == Size(*image.size)


def test_one_pixel_wide_and_tall_images():
    check({"scale": 0.5}, 1, 97)
    check({"scale": 0.5}, 97, 1)
    check({"width": 1}, 50, 3)
