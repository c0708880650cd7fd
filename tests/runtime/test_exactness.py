"""Whole flows streamed tile by tile equal the same operations on the whole image."""

import io
import random

import pytest
from PIL import Image

from runtime.testing import chain, make_image, reference_flow, run_flow
from tests.runtime._compare import max_difference


def random_step(rng: random.Random) -> tuple[str, dict]:
    kind = rng.choice(["resize", "resize", "watermark", "rotate", "grayscale", "blur"])
    if kind == "resize":
        resample = rng.choice(["lanczos", "bilinear", "nearest"])
        if rng.random() < 0.5:
            return kind, {"scale": rng.choice([0.5, 0.25, rng.uniform(0.05, 1)]), "resample": resample}
        return kind, {"width": rng.randint(1, 200), "resample": resample}
    if kind == "watermark":
        text = rng.choice(["© ACME", "水印", "a\nb"])
        position = rng.choice(["top-left", "bottom-right", "center", "tiled"])
        return kind, {"text": text, "position": position, "opacity": rng.random(), "font_size": rng.randint(6, 30)}
    if kind == "rotate":
        return kind, {"angle": rng.choice([90, 180, 270])}
    if kind == "blur":
        return kind, {"radius": rng.choice([0, 0.7, 2, 5.5])}
    return kind, {}


@pytest.mark.parametrize("seed", range(150))
def test_random_chains_are_pixel_identical(seed):
    rng = random.Random(seed)
    steps = [random_step(rng) for _ in range(rng.randint(1, 4))]
    width, height = rng.choice([(rng.randint(1, 230), rng.randint(1, 230)), (1, rng.randint(1, 200)), (150, 1)])
    image = make_image(width, height, rng.choice(["L", "RGB", "RGBA", "P", "CMYK", "I;16", "LA", "1"]), seed)
    graph = chain(*steps)
    result = run_flow(graph, image, tile_size=rng.choice([16, 32, 64]))["out"]
    assert max_difference(result, reference_flow(graph, image)["out"]) == 0, steps


def jpeg_with_orientation(orientation: int) -> Image.Image:
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = orientation
    make_image(97, 61).save(buffer, "JPEG", quality=90, exif=exif)
    buffer.seek(0)
    return Image.open(buffer)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_exif_orientations(orientation):
    mark = {"text": "水印 ©", "font_size": 12}
    graph = chain(("resize", {"scale": 0.6}), ("watermark", mark), ("blur", {"radius": 1}))
    image = jpeg_with_orientation(orientation)
    result = run_flow(graph, image, tile_size=32)["out"]
    expected_size = (58, 37) if orientation < 5 else (37, 58)
    assert result.size == expected_size
    assert max_difference(result, reference_flow(graph, jpeg_with_orientation(orientation))["out"]) == 0


def test_fan_out_branches_are_each_exact():
    nodes = [
        {"id": "in", "type": "source", "params": {}},
        {"id": "small", "type": "resize", "params": {"scale": 0.4}},
        {"id": "soft", "type": "blur", "params": {"radius": 3}},
        {"id": "gray", "type": "grayscale", "params": {}},
        {"id": "turn", "type": "rotate", "params": {"angle": 270}},
        {"id": "mark", "type": "watermark", "params": {"text": "fan", "position": "tiled", "font_size": 8}},
        {"id": "a", "type": "output", "params": {}},
        {"id": "b", "type": "output", "params": {}},
        {"id": "c", "type": "output", "params": {}},
    ]
    edges = [
        ("in", "small"), ("small", "soft"), ("soft", "gray"), ("gray", "a"),
        ("small", "turn"), ("turn", "mark"), ("mark", "b"), ("small", "c"),
    ]  # fmt: skip
    graph = {"nodes": nodes, "edges": [{"from": f, "to": t} for f, t in edges]}
    image = make_image(211, 157, "RGBA", 3)
    results, references = run_flow(graph, image, tile_size=32), reference_flow(graph, image)
    assert set(results) == {"a", "b", "c"}
    for output in results:
        assert max_difference(results[output], references[output]) == 0, output
