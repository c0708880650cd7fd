"""The home page's templates are the documents of docs/examples/: every one valid, named in both languages."""

import json

from django.utils import translation

from console import gallery
from flows.api_flows import graph_errors


def test_every_example_is_a_valid_flow_and_in_the_gallery():
    files = sorted(path.stem for path in gallery.EXAMPLES.glob("*.json"))
    assert files == sorted(gallery.ORDER)
    for path in gallery.EXAMPLES.glob("*.json"):
        document = json.loads(path.read_text())
        assert document["name"] == path.stem
        assert graph_errors(document["graph"]) == [], path.name
    entries = gallery.templates()
    assert [entry["key"] for entry in entries] == list(gallery.ORDER)
    thumbnails = entries[-1]
    assert thumbnails["outputs"] == 3 and thumbnails["steps"] == ["resize", "resize", "resize"]


def test_titles_follow_the_language():
    with translation.override("zh-hans"):
        titles = {entry["key"]: entry["title"] for entry in gallery.templates()}
    assert titles["thumbnails"] == "缩略图"
    with translation.override("en"):
        assert gallery.templates()[0]["title"] == "Compress"
