"""The Python bundle loader (what a function host runs) on versions deployed to Postgres: the
quickstart bundle runs, a broken bundle is a BundleError and not a crash, and versions load
side by side."""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
import msgspec
import pytest

from reactor_jobs.functions import Request, Response
from reactor_jobs.functions.bundle import pack_dir
from reactor_jobs.functions.errors import BundleError
from reactor_jobs.functions.records import FunctionVersion
from reactor_jobs.functions.registry import Registry
from reactor_jobs.functions.runtime import BundleLoader, Handler, to_output

pytestmark = pytest.mark.integration

BUNDLES = Path(__file__).resolve().parent.parent / "bundles"
ORG = "acme"


class RecordingContext:
    """Stands in for the engine's JobContext: runs steps inline and records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def step(self, name: str, fn: Callable[[], Any]) -> Any:
        result = fn()
        if inspect.isawaitable(result):
            result = await result
        self.calls.append(("step", name, result))
        return result

    async def emit(self, topic: str, payload: Any) -> None:
        self.calls.append(("emit", topic, payload))


def write_bundle(folder: Path, files: dict[str, str]) -> bytes:
    (folder / "code").mkdir(parents=True)
    (folder / "function.json").write_text('{"job": {}}')
    for name, text in files.items():
        (folder / "code" / name).write_text(text)
    return pack_dir(folder)


def load(cache: Path, fv: FunctionVersion, loader: BundleLoader | None = None) -> Handler:
    return (loader or BundleLoader(cache)).load(fv.name, fv.version, fv.sha256, fv.archive)


async def deployed(pool: asyncpg.Pool, name: str, *archives: bytes) -> list[FunctionVersion]:
    registry = Registry(pool)
    await registry.create_function(ORG, name)
    versions = [await registry.deploy(ORG, name, archive) for archive in archives]
    return [await registry.get_version(ORG, name, version) for version in versions]


async def test_the_quickstart_bundle_runs(pool: asyncpg.Pool, tmp_path: Path) -> None:
    [fv] = await deployed(pool, "process-order", pack_dir(BUNDLES / "process-order"))
    loader = BundleLoader(tmp_path / "cache")
    fetch = load(tmp_path, fv, loader)
    assert load(tmp_path, fv, loader) is fetch  # cached per process

    ctx = RecordingContext()
    request = Request.from_payload({"orderId": "ord_123", "total": 42})
    result = await fetch(request, {"REGION": "eu"}, ctx)

    assert isinstance(result, Response)
    assert (result.status, result.headers["content-type"]) == (200, "application/json")
    assert to_output(result) == {"success": True, "orderId": "ord_123"}
    assert ctx.calls == [
        ("step", "validate", {"id": "ord_123", "total": 42}),
        ("step", "charge", {"charged": 42, "orderId": "ord_123"}),
        ("emit", "order.processed", {"orderId": "ord_123"}),
    ]
    unpacked = tmp_path / "cache" / "process-order" / f"1-{fv.sha256[:16]}"
    assert (unpacked / "code" / "index.py").is_file()
    assert not [p for p in sys.path if str(tmp_path) in p]
    # imported from the cache folder, never from the source bundle
    assert fetch.__code__.co_filename == str(unpacked / "code" / "index.py")


async def test_a_step_error_reaches_the_caller(pool: asyncpg.Pool, tmp_path: Path) -> None:
    [fv] = await deployed(pool, "process-order", pack_dir(BUNDLES / "process-order"))
    fetch = load(tmp_path, fv)
    with pytest.raises(ValueError, match="orderId"):
        await fetch(Request.from_payload({"total": 5}), {}, RecordingContext())  # no orderId


@pytest.mark.parametrize(
    ("index", "message"),
    [
        (
            "raise RuntimeError('DATABASE_URL is not set')\n",
            "RuntimeError: DATABASE_URL is not set",
        ),
        ("import not_a_module_anywhere\n", "ModuleNotFoundError: No module named"),
        ("def fetch(:\n", "SyntaxError"),
        ("import sys\nsys.exit(3)\n", "SystemExit: 3"),
        ("x = 1\n", "must define `async def fetch(request, env, ctx)`"),
        ("def fetch(request, env, ctx):\n    return 1\n", "must define `async def fetch"),
    ],
)
async def test_a_broken_bundle_is_a_bundle_error(
    pool: asyncpg.Pool, tmp_path: Path, index: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Deploy refuses most of these now (functions/code_check.py); a runtime must still cope
    # with what it is given, e.g. versions stored before deploy checked code.
    monkeypatch.setattr("reactor_jobs.functions.registry.check_code", lambda *_: None)
    archive = write_bundle(tmp_path / "src", {"index.py": index})
    [fv] = await deployed(pool, "broken", archive)
    modules_before = set(sys.modules)
    with pytest.raises(BundleError) as info:
        load(tmp_path / "cache", fv)
    assert message in info.value.message
    assert info.value.message.startswith("function broken v1: ")
    assert "Traceback" not in info.value.message
    assert info.value.__cause__ is None
    assert not [m for m in set(sys.modules) - modules_before if m.startswith("_reactor_bundle")]


async def test_two_versions_load_side_by_side(pool: asyncpg.Pool, tmp_path: Path) -> None:
    index = (
        "from reactor_jobs.functions import Response\n"
        "from .answer import ANSWER\n\n\n"
        "async def fetch(request, env, ctx):\n"
        "    return Response.json({'version': ANSWER, 'payload': await request.json()})\n"
    )
    archives = [
        write_bundle(tmp_path / f"src{n}", {"index.py": index, "answer.py": f"ANSWER = {n}\n"})
        for n in (1, 2)
    ]
    fv1, fv2 = await deployed(pool, "answer", *archives)
    loader = BundleLoader(tmp_path / "cache")
    fetch1, fetch2 = load(tmp_path, fv1, loader), load(tmp_path, fv2, loader)
    request = Request.from_payload("hi")
    assert to_output(await fetch2(request, {}, None)) == {"version": 2, "payload": "hi"}
    assert to_output(await fetch1(request, {}, None)) == {"version": 1, "payload": "hi"}
    # A second host (here: loader) reuses the unpacked folders.
    assert to_output(await load(tmp_path / "cache", fv1)(request, {}, None))


async def test_an_archive_that_does_not_match_its_digest_is_refused(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    [fv] = await deployed(pool, "process-order", pack_dir(BUNDLES / "process-order"))
    tampered = msgspec.structs.replace(fv, archive=pack_dir(BUNDLES / "process-order") + b"\0")
    with pytest.raises(BundleError, match="does not match sha256"):
        load(tmp_path, tampered)


async def test_request_mirrors_the_web_api() -> None:
    request = Request.from_payload({"orderId": "ord_123"}, headers={"X-Source": "stripe"})
    assert await request.json() == {"orderId": "ord_123"}
    assert await request.text() == '{"orderId":"ord_123"}'
    assert request.headers == {"x-source": "stripe", "content-type": "application/json"}
    assert request.method == "POST"
    assert await Request.from_payload(None).json() is None
    raw = Request.from_payload("a,b\n1,2\n", content_type="text/csv")
    assert (await raw.text(), raw.headers["content-type"]) == ("a,b\n1,2\n", "text/csv")
    assert Request.from_payload(b"\x00\x01", content_type="application/octet-stream").body == (
        b"\x00\x01"
    )


def test_to_output() -> None:
    assert to_output(Response.json([1, 2], status=201)) == [1, 2]
    assert to_output(Response(body=b"done", headers={"content-type": "text/plain"})) == "done"
    assert to_output(Response(status=204)) is None
    assert to_output(Response(body=b"{oops", headers={"content-type": "application/json"})) == (
        "{oops"
    )
    assert to_output({"a": (1, 2)}) == {"a": [1, 2]}
    assert to_output(None) is None
    with pytest.raises(TypeError, match="JSON cannot hold"):
        to_output(object())
    response = Response.json({"ok": True}, headers={"X-Trace": "t1"})
    assert response.headers == {"content-type": "application/json", "x-trace": "t1"}
    assert response.json_body() == {"ok": True}
