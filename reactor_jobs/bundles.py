"""Packing a function folder into a bundle (a deterministic tar.gz), with no server imports:
the client packs folders to deploy, the server (functions/bundle.py) reads and checks them."""

from __future__ import annotations

import gzip
import io
import os
import tarfile
from pathlib import Path
from typing import ClassVar

MANIFEST_NAME = "function.json"
MAX_ARCHIVE_BYTES = 50 * 1024 * 1024
# Caches of tools run in a function's folder (and its git metadata) are never part of its code.
_SKIPPED_DIRS = frozenset({"__pycache__", ".git", ".mypy_cache", ".pytest_cache", ".ruff_cache"})
_SKIPPED_SUFFIXES = (".pyc", ".pyo")


class PackError(Exception):
    """The folder cannot be packed as a bundle; the message says why."""

    code: ClassVar[str] = "bundle_error"


def pack_dir(path: str | os.PathLike[str], *, max_bytes: int = MAX_ARCHIVE_BYTES) -> bytes:
    """The folder as a tar.gz whose bytes depend only on file names, contents and the
    executable bit: entries sorted, times, owners and gzip header zeroed."""
    root = Path(path)
    if not (root / MANIFEST_NAME).is_file():
        raise PackError(f"{root}: no {MANIFEST_NAME} in the bundle folder")
    buffer = io.BytesIO()
    with (
        gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as gz,
        tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
    ):
        for file, name in _bundle_files(root):
            data = file.read_bytes()
            tar.addfile(_file_info(name, len(data), _is_executable(file)), io.BytesIO(data))
    archive = buffer.getvalue()
    size_problem = oversize(archive, max_bytes)
    if size_problem:
        raise PackError(size_problem)
    return archive


def oversize(archive: bytes, max_bytes: int) -> str | None:
    """Why the archive is too large to deploy, or None when it fits."""
    if len(archive) <= max_bytes:
        return None
    mib = max_bytes // (1024 * 1024)
    return f"the bundle is {len(archive)} bytes; the limit is {max_bytes} ({mib} MiB)"


def _bundle_files(root: Path) -> list[tuple[Path, str]]:
    """The files to pack and their member names, sorted by name."""
    found: list[tuple[Path, str]] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = [d for d in dirnames if d not in _SKIPPED_DIRS]
        here = Path(dirpath)
        for dirname in dirnames:
            if (here / dirname).is_symlink():
                raise PackError(f"{here / dirname}: links are not allowed in a bundle")
        for filename in filenames:
            file = here / filename
            if filename.endswith(_SKIPPED_SUFFIXES):
                continue
            if file.is_symlink() or not file.is_file():
                raise PackError(f"{file}: only regular files are allowed in a bundle")
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
