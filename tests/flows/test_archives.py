"""Reading zip archives safely: names, entry counts, bombs, links, and writing only where told."""

from __future__ import annotations

import io
import zipfile

import pytest

from flows import archives

LIMITS = archives.ArchiveLimits(max_entries=100, max_total_bytes=10**8, max_ratio=200, max_entry_bytes=10**7)


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("a.jpg", "a.jpg"),
        ("trip/./day1//a.jpg", "trip/day1/a.jpg"),
        ("trip\\day1\\a.jpg", "trip/day1/a.jpg"),
        ("../a.jpg", None),
        ("trip/../../a.jpg", None),
        ("trip\\..\\..\\a.jpg", None),
        ("/etc/a.jpg", None),
        ("C:/Windows/a.jpg", None),
        ("a\x00.jpg", None),
        ("a\x1b[31m.jpg", None),
        ("two\nlines.jpg", None),
        ("旅行/照片\u3000一.jpg", "旅行/照片\u3000一.jpg"),  # an ideographic space is a name's own
        ("", None),
    ],
)
def test_clean_name(raw, clean):
    assert archives.clean_name(raw) == clean


def write_zip(path, entries: dict[str, bytes], compression=zipfile.ZIP_STORED) -> None:
    with zipfile.ZipFile(path, "w", compression) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)


def test_declared_entries_is_read_from_the_end_record(tmp_path):
    path = tmp_path / "a.zip"
    write_zip(path, {f"{n}.jpg": b"x" for n in range(7)})
    with open(path, "rb") as stream:
        assert archives.declared_entries(stream) == 7
    with pytest.raises(archives.ArchiveRejected, match="not a zip"):
        archives.declared_entries(io.BytesIO(b"no zip here" * 10))


def test_a_small_flat_file_may_compress_well_but_a_big_one_may_not(tmp_path):
    path = tmp_path / "a.zip"
    write_zip(path, {"small.bmp": b"\0" * 500_000}, zipfile.ZIP_DEFLATED)
    [entry] = archives.read_entries(path, LIMITS)
    assert entry.error is None and entry.info is not None
    write_zip(path, {"big.bmp": b"\0" * 5_000_000}, zipfile.ZIP_DEFLATED)
    with pytest.raises(archives.ArchiveRejected, match="zip bomb"):
        archives.read_entries(path, LIMITS)


def test_an_entry_that_lies_about_its_size_cannot_write_more(tmp_path):
    path = tmp_path / "a.zip"
    write_zip(path, {"a.jpg": b"y" * 1000})
    data = bytearray(path.read_bytes())
    # Shrink the declared size in the central directory: zipfile then stops (and fails its CRC) early.
    at = data.rfind(b"PK\x01\x02")
    data[at + 24 : at + 28] = (10).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    [entry] = archives.read_entries(path, LIMITS)
    target = tmp_path / "out" / "00000.jpg"
    target.parent.mkdir()
    with zipfile.ZipFile(path) as archive, pytest.raises(zipfile.BadZipFile):
        archives.extract(archive, entry.info, target, entry.info.file_size)
    assert target.stat().st_size <= 10


def test_clutter_is_skipped_and_large_or_empty_entries_are_listed(tmp_path):
    path = tmp_path / "a.zip"
    limits = archives.ArchiveLimits(max_entries=100, max_total_bytes=10**8, max_ratio=200, max_entry_bytes=1000)
    write_zip(
        path, {"__MACOSX/._a.jpg": b"x", ".DS_Store": b"x", "big.jpg": b"z" * 2000, "empty.jpg": b"", "a.tar.gz": b"x"}
    )
    errors = {entry.name: entry.error for entry in archives.read_entries(path, limits)}
    assert set(errors) == {"big.jpg", "empty.jpg", "a.tar.gz"}
    assert "limit for one image" in errors["big.jpg"] and "empty" in errors["empty.jpg"]
    assert "nested" in errors["a.tar.gz"]


def test_a_results_zip_gives_no_item_a_name_another_item_has_of_its_own():
    from flows.batch_results import natural_names, unique_names

    natural = [natural_names(name, [("out", ".jpg")], False) for name in ("a.jpg", "a.png", "a-2.jpg", "A.JPG")]
    assert unique_names(natural) == [["a.jpg"], ["a-3.jpg"], ["a-2.jpg"], ["A-4.jpg"]]
    assert unique_names([["errors.json"]]) == [["errors-2.json"]]
