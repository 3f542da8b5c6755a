"""Function bundles as deterministic tar.gz archives: pack a folder, read its manifest, check
its layout, and unpack it safely (no absolute paths, no `..`, no links, bounded size).

A bundle holds `function.json` and `code/`; member names are relative POSIX paths.
"""

from __future__ import annotations

import gzip
import io
import os
import tarfile
import zlib
from pathlib import Path, PurePosixPath

from reactor_jobs.functions.errors import BundleError

MANIFEST_NAME = "function.json"
MAX_ARCHIVE_BYTES = 50 * 1024 * 1024
# Bounds what a small archive may expand to (a gzip bomb), and the manifest itself.
MAX_UNPACKED_BYTES = 256 * 1024 * 1024
MAX_MEMBERS = 10_000
MAX_MANIFEST_BYTES = 1024 * 1024
# What each runtime imports; the bundle must contain one of these.
ENTRY_POINTS: dict[str, tuple[str, ...]] = {
    "python": ("code/index.py",),
    "bun": ("code/index.ts", "code/index.js", "code/index.mjs"),
}
# Caches of tools run in a function's folder (and its git metadata) are never part of its code.
_SKIPPED_DIRS = frozenset({"__pycache__", ".git", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")
_BAD_ARCHIVE = (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile, OSError)


def pack_dir(path: str | os.PathLike[str]) -> bytes:
    """The folder as a tar.gz whose bytes depend only on file names, contents and the
    executable bit: entries sorted, times, owners and gzip header zeroed."""
    root = Path(path)
    if not (root / MANIFEST_NAME).is_file():
        raise BundleError(f"{root}: no {MANIFEST_NAME} in the bundle folder")
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for file, name in _bundle_files(root):
            data = file.read_bytes()
            tar.addfile(_file_info(name, len(data), _is_executable(file)), io.BytesIO(data))
    archive = buffer.getvalue()
    _check_size(archive)
    return archive


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


def _bundle_files(root: Path) -> list[tuple[Path, str]]:
    """The files to pack and their member names, sorted by name."""
    found: list[tuple[Path, str]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if d not in _SKIPPED_DIRS]
        here = Path(dirpath)
        for dirname in dirnames:
            if (here / dirname).is_symlink():
                raise BundleError(f"{here / dirname}: links are not allowed in a bundle")
        for filename in filenames:
            file = here / filename
            if filename.endswith(_SKIPPED_SUFFIXES):
                continue
            if file.is_symlink() or not file.is_file():
                raise BundleError(f"{file}: only regular files are allowed in a bundle")
            found.append((file, file.relative_to(root).as_posix()))
    return sorted(found, key=lambda entry: entry[1])


def _file_info(name: str, size: int, executable: bool) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mode = 0o755 if executable else 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _is_executable(file: Path) -> bool:
    return bool(file.stat().st_mode & 0o100)


def _check_size(archive: bytes) -> None:
    if len(archive) > MAX_ARCHIVE_BYTES:
        raise BundleError(
            f"the bundle is {len(archive)} bytes; the limit is {MAX_ARCHIVE_BYTES} "
            f"({MAX_ARCHIVE_BYTES // (1024 * 1024)} MiB)"
        )


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
