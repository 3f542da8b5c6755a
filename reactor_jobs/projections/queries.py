"""The read side's queries: runs, dead-letter entries and emitted events as the projections
show them, listed newest first with keyset cursors or fetched one by one. No writes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple, Protocol

import asyncpg
import msgspec

from reactor_jobs.domain.errors import RunNotFound
from reactor_jobs.domain.projection import RunInfo
from reactor_jobs.statements import load

SQL = load("reactor_jobs.projections", "read.sql")


class After(Protocol):
    """A keyset cursor: the sort time and id of the last item of the previous page."""

    @property
    def at(self) -> datetime: ...

    @property
    def id(self) -> str: ...


class Page(NamedTuple):
    """One page of rows (at most the limit asked for) and whether more follow."""

    rows: list[asyncpg.Record]
    more: bool


def _page(rows: Sequence[asyncpg.Record], limit: int) -> Page:
    return Page(list(rows[:limit]), len(rows) > limit)


def json_columns(row: Mapping[str, Any], *columns: str) -> dict[str, Any]:
    """The row as a dict with its `columns` (jsonb, read as JSON text) decoded."""
    fields = dict(row)
    for column in columns:
        if fields[column] is not None:
            fields[column] = msgspec.json.decode(fields[column])
    return fields


async def get_run(pool: asyncpg.Pool, org: str, run_id: str) -> RunInfo:
    """The run, if it is the org's; RunNotFound otherwise (another org's run is not found)."""
    row = await pool.fetchrow(SQL.run_get, org, run_id)
    if row is None:
        raise RunNotFound(run_id)
    return RunInfo.from_row(row)


async def job_exists(conn: asyncpg.Pool | asyncpg.Connection, org: str, job: str) -> bool:
    return await conn.fetchval(SQL.job_exists, org, job) is not None


async def list_runs(
    pool: asyncpg.Pool,
    org: str,
    job: str,
    *,
    statuses: list[str] | None,
    since: datetime | None,
    until: datetime | None,
    after: After | None,
    limit: int,
) -> tuple[list[RunInfo], bool] | None:
    """A page of the job's runs, newest first, and whether more follow; None if the page is
    empty because the job does not exist (read on the same connection, so it agrees)."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            SQL.runs_list, org, job, statuses, since, until,
            after and after.at, after and after.id, limit + 1,
        )  # fmt: skip
        if not rows and not await job_exists(conn, org, job):
            return None
    page = _page(rows, limit)
    return [RunInfo.from_row(row) for row in page.rows], page.more


async def list_dlq(
    pool: asyncpg.Pool, org: str, job: str, *, status: str | None, after: After | None, limit: int
) -> Page | None:
    """A page of the job's dead-letter entries, newest first (`error` still JSON text); None
    if the job does not exist."""
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            SQL.dlq_list, org, job, status, after and after.at, after and after.id, limit + 1
        )
        if not rows and not await job_exists(conn, org, job):
            return None
    return _page(rows, limit)


async def dlq_entry_job(pool: asyncpg.Pool, org: str, dlq_id: str) -> str | None:
    """The job a dead-letter entry of the org belongs to, or None if there is no such entry."""
    job: str | None = await pool.fetchval(SQL.dlq_entry_job, org, dlq_id)
    return job


async def list_events(
    pool: asyncpg.Pool,
    org: str,
    *,
    topic: str | None,
    unconsumed: bool,
    after: After | None,
    limit: int,
) -> Page:
    """A page of the org's emitted events, newest first (`payload` still JSON text)."""
    rows = await pool.fetch(
        SQL.events_list, org, topic, unconsumed, after and after.at, after and after.id,
        limit + 1,
    )  # fmt: skip
    return _page(rows, limit)
