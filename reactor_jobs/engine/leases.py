"""Expired and interrupted leases: a run whose attempt was lost goes back to the queue.

A worker that died (kill -9) or stalled loses its attempt to LeaseExpired, which counts as
an attempt, so a crash-looping run still ends in the dead-letter queue. An attempt lost to
the database itself is not the run's fault and is not charged (`charged=False`, requeued at
once, no backoff):

- the worker saw its connection fail mid-attempt and hands the run back itself as soon as
  the database answers again (`release_interrupted`, fenced on its attempt and ownership);
- or the lease ran out and the database restarted after the run's last write
  (`pg_postmaster_start_time()`): its worker went silent when the server went away.

A run gets at most max_attempts uncharged expiries; later ones are charged, so a run whose
attempts keep dying with the database still ends in the DLQ. Charged decisions count only
charged attempts (attempt - uncharged), the count maxAttempts applies to.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import asyncpg

from reactor_jobs.engine import events as ev
from reactor_jobs.engine import policy
from reactor_jobs.engine.ids import new_id
from reactor_jobs.engine.journal import AppendRequest, Fence, Journal

_ROW = """r.run_id, r.attempt, r.lease_owner, r.last_position, r.max_attempts, now() AS db_now,
       j.payload AS triggered,
       (SELECT count(*) FROM _reactor_jobs.journal AS u
         WHERE u.run_id = r.run_id AND u.type = 'LeaseExpired'
           AND (u.data ->> 'charged') = 'false') AS uncharged"""

EXPIRED = f"""
SELECT {_ROW},
       pg_postmaster_start_time() > (
           SELECT w.recorded_at FROM _reactor_jobs.journal AS w
            WHERE w.run_id = r.run_id AND w.position = r.last_position) AS outage
  FROM _reactor_jobs.runs AS r
  JOIN _reactor_jobs.journal AS j ON j.run_id = r.run_id AND j.position = 1
 WHERE r.status = 'running' AND r.lease_expires_at < now()
 ORDER BY r.lease_expires_at
 LIMIT $1
   FOR UPDATE OF r SKIP LOCKED
"""
# Runs this worker still holds (lease valid or not) in the attempts it lost to the database.
INTERRUPTED = f"""
SELECT {_ROW}, true AS outage
  FROM _reactor_jobs.runs AS r
  JOIN unnest($1::text[], $2::int[]) AS i (run_id, attempt)
    ON i.run_id = r.run_id AND i.attempt = r.attempt
  JOIN _reactor_jobs.journal AS j ON j.run_id = r.run_id AND j.position = 1
 WHERE r.status = 'running' AND r.lease_owner = $3
   FOR UPDATE OF r
"""


def _expiry(row: asyncpg.Record) -> list[ev.Event]:
    attempt, uncharged, max_attempts = row["attempt"], row["uncharged"], row["max_attempts"]
    if row["outage"] and uncharged < max_attempts:
        return [ev.LeaseExpired(attempt=attempt, worker=row["lease_owner"], charged=False)]
    trig = ev.decode(row["triggered"])
    assert isinstance(trig, ev.Triggered)
    expired = ev.LeaseExpired(attempt=attempt, worker=row["lease_owner"])
    error = ev.ErrorInfo(type="LeaseExpired", message=f"worker {row['lease_owner']} lost its lease")
    tries = attempt - uncharged  # the attempts that count
    delay = policy.backoff_ms(
        max(tries, 1),
        backoff=trig.backoff,
        initial_ms=trig.initial_delay_ms,
        max_ms=trig.max_delay_ms,
        jitter=random.random(),
    )
    # tries < max_attempts, expressed in attempt numbers so RetryScheduled names the next one
    after = policy.after_failure(
        attempt,
        max_attempts=max_attempts + uncharged,
        error=error,
        now=row["db_now"],
        delay_ms=delay,
        dlq_id=new_id("dlq"),
    )
    return [expired, after]


async def _requeue(
    conn: asyncpg.Connection, journal: Journal, rows: Sequence[asyncpg.Record]
) -> int:
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


async def expire_leases(conn: asyncpg.Connection, journal: Journal, *, limit: int = 100) -> int:
    """Requeue (or dead-letter) runs whose lease ran out; returns how many."""
    async with conn.transaction():
        rows = await conn.fetch(EXPIRED, limit)
        if not rows:
            return 0
        return await _requeue(conn, journal, rows)


async def release_interrupted(
    conn: asyncpg.Connection, journal: Journal, runs: Mapping[str, int], *, worker: str
) -> int:
    """Hand back, uncharged, `worker`'s runs (run id -> attempt) whose attempt lost its
    database connection; runs already taken away are left alone. Returns how many."""
    async with conn.transaction():
        rows = await conn.fetch(INTERRUPTED, list(runs), list(runs.values()), worker)
        if not rows:
            return 0
        return await _requeue(conn, journal, rows)
