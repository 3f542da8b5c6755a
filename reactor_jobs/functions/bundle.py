"""Function bundles as deterministic tar.gz archives: pack a folder (as reactor_jobs.bundles
does), read its manifest, check its layout, and unpack it safely (no absolute paths, no
`..`, no links, bounded size).

A bundle holds `function.json` and `code/`; member names are relative POSIX paths.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zlib
from pathlib import Path, PurePosixPath

from reactor_jobs import bundles
from reactor_jobs.functions.errors import BundleError

MANIFEST_NAME = bundles.MANIFEST_NAME
MAX_ARCHIVE_BYTES = bundles.MAX_ARCHIVE_BYTES
# Bounds what a small archive may expand to (a gzip bomb), and the manifest itself.
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
MAX_MEMBERS = 10_000
MAX_MANIFEST_BYTES = 1024 * 1024
# What each runtime imports; the bundle must contain one of these.
ENTRY_POINTS: dict[str, tuple[str, ...]] = {
    "python": ("code/index.py",),
    "bun": ("code/index.ts", "code/index.js", "code/index.mjs"),
}
_BAD_ARCHIVE = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError)


def pack_dir(path: str | os.PathLike[str]) -> bytes:
    """The folder packed as reactor_jobs.bundles packs it (the client packs the same way),
    its refusals raised as BundleError; the size limit is this module's."""
    try:
        return bundles.pack_dir(path, max_bytes=MAX_ARCHIVE_BYTES)
    except bundles.PackError as exc:
        raise BundleError(str(exc)) from None


def read_manifest(archive: bytes) -> bytes:
    """The bytes of the bundle's function.json."""
    with _open(archive) as tar:
        for info in _members(tar):
            if _member_name(info) == MANIFEST_NAME and info.isfile():
                if info.size > MAX_MANIFEST_BYTES:
                    raise BundleError(f"{MANIFEST_NAME} is larger than {MAX_MANIFEST_BYTES} bytes")
                return _read(tar, info)
    raise BundleError(f"the bundle has no {MANIFEST_NAME}")


def read_code(archive: bytes) -> dict[str, bytes]:
    """The bundle's files under code/, by member name."""
    with _open(archive) as tar:
        return {
            name: _read(tar, info)
            for info in _members(tar)
            if info.isfile() and (name := _member_name(info)).startswith("code/")
        }


def validate_bundle(archive: bytes, runtime: str) -> None:
    """Check size, member safety, the manifest's presence and the runtime's entry point."""
    entry_points = ENTRY_POINTS.get(runtime)
    if entry_points is None:
        raise BundleError(f"unknown runtime {runtime!r}")
    with _open(archive) as tar:
        files = {_member_name(info) for info in _members(tar) if info.isfile()}
    if MANIFEST_NAME not in files:
        raise BundleError(f"the bundle has no {MANIFEST_NAME}")
    if not any(entry in files for entry in entry_points):
        raise BundleError(f"a {runtime} bundle needs {' or '.join(entry_points)}")


def unpack(archive: bytes, dest: str | os.PathLike[str]) -> None:
    """Write the bundle's files under dest (created if missing); refuses unsafe members
    before writing anything."""
    root = Path(dest)
    with _open(archive) as tar:
        members = _members(tar)
        root.mkdir(parents=True, exist_ok=True)
        for info in members:
            target = root.joinpath(*PurePosixPath(_member_name(info)).parts)
            if info.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(_read(tar, info))
            target.chmod(0o755 if info.mode & 0o100 else 0o644)


def _check_size(archive: bytes) -> None:
    problem = bundles.oversize(archive, MAX_ARCHIVE_BYTES)
    if problem:
        raise BundleError(problem)


def _open(archive: bytes) -> tarfile.TarFile:
    _check_size(archive)
    try:
        return tarfile.open(fileobj=io.BytesIO(archive), mode="r:*")
    except _BAD_ARCHIVE as exc:
        raise BundleError(f"the bundle is not a tar.gz archive ({exc})") from None


def _members(tar: tarfile.TarFile) -> list[tarfile.TarInfo]:
    """All members, each checked: a relative path without `..`, a file or a directory."""
    try:
        members = tar.getmembers()
    except _BAD_ARCHIVE as exc:
        raise BundleError(f"the bundle archive is corrupt ({exc})") from None
    if len(members) > MAX_MEMBERS:
        raise BundleError(f"the bundle has {len(members)} entries; the limit is {MAX_MEMBERS}")
    files: set[str] = set()
    folders: set[str] = set()
    for info in members:
        name = _member_name(info)
        if not (info.isfile() or info.isdir()):
            raise BundleError(f"{info.name!r}: only files and directories are allowed in a bundle")
        if info.isfile():
            if name in files:
                raise BundleError(f"{name!r} appears twice in the bundle")
            files.add(name)
        folders.update(parent.as_posix() for parent in PurePosixPath(name).parents)
        if info.isdir():
            folders.add(name)
    if clash := files & folders:
        raise BundleError(f"{min(clash)!r} is both a file and a folder in the bundle")
    total = sum(info.size for info in members)
    if total > MAX_UNPACKED_BYTES:
        raise BundleError(f"the bundle unpacks to {total} bytes; the limit is {MAX_UNPACKED_BYTES}")
    return members


def _member_name(info: tarfile.TarInfo) -> str:
    """The member's normalised relative path; BundleError if it could escape the bundle."""
    name = info.name
    path = PurePosixPath(name)
    if not name or path.is_absolute() or "\\" in name:
        raise BundleError(f"{name!r}: absolute or unsafe path in the bundle")
    if ".." in path.parts or "\x00" in name:
        raise BundleError(f"{name!r}: path escapes the bundle")
    parts = [part for part in path.parts if part != "."]
    if not parts:
        if info.isdir():
            return "."
        raise BundleError(f"{name!r}: empty path in the bundle")
    return "/".join(parts)


def _read(tar: tarfile.TarFile, info: tarfile.TarInfo) -> bytes:
    try:
        file = tar.extractfile(info)
        if file is None:
            raise BundleError(f"{info.name!r}: cannot be read from the bundle")
        with file:
            return file.read()
    except _BAD_ARCHIVE as exc:
        raise BundleError(f"the bundle archive is corrupt ({exc})") from None
