"""Fonts for text steps: Chinese is drawn with a CJK font, and text no font can draw fails instead of boxes."""

import pytest
from PIL import ImageFont

from runtime import fonts
from runtime.plan import PlanError
from runtime.testing import chain, make_image, run_flow


def test_chinese_text_gets_a_font_that_has_its_glyphs():
    font = fonts.font_for("© Tileflow 水印", 32)
    assert fonts.missing_characters(font, "水印 ©") == []
    assert fonts.missing_characters(ImageFont.load_default(32), "水印 ©") == ["水", "印"]


def test_text_without_glyphs_fails_the_node_with_the_reason(monkeypatch):
    monkeypatch.setattr(fonts, "cjk_font_file", lambda: None)  # a machine without fonts-noto-cjk
    graph = chain(("watermark", {"text": "水印"}))
    with pytest.raises(PlanError, match=r"cannot draw '水印': no CJK font is installed") as refused:
        run_flow(graph, make_image(64, 48))
    assert refused.value.node == graph["nodes"][1]["id"]


def test_a_script_no_installed_font_has_fails_too():
    hieroglyph = chain(("watermark", {"text": "ok 𓀀"}))
    with pytest.raises(PlanError, match=r"cannot draw '𓀀': no installed font has these characters"):
        run_flow(hieroglyph, make_image(64, 48))
