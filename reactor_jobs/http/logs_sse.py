"""The live log of a job as Server-Sent Events (`GET /jobs/v1/_admin/jobs/{name}/logs`):
`event: run` for each journal event of the job's runs, `event: log` for each ctx.log line.

Journal events are read in the journal's commit-safe order, (tx_id, global_position) below
the oldest running transaction (as Journal.read_all does), and log lines likewise by
(tx_id, id), so neither is skipped when writes commit out of order. Each `id:` is a cursor
`<tx_id>-<global_position>-<log tx_id>-<log id>`; sending it back as Last-Event-ID resumes
after it, and `0-0-0` (or `0-0-0-0`) replays from the beginning. Without one
the stream starts at now. Polls every 200 ms; heartbeat comments keep proxies from closing
the connection; the stream ends when the client goes or the server shuts down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from datetime import datetime

import asyncpg
import msgspec
from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from reactor_jobs.auth.principal import Principal
from reactor_jobs.domain.errors import RunNotFound
from reactor_jobs.functions.errors import InvalidField
from reactor_jobs.http.jobs_routes import JOB
from reactor_jobs.http.keys import NODE, SHUTDOWN
from reactor_jobs.http.query import check_params
from reactor_jobs.http.routes import Route, authed, header, param
from reactor_jobs.projections import queries
from reactor_jobs.projections.tail import Cursor, LogLine, Mark, RunEvent, Tail, start_cursor

log = logging.getLogger("reactor_jobs.http")

POLL_S = 0.2
HEARTBEAT_S = 10.0
_CURSOR = re.compile(r"([0-9]{1,20})-([0-9]{1,20})-([0-9]{1,20})-([0-9]{1,20})")
_FROM_START = "0-0-0"


def parse_cursor(text: str) -> Cursor:
    if text.strip() == _FROM_START:
        return Cursor(Mark(0, 0), Mark(0, 0))
    match = _CURSOR.fullmatch(text.strip())
    if match is None:
        raise InvalidField("Last-Event-ID", "not an event id this stream sent")
    tx, seq, log_tx, log_seq = (int(part) for part in match.groups())
    return Cursor(Mark(tx, seq), Mark(log_tx, log_seq))


def _gone(request: web.Request) -> bool:
    return request.transport is None or request.transport.is_closing()


async def stream_logs(request: web.Request, principal: Principal) -> web.StreamResponse:
    check_params(request, ("run_id", "follow"))
    follow = request.query.get("follow", "true")
    if follow not in ("true", "false"):
        raise InvalidField("follow", "must be true or false")
    node, name = request.app[NODE], request.match_info["name"]
    await node.registry.get_job(principal.org, name)  # 404 before the stream starts
    run_id = request.query.get("run_id")
    if run_id is not None:
        run = await queries.get_run(node.pool, principal.org, run_id)  # another org's: 404
        if run.job != name:
            raise RunNotFound(run_id)
    last = request.headers.get("Last-Event-ID")
    cursor = parse_cursor(last) if last else await start_cursor(node.pool)
    tail = Tail(node.pool, principal.org, name, cursor, run_id)
    stop = request.app[SHUTDOWN]
    if _gone(request):
        return web.Response(status=204)  # the client left before the stream began
    async with sse_response(request, ping_interval=HEARTBEAT_S) as sse:
        try:
            while not stop.is_set() and sse.is_connected() and not _gone(request):
                sent = await _send_new(sse, tail)
                if follow == "false" and not sent:
                    break  # the history up to now is out: the stream ends
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), POLL_S)
        except ConnectionResetError:
            pass  # the client went away
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning("log stream of job %s ended: %s", name, exc)
    return sse


async def _send_new(sse: EventSourceResponse, tail: Tail) -> int:
    """Send what appeared, events and lines merged in time order; how many were sent.

    Each id names the last event and the last line sent up to it, so a resume after any
    of them neither skips nor repeats one of either kind."""
    before = tail.cursor
    async with tail.pool.acquire() as conn:
        runs = await tail.run_events(conn)
        lines = await tail.log_lines(conn)
    merged: list[tuple[datetime, int, Cursor, RunEvent | LogLine]] = [
        (event.recorded_at, 0, own, event) for own, event in runs
    ]
    merged += [(line.at, 1, own, line) for own, line in lines]
    merged.sort(key=lambda item: (item[0], item[1]))
    journal, logs = before.journal, before.logs
    for _, kind, own, item in merged:
        if kind == 0:
            journal = own.journal
        else:
            logs = own.logs
        event = "run" if kind == 0 else "log"
        await sse.send(
            msgspec.json.encode(item).decode(), id=str(Cursor(journal, logs)), event=event
        )
    return len(merged)


ROUTES: list[Route] = [
    authed(
        "GET", JOB + "/logs", "member", stream_logs,
        summary="Stream a job's run events and log lines (Server-Sent Events)", tag="logs",
        response="sse",
        params=(
            param("run_id", "Only this run's events and lines (404 if not a run of the job)."),
            param(
                "follow", "false: end the stream once the history up to now is sent.",
                enum=["true", "false"],
            ),
            header("Last-Event-ID", "Resume after this event id; 0-0-0 replays all."),
        ),
        errors=(404, 422),
        note="event: run, data {run_id, position, type, recorded_at, attempt?, error?}; "
        "event: log, data {run_id, attempt, step, level, message, fields, at}. Each id is "
        "a resumable cursor. Heartbeat comments every 10 s.",
    ),
]  # fmt: skip
