"""Leases: a worker that stops heartbeating loses its run to another, which resumes it
without re-running completed steps; the old owner cannot write afterwards."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from reactor_jobs.domain import events as ev
from reactor_jobs.domain.replay import fold
from reactor_jobs.engine.attempt import LostOwnership, RunStream
from reactor_jobs.engine.claim import claim_due_runs
from reactor_jobs.engine.journal import Fence
from reactor_jobs.engine.leases import expire_leases
from tests.engine_fixtures import ORG, Engine

pytestmark = pytest.mark.integration


async def test_expired_lease_is_requeued_and_the_old_owner_is_fenced(engine: Engine) -> None:
    await engine.job("orphan")
    run = await engine.control.trigger(ORG, "orphan", payload={"mode": "loop"})
    async with engine.pool.acquire() as conn:  # a worker that claims, then goes silent
        (claimed,) = await claim_due_runs(conn, engine.journal, limit=5, worker="w-dead",
                                          lease=timedelta(milliseconds=300))  # fmt: skip
    state = fold(claimed.records)
    ghost = RunStream(engine.journal, run.id, state.position,
                      Fence(attempt=state.attempt, lease_owner="w-dead"))  # fmt: skip
    await ghost.append([ev.StepCompleted(name="add", attempt=1, output=0)])  # still its lease

    engine.start_worker()
    done = await engine.wait(run.id)
    assert (done.status, done.attempt, done.output) == ("completed", 2, 3)
    types = await engine.types(run.id)
    assert types[:6] == ["Triggered", "AttemptStarted", "StepCompleted", "LeaseExpired",
                         "RetryScheduled", "AttemptStarted"]  # fmt: skip
    assert types.count("StepCompleted") == 3  # "add" was cached from the dead attempt
    with pytest.raises(LostOwnership):
        await ghost.append([ev.StepCompleted(name="late", attempt=1)])
    assert "late" not in fold(await engine.journal.read_stream(run.id)).steps


async def test_a_run_whose_workers_keep_dying_ends_in_the_dlq(engine: Engine) -> None:
    await engine.job("crashy", max_attempts=2, initial_delay_ms=0, max_delay_ms=0)
    run = await engine.control.trigger(ORG, "crashy", payload={"mode": "noop"})
    for attempt in (1, 2):  # each attempt's worker claims and dies
        async with engine.pool.acquire() as conn:
            claimed = await claim_due_runs(conn, engine.journal, limit=1, worker=f"w{attempt}",
                                           lease=timedelta(milliseconds=50))  # fmt: skip
            assert [c.run_id for c in claimed] == [run.id]
            while not await expire_leases(conn, engine.journal):
                await asyncio.sleep(0.02)
    failed = await engine.wait(run.id)
    assert (failed.status, failed.attempt) == ("failed", 2)
    assert failed.last_error["type"] == "LeaseExpired"
    assert (await engine.types(run.id))[-2:] == ["LeaseExpired", "DeadLettered"]


async def test_leases_and_wake_times_are_read_off_the_database_clock(engine: Engine) -> None:
    """DESIGN invariant 6 (one clock): a claim's lease is the database's now plus the lease,
    to the microsecond, so no process clock takes part; event times are UTC."""
    await engine.job("clocked")
    lease = timedelta(milliseconds=3000)  # the engine fixture's worker lease
    engine.start_worker(lease_ms=3000)
    run = await engine.control.trigger(ORG, "clocked", payload={"mode": "sleep", "seconds": 0.2})
    assert (await engine.wait(run.id)).status == "completed"
    records = await engine.journal.read_stream(run.id)
    starts = [r for r in records if isinstance(r.event, ev.AttemptStarted)]
    assert len(starts) == 2  # before and after the sleep
    for rec in starts:
        assert isinstance(rec.event, ev.AttemptStarted)
        assert rec.event.lease_expires_at - rec.recorded_at == lease
        assert rec.event.lease_expires_at.utcoffset() == timedelta(0)
    (sleep,) = [r for r in records if isinstance(r.event, ev.SleepScheduled)]
    assert isinstance(sleep.event, ev.SleepScheduled)
    # The host asked for 200 ms; the wake time is the database's now() plus that, exactly.
    assert (sleep.event.wake_at, sleep.event.delay_ms) == (None, 200)
    state = fold(records)
    assert state.sleeps["nap"].wake_at == sleep.recorded_at + timedelta(milliseconds=200)
    woken = await engine.pool.fetchval(
        "SELECT recorded_at FROM _reactor_jobs.journal WHERE run_id = $1 AND type = $2",
        run.id,
        "SleepCompleted",
    )
    assert woken >= state.sleeps["nap"].wake_at
