import random

import pytest
from PIL import Image

from runtime.decode import decode_bands, decode_rows, probe
from runtime.plan import compile_plan
from runtime.registry import ImageInfo
from runtime.steps.resize import Resize, resized_size
from runtime.steps.source import shrink_on_load, shrunk_size
from runtime.testing import chain
from runtime.tiles import Size
from tests.runtime.pictures import photo_like


def fast(*steps, fast_decode: bool = True) -> dict:
    graph = chain(*steps)
    graph["nodes"][0]["params"] = {"fast_decode": fast_decode}
    return graph


def output_size(graph: dict, size: Size) -> Size:
    return compile_plan(graph, ImageInfo(size, "RGB")).nodes["out"].output.size


@pytest.mark.parametrize(
    ("params", "shrink"),
    [
        ({"scale": 0.5}, 2),
        ({"scale": 0.3}, 2),
        ({"scale": 0.25}, 4),
        ({"scale": 0.1}, 8),
        ({"width": 3000, "height": 2000}, 2),
        ({"width": 1000}, 4),
        ({"scale": 0.6}, 1),
    ],
)
def test_shrink_is_the_largest_the_resize_allows_and_keeps_the_output_size(params, shrink):
    size = Size(6000, 4000)
    graph = fast(("resize", params), ("grayscale", {}))
    chosen, rewritten = shrink_on_load(graph, size)
    assert chosen == shrink
    assert output_size(rewritten, shrunk_size(size, chosen)) == output_size(graph, size)


def test_without_fast_decode_or_with_another_reader_nothing_changes():
    size = Size(6000, 4000)
    plain = fast(("resize", {"scale": 0.5}), fast_decode=False)
    assert shrink_on_load(plain, size) == (1, plain)
    other = fast(("grayscale", {}), ("resize", {"scale": 0.5}))
    assert shrink_on_load(other, size) == (1, other)
    assert shrink_on_load(chain(("resize", {"scale": 0.5})), size)[0] == 1


def test_fan_out_of_resizes_shrinks_by_what_all_allow():
    graph = fast(("resize", {"scale": 0.2}))
    graph["nodes"].append({"id": "half", "type": "resize", "params": {"scale": 0.5}})
    graph["nodes"].append({"id": "out2", "type": "output", "params": {}})
    graph["edges"] += [{"from": "in", "to": "half"}, {"from": "half", "to": "out2"}]
    shrink, rewritten = shrink_on_load(graph, Size(6000, 4000))
    assert shrink == 2
    plan = compile_plan(rewritten, ImageInfo(shrunk_size(Size(6000, 4000), 2), "RGB"))
    assert plan.nodes["out2"].output.size == Size(3000, 2000)
    assert plan.nodes["out"].output.size == Size(1200, 800)


def test_odd_sizes_keep_their_exact_output_size():
    rng = random.Random(7)
    for _ in range(300):
        size = Size(rng.randint(16, 9000), rng.randint(16, 9000))
        if rng.random() < 0.5:
            params = {"scale": round(rng.uniform(0.01, 0.5), 4)}
        else:
            params = {"width": rng.randint(1, size.width // 2 + 1), "height": rng.randint(1, size.height // 2 + 1)}
        graph = fast(("resize", params))
        shrink, rewritten = shrink_on_load(graph, size)
        target = resized_size(size, *(Resize.Params(**params).model_dump()[k] for k in ("scale", "width", "height")))
        assert output_size(rewritten, shrunk_size(size, shrink)) == target, (size, params, shrink)


@pytest.mark.parametrize("shrink", [2, 4, 8])
def test_shrunk_decode_is_pillows_draft_decode(tmp_path, shrink):
    path = tmp_path / "photo.jpg"
    photo_like(803, 611).save(path, "JPEG", quality=90)
    header = probe(path, 10**8)
    with Image.open(path) as opened:
        opened.draft("RGB", (803 // shrink, 611 // shrink))
        reference = opened.convert("RGB")
    assert reference.size == (shrunk_size(header.size, shrink).width, shrunk_size(header.size, shrink).height)
    rows = list(decode_rows(path, header, 64, shrink))
    assert rows[-1][1] == reference.height
    image = rows[-1][2]
    assert image.size == reference.size and image.tobytes() == reference.tobytes()


def test_full_decode_is_unchanged_by_the_row_interface(tmp_path):
    path = tmp_path / "photo.jpg"
    photo_like(300, 200).save(path, "JPEG", quality=90)
    header = probe(path, 10**8)
    bands = list(decode_bands(path, header, 64))
    with Image.open(path) as opened:
        whole = opened.convert("RGB")
    assert [y0 for y0, _ in bands] == [0, 64, 128, 192]
    assert b"".join(band.tobytes() for _, band in bands) == whole.tobytes()


def test_shrink_is_refused_for_what_does_not_stream(tmp_path):
    path = tmp_path / "photo.png"
    photo_like(64, 64).save(path, "PNG")
    with pytest.raises(ValueError, match="1/2"):
        list(decode_rows(path, probe(path, 10**8), 16, 2))
