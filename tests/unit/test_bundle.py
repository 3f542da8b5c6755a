"""Bundles: deterministic packing, the manifest and entry point, and unpacking that refuses
anything that could escape the destination."""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

import pytest

from reactor_jobs.functions import bundle
from reactor_jobs.functions.bundle import pack_dir, read_manifest, unpack, validate_bundle
from reactor_jobs.functions.errors import BundleError

QUICKSTART = Path(__file__).resolve().parent.parent / "bundles" / "process-order"


def tar_gz(*members: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for info, data in members:
            info.size = len(data) if info.isfile() else 0
            tar.addfile(info, io.BytesIO(data) if info.isfile() else None)
    return buffer.getvalue()


def member(
    name: str, data: bytes = b"", kind: bytes = tarfile.REGTYPE, link: str = ""
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info, data


MANIFEST = member("function.json", b"{}")
ENTRY = member("code/index.py", b"async def fetch(request, env, ctx):\n    return 1\n")


def copy_quickstart(tmp_path: Path) -> Path:
    folder = tmp_path / "process-order"
    shutil.copytree(QUICKSTART, folder)
    return folder


def test_pack_dir_is_deterministic(tmp_path: Path) -> None:
    folder = copy_quickstart(tmp_path)
    first = pack_dir(folder)
    assert pack_dir(folder) == first
    # Times and the copy's location do not matter; contents do.
    for file in folder.rglob("*"):
        os.utime(file, (1_000_000, 1_000_000))
    again = tmp_path / "elsewhere"
    shutil.copytree(folder, again)
    assert pack_dir(again) == first
    (folder / "code" / "orders.py").write_text("# changed\n")
    assert pack_dir(folder) != first


def test_pack_dir_zeroes_metadata_and_skips_bytecode(tmp_path: Path) -> None:
    folder = copy_quickstart(tmp_path)
    (folder / "code" / "__pycache__").mkdir()
    (folder / "code" / "__pycache__" / "index.cpython-311.pyc").write_bytes(b"\0")
    (folder / "code" / "stale.pyc").write_bytes(b"\0")
    for cache in (".mypy_cache", ".git", "code/.pytest_cache"):  # tools run in the folder
        (folder / cache).mkdir()
        (folder / cache / "state").write_bytes(b"\0")
    archive = pack_dir(folder)
    assert archive == pack_dir(QUICKSTART)
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        infos = tar.getmembers()
    assert [i.name for i in infos] == ["code/index.py", "code/orders.py", "function.json"]
    assert {(i.mtime, i.uid, i.gid, i.uname, i.gname) for i in infos} == {(0, 0, 0, "", "")}


def test_pack_dir_needs_a_manifest_and_refuses_links(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match=r"no function\.json"):
        pack_dir(tmp_path)
    folder = copy_quickstart(tmp_path)
    (folder / "code" / "link.py").symlink_to(folder / "code" / "orders.py")
    with pytest.raises(BundleError, match="only regular files"):
        pack_dir(folder)


def test_read_manifest_and_validate(tmp_path: Path) -> None:
    archive = pack_dir(QUICKSTART)
    assert read_manifest(archive) == (QUICKSTART / "function.json").read_bytes()
    validate_bundle(archive, "python")
    with pytest.raises(BundleError, match=r"needs code/index\.ts or code/index\.js"):
        validate_bundle(archive, "bun")
    with pytest.raises(BundleError, match="unknown runtime"):
        validate_bundle(archive, "cobol")


def test_missing_manifest_or_entry_point() -> None:
    with pytest.raises(BundleError, match=r"no function\.json"):
        read_manifest(tar_gz(ENTRY))
    with pytest.raises(BundleError, match=r"no function\.json"):
        validate_bundle(tar_gz(ENTRY), "python")
    with pytest.raises(BundleError, match=r"needs code/index\.py"):
        validate_bundle(tar_gz(MANIFEST, member("code/main.py", b"")), "python")


def test_dot_slash_names_are_accepted(tmp_path: Path) -> None:
    archive = tar_gz(
        member("./", kind=tarfile.DIRTYPE),
        member("./function.json", b'{"job": {}}'),
        member("./code/index.py", b"x = 1\n"),
    )
    validate_bundle(archive, "python")
    assert read_manifest(archive) == b'{"job": {}}'
    unpack(archive, tmp_path / "out")
    assert (tmp_path / "out" / "code" / "index.py").read_bytes() == b"x = 1\n"


@pytest.mark.parametrize(
    ("evil", "message"),
    [
        (member("../escaped.py", b"x"), "escapes the bundle"),
        (member("code/../../escaped.py", b"x"), "escapes the bundle"),
        (member("/tmp/escaped.py", b"x"), "absolute"),
        (member("code\\..\\..\\escaped.py", b"x"), "unsafe"),
        (member("code/link.py", kind=tarfile.SYMTYPE, link="/etc/passwd"), "only files"),
        (member("code/hard.py", kind=tarfile.LNKTYPE, link="function.json"), "only files"),
        (member("code/fifo", kind=tarfile.FIFOTYPE), "only files"),
        (member("./function.json", b'{"job": {"timeoutMs": 1}}'), "appears twice"),
        (member("code/index.py/escaped.py", b"x"), "both a file and a folder"),
    ],
)
def test_unsafe_members_are_refused(
    tmp_path: Path, evil: tuple[tarfile.TarInfo, bytes], message: str
) -> None:
    archive = tar_gz(MANIFEST, ENTRY, evil)
    dest = tmp_path / "a" / "b"
    with pytest.raises(BundleError, match=message):
        unpack(archive, dest)
    with pytest.raises(BundleError, match=message):
        validate_bundle(archive, "python")
    assert not (tmp_path / "a").exists()  # nothing written
    assert not list(tmp_path.rglob("escaped.py"))


def test_unpack_round_trips(tmp_path: Path) -> None:
    unpack(pack_dir(QUICKSTART), tmp_path)
    for name in ("function.json", "code/index.py", "code/orders.py"):
        assert (tmp_path / name).read_bytes() == (QUICKSTART / name).read_bytes()


def test_not_an_archive_and_size_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(BundleError, match=r"not a tar\.gz archive"):
        read_manifest(b"PK\x03\x04 this is a zip")
    archive = pack_dir(QUICKSTART)
    with pytest.raises(BundleError, match=r"not a tar\.gz archive|corrupt"):
        read_manifest(archive[: len(archive) // 2])
    monkeypatch.setattr(bundle, "MAX_ARCHIVE_BYTES", 100)
    with pytest.raises(BundleError, match=r"the limit is 100 \(0 MiB\)"):
        validate_bundle(archive, "python")


def test_unpacked_size_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    archive = tar_gz(MANIFEST, ENTRY, member("code/big.bin", b"\0" * 10_000))
    monkeypatch.setattr(bundle, "MAX_UNPACKED_BYTES", 5_000)
    with pytest.raises(BundleError, match="unpacks to"):
        validate_bundle(archive, "python")
