"""`manage.py runflow` (CONTRACT §5): by id, by name or from a document file, with progress and clean failures."""

from __future__ import annotations

import io
import json
import os

import pytest
from django.core.management import call_command
from PIL import Image, ImageChops

from flows.models import Flow
from runtime.testing import chain, reference_flow
from tests.support.runs import COMPRESS_AND_WATERMARK, image_bytes
from tests.support.services import manage, project_env

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("fresh_channel_layer")]


def runflow(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("runflow", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exit:
        code = exit.code
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.jpg"
    path.write_bytes(image_bytes(900, 600))
    return path


def test_runs_a_saved_flow_by_name_and_by_id(user, photo, tmp_path):
    flow = Flow.objects.create(owner=user, name="compress-and-watermark", graph=COMPRESS_AND_WATERMARK)
    for reference in (flow.name, str(flow.id)):
        target = tmp_path / f"out-{reference[:4]}.jpg"
        code, out, err = runflow(reference, str(photo), "-o", str(target))
        assert code == 0, err
        with Image.open(target) as result:
            assert result.format == "JPEG" and result.size == (450, 300)
        for node in ("in", "shrink", "mark", "out"):
            assert f"{node}" in out
        assert "100%" in out and f"wrote {target}" in out


def test_runs_a_document_file_exactly_as_pillow(photo, tmp_path):
    graph = chain(("rotate", {"angle": 90}), ("grayscale", {}), output={"format": "png"})
    document = tmp_path / "flow.json"
    document.write_text(json.dumps({"name": "turn", "graph": graph}))
    target = tmp_path / "turned.png"
    code, _, err = runflow(str(document), str(photo), "-o", str(target), "--quiet")
    assert code == 0, err
    expected = reference_flow(graph, Image.open(photo))["out"]
    with Image.open(target) as result:
        assert ImageChops.difference(result, expected).getbbox() is None


@pytest.mark.parametrize(
    ("flow_arg", "input_bytes", "reason"),
    [
        ("no-such-flow", None, "no flow with id or name 'no-such-flow'"),
        ("document", b"not an image", "not an image"),
        ("bad-document", None, "is not valid"),
    ],
)
def test_fails_with_one_line_reason(user, tmp_path, photo, flow_arg, input_bytes, reason):
    if flow_arg == "document":
        path = tmp_path / "flow.json"
        path.write_text(json.dumps({"graph": chain(("grayscale", {}))}))
        flow_arg = str(path)
    if flow_arg == "bad-document":
        path = tmp_path / "bad.json"
        path.write_text(json.dumps({"graph": {"nodes": [], "edges": []}}))
        flow_arg = str(path)
    source = photo
    if input_bytes is not None:
        source = tmp_path / "broken.jpg"
        source.write_bytes(input_bytes)
    target = tmp_path / "out.png"
    code, _, err = runflow(flow_arg, str(source), "-o", str(target))
    assert code == 1
    assert err.count("\n") <= 1 and err.startswith("runflow: ")
    assert reason in err
    assert not target.exists()
    assert not list(tmp_path.glob(".runflow-*"))


@pytest.fixture
def document(tmp_path):
    path = tmp_path / "cw.json"
    path.write_text(json.dumps({"name": "cw", "graph": COMPRESS_AND_WATERMARK}))
    return path


def test_an_output_named_for_another_format_is_refused_and_a_bare_name_completed(document, photo, tmp_path):
    code, _, err = runflow(str(document), str(photo), "-o", str(tmp_path / "out.png"))
    assert code == 1 and "writes JPEG, not PNG" in err and f"name it {tmp_path / 'out.jpg'}" in err
    assert not (tmp_path / "out.png").exists()
    code, out, err = runflow(str(document), str(photo), "-o", str(tmp_path / "out"))
    assert code == 0, err
    assert f"wrote {tmp_path / 'out.jpg'}" in out and Image.open(tmp_path / "out.jpg").format == "JPEG"
    code, _, err = runflow(str(document), str(photo), "-o", str(tmp_path / "out.JPEG"))
    assert code == 0, err


def test_a_missing_folder_is_refused(document, photo, tmp_path):
    code, _, err = runflow(str(document), str(photo), "-o", str(tmp_path / "no" / "such" / "out.jpg"))
    assert code == 1 and "no such folder" in err and not (tmp_path / "no").exists()
    code, _, err = runflow(str(document), str(tmp_path / "missing"), "-o", str(tmp_path / "results"))
    assert code == 1 and "no such input file or folder" in err
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(image_bytes(64, 64))
    code, _, err = runflow(str(document), str(photos), "-o", str(tmp_path / "no" / "results"))
    assert code == 1 and "no such folder" in err


@pytest.fixture
def album(tmp_path):
    """A folder of photos with a sub-folder, a broken photo, a text file and a hidden file."""
    root = tmp_path / "album"
    (root / "day2" / "evening").mkdir(parents=True)
    sizes = {"a.jpg": (300, 200), "b.png": (200, 100), "day2/c.jpg": (120, 80), "day2/evening/d.JPG": (80, 60)}
    for name, (width, height) in sizes.items():
        format = "PNG" if name.endswith(".png") else "JPEG"
        (root / name).write_bytes(image_bytes(width, height, format=format, seed=len(name)))
    (root / "day2" / "broken.jpg").write_bytes(image_bytes(300, 200)[:2000])
    (root / "notes.txt").write_text("not a photo")
    (root / ".hidden.jpg").write_bytes(b"never read")
    return root


def test_a_folder_runs_recursively_past_broken_files_and_names_how_many_failed(document, album, tmp_path):
    outdir = tmp_path / "results"
    code, out, err = runflow(str(document), str(album), "-o", str(outdir), "--recursive")
    assert code == 1
    assert err.strip() == "runflow: 1 of 5 files failed (listed above)"
    assert "failed: day2/broken.jpg:" in out and "100% 5/5 files, 1 failed" in out
    written = sorted(str(path.relative_to(outdir)) for path in outdir.rglob("*") if path.is_file())
    assert written == ["a.jpg", "b.jpg", "day2/c.jpg", "day2/evening/d.jpg"]
    with Image.open(outdir / "day2" / "c.jpg") as result:
        assert result.format == "JPEG" and result.size == (60, 40)
    assert not list(outdir.glob(".runflow-*"))


def test_a_folder_without_recursive_takes_its_own_files_only(document, album, tmp_path):
    outdir = tmp_path / "results"
    code, out, err = runflow(str(document), str(album), "-o", str(outdir))
    assert code == 0, err
    assert sorted(path.name for path in outdir.iterdir()) == ["a.jpg", "b.jpg"]
    assert "wrote the results of 2 of 2 files" in out


def test_no_log_lines_above_the_bars(document, album, tmp_path):
    """As a person runs it: a real process, whose logging goes to its own stderr."""
    env = project_env(tmp_path, TILEFLOW_LOG_LEVEL="INFO")
    done = manage("runflow", str(document), str(album / "a.jpg"), "-o", str(tmp_path / "a.jpg"), env=env)
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0].startswith("in ") and lines[-1].startswith("wrote ")
    done = manage("runflow", str(document), str(album), "-o", str(tmp_path / "all"), "-r", env=env, check=False)
    assert done.returncode == 1 and done.stderr.strip() == "runflow: 1 of 5 files failed (listed above)"
    assert all(line.startswith(("[", "failed: ", "5 images", "wrote ")) for line in done.stdout.splitlines())


@pytest.mark.parametrize("slash", ["", "/"])
def test_an_existing_folder_as_output_takes_the_result_named_after_the_input(document, photo, tmp_path, slash):
    outdir = tmp_path / "results"
    outdir.mkdir()
    code, out, err = runflow(str(document), str(photo), "-o", f"{outdir}{slash}")
    assert code == 0, err
    assert f"wrote {outdir / 'photo.jpg'}" in out
    assert os.listdir(outdir) == ["photo.jpg"] and not (tmp_path / "results.jpg").exists()
    with Image.open(outdir / "photo.jpg") as result:
        assert result.format == "JPEG" and result.size == (450, 300)


def test_a_folder_output_ending_in_a_slash_is_created_and_the_input_never_replaced(document, photo, tmp_path):
    graph = chain(("grayscale", {}), output={"format": "png"})
    png_flow = tmp_path / "gray.json"
    png_flow.write_text(json.dumps({"graph": graph}))
    code, _, err = runflow(str(png_flow), str(photo), "-o", f"{tmp_path / 'new'}/")
    assert code == 0, err
    assert os.listdir(tmp_path / "new") == ["photo.png"]
    code, _, err = runflow(str(document), str(photo), "-o", f"{tmp_path / 'no' / 'such'}/")
    assert code == 1 and "no such folder" in err and not (tmp_path / "no").exists()
    before = photo.read_bytes()
    code, _, err = runflow(str(document), str(photo), "-o", str(tmp_path))
    assert code == 1 and "would replace the input" in err and err.count("\n") <= 1
    assert photo.read_bytes() == before


def test_counts_in_a_folder_s_messages_take_their_plural_only_when_more_than_one(document, tmp_path):
    source = tmp_path / "one"
    source.mkdir()
    (source / "a.jpg").write_bytes(image_bytes(64, 64))
    (source / "notes.txt").write_text("not a photo")
    code, out, err = runflow(str(document), str(source), "-o", str(tmp_path / "results"))
    assert code == 0, err
    assert "1 image in" in out and "; 1 other file left alone" in out
    assert "1/1 file (" in out and "wrote the results of 1 of 1 file to" in out
    (source / "a.jpg").write_bytes(image_bytes(300, 200)[:2000])
    (source / "more.txt").write_text("not a photo either")
    code, out, err = runflow(str(document), str(source), "-o", str(tmp_path / "again"))
    assert code == 1 and err.strip() == "runflow: 1 of 1 file failed (listed above)"
    assert "; 2 other files left alone" in out
