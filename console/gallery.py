"""The template gallery of the home page: the flow documents of docs/examples/, one click from a running flow.

The same files are the ones the README's commands post, so what a newcomer clicks and what a script
sends cannot drift apart. Their names and descriptions are shown translated.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from django.conf import settings
from django.utils.translation import gettext
from django.utils.translation import gettext_noop as _

EXAMPLES = Path(settings.BASE_DIR) / "docs" / "examples"
ORDER = ("compress", "watermark", "rotate", "compress-and-watermark", "thumbnails")
TEXTS = {
    "compress": (_("Compress"), _("Halve the size and save as JPEG quality 80.")),
    "watermark": (_("Watermark"), _("Stamp a text in the bottom-right corner (any script: 中文 works too).")),
    "rotate": (_("Rotate"), _("Turn the image a quarter turn clockwise, without loss.")),
    "compress-and-watermark": (
        _("Compress and watermark"),
        _("Halve, watermark, JPEG: the example of the API contract."),
    ),
    "thumbnails": (_("Thumbnails"), _("One upload, three sizes: a fan-out to three outputs (pick one with ?output=).")),
}


def templates() -> list[dict[str, Any]]:
    """Return the gallery's entries: the document to create, and its title and description in the active language."""
    entries = []
    for stem in ORDER:
        path = EXAMPLES / f"{stem}.json"
        if not path.is_file():
            continue
        document = json.loads(path.read_text())
        title, description = TEXTS[stem]
        steps = [node["type"] for node in document["graph"]["nodes"] if node["type"] not in ("source", "output")]
        outputs = sum(1 for node in document["graph"]["nodes"] if node["type"] == "output")
        entries.append(
            {
                "key": stem,
                "title": gettext(title),
                "description": gettext(description),
                "steps": steps,
                "outputs": outputs,
                "document": document,
            }
        )
    return entries
