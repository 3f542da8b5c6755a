"""The job log stream over SSE: run events and ctx.log lines live, resumable with
Last-Event-ID, ended by a client that leaves and by server shutdown."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web

from reactor_jobs.http.app import AccessLogger, create_app
from reactor_jobs.http.logs_sse import parse_cursor
from reactor_jobs.projections import tail as logs_sse
from tests.http_fixtures import Api, api

pytestmark = pytest.mark.integration
__all__ = ["api"]

LOGS = "/jobs/v1/_admin/jobs/work/logs"


class Sse(msgspec.Struct):
    id: str | None
    event: str
    data: Any


async def parse(response: aiohttp.ClientResponse) -> AsyncIterator[Sse]:
    """Client-side SSE parsing, just enough for these tests."""
    fields: dict[str, list[str]] = {}
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if line.startswith(":"):
            continue
        if line:
            name, _, value = line.partition(": ")
            fields.setdefault(name, []).append(value)
            continue
        if "data" in fields:
            data = msgspec.json.decode("\n".join(fields["data"]))
            yield Sse(fields.get("id", [None])[-1], fields.get("event", ["message"])[-1], data)
        fields = {}


async def read_until(events: AsyncIterator[Sse], done: Any, timeout: float = 15) -> list[Sse]:
    seen: list[Sse] = []
    async with asyncio.timeout(timeout):
        async for event in events:
            seen.append(event)
            if done(seen):
                return seen
    raise AssertionError(f"the stream ended early after {seen}")


def completed(run_id: str) -> Any:
    def check(seen: list[Sse]) -> bool:
        runs = {(e.data["run_id"], e.data["type"]) for e in seen if e.event == "run"}
        logs = {e.data["run_id"] for e in seen if e.event == "log"}
        return (run_id, "Completed") in runs and run_id in logs

    return check


async def work_job(api: Api) -> None:
    body = {"name": "work", "function_name": "scenarios"}
    assert (await api.call("POST", "/jobs/v1/_admin/jobs", json=body)).status == 201


async def trigger(api: Api) -> str:
    reply = await api.call("POST", "/jobs/v1/work/trigger",
                           json={"payload": {"mode": "emit", "topic": "t"}})  # fmt: skip
    assert reply.status == 201
    return str(reply.json["id"])


def open_stream(api: Api, last_event_id: str | None = None) -> Any:
    headers = dict(api.headers["member"])
    if last_event_id is not None:
        headers["Last-Event-ID"] = last_event_id
    return api.session.get(api.base + LOGS, headers=headers)


async def test_run_events_and_log_lines_arrive_live_and_resume_after_last_event_id(
    api: Api,
) -> None:
    await work_job(api)
    api.engine.start_worker()
    async with open_stream(api) as response:
        assert response.status == 200
        assert response.headers["Content-Type"] == "text/event-stream"
        assert response.headers["X-Request-Id"].startswith("req_")
        first = await trigger(api)
        seen = await read_until(parse(response), completed(first))
    # (a LeaseExtended heartbeat may come in between when the machine is slow)
    types = [e.data["type"] for e in seen if e.event == "run" and e.data["type"] != "LeaseExtended"]
    assert types == ["Triggered", "AttemptStarted", "Emitted", "Completed"]
    started = next(e for e in seen if e.event == "run" and e.data["type"] == "AttemptStarted")
    assert started.data["attempt"] == 1 and "error" not in started.data
    assert set(started.data) == {"run_id", "position", "type", "recorded_at", "attempt"}
    line = next(e for e in seen if e.event == "log")
    assert line.data["message"] == "emitted" and line.data["level"] == "info"
    assert set(line.data) == {"run_id", "attempt", "step", "level", "message", "fields", "at"}

    # Resuming after the second event gives exactly the rest, then the next run's events;
    # each kind keeps its order (run events and log lines may interleave differently).
    async with open_stream(api, seen[1].id) as response:
        second = await trigger(api)
        resumed = await read_until(parse(response), completed(second))
    assert {e.data["run_id"] for e in resumed} == {first, second}
    for kind in ("run", "log"):
        again = [e.data for e in resumed if e.event == kind and e.data["run_id"] == first]
        assert again == [e.data for e in seen[2:] if e.event == kind]

    # 0-0-0 replays the whole history; each kind keeps its order (the interleaving of run
    # events and log lines may differ from the live one).
    history = seen + [e for e in resumed if e.data["run_id"] == second]
    async with open_stream(api, "0-0-0") as response:
        replay = await read_until(parse(response), lambda s: len(s) >= len(history))
    for kind in ("run", "log"):
        assert [e.data for e in replay if e.event == kind] == [
            e.data for e in history if e.event == kind
        ]


async def test_a_run_filtered_stream_shows_only_that_run(api: Api) -> None:
    await work_job(api)
    api.engine.start_worker()
    first, second = await trigger(api), await trigger(api)
    await api.wait_run("work", second, ("completed",))
    await api.wait_run("work", first, ("completed",))
    headers = {**api.headers["member"], "Last-Event-ID": "0-0-0"}
    url = f"{api.base}{LOGS}?run_id={second}"
    async with api.session.get(url, headers=headers) as response:
        assert response.status == 200
        seen = await read_until(parse(response), completed(second))
    assert {e.data["run_id"] for e in seen} == {second}
    assert next(e.data["type"] for e in seen if e.event == "run") == "Triggered"
    # another job's or another org's run is 404 before the stream starts
    other = await api.call("GET", f"{LOGS}?run_id=run_nope", as_="member")
    assert (other.status, other.error_code) == (404, "not_found")
    foreign = await api.call("GET", f"{LOGS}?run_id={second}", as_="outsider")
    assert foreign.status == 404


async def test_a_stream_starts_at_now_and_refuses_a_bad_last_event_id(api: Api) -> None:
    await work_job(api)
    api.engine.start_worker()
    old = await trigger(api)
    await api.wait_run("work", old, ("completed",))
    async with asyncio.timeout(5):  # its ctx.log line is written shortly after
        query = "SELECT count(*) FROM _reactor_jobs.run_logs WHERE run_id = $1"
        while not await api.node.pool.fetchval(query, old):
            await asyncio.sleep(0.05)
    async with open_stream(api) as response:
        new = await trigger(api)
        seen = await read_until(parse(response), completed(new))
    assert {e.data["run_id"] for e in seen} == {new}
    async with open_stream(api, "yesterday") as response:
        assert response.status == 422
        assert (await response.json())["error"]["message"].startswith("Last-Event-ID: ")


async def test_a_client_that_leaves_ends_its_stream(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    await work_job(api)
    polls = 0
    read = logs_sse.Tail.run_events

    async def counted(self: logs_sse.Tail, conn: Any) -> Any:
        nonlocal polls
        polls += 1
        return await read(self, conn)

    monkeypatch.setattr(logs_sse.Tail, "run_events", counted)
    async with open_stream(api) as response:
        assert response.status == 200
        await asyncio.sleep(0.5)
        assert polls >= 2  # polling while connected
    await asyncio.sleep(0.5)  # the next poll sees the closed connection
    after = polls
    await asyncio.sleep(1)
    assert polls == after


async def test_server_shutdown_ends_open_streams_promptly(api: Api) -> None:
    await work_job(api)
    app = create_app(api.node, api.node.config)
    runner = web.AppRunner(app, access_log_class=AccessLogger, shutdown_timeout=30)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}{LOGS}"
    async with api.session.get(url, headers=api.headers["member"]) as response:
        assert response.status == 200
        started = time.monotonic()
        await runner.cleanup()
        assert time.monotonic() - started < 3  # far below shutdown_timeout
        async with asyncio.timeout(3):
            async for _ in response.content:
                pass  # the stream ends rather than hanging


_LINE = """
INSERT INTO _reactor_jobs.run_logs (org, job, run_id, attempt, level, message)
VALUES ('acme', 'work', 'run_x', 1, 'info', $1) RETURNING id"""


async def test_a_log_line_committed_late_is_not_skipped(pool: Any) -> None:
    """Ids are taken at insert; a line with a lower id that commits after a higher one was
    streamed must still be streamed (the tail reads by (tx_id, id) below the horizon)."""
    tail = logs_sse.Tail(pool, "acme", "work", await logs_sse.start_cursor(pool))
    async with pool.acquire() as slow, pool.acquire() as conn:
        open_tx = slow.transaction()
        await open_tx.start()
        early = await slow.fetchval(_LINE, "early")
        late = await pool.fetchval(_LINE, "late")
        assert early < late
        assert await tail.log_lines(conn) == []  # "late" waits behind the open transaction
        await open_tx.commit()
        seen: list[str] = []
        async with asyncio.timeout(20):  # other databases' transactions may hold the horizon
            while len(seen) < 2:
                seen += [line.message for _, line in await tail.log_lines(conn)]
                await asyncio.sleep(0.02)
    assert seen == ["early", "late"]
    resumed = logs_sse.Tail(pool, "acme", "work", parse_cursor(str(tail.cursor)))
    async with pool.acquire() as conn:
        assert await resumed.log_lines(conn) == []  # the cursor resumes after both
