"""Leases: a worker that stops heartbeating loses its run to another, which resumes it
without re-running completed steps; the old owner cannot write afterwards."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

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


async def test_a_long_run_writes_no_journal_rows_while_it_runs_and_a_killed_worker_loses_it(
    engine: Engine, tmp_path: Path
) -> None:
    """Issue 15: leases live in the worker's heartbeat row, not in the journal. A run several
    lease periods long adds no journal row while it runs (its claim's lease long over, held
    by its owner's heartbeat); kill -9 its worker and the run is expired (charged, as
    before), retried elsewhere, and the dead owner's appends are refused."""
    await engine.job("long", max_attempts=3, initial_delay_ms=0, max_delay_ms=0)
    run = await engine.control.trigger(ORG, "long", payload={"mode": "slow", "seconds": 4})
    config = tmp_path / "reactor.toml"
    config.write_text("[jobs]\nlease_ms = 600\nscheduler_interval_ms = 200\n")
    env = {
        **os.environ, "REACTOR_DATABASE_URL": engine.db_url, "REACTOR_CONFIG": str(config),
        "REACTOR_WORKER_COUNT": "2", "REACTOR_DATA_DIR": str(tmp_path),
        "REACTOR_FN_DSN": engine.db_url,
    }  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "reactor_jobs.cli", "worker"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        async with asyncio.timeout(30):
            while ("slow", 1) not in await engine.effects(run.id):
                await asyncio.sleep(0.05)
        rows = await engine.types(run.id)
        owner = await engine.pool.fetchval(_OWNER, run.id)
        beat = await engine.pool.fetchval(_BEAT, owner)
        await asyncio.sleep(2.0)  # over three leases of 600 ms, mid-way through the step
        assert await engine.types(run.id) == rows  # nothing appended while it ran
        assert "LeaseExtended" not in rows
        held = await engine.pool.fetchrow(_HELD, run.id)
        assert held is not None
        assert (held["status"], held["lease_owner"]) == ("running", owner)
        assert held["claim_lease_over"]  # the claim's lease ended: the heartbeat holds it
        assert await engine.pool.fetchval(_BEAT, owner) > beat  # one row, beating
    finally:
        proc.send_signal(signal.SIGKILL)  # mid-way through step "slow"
        proc.wait()

    engine.start_worker(lease_ms=600)
    done = await engine.wait(run.id, timeout=30)
    assert (done.status, done.attempt) == ("completed", 2)
    assert await engine.effects(run.id) == [("first", 1), ("slow", 1), ("slow", 2)]
    types = await engine.types(run.id)
    assert types[len(rows) : len(rows) + 3] == ["LeaseExpired", "RetryScheduled", "AttemptStarted"]
    (expired,) = [r.event for r in await engine.journal.read_stream(run.id)
                  if isinstance(r.event, ev.LeaseExpired)]  # fmt: skip
    assert (expired.worker, expired.charged) == (owner, True)
    ghost = RunStream(engine.journal, run.id, len(rows), Fence(attempt=1, lease_owner=owner))
    with pytest.raises(LostOwnership):  # fencing: the dead owner cannot write any more
        await ghost.append([ev.StepCompleted(name="late", attempt=1)])


_OWNER = "SELECT lease_owner FROM _reactor_jobs.runs WHERE run_id = $1"
_BEAT = "SELECT beat_at FROM _reactor_jobs.workers WHERE name = $1"
_HELD = """
SELECT status, lease_owner, lease_expires_at < now() AS claim_lease_over
  FROM _reactor_jobs.runs WHERE run_id = $1"""


async def test_a_worker_whose_heartbeat_lapsed_gives_up_its_runs_and_takes_a_new_name(
    engine: Engine,
) -> None:
    """A paused worker's row goes stale (here: its expiry moved into the past, as a pause
    past the lease would leave it). Its run is expired, and when the worker beats again it
    does not revive the old row: it stops the attempt, registers under a new name, and the
    retry runs under that name; the old name's appends stay refused."""
    await engine.job("lapsed", max_attempts=3, initial_delay_ms=0, max_delay_ms=0)
    worker = engine.start_worker(lease_ms=900)
    run = await engine.control.trigger(ORG, "lapsed", payload={"mode": "slow", "seconds": 1.5})
    async with asyncio.timeout(20):
        while ("slow", 1) not in await engine.effects(run.id):
            await asyncio.sleep(0.02)
    old = worker.name
    await engine.pool.execute(_LAPSE, old)
    done = await engine.wait(run.id, timeout=30)
    assert (done.status, done.attempt) == ("completed", 2)
    assert worker.name != old
    records = await engine.journal.read_stream(run.id)
    (expired,) = [r.event for r in records if isinstance(r.event, ev.LeaseExpired)]
    starts = [r.event for r in records if isinstance(r.event, ev.AttemptStarted)]
    assert expired.worker == old and [s.worker for s in starts] == [old, worker.name]
    assert not await engine.pool.fetchval(_LIVE, old)  # never revived
    assert await engine.pool.fetchval(_LIVE, worker.name)


_LAPSE = """
UPDATE _reactor_jobs.workers SET expires_at = now() - interval '1 second' WHERE name = $1"""
_LIVE = "SELECT expires_at > now() FROM _reactor_jobs.workers WHERE name = $1"
