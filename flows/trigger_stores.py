"""Where triggers read and write: folders under administrator-named roots, and S3-compatible buckets.

Users name a root or a connection, never a raw path or a key (CONTRACT §8). A folder location can
never leave its root: `..`, absolute paths and symbolic links are refused when it is created and
checked again at every scan and write, since a folder may be swapped for a link later. A write
never replaces what is at its name (`NameTaken`) unless the caller says the name is its own.
"""

from __future__ import annotations

import errno
import json
import os
import re
import stat
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import IO, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

COPY_CHUNK = 1024 * 1024
BUCKET_NAME = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


class LocationError(ValueError):
    """A location a user may not use: an unknown name, a path leaving its root, a link."""


class StoreError(Exception):
    """The store failed just now (vanished, refused the keys, too slow); the trigger retries later."""


class ObjectGone(StoreError):
    """The object changed or disappeared between the listing and the read."""


class NameTaken(Exception):
    """Something is already at the name an output was to take; the caller picks the next name."""


@dataclass(frozen=True, slots=True)
class StoredObject:
    key: str  # relative to the location, "/"-separated
    version: str  # ETag, or size:mtime_ns
    size: int
    modified: datetime


class Store(Protocol):
    def objects(self) -> Iterator[StoredObject]: ...
    def fetch(self, item: StoredObject, target: IO[bytes]) -> None: ...
    def put(self, key: str, path: Path, content_type: str, *, replace: bool = False) -> str: ...
    def written_name(self, key: str) -> str: ...


# -- what the administrator configured ---------------------------------------------------------


@cache
def folder_roots() -> dict[str, Path]:
    """Parse TILEFLOW_FOLDER_ROOTS ("name=/abs/path,…") into resolved absolute paths."""
    roots = {}
    for entry in filter(None, (part.strip() for part in settings.TILEFLOW["FOLDER_ROOTS"].split(","))):
        name, sep, path = entry.partition("=")
        name, path = name.strip(), path.strip()
        if not sep or not name or not os.path.isabs(path):
            raise ImproperlyConfigured(f"TILEFLOW_FOLDER_ROOTS: {entry!r} is not name=/absolute/path")
        roots[name] = Path(path).resolve()
    return roots


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


FILE_MODE = 0o666 & ~_umask()  # what an output written to a destination folder gets (read once, at import)

S3_FIELDS = ("endpoint_url", "region", "access_key", "secret_key", "addressing_style")
# Other spellings administrators bring from boto3, the AWS CLI or MinIO's docs, taken for the same field.
S3_FIELD_ALIASES = {
    "endpoint": "endpoint_url",
    "url": "endpoint_url",
    "region_name": "region",
    "aws_access_key_id": "access_key",
    "access_key_id": "access_key",
    "aws_secret_access_key": "secret_key",
    "secret_access_key": "secret_key",
}


@cache
def s3_connections() -> dict[str, dict[str, str]]:
    """Parse TILEFLOW_S3_CONNECTIONS (JSON: name -> endpoint_url, region, access_key, secret_key).

    A field this does not know is refused rather than ignored: a misspelt endpoint would otherwise send
    the keys to AWS itself.
    """
    text = settings.TILEFLOW["S3_CONNECTIONS"].strip()
    if not text:
        return {}
    try:
        connections = json.loads(text)
    except ValueError as error:
        raise ImproperlyConfigured(f"TILEFLOW_S3_CONNECTIONS is not valid JSON: {error}") from None
    if not isinstance(connections, dict) or not all(isinstance(value, dict) for value in connections.values()):
        raise ImproperlyConfigured('TILEFLOW_S3_CONNECTIONS must be {"name": {"endpoint_url": …, …}, …}')
    return {name: _s3_connection(name, entry) for name, entry in connections.items()}


def _s3_connection(name: str, entry: dict) -> dict[str, str]:
    connection: dict[str, str] = {}
    for key, value in entry.items():
        field = S3_FIELD_ALIASES.get(key, key)
        if field not in S3_FIELDS:
            raise ImproperlyConfigured(
                f"TILEFLOW_S3_CONNECTIONS: connection {name!r} has an unknown field {key!r} "
                f"(known: {', '.join(S3_FIELDS)})"
            )
        if field in connection:
            raise ImproperlyConfigured(f"TILEFLOW_S3_CONNECTIONS: connection {name!r} gives {field!r} twice")
        if not isinstance(value, str):
            raise ImproperlyConfigured(f"TILEFLOW_S3_CONNECTIONS: connection {name!r}: {key!r} must be a string")
        connection[field] = value
    endpoint = connection.get("endpoint_url")
    if endpoint and not endpoint.startswith(("http://", "https://")):
        raise ImproperlyConfigured(
            f"TILEFLOW_S3_CONNECTIONS: connection {name!r}: endpoint_url {endpoint!r} must start with http:// or https://"
        )
    if bool(connection.get("access_key")) != bool(connection.get("secret_key")):
        raise ImproperlyConfigured(
            f"TILEFLOW_S3_CONNECTIONS: connection {name!r} needs both access_key and secret_key, or neither"
        )
    return connection


def configuration_errors() -> list[str]:
    """Return what is wrong with TILEFLOW_FOLDER_ROOTS and TILEFLOW_S3_CONNECTIONS (for the system check)."""
    problems = []
    for parse in (folder_roots, s3_connections):
        try:
            parse()
        except ImproperlyConfigured as error:
            problems.append(str(error))
    return problems


def configured_names() -> dict[str, list[str]]:
    """Return the names users may pick: folder roots and S3 connections (never paths or keys)."""
    return {"folder": sorted(folder_roots()), "s3": sorted(s3_connections())}


# -- locations ---------------------------------------------------------------------------------


def relative_parts(path: str, *, what: str = "path") -> list[str]:
    """Split a relative "/"-separated name into its parts; refuse absolute names and `..`."""
    if not isinstance(path, str):
        raise LocationError(f"the {what} must be a string")
    if "\x00" in path:
        raise LocationError(f"the {what} {path!r} holds a NUL character")
    if path.startswith("/") or "\\" in path:
        raise LocationError(f"the {what} {path!r} must be relative to its root, with '/' between folders")
    parts = [part for part in path.split("/") if part not in ("", ".")]
    if ".." in parts:
        raise LocationError(f"the {what} {path!r} may not contain '..': it would leave its root")
    return parts


def normalise_location(kind: str, location: object) -> dict[str, str]:
    """Return a location in its stored form, or raise LocationError saying what is wrong with it."""
    if not isinstance(location, dict):
        raise LocationError("a location is an object: {root, path} or {connection, bucket, prefix}")
    if kind == "folder":
        root = location.get("root")
        if root not in folder_roots():
            known = ", ".join(sorted(folder_roots())) or "none is configured"
            raise LocationError(f"unknown folder root {root!r}; the roots are: {known}")
        parts = relative_parts(location.get("path", ""))
        _check_no_links(folder_roots()[root], parts)
        return {"root": root, "path": "/".join(parts)}
    if kind == "s3":
        connection = location.get("connection")
        if connection not in s3_connections():
            known = ", ".join(sorted(s3_connections())) or "none is configured"
            raise LocationError(f"unknown S3 connection {connection!r}; the connections are: {known}")
        bucket = location.get("bucket")
        if not isinstance(bucket, str) or not BUCKET_NAME.match(bucket):
            raise LocationError(f"{bucket!r} is not a bucket name (3-63 lower-case letters, digits, '.', '-')")
        prefix = location.get("prefix", "")
        prefix = "/".join(relative_parts(prefix.lstrip("/") if isinstance(prefix, str) else prefix, what="prefix"))
        return {"connection": connection, "bucket": bucket, "prefix": prefix + "/" if prefix else ""}
    raise LocationError(f"unknown trigger type {kind!r}: 'folder' or 's3'")


def overlap(kind: str, source: dict[str, str], destination: dict[str, str]) -> bool:
    """Tell whether outputs written to `destination` would land under `source` (and run again)."""
    if kind == "folder":
        if source["root"] != destination["root"]:
            return False
        inner, outer = relative_parts(destination["path"]), relative_parts(source["path"])
    else:
        if (source["connection"], source["bucket"]) != (destination["connection"], destination["bucket"]):
            return False
        inner, outer = relative_parts(destination["prefix"]), relative_parts(source["prefix"])
    return inner[: len(outer)] == outer


def _check_no_links(root: Path, parts: list[str]) -> Path:
    """Return root/parts; refuse any part of it that is a symbolic link (or not a folder)."""
    path = root
    for part in parts:
        path = path / part
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue
        if stat.S_ISLNK(mode):
            raise LocationError(f"'{part}' is a symbolic link; links are refused so no path leaves its root")
        if not stat.S_ISDIR(mode):
            raise LocationError(f"'{part}' is not a folder")
    return path


def open_store(kind: str, location: dict[str, str]) -> Store:
    if kind == "folder":
        return FolderStore(folder_roots()[location["root"]], relative_parts(location["path"]))
    return S3Store(location["connection"], location["bucket"], location["prefix"])


def check_bucket(location: dict[str, str], *, reading: bool) -> None:
    """Refuse an S3 location whose bucket the store says is not there, or (to read from) not open to the key.

    Only a definite answer refuses: a store that cannot be reached just now (refused, timed out)
    leaves the location taken, and the trigger shows the error as `last_error` until it answers.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    where = f"bucket '{location['bucket']}' of S3 connection '{location['connection']}'"
    try:
        _client(location["connection"]).head_bucket(Bucket=location["bucket"])
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status == 404 or code in ("NoSuchBucket", "404"):
            raise LocationError(f"the {where} does not exist") from None
        if reading and (status == 403 or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch")):
            raise LocationError(f"the store denies access to the {where} ({code or status})") from None
    except (BotoCoreError, OSError):
        return


def describe(kind: str, location: dict[str, str]) -> str:
    """Name a location as users see it: photos:/inbox, or archive://bucket/prefix."""
    if kind == "folder":
        return f"{location['root']}:/{location['path']}"
    return f"{location['connection']}://{location['bucket']}/{location['prefix']}"


# -- folders -----------------------------------------------------------------------------------


class FolderStore:
    """A folder under a root, with its sub-folders; links are never followed."""

    def __init__(self, root: Path, parts: list[str]) -> None:
        self.root = root
        self.parts = parts

    def _base(self) -> Path:
        try:
            base = _check_no_links(self.root, self.parts)
        except LocationError as error:
            raise StoreError(str(error)) from None
        if not base.is_dir():
            raise StoreError(f"the folder {base} does not exist (it may have been moved or deleted)")
        return base

    def objects(self) -> Iterator[StoredObject]:
        base = self._base()
        settle = settings.TILEFLOW["TRIGGER_SETTLE_SECONDS"]
        now = datetime.now(UTC).timestamp()

        def refuse(error: OSError) -> None:
            raise StoreError(f"the folder {base} cannot be read: {error.strerror or error}")

        for folder, dirs, files in os.walk(base, onerror=refuse):
            dirs[:] = sorted(name for name in dirs if not name.startswith("."))
            for name in sorted(files):
                if name.startswith("."):  # hidden, or a copy in progress (rsync, many editors)
                    continue
                path = Path(folder, name)
                try:
                    info = os.lstat(path)
                except FileNotFoundError:
                    continue
                if not stat.S_ISREG(info.st_mode) or now - info.st_mtime < settle:
                    continue  # a link, or still being written
                yield StoredObject(
                    key=path.relative_to(base).as_posix(),
                    version=f"{info.st_size}:{info.st_mtime_ns}",
                    size=info.st_size,
                    modified=datetime.fromtimestamp(info.st_mtime, UTC),
                )

    def fetch(self, item: StoredObject, target: IO[bytes]) -> None:
        path = self._base().joinpath(*relative_parts(item.key))
        try:
            descriptor = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise ObjectGone(f"{item.key} disappeared before it was read") from None
        except OSError as error:
            raise StoreError(f"{item.key} cannot be read: {error.strerror or error}") from None
        with os.fdopen(descriptor, "rb") as source:
            info = os.fstat(source.fileno())
            if f"{info.st_size}:{info.st_mtime_ns}" != item.version:
                raise ObjectGone(f"{item.key} changed while it was read; its new version comes next")
            while chunk := source.read(COPY_CHUNK):
                target.write(chunk)

    def written_name(self, key: str) -> str:
        """What `put(key, …)` answers: the name under the folder root."""
        return "/".join([*self.parts, *relative_parts(key, what="name")])

    def put(self, key: str, path: Path, content_type: str, *, replace: bool = False) -> str:
        """Write the file at `key`; raise NameTaken when something is there already, unless `replace`."""
        *folders, name = relative_parts(key, what="name")
        try:
            folder = self._destination_folder(folders)
            if not replace and os.path.lexists(folder / name):  # spares the copy; the link below decides
                raise NameTaken(key)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=f".{name}.", delete=False) as partial:
                os.fchmod(partial.fileno(), FILE_MODE)  # as any new file, not the temporary file's 0600
                with open(path, "rb") as output:
                    while chunk := output.read(COPY_CHUNK):
                        partial.write(chunk)
            try:
                if replace:
                    os.replace(partial.name, folder / name)  # readers never see half a file
                else:
                    _move_exclusively(Path(partial.name), folder / name)
            finally:
                with suppress(FileNotFoundError):
                    os.unlink(partial.name)
        except LocationError as error:
            raise StoreError(str(error)) from None
        except OSError as error:
            raise StoreError(f"cannot write {key}: {error.strerror or error}") from None
        return "/".join([*self.parts, *folders, name])

    def _destination_folder(self, folders: list[str]) -> Path:
        if not self.root.is_dir():
            raise StoreError(f"the folder root {self.root} does not exist")
        parts = [*self.parts, *folders]
        _check_no_links(self.root, parts)
        folder = self.root.joinpath(*parts)
        folder.mkdir(parents=True, exist_ok=True)
        _check_no_links(self.root, parts)  # nothing swapped a created folder for a link meanwhile
        return folder


# File systems that refuse hard links (some network and FUSE ones) answer os.link with one of these.
NO_HARD_LINKS = {errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EMLINK, errno.ENOSYS}


def _move_exclusively(partial: Path, target: Path) -> None:
    """Give `partial` the name `target` only if nothing has it, even a writer racing this one; else NameTaken.

    A hard link is created only where no name is (as O_EXCL creates a file), and whole at once, so
    readers never see half a file. Where links are refused, the name is first taken with an empty
    file created O_EXCL, then filled by replacing it.
    """
    try:
        os.link(partial, target, follow_symlinks=False)
        return
    except FileExistsError:
        raise NameTaken(str(target)) from None
    except OSError as error:
        if error.errno not in NO_HARD_LINKS:
            raise
    try:
        os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, FILE_MODE))
    except FileExistsError:
        raise NameTaken(str(target)) from None
    os.replace(partial, target)


# -- S3 ----------------------------------------------------------------------------------------


class S3Store:
    """A prefix of a bucket in an S3-compatible store, reached through a named connection."""

    def __init__(self, connection: str, bucket: str, prefix: str) -> None:
        self.connection = connection
        self.bucket = bucket
        self.prefix = prefix

    def objects(self) -> Iterator[StoredObject]:
        with self._errors():
            paginator = _client(self.connection).get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for entry in page.get("Contents", []):
                    key = entry["Key"][len(self.prefix) :]
                    if not key or key.endswith("/"):  # the prefix itself, or a "folder" marker
                        continue
                    yield StoredObject(
                        key=key, version=entry["ETag"].strip('"'), size=entry["Size"], modified=entry["LastModified"]
                    )

    def fetch(self, item: StoredObject, target: IO[bytes]) -> None:
        with self._errors(item.key):
            answer = _client(self.connection).get_object(
                Bucket=self.bucket, Key=self.prefix + item.key, IfMatch=f'"{item.version}"'
            )
            for chunk in answer["Body"].iter_chunks(COPY_CHUNK):
                target.write(chunk)

    def written_name(self, key: str) -> str:
        """What `put(key, …)` answers: the object's key in the bucket."""
        return self.prefix + "/".join(relative_parts(key, what="name"))

    def put(self, key: str, path: Path, content_type: str, *, replace: bool = False) -> str:
        """Write the file at `key`; raise NameTaken when an object is there already, unless `replace`.

        A store that takes conditional writes (`If-None-Match: *`) refuses the put itself when an
        object appeared since the look, so a writer racing this one loses nothing; one that does not
        is asked first (HEAD), which leaves only that moment's race.
        """
        from botocore.exceptions import ClientError

        name = self.prefix + "/".join(relative_parts(key, what="name"))
        client = _client(self.connection)
        with self._errors():
            if not replace and self._exists(name):
                raise NameTaken(name)
            conditional = not replace and self.connection not in UNCONDITIONAL_CONNECTIONS
            try:
                self._upload(client, name, path, content_type, conditional=conditional)
            except ClientError as error:
                answer = error.response.get("Error", {}).get("Code", "")
                status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if conditional and status in (409, 412):  # PreconditionFailed, or a racing put (409)
                    raise NameTaken(name) from None
                if not conditional or status not in (400, 501) or answer not in CONDITION_REFUSALS:
                    raise
                UNCONDITIONAL_CONNECTIONS.add(self.connection)  # this store does not take the condition: ask first only
                self._upload(client, name, path, content_type, conditional=False)
        return name

    def _exists(self, name: str) -> bool:
        """Tell whether an object has the key `name`; a store that will not say (403: no right to read) says no."""
        from botocore.exceptions import ClientError

        try:
            _client(self.connection).head_object(Bucket=self.bucket, Key=name)
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status in (403, 404):  # a write-only key: the conditional put (or its own refusal) decides
                return False
            raise
        return True

    def _upload(self, client, name: str, path: Path, content_type: str, *, conditional: bool) -> None:
        condition = {"IfNoneMatch": "*"} if conditional else {}
        with open(path, "rb") as body:
            client.put_object(Bucket=self.bucket, Key=name, Body=body, ContentType=content_type, **condition)

    @contextmanager
    def _errors(self, key: str | None = None) -> Iterator[None]:
        """Turn boto3's failures into StoreError with a reason a user can act on."""
        from botocore.exceptions import BotoCoreError, ClientError

        where = f"S3 connection '{self.connection}', bucket '{self.bucket}'"
        try:
            yield
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if key is not None and code in ("NoSuchKey", "PreconditionFailed", "404", "412"):
                raise ObjectGone(f"{key} changed or disappeared before it was read") from None
            if code in ("NoSuchBucket", "404"):
                raise StoreError(f"{where}: the bucket does not exist (it may have been deleted)") from None
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403"):
                raise StoreError(f"{where}: the store refused the connection's credentials ({code})") from None
            raise StoreError(f"{where}: {code or 'error'}: {error}") from None
        except (BotoCoreError, OSError) as error:
            raise StoreError(f"{where}: the store cannot be reached: {error}") from None


# What stores that do not take `If-None-Match` on a put answer; such a connection is then asked first only.
CONDITION_REFUSALS = {"NotImplemented", "InvalidArgument", "InvalidRequest", "501"}
UNCONDITIONAL_CONNECTIONS: set[str] = set()


@cache
def _client(connection: str):
    import boto3
    from botocore.config import Config

    config = s3_connections()[connection]
    timeout = settings.TILEFLOW["S3_TIMEOUT_SECONDS"]
    return boto3.session.Session().client(
        "s3",
        endpoint_url=config.get("endpoint_url") or None,
        region_name=config.get("region") or None,
        aws_access_key_id=config.get("access_key"),
        aws_secret_access_key=config.get("secret_key"),
        config=Config(
            connect_timeout=timeout,
            read_timeout=timeout,
            retries={"max_attempts": 2, "mode": "standard"},
            s3={"addressing_style": config.get("addressing_style", "auto")},
            signature_version="s3v4",
        ),
    )


def forget_configuration() -> None:
    """Drop the parsed settings and clients (tests change the settings)."""
    folder_roots.cache_clear()
    s3_connections.cache_clear()
    _client.cache_clear()
    UNCONDITIONAL_CONNECTIONS.clear()
