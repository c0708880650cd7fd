"""Fonts for text steps: a CJK-capable font when the text needs one, Pillow's built-in font otherwise."""

from __future__ import annotations

import functools
from pathlib import Path

from PIL import ImageFont

# (path, face index): in the Noto CJK collections face 2 is Simplified Chinese, which also draws
# Japanese kana, Hangul, Latin, Greek and Cyrillic.
CJK_CANDIDATES = (
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc", 2),
    ("/usr/share/fonts/opentype/noto/NotoSansCJK-Medium.ttc", 2),
    ("/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc", 0),
    ("/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf", 0),
)
FONT_DIRECTORIES = ("/usr/share/fonts", "/usr/local/share/fonts")


def is_latin(text: str) -> bool:
    """Return whether Pillow's built-in font can draw every character of `text`."""
    return all(ord(char) < 0x250 or 0x2000 <= ord(char) < 0x20D0 for char in text)


@functools.cache
def cjk_font_file() -> tuple[str, int] | None:
    """Return the path and face index of an installed CJK font, or None when there is none."""
    for path, index in CJK_CANDIDATES:
        if Path(path).is_file():
            return path, index
    for directory in FONT_DIRECTORIES:
        for pattern in ("*CJK*.tt[cf]", "*CJK*.otf"):
            for path in sorted(Path(directory).rglob(pattern)):
                return str(path), 0
    return None


@functools.lru_cache(maxsize=64)
def _load(file: tuple[str, int] | None, size: int) -> ImageFont.FreeTypeFont:
    if file is None:
        font = ImageFont.load_default(size)
        if not isinstance(font, ImageFont.FreeTypeFont):
            raise RuntimeError("Pillow was built without FreeType: no scalable font to draw text with")
        return font
    path, index = file
    return ImageFont.truetype(path, size, index=index)


class MissingGlyphs(ValueError):
    """No installed font draws some characters of a text: drawing it would show empty boxes."""


def _notdef(font: ImageFont.FreeTypeFont) -> bytes:
    """Return how `font` draws a character it does not have (a noncharacter is never in a font)."""
    return bytes(font.getmask("\uffff"))


def missing_characters(font: ImageFont.FreeTypeFont, text: str) -> list[str]:
    """Return the characters of `text` that `font` has no glyph for (drawn as its .notdef box)."""
    blank = _notdef(font)
    seen: dict[str, None] = {}
    for char in text:
        if char.isspace() or char in seen:
            continue
        if bytes(font.getmask(char)) == blank:
            seen[char] = None
    return list(seen)


@functools.lru_cache(maxsize=256)
def font_for(text: str, size: int) -> ImageFont.FreeTypeFont:
    """Return a font of `size` px that draws `text`: the built-in font for Latin text, else a CJK font.

    Raises MissingGlyphs naming the characters when no installed font has them (Debian: fonts-noto-cjk).
    Cached (a refusal is not): checking the glyphs renders every character of the text.
    """
    font = _load(None if is_latin(text) else cjk_font_file(), size)
    missing = missing_characters(font, text)
    if missing:
        shown = "".join(missing[:12]) + ("…" if len(missing) > 12 else "")
        if not is_latin(text) and cjk_font_file() is None:
            why = "no CJK font is installed (Debian: apt-get install fonts-noto-cjk; `make run` does it)"
        else:
            why = "no installed font has these characters"
        raise MissingGlyphs(f"cannot draw {shown!r}: {why}; the text would show as empty boxes")
    return font
