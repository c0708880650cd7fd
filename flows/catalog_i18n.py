"""The step catalog in the caller's language: labels, categories, descriptions, param titles, help and choices.

The runtime declares its steps in English and knows nothing of languages; the texts below are marked for
`makemessages` so that `locale/*/django.po` carries them, and `translate_catalog` looks each text up at
request time. A third party's step shows its own texts, untranslated, unless a catalog has them too.
"""

from __future__ import annotations

import copy
from typing import Any

from django.conf import settings
from django.utils import translation
from django.utils.translation import gettext
from django.utils.translation import gettext_noop as _

BUILTIN_TEXTS = (
    # Categories
    _("Input / output"),
    _("Transform"),
    _("Annotate"),
    _("Filter"),
    _("Colour"),
    # source
    _("Image input"),
    _("The uploaded image, decoded as it arrives, with its EXIF orientation applied."),
    _("Fast Decode"),
    _(
        "JPEG only: when every step after the input shrinks the image by 2 or more, decode it at a reduced size "
        "(much faster; pixels differ slightly from a full decode)"
    ),
    # output
    _("Image output"),
    _(
        "Encode the result file. PNG and JPEG stream band by band as tiles finish; WebP is encoded once the whole "
        "image is done (its encoder cannot stream), so its first byte comes last."
    ),
    _(
        "Encode the result file. PNG and baseline JPEG stream band by band as tiles finish; progressive JPEG, WebP "
        "and AVIF are encoded once the whole image is done (their encoders take a whole picture), so their first "
        "byte comes last. Colour: `keep` writes the source's ICC profile unchanged with the pixels as they are; "
        "`srgb` converts them to sRGB (LittleCMS, perceptual) and tags the file sRGB. Metadata: `strip` writes no "
        "EXIF, XMP or IPTC; `keep` copies EXIF and XMP without GPS, serial numbers or thumbnail, orientation set to 1."
    ),
    _("JPEG, WebP and AVIF quality"),
    _("keep the embedded colour profile, or convert the pixels to sRGB"),
    _("Metadata"),
    _("strip EXIF and XMP, or keep them (never GPS positions or serial numbers)"),
    _("Progressive"),
    _("JPEG: progressive (the file is written at the end)"),
    _("Subsampling"),
    _("JPEG chroma subsampling"),
    _("Compression"),
    _("PNG zlib level: 0 none, 9 smallest"),
    _("Speed"),
    _("AVIF encoder speed: 0 slowest and smallest, 10 fastest"),
    _("in the image's colour space: its own profile, or sRGB when every output converts to sRGB"),
    _("Format"),
    _("Quality"),
    _("JPEG and WebP quality"),
    # resize
    _("Resize"),
    _("Scale the image down by a factor, or to fit inside a width and/or height, keeping its aspect ratio."),
    _("Scale"),
    _("factor in (0, 1]"),
    _("Width"),
    _("fit inside this width (px)"),
    _("Height"),
    _("fit inside this height (px)"),
    _("Resample"),
    _("Engine"),
    _(
        "auto: libvips where it is faster (within 50 dB of Pillow on photographs; text and hard edges differ "
        "more); pillow: always Pillow's result, exactly"
    ),
    # rotate
    _("Rotate"),
    _("Turn the image clockwise by a quarter, half or three-quarter turn, without loss."),
    _("Angle"),
    # grayscale
    _("Grayscale"),
    _('Keep only the brightness of each pixel (ITU-R 601-2 luma, as Pillow\'s convert("L")).'),
    # blur
    _("Gaussian blur"),
    _("Soften the image with a Gaussian blur of the given radius, as Pillow's GaussianBlur."),
    _("Radius"),
    # watermark
    _("Text watermark"),
    _("Draw a text over the image, in any script (Chinese included), at a corner, the centre, or tiled."),
    _("Text"),
    _("Opacity"),
    _("Position"),
    _("Font Size"),
    _("pixels; automatic when left out"),
    _("Color"),
)

# How a choice is shown, by its value (the value itself is what flow documents store).
CHOICE_LABELS = {
    "top-left": _("top left"),
    "top-right": _("top right"),
    "bottom-left": _("bottom left"),
    "bottom-right": _("bottom right"),
    "center": _("centre"),
    "tiled": _("tiled"),
    "keep": _("keep"),
    "srgb": _("convert to sRGB"),
    "strip": _("strip"),
    "lanczos": _("Lanczos (sharpest)"),
    "bilinear": _("bilinear"),
    "nearest": _("nearest neighbour"),
    "auto": _("automatic (libvips where faster)"),
    "pillow": _("Pillow (exact)"),
    90: _("90° clockwise"),
    180: _("180°"),
    270: _("270° clockwise"),
}


def _translated_schema(schema: dict[str, Any]) -> dict[str, Any]:
    schema = copy.deepcopy(schema)
    if isinstance(schema.get("title"), str):
        schema["title"] = gettext(schema["title"])
    for prop in schema.get("properties", {}).values():
        for key in ("title", "description"):
            if isinstance(prop.get(key), str):
                prop[key] = gettext(prop[key])
        if isinstance(prop.get("enum"), list):
            labels = {str(value): gettext(CHOICE_LABELS[value]) for value in prop["enum"] if value in CHOICE_LABELS}
            if labels:
                prop["x-choice-labels"] = labels
    return schema


def _texts(entry: dict[str, Any]) -> list[str]:
    return [gettext(entry["label"]), gettext(entry["description"]), gettext(entry["category"])]


def translate_catalog(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Return the catalog in the active language; `aliases` holds its texts in the other languages (for search)."""
    current = translation.get_language() or settings.LANGUAGE_CODE
    others = [code for code, _name in settings.LANGUAGES if code != current]
    translated = []
    for entry in entries:
        aliases: list[str] = []
        for code in others:
            with translation.override(code):
                aliases += [text for text in _texts(entry) if text not in aliases]
        label, description, category = _texts(entry)
        translated.append(
            {
                **entry,
                "label": label,
                "description": description,
                "category": category,
                "category_key": entry["category"],  # untranslated, for colours and grouping that stay put
                "params_schema": _translated_schema(entry["params_schema"]),
                "aliases": [text for text in aliases if text not in (label, description, category)],
            }
        )
    return translated
