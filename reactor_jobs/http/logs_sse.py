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
from typing import Any

import asyncpg
import msgspec
from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response
from msgspec import UNSET, UnsetType

from reactor_jobs.auth.principal import Principal
from reactor_jobs.domain.errors import RunNotFound
from reactor_jobs.functions.errors import InvalidField
from reactor_jobs.http.bodies import from_row
from reactor_jobs.http.jobs_routes import JOB
from reactor_jobs.http.keys import NODE, SHUTDOWN
from reactor_jobs.http.query import check_params
from reactor_jobs.http.routes import Route, authed, header, param

log = logging.getLogger("reactor_jobs.http")

POLL_S = 0.2
HEARTBEAT_S = 10.0
BATCH = 500
_CURSOR = re.compile(r"([0-9]{1,20})-([0-9]{1,20})-([0-9]{1,20})-([0-9]{1,20})")
_FROM_START = "0-0-0"

# One snapshot gives both the horizon and the rows below it, in (tx, seq) order after the
# cursor; with no rows the horizon alone comes back, and the cursor moves up to it (nothing
# below it can still appear). A stream of one run (?run_id=) adds a condition the
# (run_id, …) indexes serve, as a statement of its own so neither plan covers both cases.
_TAIL = """
WITH horizon AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
SELECT horizon.xmin::text AS horizon, t.*
  FROM horizon LEFT JOIN LATERAL (
    SELECT {tx}::text AS tx, {seq} AS seq, {columns}
      FROM {source}
     WHERE {owner}{run}
       AND ({tx}, {seq}) > ($3::text::xid8, $4::bigint) AND {tx} < horizon.xmin
     ORDER BY {tx}, {seq}
     LIMIT $5
  ) AS t ON true"""
_JOURNAL = {
    "tx": "j.tx_id", "seq": "j.global_position",
    "columns": "j.run_id, j.position, j.type, j.recorded_at, j.payload",
    "source": "_reactor_jobs.journal AS j JOIN _reactor_jobs.runs AS r USING (run_id)",
    "owner": "r.org = $1 AND r.job = $2",
}  # fmt: skip
_LOGS = {
    "tx": "tx_id", "seq": "id",
    "columns": "run_id, attempt, step, level, message, fields, at",
    "source": "_reactor_jobs.run_logs", "owner": "org = $1 AND job = $2",
}  # fmt: skip
_JOURNAL_JOB = _TAIL.format(**_JOURNAL, run="")
_JOURNAL_RUN = _TAIL.format(**_JOURNAL, run=" AND j.run_id = $6")
_LOGS_JOB = _TAIL.format(**_LOGS, run="")
_LOGS_RUN = _TAIL.format(**_LOGS, run=" AND run_id = $6")
_START = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text AS tx"


class Mark(msgspec.Struct, frozen=True):
    """A place in one of the two orders: (writing transaction, position within the kind)."""

    tx: int
    seq: int


class Cursor(msgspec.Struct, frozen=True):
    journal: Mark
    logs: Mark

    def __str__(self) -> str:
        j, log = self.journal, self.logs
        return f"{j.tx}-{j.seq}-{log.tx}-{log.seq}"


class _Detail(msgspec.Struct, frozen=True):
    """The parts of an event's payload the stream shows."""

    attempt: int | UnsetType = UNSET
    error: Any = UNSET
    name: str | UnsetType = UNSET  # a step's or a sleep's
    topic: str | UnsetType = UNSET  # an emitted event's


class RunEvent(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    position: int
    type: str
    recorded_at: datetime
    attempt: int | UnsetType = UNSET
    error: Any = UNSET
    name: str | UnsetType = UNSET


class LogLine(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    attempt: int
    step: str | None
    level: str
    message: str
    fields: Any
    at: datetime


def parse_cursor(text: str) -> Cursor:
    if text.strip() == _FROM_START:
        return Cursor(Mark(0, 0), Mark(0, 0))
    match = _CURSOR.fullmatch(text.strip())
    if match is None:
        raise InvalidField("Last-Event-ID", "not an event id this stream sent")
    tx, seq, log_tx, log_seq = (int(part) for part in match.groups())
    return Cursor(Mark(tx, seq), Mark(log_tx, log_seq))


class Tail:
    """One stream's position and the two reads that move it."""

    def __init__(
        self, pool: asyncpg.Pool, org: str, job: str, cursor: Cursor, run_id: str | None = None
    ) -> None:
        self.pool, self.org, self.job, self.cursor = pool, org, job, cursor
        self.only: tuple[str, ...] = () if run_id is None else (run_id,)

    async def _read(
        self, conn: asyncpg.Connection, sql: str, mark: Mark
    ) -> tuple[list[tuple[Mark, asyncpg.Record]], Mark]:
        """The rows after `mark` with each one's mark, and where the next read starts."""
        rows = await conn.fetch(sql, self.org, self.job, str(mark.tx), mark.seq, BATCH, *self.only)
        found = [(Mark(int(r["tx"]), r["seq"]), r) for r in rows if r["tx"] is not None]
        last = found[-1][0] if found else mark
        horizon = int(rows[0]["horizon"])
        if len(found) < BATCH and horizon > last.tx:
            last = Mark(horizon, 0)
        return found, last

    async def run_events(self, conn: asyncpg.Connection) -> list[tuple[str, RunEvent]]:
        logs = self.cursor.logs
        sql = _JOURNAL_RUN if self.only else _JOURNAL_JOB
        found, last = await self._read(conn, sql, self.cursor.journal)
        out: list[tuple[str, RunEvent]] = []
        for mark, row in found:
            detail = msgspec.json.decode(row["payload"], type=_Detail)
            name = detail.name if detail.topic is UNSET else detail.topic
            event = RunEvent(
                run_id=row["run_id"], position=row["position"], type=row["type"],
                recorded_at=row["recorded_at"], attempt=detail.attempt, error=detail.error,
                name=name if isinstance(name, str) else UNSET,
            )  # fmt: skip
            out.append((str(Cursor(mark, logs)), event))
        self.cursor = Cursor(last, logs)
        return out

    async def log_lines(self, conn: asyncpg.Connection) -> list[tuple[str, LogLine]]:
        journal = self.cursor.journal
        found, last = await self._read(
            conn, _LOGS_RUN if self.only else _LOGS_JOB, self.cursor.logs
        )
        out: list[tuple[str, LogLine]] = []
        for mark, row in found:
            line = from_row(LogLine, row, json=("fields",))  # horizon, tx, seq are ignored
            out.append((str(Cursor(journal, mark)), line))
        self.cursor = Cursor(journal, last)
        return out


async def start_cursor(pool: asyncpg.Pool) -> Cursor:
    """Now: both parts at the oldest running transaction, so nothing committed later is lost."""
    horizon = int(await pool.fetchval(_START))
    return Cursor(Mark(horizon, 0), Mark(horizon, 0))


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
        run = await node.control.get(principal.org, run_id)  # another org's: 404
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
    merged: list[tuple[datetime, int, str, RunEvent | LogLine]] = [
        (event.recorded_at, 0, event_id, event) for event_id, event in runs
    ]
    merged += [(line.at, 1, event_id, line) for event_id, line in lines]
    merged.sort(key=lambda item: (item[0], item[1]))
    journal, logs = before.journal, before.logs
    for _, kind, own_id, item in merged:
        own = parse_cursor(own_id)
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
