"""The access log (one structured line per request, secrets redacted, raw request lines
never logged), the header-read timeout, and the headers every response carries."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from pathlib import Path

import msgspec
import pytest

from reactor_jobs.config import HttpConfig
from reactor_jobs.database import create_pool
from reactor_jobs.http.app import app_runner, create_app
from reactor_jobs.node import Node
from tests.http_fixtures import Api, api, http_config

pytestmark = pytest.mark.integration
__all__ = ["api"]

SECRET_TOKEN = "whk_" + "s3cr3t" * 4


async def raw_request(api: Api, data: bytes) -> bytes:
    host, port = api.base.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


async def test_one_structured_line_per_request_with_client_and_request_id(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="aiohttp.access"):
        reply = await api.call("GET", "/jobs/v1/_admin/jobs", headers={"X-Request-Id": "abc-1"})
        await api.call("POST", f"/jobs/v1/webhooks/{SECRET_TOKEN}?x=1", as_=None, json={})
    records = [r for r in caplog.records if r.name == "aiohttp.access"]
    assert len(records) == 2
    line = records[0].getMessage()
    assert reply.headers["X-Request-Id"] == "abc-1"
    assert line.startswith("method=GET path=/jobs/v1/_admin/jobs status=200 bytes=")
    assert " client=127.0.0.1 request_id=abc-1" in line and " duration_ms=" in line
    fields = records[0].access  # type: ignore[attr-defined]
    assert fields["status"] == 200 and fields["request_id"] == "abc-1"
    webhook = records[1].getMessage()
    assert "path=/jobs/v1/webhooks/[redacted] status=404" in webhook
    assert SECRET_TOKEN not in webhook and "x=1" not in webhook


async def test_a_request_line_over_the_limit_is_refused_and_never_logged_raw(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    line = f"POST /jobs/v1/webhooks/{SECRET_TOKEN}?pad={'a' * 9000} HTTP/1.1\r\n"
    with caplog.at_level(logging.DEBUG):
        answer = await raw_request(api, line.encode() + b"Host: x\r\n\r\n")
        answer += await raw_request(api, f"GET /{SECRET_TOKEN}\x01 HTTP/1.1\r\n\r\n".encode())
    assert answer.startswith(b"HTTP/1.0 400 ") and answer.count(b" 400 Bad Request") == 2
    logged = "\n".join(caplog.text.splitlines() + [r.getMessage() for r in caplog.records])
    assert SECRET_TOKEN not in logged and "s3cr3t" not in logged
    assert "unparseable request refused" in logged
    assert b"aiohttp/" not in answer and b"Python/" not in answer


async def test_responses_name_no_versions_and_forbid_sniffing(api: Api) -> None:
    for method, path, caller in (
        ("GET", "/healthz", None),
        ("GET", "/jobs/v1/_admin/jobs", "owner"),
        ("GET", "/jobs/v1/_admin/jobs", None),  # 401
        ("GET", "/nowhere", None),  # 404 from the router
        ("POST", "/auth/v1/token?grant_type=password", None),  # 400 from an auth route
    ):
        reply = await api.call(method, path, as_=caller)
        assert reply.headers["Server"] == "reactor", (path, reply.headers)
        assert reply.headers["X-Content-Type-Options"] == "nosniff", path


@pytest.fixture
async def slow_timeout_server(
    engine: object, db_url: str, tmp_path: Path
) -> AsyncIterator[tuple[str, int]]:
    base = http_config(tmp_path)
    http = msgspec.structs.replace(base.jobs.http, header_timeout_s=1.0)
    assert isinstance(http, HttpConfig)
    config = msgspec.structs.replace(base, jobs=msgspec.structs.replace(base.jobs, http=http))
    pool = await create_pool(db_url, min_size=1, max_size=2)
    node = Node(config, db_url, pool)
    runner = app_runner(create_app(node, config), config, shutdown_timeout=2)
    await runner.setup()
    from aiohttp import web

    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield "127.0.0.1", runner.addresses[0][1]
    finally:
        await runner.cleanup()
        await node.close()


async def test_a_connection_without_complete_headers_is_closed(
    slow_timeout_server: tuple[str, int],
) -> None:
    host, port = slow_timeout_server
    connections = []
    for _ in range(20):
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # no blank line: never complete
        await writer.drain()
        connections.append((reader, writer))
    started = time.monotonic()
    async with asyncio.timeout(10):
        for reader, writer in connections:
            assert await reader.read() == b""  # closed by the server
            writer.close()
    assert time.monotonic() - started < 5
