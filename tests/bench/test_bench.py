"""The benchmark's own logic: progress-latency matching, verdicts, the docs section, the baselines' output."""

import io
from pathlib import Path

import pytest
from figure_progress import percentile, tile_latencies
from measure import Figure
from PIL import Image, ImageChops
from report import END, START, render_results, write_docs

STARTED = "2026-01-01T00:00:00+00:00"
T0 = 1767225600.0  # STARTED as a POSIX timestamp


def progress(at_ms: float, node: str, done: int, total: int) -> tuple[float, dict]:
    return T0 + at_ms / 1000, {"type": "progress", "node": node, "done": done, "total": total}


def test_each_tile_is_charged_from_its_done_moment_to_the_first_message_covering_it():
    snapshot = (T0, {"type": "snapshot", "execution": {"nodes": {"shrink": {"done": 1}, "out": {"done": 0}}}})
    messages = [
        snapshot,
        progress(150, "shrink", 3, 4),  # tiles 2 and 3 (done at 100 and 120 ms)
        progress(260, "shrink", 4, 4),  # tile 4 (done at 200 ms)
        progress(330, "out", 4, 4),  # the only band, 2 tiles wide: 4 tiles in 2 entries
        (T0 + 0.331, {"type": "status", "status": "succeeded", "error": None}),
    ]
    execution = {
        "started_at": STARTED,
        "nodes": {"shrink": {"total": 4}, "out": {"total": 4}},
        "timeline": {"shrink": [[0, 50], [60, 100], [90, 120], [150, 200]], "out": [[210, 300], [300, 320]]},
    }
    latencies = sorted(round(value * 1000) for value in tile_latencies(messages, execution))
    # shrink: tile 1 was in the snapshot; 150-100, 150-120, 260-200; out: 330-300, 330-320.
    assert latencies == [10, 30, 30, 50, 60]


def test_a_count_never_reported_is_an_error_not_a_silent_gap():
    messages = [
        (T0, {"type": "snapshot", "execution": {"nodes": {}}}),
        progress(100, "shrink", 1, 2),
        (T0 + 0.2, {"type": "status", "status": "succeeded", "error": None}),
    ]
    execution = {"started_at": STARTED, "nodes": {"shrink": {"total": 2}}, "timeline": {"shrink": [[0, 10], [0, 20]]}}
    with pytest.raises(RuntimeError, match="reached 2"):
        tile_latencies(messages, execution)


def test_a_failed_run_is_refused():
    messages = [
        (T0, {"type": "snapshot", "execution": {"nodes": {}}}),
        (T0, {"type": "status", "status": "failed", "error": "boom"}),
    ]
    with pytest.raises(RuntimeError, match="did not succeed"):
        tile_latencies(messages, {"started_at": STARTED, "nodes": {}, "timeline": {}})


def test_percentile_is_nearest_rank():
    values = list(range(1, 101))
    assert percentile(values, 0.95) == 95
    assert percentile([7], 0.95) == 7


@pytest.mark.parametrize(
    ("ratio", "goal", "failures", "verdict"),
    [
        (0.1, "<= 0.15", 0, "met"),
        (0.2, "<= 0.15", 0, "MISSED"),
        (1.2, ">= 1.0", 0, "met"),
        (0.9, ">= 1.0", 0, "MISSED"),
        (2.0, "", 0, "reported"),
        (None, "<= 1", 0, "n/a"),
        (1.5, ">= 1.0", 2, "MISSED (failures)"),
    ],
)
def test_verdicts(ratio, goal, failures, verdict):
    assert Figure("1", "x", ratio, goal, "", 5, failures=failures).verdict == verdict


def test_results_replace_only_the_marked_section(tmp_path: Path):
    page = tmp_path / "benchmarks.md"
    page.write_text(f"# Benchmarks\n\nmethod text\n\n{START}\nold numbers\n{END}\n\ntrailing text\n")
    figures = [Figure("7", "latency", 83.4, "<= 100", "p95 83 ms", 5, unit="ms", notes=["per run: 80, 85"])]
    write_docs(render_results(figures, {"CPU": "test cpu"}, 240.0, 5), page)
    text = page.read_text()
    assert "old numbers" not in text
    assert text.startswith("# Benchmarks\n\nmethod text\n\n")
    assert text.endswith("\n\ntrailing text\n")
    assert "| 7 | latency | 83 ms | ≤ 100 ms | met | 5 | p95 83 ms |" in text
    assert "- CPU: test cpu" in text
    assert "- (7) per run: 80, 85" in text


def test_pillow_baseline_matches_a_whole_image_reference(tmp_path: Path):
    from baselines import pillow_chain

    source = Image.new("RGB", (1600, 1200), (30, 60, 90))
    path = tmp_path / "source.png"
    source.save(path)
    result = Image.open(io.BytesIO(pillow_chain(path, "png")))
    assert result.size == (800, 600)
    # Resizing a flat colour keeps it; the watermark only lightens pixels, and only near the bottom-right.
    reference = source.resize((800, 600), Image.Resampling.LANCZOS)
    difference = ImageChops.difference(result.convert("RGB"), reference).getbbox()
    assert difference is not None
    assert difference[0] > 300 and difference[1] > 400
    assert difference[2] <= 800 - 50 and difference[3] <= 600 - 50  # the 50 px margin of a 100 px font
    assert result.getpixel((0, 0)) == reference.getpixel((0, 0))


@pytest.mark.parametrize("image_format", ["JPEG", "PNG"])
def test_first_data_is_the_first_arrival_past_the_image_header(image_format):
    from tileflow_server import RunTiming, image_header_length

    buffer = io.BytesIO()
    Image.effect_noise((64, 64), 40).convert("RGB").save(buffer, image_format)
    data = buffer.getvalue()
    header = image_header_length(data)
    marker = b"\xff\xda" if image_format == "JPEG" else b"IDAT"
    assert data.rfind(marker, 0, header) != -1  # the scan/IDAT header is inside, its data is not
    assert header < len(data) - 20
    arrivals = [(0.01, header), (0.05, header + 1), (0.09, len(data))]  # the header alone came first
    timing = RunTiming("id", 0.0, 0.01, 0.01, 0.09, len(data), data, arrivals)
    assert timing.first_data == 0.05


def test_a_body_that_is_not_an_image_has_no_header_length():
    from tileflow_server import image_header_length

    with pytest.raises(ValueError, match="not a complete"):
        image_header_length(b"<html>error</html>")


def test_the_batch_figure_sends_every_photo_as_an_image_part():
    from django.core.files.uploadhandler import MemoryFileUploadHandler
    from django.http.multipartparser import MultiPartParser
    from figure_batch import batch_body

    body, content_type = batch_body(b"\xff\xd8photo\xff\xd9", 3)
    meta = {"CONTENT_TYPE": content_type, "CONTENT_LENGTH": str(len(body))}
    _, files = MultiPartParser(meta, io.BytesIO(body), [MemoryFileUploadHandler()]).parse()
    assert [upload.name for upload in files.getlist("image")] == ["photo-000.jpg", "photo-001.jpg", "photo-002.jpg"]
