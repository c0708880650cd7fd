import pytest

from runtime.fonts import cjk_font_file, font_for, is_latin
from runtime.steps.watermark import Watermark, apply_watermark_whole, watermark_layout
from runtime.testing import chain, make_image, run_flow
from runtime.tiles import Size
from tests.runtime._compare import max_difference

POSITIONS = ["top-left", "top-right", "bottom-left", "bottom-right", "center", "tiled"]


def check(params, width=150, height=110, mode="RGB", tile_size=32):
    image = make_image(width, height, mode)
    result = run_flow(chain(("watermark", params)), image, tile_size=tile_size)["out"]
    reference = apply_watermark_whole(image, Watermark.Params(**params))
    assert max_difference(result, reference) == 0
    return image, result


@pytest.mark.parametrize("position", POSITIONS)
@pytest.mark.parametrize("mode", ["L", "RGB", "RGBA"])
def test_watermark_is_pixel_identical_and_visible(position, mode):
    image, result = check({"text": "© ACME 2025", "position": position, "opacity": 0.8, "font_size": 14}, mode=mode)
    assert max_difference(image, result) > 0


def test_chinese_text_is_drawn_with_a_cjk_font():
    image, result = check({"text": "版权所有 水印", "position": "center", "opacity": 1, "color": "#ff0000"})
    assert max_difference(image, result) > 0
    assert not is_latin("版权所有")
    assert font_for("版权所有", 20).path == cjk_font_file()[0]


def test_latin_text_uses_the_builtin_font():
    assert is_latin("© Café \u2013 2025")
    assert font_for("hello", 20).getname()[0] != "Noto Sans CJK SC"


def test_opacity_zero_changes_nothing():
    image, result = check({"text": "nothing", "opacity": 0})
    assert max_difference(image, result) == 0


def test_auto_font_size_follows_the_image_and_tiled_stamps_do_not_overlap():
    small = watermark_layout(Watermark.Params(text="x"), Size(200, 100))
    large = watermark_layout(Watermark.Params(text="x"), Size(2000, 1000))
    assert large.font_size > small.font_size
    layout = watermark_layout(Watermark.Params(text="tile me", position="tiled"), Size(400, 300))
    boxes = layout.stamp_boxes()
    assert len(boxes) > 4
    assert all(a.intersect(b).empty for i, a in enumerate(boxes) for b in boxes[i + 1 :])


def test_multiline_text_and_tiny_images():
    check({"text": "line one\nline two", "position": "tiled", "font_size": 9}, 97, 61, "RGBA", 16)
    check({"text": "big", "font_size": 200}, 5, 3)


def test_a_layout_is_made_once_and_each_parameter_makes_its_own():
    params = {"text": "© ACME", "position": "tiled", "opacity": 0.5, "font_size": 12}
    size = Size(300, 200)
    layout = watermark_layout(Watermark.Params(**params), size)
    assert watermark_layout(Watermark.Params(**params), Size(300, 200)) is layout  # planning, admission, workers
    assert watermark_layout(Watermark.Params(**params, color="#000000"), size) is layout  # the colour is ink only
    for change in ({"text": "© ACMF"}, {"position": "center"}, {"opacity": 0.6}, {"font_size": 13}):
        other = watermark_layout(Watermark.Params(**{**params, **change}), size)
        assert other != layout, change
    assert watermark_layout(Watermark.Params(**params), Size(600, 200)).positions != layout.positions
    # Two runs of one flow share the stamp; neither changes it (the second still draws the same pixels).
    first, second = check(params), check(params)
    assert max_difference(first[1], second[1]) == 0
