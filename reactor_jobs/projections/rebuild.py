"""Drop every projection and rebuild it from the journal with the same pure handlers."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Iterable
from typing import Any

import asyncpg
import msgspec

from reactor_jobs.domain.errors import ReactorError
from reactor_jobs.domain.events import RecordedEvent, to_recorded
from reactor_jobs.domain.projection import (
    DLQ_COLUMNS,
    EVENT_COLUMNS,
    RUN_COLUMNS,
    RUN_TIME_COLUMNS,
    Row,
    project,
    resolve_now,
)

LOCK_WAIT_MS = 100
LOCK_TRIES = 100
_ROW_TIMES = frozenset({"created_at", "emitted_at", "retried_at", "consumed_at"})
_JSONB = {"runs": ("last_error", "output"), "dlq": ("error",), "events": ("payload",)}
_READ = """
SELECT global_position, run_id, position, org, type, version, recorded_at, prev_hash, hash,
       payload
  FROM _reactor_jobs.journal ORDER BY global_position
"""


class ProjectionsBusy(ReactorError):
    """Writers kept the projections locked; try the rebuild again."""


class RebuildReport(msgspec.Struct, frozen=True, kw_only=True):
    runs: int
    events: int
    seconds: float


class Projections:
    """The projections held in memory, changed exactly as the inline SQL changes them."""

    def __init__(self) -> None:
        self.runs: dict[str, Row] = {}
        self.dlq: dict[str, Row] = {}
        self.events: dict[str, Row] = {}

    def apply(self, rec: RecordedEvent) -> None:
        changes = project(rec.run_id, rec.position, [rec.event])
        at = rec.recorded_at
        if changes.new_run is not None:
            self.runs[rec.run_id] = resolve_now(changes.new_run, at, RUN_TIME_COLUMNS)
            run = self.runs[rec.run_id]
        else:
            run = self.runs[rec.run_id]
            run.update(resolve_now(changes.run_patch, at, RUN_TIME_COLUMNS))
        owner = {"org": run["org"], "job": run["job"]}
        for row in changes.dlq_opened:
            self.dlq[row["dlq_id"]] = {**resolve_now(row, at, _ROW_TIMES), **owner}
        for dlq_id in changes.dlq_retried:
            entry = self.dlq.get(dlq_id)
            if entry is not None and entry["status"] == "open":
                entry.update(status="retried", retried_at=at)
        for row in changes.events_recorded:
            self.events[row["event_id"]] = {**resolve_now(row, at, _ROW_TIMES), **owner}
        for event_id in changes.events_consumed:  # fan-out is journaled after its Emitted
            consumed = self.events.get(event_id)
            if consumed is not None:
                consumed["fanout"] += 1
                consumed["consumed_at"] = min(consumed["consumed_at"] or at, at)


def _records(rows: Iterable[Row], table: str, columns: tuple[str, ...]) -> list[tuple[Any, ...]]:
    jsonb = _JSONB[table]
    encode = msgspec.json.encode
    return [
        tuple(
            (None if row[c] is None else encode(row[c]).decode()) if c in jsonb else row[c]
            for c in columns
        )
        for row in rows
    ]


async def _lock_all(conn: asyncpg.Connection) -> None:
    """Lock the projections and the journal against writers, without ever deadlocking one.

    Writers take these tables' locks in no single order (an append statement locks the
    journal and runs together; a claim locks runs rows, then inserts into the journal), so
    no order of ours is safe. Instead each try waits at most LOCK_WAIT and gives up
    everything it holds: a writer caught between two of our locks goes on within
    LOCK_WAIT, long before Postgres's deadlock check (1 s) would abort anyone."""
    for attempt in range(LOCK_TRIES):
        try:
            async with conn.transaction():  # a savepoint inside the rebuild's transaction
                await conn.execute(f"SET LOCAL lock_timeout = '{LOCK_WAIT_MS}ms'")
                # ACCESS EXCLUSIVE now, as TRUNCATE will want it: taking less and upgrading
                # later would wait on readers that then queue behind us (a deadlock).
                await conn.execute(
                    "LOCK TABLE _reactor_jobs.runs, _reactor_jobs.dlq, _reactor_jobs.events"
                    " IN ACCESS EXCLUSIVE MODE"
                )
                await conn.execute("LOCK TABLE _reactor_jobs.journal IN EXCLUSIVE MODE")
                await conn.execute("SET LOCAL lock_timeout = 0")
            return
        except asyncpg.LockNotAvailableError:
            await asyncio.sleep(random.uniform(0, LOCK_WAIT_MS / 1000) * min(attempt + 1, 5))
    raise ProjectionsBusy(
        f"could not lock the projections after {LOCK_TRIES} tries; writers kept them busy"
    )


async def rebuild(pool: asyncpg.Pool, *, batch: int = 10_000) -> RebuildReport:
    """Replace runs, dlq and events with what the journal says; appends wait meanwhile."""
    started = time.perf_counter()
    state = Projections()
    count = 0
    async with pool.acquire() as conn, conn.transaction():
        await _lock_all(conn)
        await conn.execute("TRUNCATE _reactor_jobs.runs, _reactor_jobs.dlq, _reactor_jobs.events")
        cursor = await conn.cursor(_READ)
        while rows := await cursor.fetch(batch):
            for rec in to_recorded(rows):
                state.apply(rec)
            count += len(rows)
        for table, columns, rows in (
            ("runs", RUN_COLUMNS, state.runs.values()),
            ("dlq", DLQ_COLUMNS, state.dlq.values()),
            ("events", EVENT_COLUMNS, state.events.values()),
        ):
            await conn.copy_records_to_table(
                table,
                schema_name="_reactor_jobs",
                columns=list(columns),
                records=_records(rows, table, columns),
            )
    return RebuildReport(
        runs=len(state.runs), events=count, seconds=round(time.perf_counter() - started, 3)
    )
