"""Journal export (NDJSON, one event a line, with hashes) and its offline verification.

An export holds whole streams (every run from position 1), so a verifier with no database
can recompute each run's hash chain: the canonical bytes of an event are its `data`
re-encoded with sorted keys, exactly the bytes the journal hashed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import datetime
from typing import Any

import asyncpg
import msgspec

from reactor_jobs.domain import events as ev
from reactor_jobs.domain.events import to_recorded
from reactor_jobs.engine.journal import VerifyResult, export_line, verify_rows
from reactor_jobs.statements import load
from reactor_jobs.wire.objects import JournalEvent

SQL = load("reactor_jobs.projections", "read.sql")


async def export_runs(
    pool: asyncpg.Pool, org: str, job: str, since: datetime, until: datetime
) -> AsyncIterator[bytes]:
    """NDJSON lines of every event of the job's runs created in [since, until)."""
    async with pool.acquire() as conn, conn.transaction(readonly=True):
        cursor = await conn.cursor(SQL.export_job_runs, org, job, since, until)
        while rows := await cursor.fetch(2000):
            for rec in to_recorded(rows):
                yield export_line(rec) + b"\n"


def verify_export(lines: Iterable[bytes]) -> Iterator[VerifyResult]:
    """Check an export with no database: one result per run, in the file's order."""
    decoder = msgspec.json.Decoder(JournalEvent)
    current: list[dict[str, Any]] = []
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            line = decoder.decode(raw)
            row = _row(line)
        except (msgspec.DecodeError, ValueError) as exc:
            raise ValueError(f"line {number}: not an exported event ({exc})") from None
        if current and current[0]["run_id"] != line.run_id:
            yield verify_rows(current[0]["run_id"], current)
            current = []
        current.append(row)
    if current:
        yield verify_rows(current[0]["run_id"], current)


def _row(line: JournalEvent) -> dict[str, Any]:
    """The line as the verifier reads a journal row: the payload rebuilt canonically."""
    return {
        "run_id": line.run_id,
        "position": line.position,
        "org": line.org,
        "type": line.type,
        "version": line.version,
        "recorded_at": line.recorded_at,
        "prev_hash": bytes.fromhex(line.prev_hash),
        "hash": bytes.fromhex(line.hash),
        "payload": ev.canonical_json(line.data),
    }
