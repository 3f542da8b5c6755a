"""Expired leases: a worker that died (kill -9) or stalled loses its attempt to LeaseExpired,
which counts as an attempt, so a crash-looping run still ends in the dead-letter queue."""

from __future__ import annotations

import random

import asyncpg

from reactor_jobs.engine import events as ev
from reactor_jobs.engine import policy
from reactor_jobs.engine.ids import new_id
from reactor_jobs.engine.journal import AppendRequest, Fence, Journal

EXPIRED = """
SELECT r.run_id, r.attempt, r.lease_owner, r.last_position, r.max_attempts, now() AS db_now,
       j.payload AS triggered
  FROM _reactor_jobs.runs AS r
  JOIN _reactor_jobs.journal AS j ON j.run_id = r.run_id AND j.position = 1
 WHERE r.status = 'running' AND r.lease_expires_at < now()
 ORDER BY r.lease_expires_at
 LIMIT $1
   FOR UPDATE OF r SKIP LOCKED
"""


def _expiry(row: asyncpg.Record) -> list[ev.Event]:
    trig = ev.decode(row["triggered"])
    assert isinstance(trig, ev.Triggered)
    expired = ev.LeaseExpired(attempt=row["attempt"], worker=row["lease_owner"])
    error = ev.ErrorInfo(type="LeaseExpired", message=f"worker {row['lease_owner']} lost its lease")
    delay = policy.backoff_ms(
        row["attempt"],
        backoff=trig.backoff,
        initial_ms=trig.initial_delay_ms,
        max_ms=trig.max_delay_ms,
        jitter=random.random(),
    )
    after = policy.after_failure(
        row["attempt"],
        max_attempts=row["max_attempts"],
        error=error,
        delay_ms=delay,
        dlq_id=new_id("dlq"),
    )
    return [expired, after]


async def expire_leases(conn: asyncpg.Connection, journal: Journal, *, limit: int = 100) -> int:
    """Requeue (or dead-letter) runs whose lease ran out; returns how many."""
    async with conn.transaction():
        rows = await conn.fetch(EXPIRED, limit)
        if not rows:
            return 0
        requests = [
            AppendRequest(
                run_id=r["run_id"],
                events=_expiry(r),
                expected_position=r["last_position"],
                fence=Fence(attempt=r["attempt"]),
            )
            for r in rows
        ]
        outcomes = await journal.append_many(requests, conn)
    return sum(isinstance(o, int) for o in outcomes)
