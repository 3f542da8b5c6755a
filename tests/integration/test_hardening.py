"""Issue 10, in-process: due retries are not starved by a fresh backlog; attempts lost to the
database are not charged (but a run cannot dodge the DLQ that way forever)."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from reactor_jobs.domain import events as ev
from reactor_jobs.domain.replay import fold
from reactor_jobs.engine.claim import claim_due_runs
from reactor_jobs.engine.leases import expire_leases, release_interrupted
from reactor_jobs.projections.queries import get_run
from tests.engine_fixtures import ORG, Engine

pytestmark = pytest.mark.integration

LEASE = timedelta(milliseconds=50)


async def test_a_due_retry_is_claimed_before_an_older_backlog_of_fresh_runs(
    engine: Engine,
) -> None:
    await engine.job("busy", max_concurrency=10, initial_delay_ms=0, max_delay_ms=0)
    first = await engine.control.trigger(ORG, "busy", payload={"mode": "noop"})
    async with engine.pool.acquire() as conn:
        await claim_due_runs(conn, engine.journal, limit=1, worker="w1", lease=LEASE)
        backlog = await engine.control.trigger_many(ORG, "busy", [{"mode": "noop"}] * 300)
        await asyncio.sleep(0.1)  # the lease runs out: `first` is due again, after the backlog
        assert await expire_leases(conn, engine.journal) == 1
        claimed = await claim_due_runs(conn, engine.journal, limit=2, worker="w2", lease=LEASE)
    assert [c.run_id for c in claimed] == [first.id, backlog[0]]


async def _claim_and_expire(engine: Engine, run_id: str, worker: str) -> None:
    async with engine.pool.acquire() as conn:
        claimed = await claim_due_runs(conn, engine.journal, limit=1, worker=worker, lease=LEASE)
        assert [c.run_id for c in claimed] == [run_id]


async def test_an_attempt_interrupted_by_the_database_is_handed_back_uncharged(
    engine: Engine,
) -> None:
    await engine.job("cut", max_attempts=2, initial_delay_ms=60_000, max_delay_ms=60_000)
    run = await engine.control.trigger(ORG, "cut", payload={"mode": "noop"})
    for attempt in (1, 2, 3):  # more interruptions than max_attempts: the first 2 are free
        await _claim_and_expire(engine, run.id, "w1")
        async with engine.pool.acquire() as conn:
            assert await release_interrupted(conn, engine.journal, {run.id: attempt}, worker="w1")
            # a second hand-back of the same attempt, or by another worker, does nothing
            assert not await release_interrupted(
                conn, engine.journal, {run.id: attempt}, worker="w1"
            )
    records = await engine.journal.read_stream(run.id)
    expiries = [r.event for r in records if isinstance(r.event, ev.LeaseExpired)]
    assert [e.charged for e in expiries] == [False, False, True]
    # the charged one backs off like any failure; the free ones were due at once
    assert isinstance(records[-1].event, ev.RetryScheduled)
    assert records[-1].event.delay_ms is not None and records[-1].event.delay_ms > 20_000
    assert fold(records).status == "retrying"


async def test_an_expired_lease_is_uncharged_when_the_database_restarted_since_its_last_write(
    engine: Engine,
) -> None:
    await engine.job("restarted", max_attempts=1)
    run = await engine.control.trigger(ORG, "restarted", payload={"mode": "noop"})
    await _claim_and_expire(engine, run.id, "w-gone")
    # As if the server had restarted after the run's last write: backdate that write.
    await engine.pool.execute("ALTER TABLE _reactor_jobs.journal DISABLE TRIGGER USER")
    await engine.pool.execute(
        "UPDATE _reactor_jobs.journal SET recorded_at = pg_postmaster_start_time() - interval '1s'"
        " WHERE run_id = $1 AND type = 'AttemptStarted'",
        run.id,
    )
    await engine.pool.execute("ALTER TABLE _reactor_jobs.journal ENABLE TRIGGER USER")
    await asyncio.sleep(0.1)
    async with engine.pool.acquire() as conn:
        assert await expire_leases(conn, engine.journal) == 1
    (*_, last) = await engine.journal.read_stream(run.id)
    assert last.event == ev.LeaseExpired(attempt=1, worker="w-gone", charged=False)
    # with max_attempts 1, a charged expiry would have dead-lettered it
    assert (await get_run(engine.pool, ORG, run.id)).status == "retrying"
