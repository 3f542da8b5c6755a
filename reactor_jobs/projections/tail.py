"""Tailing a job's journal events and log lines in commit-safe order, for the live log.

Both are read in (writing transaction, position) order below the oldest running
transaction, as Journal.read_all does, so neither is skipped when writes commit out of
order; a Cursor holds one place in each order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg
import msgspec
from msgspec import UNSET, UnsetType

from reactor_jobs.projections.queries import json_columns
from reactor_jobs.statements import load

SQL = load("reactor_jobs.projections", "read.sql")
BATCH = 500


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

    async def run_events(self, conn: asyncpg.Connection) -> list[tuple[Cursor, RunEvent]]:
        """The journal events after the cursor, each with the cursor just past it."""
        logs = self.cursor.logs
        sql = SQL.journal_tail_run if self.only else SQL.journal_tail_job
        found, last = await self._read(conn, sql, self.cursor.journal)
        out: list[tuple[Cursor, RunEvent]] = []
        for mark, row in found:
            detail = msgspec.json.decode(row["payload"], type=_Detail)
            name = detail.name if detail.topic is UNSET else detail.topic
            event = RunEvent(
                run_id=row["run_id"], position=row["position"], type=row["type"],
                recorded_at=row["recorded_at"], attempt=detail.attempt, error=detail.error,
                name=name if isinstance(name, str) else UNSET,
            )  # fmt: skip
            out.append((Cursor(mark, logs), event))
        self.cursor = Cursor(last, logs)
        return out

    async def log_lines(self, conn: asyncpg.Connection) -> list[tuple[Cursor, LogLine]]:
        """The log lines after the cursor, each with the cursor just past it."""
        journal = self.cursor.journal
        sql = SQL.logs_tail_run if self.only else SQL.logs_tail_job
        found, last = await self._read(conn, sql, self.cursor.logs)
        out: list[tuple[Cursor, LogLine]] = []
        for mark, row in found:
            # horizon, tx and seq are not fields of a line: msgspec.convert ignores them
            line = msgspec.convert(json_columns(row, "fields"), LogLine)
            out.append((Cursor(journal, mark), line))
        self.cursor = Cursor(journal, last)
        return out


async def start_cursor(pool: asyncpg.Pool) -> Cursor:
    """Now: both parts at the oldest running transaction, so nothing committed later is lost."""
    horizon = int(await pool.fetchval(SQL.snapshot_horizon))
    return Cursor(Mark(horizon, 0), Mark(horizon, 0))
