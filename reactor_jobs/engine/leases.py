"""Expired and interrupted leases: a run whose attempt was lost goes back to the queue.

A lease lives outside the journal: the claim's AttemptStarted sets it for one lease period,
and after that it holds while its owner's row in `workers` is heartbeating (write.sql). So
expiry is decided by a stale heartbeat and still recorded as a LeaseExpired event.

A worker that died (kill -9) or stalled loses its attempt to LeaseExpired, which counts as
an attempt, so a crash-looping run still ends in the dead-letter queue. An attempt lost to
the database itself is not the run's fault and is not charged (`charged=False`, requeued at
once, no backoff):

- the worker saw its connection fail mid-attempt and hands the run back itself as soon as
  the database answers again (`release_interrupted`, fenced on its attempt and ownership);
- or the lease ran out and the database restarted after the run's last write
  (`pg_postmaster_start_time()`): its worker went silent when the server went away.

A run is released uncharged at most max_attempts times (its stream's interruptions); later
losses are charged, so a run whose attempts keep dying with the database still ends in the
DLQ. Decisions count tries (the replay fold's count: not wake-ups, not interruptions).
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence

import asyncpg
import msgspec

from reactor_jobs.domain import events as ev
from reactor_jobs.domain import policy
from reactor_jobs.domain.events import RecordedEvent, to_recorded
from reactor_jobs.domain.ids import new_id
from reactor_jobs.domain.replay import RunState, fold
from reactor_jobs.engine.journal import READ_STREAMS, AppendRequest, Fence, Journal
from reactor_jobs.statements import load

_SQL = load("reactor_jobs.engine", "write.sql")
EXPIRED = _SQL.runs_expired
HELD_BY = _SQL.runs_held_by


def _expiry(row: asyncpg.Record, state: RunState) -> list[ev.Event]:
    """What ends the lost attempt: uncharged after an outage (at most max_attempts times a
    run), else a charged LeaseExpired with a retry or the DLQ, counted in tries."""
    expired = ev.LeaseExpired(attempt=row["attempt"], worker=row["lease_owner"])
    if row["outage"] and state.interruptions < state.max_attempts:
        return [msgspec.structs.replace(expired, charged=False)]
    error = expired.error
    delay = policy.backoff_ms(
        max(state.tries, 1),
        backoff=state.backoff,
        initial_ms=state.initial_delay_ms,
        max_ms=state.max_delay_ms,
        jitter=random.random(),
    )
    after = policy.after_failure(
        state.tries,
        max_attempts=state.max_attempts,
        error=error,
        delay_ms=delay,
        dlq_id=new_id("dlq"),
        next_attempt=row["attempt"] + 1,
    )
    return [expired, after]


async def _requeue(
    conn: asyncpg.Connection, journal: Journal, rows: Sequence[asyncpg.Record]
) -> int:
    streams: dict[str, list[RecordedEvent]] = {}
    for rec in to_recorded(await conn.fetch(READ_STREAMS, [r["run_id"] for r in rows])):
        streams.setdefault(rec.run_id, []).append(rec)
    requests = [
        AppendRequest(
            run_id=r["run_id"],
            events=_expiry(r, fold(streams[r["run_id"]])),
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
    return await _hand_back(conn, journal, runs, worker=worker, outage=True)


async def release_abandoned(
    conn: asyncpg.Connection, journal: Journal, runs: Mapping[str, int], *, worker: str
) -> int:
    """Expire `worker`'s runs (run id -> attempt) whose attempt ended without releasing
    them (an unexpected error, stopped): their owner's heartbeat would keep their lease alive
    for ever, so the worker gives them up as an expiry would (charged unless the database
    restarted after the run's last write). Returns how many."""
    return await _hand_back(conn, journal, runs, worker=worker, outage=False)


async def _hand_back(
    conn: asyncpg.Connection,
    journal: Journal,
    runs: Mapping[str, int],
    *,
    worker: str,
    outage: bool,
) -> int:
    async with conn.transaction():
        rows = await conn.fetch(HELD_BY, list(runs), list(runs.values()), worker, outage)
        if not rows:
            return 0
        return await _requeue(conn, journal, rows)
