import io
import random

import pytest
import pyvips

from runtime.decode import decode_rows, probe
from runtime.registry import ImageInfo, StepContext
from runtime.steps.resize import (
    VIPS_MAX_FACTOR,
    Resize,
    exact_on_pillow,
    exact_period,
    fit_inside,
    pass_period,
    resized_size,
    runs_on_libvips,
)
from runtime.testing import chain, libvips_resize_whole, make_image, reference_flow, run_flow
from runtime.tiles import Box, Size, Tile
from tests.runtime._compare import max_difference, psnr


def check(params, width, height, mode="RGB", tile_size=32, seed=0):
    """Tiled == the whole-image resize of the library that runs it (libvips or Pillow), pixel for pixel.

    Or, on Pillow for sizes whose exact box edges would reach too far (see `exact_on_pillow`), within 1
    on a few values.
    """
    graph = chain(("resize", params))
    image = make_image(width, height, mode, seed)
    tiled, whole = run_flow(graph, image, tile_size=tile_size)["out"], reference_flow(graph, image)["out"]
    in_size, out_size = Size(width, height), Size(*whole.size)
    resample = params.get("resample", "lanczos")
    on_libvips = runs_on_libvips(resample, mode, in_size, out_size, params.get("engine", "auto"))
    if resample == "nearest" or on_libvips or exact_on_pillow(in_size, out_size):
        assert max_difference(tiled, whole) == 0
    elif mode == "RGBA":  # as seen: premultiplied (1 off there is more once divided by a small alpha), re-rounded
        seen = [image.convert("RGBa") for image in (tiled, whole)]
        assert max_difference(*seen) <= 2 and psnr(*seen) >= 70, (in_size, out_size)
    else:
        assert max_difference(tiled, whole) <= 1 and psnr(tiled, whole) >= 70, (in_size, out_size)


def test_a_pass_keeps_its_exact_box_edges_only_while_they_stay_near_its_tile():
    assert exact_on_pillow(Size(6000, 4000), Size(3000, 2000))  # period 1
    assert exact_on_pillow(Size(6000, 4000), Size(2220, 1480))  # 0.37: periods 37, reaching 100 input px
    assert pass_period(4000, 533) == 1 and exact_period(4000, 533) == 533  # the whole column: given up
    assert not exact_on_pillow(Size(6000, 4000), Size(800, 533))
    assert exact_on_pillow(Size(1000, 700), Size(107, 75))  # short axes: spanning them all costs no stream


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


def test_libvips_runs_lanczos_and_bilinear_on_l_and_rgb_up_to_their_factors():
    big, half = Size(600, 400), Size(300, 200)
    assert runs_on_libvips("lanczos", "RGB", big, half)
    assert runs_on_libvips("bilinear", "L", big, half)
    assert not runs_on_libvips("nearest", "RGB", big, half)  # a pick: libvips picks other pixels than Pillow
    assert not runs_on_libvips("lanczos", "RGBA", big, half)  # 8-bit premultiplied alpha: 40-46 dB
    assert not runs_on_libvips("lanczos", "RGB", big, big)  # nothing to do
    assert runs_on_libvips("lanczos", "RGB", big, Size(100, 67))  # factor 6
    assert not runs_on_libvips("lanczos", "RGB", big, Size(99, 66))
    assert runs_on_libvips("bilinear", "RGB", big, Size(150, 100))  # factor 4
    assert not runs_on_libvips("bilinear", "RGB", big, Size(600, 99))  # one axis is enough


@pytest.mark.parametrize("resample", ["lanczos", "bilinear"])
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_libvips_results_stay_within_50_db_of_pillow(resample, mode):
    # Measured here (dB, factors 1.1 / 2 / 3 / limit): RGB lanczos 51.7 54.3 54.6 53.2, bilinear 53.1 54.3 54.3 54.1;
    # L lanczos 52.8 54.5 55.0 53.6, bilinear 53.6 54.9 55.2 55.5. Tiled == libvips' whole image: 0 pixels differ.
    image = make_image(504, 360, mode, seed=3)
    for factor in (1.1, 2, 3, VIPS_MAX_FACTOR[resample]):
        params = {"scale": 1 / factor, "resample": resample}
        size = resized_size(Size(504, 360), params["scale"], None, None)
        assert runs_on_libvips(resample, mode, Size(504, 360), size)
        tiled = run_flow(chain(("resize", params)), image, tile_size=32)["out"]
        pillow = reference_flow(chain(("resize", params)), image, pillow_only=True)["out"]
        assert max_difference(tiled, libvips_resize_whole(image, size, resample)) == 0
        assert psnr(tiled, pillow) >= 50, (factor, psnr(tiled, pillow))


def test_pillow_runs_what_libvips_does_not_and_matches_it_exactly():
    for params, mode in [
        ({"scale": 0.1}, "RGB"),
        ({"scale": 0.5}, "RGBA"),
        ({"scale": 0.5, "resample": "nearest"}, "L"),
    ]:
        image = make_image(150, 90, mode, seed=1)
        graph = chain(("resize", params))
        assert (
            max_difference(
                run_flow(graph, image, tile_size=16)["out"], reference_flow(graph, image, pillow_only=True)["out"]
            )
            == 0
        )


@pytest.mark.parametrize("params", [{"scale": 0.5}, {"scale": 0.37}, {"width": 300, "height": 90}, {"width": 133}])
def test_tiles_of_the_decode_target_resize_in_place_to_libvips_whole_result(params):
    buffer = io.BytesIO()
    make_image(400, 300, "RGB", seed=9).save(buffer, "JPEG", quality=90)
    header = probe(io.BytesIO(buffer.getvalue()), 10**8)
    *_, (_, _, target, _) = decode_rows(buffer.getvalue(), header, [0, 300])
    step = Resize(Resize.Params(**params), ImageInfo(Size(400, 300), "RGB"))
    assert step.on_libvips
    whole = libvips_resize_whole(target.copy(), step.out_size)
    size = step.out_size
    for out in (Box(0, 0, size.width, size.height), Box(5, 3, size.width // 2, size.height - 4)):
        written = []
        tile = Tile.of_parent(step.needs(out), target)  # read by libvips as the target's 4-byte pixels
        step.process(tile, StepContext("r", out, step.input, step.output_info(), written.append))
        assert written[0].box == out
        assert written[0].view().tobytes() == whole.crop(out.as_tuple()).tobytes(), (params, out)


def test_scale_rounds_halves_up_on_both_sides_as_libvips_own_resize():
    assert resized_size(Size(1999, 1333), 0.5, None, None) == Size(1000, 667)  # round() would give 1000x666
    assert resized_size(Size(6001, 4001), 0.5, None, None) == Size(3001, 2001)
    image = make_image(199, 133, "RGB", seed=5)
    tiled = run_flow(chain(("resize", {"scale": 0.5})), image, tile_size=32)["out"]
    vips = pyvips.Image.new_from_memory(image.tobytes(), 199, 133, 3, "uchar").resize(0.5, kernel="lanczos3")
    assert (tiled.width, tiled.height) == (vips.width, vips.height) == (100, 67)
    # Sampled as Pillow maps the whole input onto the whole output (100/199 by 67/133), on libvips.
    assert max_difference(tiled, libvips_resize_whole(image, Size(100, 67))) == 0


@pytest.mark.parametrize("size", [(3, 2), (5, 4), (33, 17), (257, 3), (90, 60), (40, 400)])
@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_small_pictures_stay_within_50_db_of_pillow(size, mode):
    """Their edges are most of them, and libvips' edges are not Pillow's: under 48 px a side they run on Pillow."""
    image = make_image(*size, mode, seed=2)
    for scale in (0.5, 0.3):
        graph = chain(("resize", {"scale": scale}))
        tiled = run_flow(graph, image, tile_size=32)["out"]
        pillow = reference_flow(graph, image, pillow_only=True)["out"]
        assert psnr(tiled, pillow) >= 50, (size, scale, psnr(tiled, pillow))


def screenshot_like(width: int, height: int):
    """Black 13 px text and 1 px red lines on white: where libvips' Lanczos and Pillow's differ most."""
    from PIL import Image, ImageDraw, ImageFont

    image = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(image)
    for row in range(0, height, 16):
        draw.text(
            (3, row),
            "The quick brown fox jumps over the lazy dog 0123456789 " * 4,
            font=ImageFont.load_default(13),
            fill="black",
        )
    for x in range(0, width, 7):
        draw.line([(x, 0), (x, height - 1)], fill=(200, 0, 0))
    return image


def test_engine_pillow_keeps_text_exactly_where_libvips_would_differ():
    image = screenshot_like(400, 240)
    params = {"scale": 0.5}
    auto = run_flow(chain(("resize", params)), image, tile_size=64)["out"]
    pillow = reference_flow(chain(("resize", params)), image, pillow_only=True)["out"]
    assert psnr(auto, pillow) < 45  # the measured gap the param is for (37-41 dB on such content)
    exact = run_flow(chain(("resize", {**params, "engine": "pillow"})), image, tile_size=64)["out"]
    assert max_difference(exact, pillow) == 0
    assert max_difference(exact, reference_flow(chain(("resize", {**params, "engine": "pillow"})), image)["out"]) == 0
    assert not runs_on_libvips("lanczos", "RGB", Size(400, 240), Size(200, 120), "pillow")
