"""Claiming due runs: batches, SKIP LOCKED, and each job's maxConcurrency across all workers.

One transaction: (1) find the jobs with due runs and spare capacity (a loose index scan
over runs_ready, so a saturated job's backlog cannot hide the others) and lock them in a
fixed order, so claimers of one job take turns; (2) with a fresh snapshot, count each
locked job's running runs and take its due runs up to its capacity, FOR UPDATE SKIP
LOCKED; (3) append AttemptStarted (after SleepCompleted for a woken sleep) for each;
(4) read the claimed runs' streams. Commit, and the worker has everything to replay.

Order within a job: resumed work first (due retries and woken sleeps, oldest due first,
from runs_resumed), then fresh runs (queued, oldest first, from runs_ready). A fresh run's
available_at is when it was triggered, so ordering everything by available_at put a retry
due now behind every run triggered before it: a backlog of fresh runs held retries and
wakes far past their due time. Resumed runs are older runs that already waited out their
delay; taking them first is first-come-first-served by run, and cannot starve fresh runs
for longer than the resumed work takes to run.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg
import msgspec

from reactor_jobs.domain import events as ev
from reactor_jobs.domain.events import RecordedEvent, to_recorded
from reactor_jobs.engine.journal import READ_STREAMS, AppendRequest, Journal

_RUNNABLE = "status IN ('queued', 'sleeping', 'retrying')"
# Which runs this worker can run: a bundle worker (serves NULL) every run but those of code
# jobs (functions named app:…, run only by their app's workers); an app's worker only the
# versions of its code it has loaded ("org/function@version").
_SERVED = """(CASE WHEN {0}::text[] IS NULL THEN r.function_name NOT LIKE 'app:%'
             ELSE r.org || '/' || r.function_name || '@' || r.function_version = ANY({0}) END)"""

LOCK_DUE_JOBS = f"""
WITH RECURSIVE jobs AS (
    (SELECT org, job FROM _reactor_jobs.runs WHERE {_RUNNABLE} ORDER BY org, job LIMIT 1)
    UNION ALL
    SELECT nxt.org, nxt.job FROM jobs, LATERAL (
        SELECT r.org, r.job FROM _reactor_jobs.runs AS r
         WHERE r.{_RUNNABLE} AND (r.org, r.job) > (jobs.org, jobs.job)
         ORDER BY r.org, r.job LIMIT 1) AS nxt
),
due AS (
    SELECT jobs.org, jobs.job, first.max_concurrency,
           (SELECT count(*) FROM _reactor_jobs.runs AS r
             WHERE r.org = jobs.org AND r.job = jobs.job AND r.status = 'running') AS running
      FROM jobs, LATERAL (
        SELECT r.max_concurrency FROM _reactor_jobs.runs AS r
         WHERE r.org = jobs.org AND r.job = jobs.job AND r.{_RUNNABLE}
           AND r.available_at <= now() AND {_SERVED.format("$2")}
         ORDER BY r.available_at LIMIT 1) AS first
)
SELECT org, job,
       pg_advisory_xact_lock(hashtextextended('reactor_jobs.claim/' || org || '/' || job, 0))
  FROM (SELECT * FROM due WHERE running < max_concurrency ORDER BY org, job LIMIT $1) AS open
"""

_COLUMNS = """r.run_id, r.org, r.job, r.status, r.attempt, r.last_position, r.sleep_name,
               r.available_at, r.max_concurrency"""
CLAIM = f"""
WITH jobs AS (
    SELECT j.org, j.job,
           (SELECT count(*) FROM _reactor_jobs.runs AS r
             WHERE r.org = j.org AND r.job = j.job AND r.status = 'running') AS running
      FROM unnest($2::text[], $3::text[]) AS j(org, job)
),
resumed AS (
    SELECT c.* FROM jobs, LATERAL (
        SELECT {_COLUMNS}, 0 AS fresh
          FROM _reactor_jobs.runs AS r
         WHERE r.org = jobs.org AND r.job = jobs.job AND r.status IN ('sleeping', 'retrying')
           AND r.available_at <= now() AND {_SERVED.format("$4")}
         ORDER BY r.available_at
         LIMIT $1
           FOR UPDATE SKIP LOCKED) AS c
),
fresh AS (
    SELECT c.* FROM jobs, LATERAL (
        SELECT {_COLUMNS}, 1 AS fresh
          FROM _reactor_jobs.runs AS r
         WHERE r.org = jobs.org AND r.job = jobs.job AND r.status = 'queued'
           AND r.available_at <= now() AND {_SERVED.format("$4")}
         ORDER BY r.available_at
         LIMIT $1
           FOR UPDATE SKIP LOCKED) AS c
),
candidates AS (SELECT * FROM resumed UNION ALL SELECT * FROM fresh),
ranked AS (
    SELECT c.*, jobs.running,
           row_number() OVER (PARTITION BY c.org, c.job ORDER BY c.fresh, c.available_at) AS rank
      FROM candidates AS c JOIN jobs USING (org, job)
)
SELECT run_id, status, attempt, last_position, sleep_name, available_at, now() AS db_now
  FROM ranked WHERE rank + running <= max_concurrency
 ORDER BY fresh, available_at LIMIT $1
"""


class ClaimedRun(msgspec.Struct, frozen=True, kw_only=True):
    """A run this worker now owns: its whole stream, ending with our AttemptStarted."""

    run_id: str
    records: list[RecordedEvent]
    db_now: datetime
    due_at: datetime | None = None  # when it became due: triggered, retry due, sleep over
    was: str = "queued"  # its status before this claim: queued, retrying or sleeping


def _start_events(row: asyncpg.Record, worker: str, lease: timedelta) -> list[ev.Event]:
    started = ev.AttemptStarted(
        attempt=row["attempt"] + 1, worker=worker, lease_expires_at=row["db_now"] + lease
    )
    if row["status"] == "sleeping":
        return [ev.SleepCompleted(name=row["sleep_name"]), started]
    return [started]


async def claim_due_runs(
    conn: asyncpg.Connection,
    journal: Journal,
    *,
    limit: int,
    worker: str,
    lease: timedelta,
    serves: Sequence[str] | None = None,
) -> list[ClaimedRun]:
    """Claim up to `limit` due runs for `worker`; empty when nothing is due or all are full.

    `serves`: the code-job versions ("org/function@version") an app's worker runs; None for
    a bundle worker."""
    served = None if serves is None else list(serves)
    async with conn.transaction():
        locked = await conn.fetch(LOCK_DUE_JOBS, limit, served)
        if not locked:
            return []
        rows = await conn.fetch(
            CLAIM, limit, [r["org"] for r in locked], [r["job"] for r in locked], served
        )
        if not rows:
            return []
        requests = [
            AppendRequest(
                run_id=r["run_id"],
                events=_start_events(r, worker, lease),
                expected_position=r["last_position"],
            )
            for r in rows
        ]
        outcomes = await journal.append_many(requests, conn)
        claimed = [r for r, o in zip(rows, outcomes, strict=True) if isinstance(o, int)]
        streams = await conn.fetch(READ_STREAMS, [r["run_id"] for r in claimed])
    return _group(to_recorded(streams), claimed)


def _group(records: Sequence[RecordedEvent], rows: Sequence[asyncpg.Record]) -> list[ClaimedRun]:
    by_run: dict[str, list[RecordedEvent]] = {}
    for rec in records:
        by_run.setdefault(rec.run_id, []).append(rec)
    return [
        ClaimedRun(
            run_id=r["run_id"],
            records=by_run[r["run_id"]],
            db_now=r["db_now"],
            due_at=r["available_at"],
            was=r["status"],
        )
        for r in rows
    ]
