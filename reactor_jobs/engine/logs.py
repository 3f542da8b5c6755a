"""ctx.log lines go to run_logs in batches, off the job's path."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import msgspec

# A line's time is the database's clock at the moment the worker received it: the clock is
# read once per flush (`_CLOCK`, halfway through that round trip) and each line is placed the
# duration it waited before then (a monotonic measure), so lines sort among the run's events
# as they happened, not at their flush a moment later.
_CLOCK = "SELECT clock_timestamp()"
_INSERT = """
INSERT INTO _reactor_jobs.run_logs (org, job, run_id, attempt, step, level, message, fields, at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::text[],
                     $7::text[], $8::jsonb[], $9::timestamptz[])
"""


class LogLine(msgspec.Struct, frozen=True, kw_only=True):
    org: str
    job: str
    run_id: str
    attempt: int
    step: str | None
    level: str
    message: str
    fields: dict[str, Any] | None = None
    written: float = msgspec.field(default_factory=time.monotonic)


class LogSink:
    """Buffers lines and writes them every `interval` seconds (and on close)."""

    def __init__(self, pool: asyncpg.Pool, *, interval: float = 0.1) -> None:
        self._pool, self._interval = pool, interval
        self._lines: list[LogLine] = []
        self._task: asyncio.Task[None] | None = None

    def write(self, line: LogLine) -> None:
        self._lines.append(line)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._flush_later())

    async def _flush_later(self) -> None:
        await asyncio.sleep(self._interval)
        await self.flush()

    async def flush(self) -> None:
        lines, self._lines = self._lines, []
        if not lines:
            return
        async with self._pool.acquire() as conn:
            asked = time.monotonic()
            clock: datetime = await conn.fetchval(_CLOCK)
            now = (asked + time.monotonic()) / 2
            await conn.execute(_INSERT, *_columns(lines, clock, now))

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.flush()


def _columns(lines: list[LogLine], clock: datetime, now: float) -> list[list[Any]]:
    """The lines as the insert's arrays; `clock` is the database's time at monotonic `now`."""
    columns: list[list[Any]] = [[] for _ in range(9)]
    for line in lines:
        fields = None if line.fields is None else msgspec.json.encode(line.fields).decode()
        values = (line.org, line.job, line.run_id, line.attempt, line.step, line.level,
                  line.message, fields, clock - timedelta(seconds=now - line.written))  # fmt: skip
        for column, value in zip(columns, values, strict=True):
            column.append(value)
    return columns
