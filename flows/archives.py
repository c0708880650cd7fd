"""Read a zip archive of images safely: refuse bombs, list unsafe entries, write only where told.

Nothing is trusted from the archive: its entry count is read from the end record before the
central directory is parsed, each entry's declared size and compression ratio are checked before
anything is written, and names are only ever used as labels (files are written to paths the caller
chooses). Unsafe entries (absolute, `..`, links) and nested archives are listed with a reason;
an archive that is not a zip, is encrypted throughout, or is a bomb is refused as a whole.
"""

from __future__ import annotations

import lzma
import re
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

END_RECORD = b"PK\x05\x06"
ZIP64_LOCATOR = b"PK\x06\x07"
ZIP64_END_RECORD = b"PK\x06\x06"
# The end record is 22 bytes and may be followed by a comment of up to 65535 bytes.
END_SEARCH = 22 + 65535
# Below this size a high ratio is harmless (a small flat image compresses a thousand times).
RATIO_FLOOR_BYTES = 1024 * 1024
ARCHIVE_SUFFIXES = (".zip", ".tar", ".tgz", ".gz", ".bz2", ".xz", ".zst", ".7z", ".rar", ".cbz", ".jar")
# Files that archivers add beside the real content: skipped, never listed as failures.
CLUTTER = re.compile(r"(^|/)(__MACOSX/|\.DS_Store$|Thumbs\.db$|desktop\.ini$|\._)", re.IGNORECASE)
COPY_CHUNK = 1024 * 1024
# What reading a damaged zip raises: a bad header or CRC (BadZipFile), compressed data that is corrupt
# (zlib.error, lzma.LZMAError, bz2's OSError) or ends early (EOFError), a name flagged UTF-8 that is not
# (UnicodeDecodeError, a ValueError), a method or zip version zipfile lacks (NotImplementedError), an
# entry encrypted after all (RuntimeError). One list, so that no reader forgets a codec's own error.
DAMAGED_ZIP_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    OSError,
    ValueError,
    NotImplementedError,
    RuntimeError,
    zlib.error,
    lzma.LZMAError,
)


class ArchiveRejected(Exception):
    """The archive as a whole cannot be taken (not a zip, a bomb, too many entries)."""


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    max_entries: int
    max_total_bytes: int
    max_ratio: int
    max_entry_bytes: int


@dataclass(frozen=True, slots=True)
class Entry:
    """One file of the archive: its clean name, and either what to extract or why it is not taken."""

    name: str
    info: zipfile.ZipInfo | None
    error: str | None = None


CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")  # Unicode's Cc: C0, DEL and C1


def clean_name(raw: str) -> str | None:
    """Return a relative path with "/" separators, or None for a name that is not safe to keep.

    Not safe: absolute, leaving its folder, or holding a control character (a NUL, which Postgres
    text refuses, an escape sequence, a line break).
    """
    name = raw.replace("\\", "/")
    if not name or CONTROL.search(name) or name.startswith("/") or re.match(r"^[A-Za-z]:", name):
        return None
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if not parts or ".." in parts:
        return None
    return "/".join(parts)


def declared_entries(stream: BinaryIO) -> int:
    """Return the entry count the archive's end record declares, without parsing its directory."""
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(max(0, size - END_SEARCH))
    tail = stream.read()
    at = tail.rfind(END_RECORD)
    if at < 0 or len(tail) - at < 22:
        raise ArchiveRejected("the archive is not a zip file (no end of central directory)")
    entries = struct.unpack("<H", tail[at + 10 : at + 12])[0]
    locator = tail.rfind(ZIP64_LOCATOR, 0, at)
    if entries == 0xFFFF and locator >= 0 and at - locator == 20:
        offset = struct.unpack("<Q", tail[locator + 8 : locator + 16])[0]
        stream.seek(offset)
        record = stream.read(56)
        if record[:4] != ZIP64_END_RECORD:
            raise ArchiveRejected("the archive's zip64 end record is damaged")
        entries = struct.unpack("<Q", record[32:40])[0]
    return entries


def read_entries(path: Path, limits: ArchiveLimits) -> list[Entry]:
    """List the archive's files with their clean names; raise ArchiveRejected for a bad archive."""
    with open(path, "rb") as stream:
        count = declared_entries(stream)
        if count > limits.max_entries:
            raise ArchiveRejected(
                f"the archive has {count} entries; a batch takes at most {limits.max_entries} "
                "(TILEFLOW_BATCH_MAX_ITEMS)"
            )
        try:
            with zipfile.ZipFile(stream) as archive:
                infos = archive.infolist()
        except DAMAGED_ZIP_ERRORS as error:
            raise ArchiveRejected(f"the archive is not a readable zip file: {error}") from error
    if len(infos) > limits.max_entries:
        raise ArchiveRejected(f"the archive has {len(infos)} entries; a batch takes at most {limits.max_entries}")
    entries = []
    total = 0
    for info in infos:
        if info.is_dir() or CLUTTER.search(info.filename.replace("\\", "/")):
            continue
        name = clean_name(info.filename)
        label = name or info.filename[:1024]
        if info.file_size > RATIO_FLOOR_BYTES and info.file_size > limits.max_ratio * max(info.compress_size, 1):
            raise ArchiveRejected(
                f"entry '{label}' expands {info.file_size // max(info.compress_size, 1)} times; the limit "
                f"is {limits.max_ratio} (TILEFLOW_ARCHIVE_MAX_RATIO): the archive looks like a zip bomb"
            )
        error = _entry_error(info, name, limits)
        if error is None:
            total += info.file_size
            if total > limits.max_total_bytes:
                raise ArchiveRejected(
                    f"the archive expands to more than {limits.max_total_bytes} bytes (TILEFLOW_ARCHIVE_MAX_BYTES)"
                )
        entries.append(Entry(label, None if error else info, error))
    # Many entries, each under the floor, can still make a bomb together: 300 MB of zeros from 340 kB.
    archive_bytes = max(path.stat().st_size, 1)
    if total > RATIO_FLOOR_BYTES and total > limits.max_ratio * archive_bytes:
        raise ArchiveRejected(
            f"the archive's {archive_bytes} bytes expand to {total} bytes ({total // archive_bytes} times); the limit "
            f"is {limits.max_ratio} (TILEFLOW_ARCHIVE_MAX_RATIO): the archive looks like a zip bomb"
        )
    return entries


def _entry_error(info: zipfile.ZipInfo, name: str | None, limits: ArchiveLimits) -> str | None:
    """Say why one entry is not taken, or None when it may be extracted."""
    if name is None:
        return "unsafe name in the archive (absolute, leaves its folder, or a control character): not extracted"
    if stat.S_ISLNK(info.external_attr >> 16):
        return "a symbolic link in the archive: not followed"
    mode = info.external_attr >> 16
    if stat.S_IFMT(mode) and not stat.S_ISREG(mode):
        return "not a regular file in the archive (a device or pipe): not extracted"
    if info.flag_bits & 0x1:
        return "encrypted in the archive: not extracted"
    if name.lower().endswith(ARCHIVE_SUFFIXES):
        return "an archive inside the archive: nested archives are not unpacked"
    if info.file_size > limits.max_entry_bytes:
        limit = limits.max_entry_bytes
        return f"{info.file_size} bytes; the limit for one image is {limit} (TILEFLOW_MAX_UPLOAD_BYTES)"
    if info.file_size == 0:
        return "the file is empty"
    return None


def extract(archive: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, max_bytes: int) -> int:
    """Copy one entry to `target` (a path the caller made), at most `max_bytes`; return its size.

    zipfile stops at the declared size and checks the CRC, so a lying header cannot write more.
    A damaged entry raises one of `DAMAGED_ZIP_ERRORS`.
    """
    written = 0
    with archive.open(info) as source, open(target, "xb") as sink:
        while chunk := source.read(COPY_CHUNK):
            written += len(chunk)
            if written > max_bytes:
                raise ArchiveRejected(f"entry '{info.filename}' is larger than it declares")
            sink.write(chunk)
    return written


def looks_like_archive(head: bytes) -> bool:
    """Tell a zip, gzip, bzip2, xz, 7z or rar file by its first bytes."""
    return head.startswith((b"PK\x03\x04", b"\x1f\x8b", b"BZh", b"\xfd7zXZ", b"7z\xbc\xaf", b"Rar!"))
