"""Cron triggers fire every slot exactly once with several schedulers running, and catch
up after downtime by the trigger's policy."""

from __future__ import annotations

import asyncio
import itertools
from datetime import datetime, timedelta

import pytest

from reactor_jobs.domain import events as ev
from reactor_jobs.engine.scheduler import Scheduler
from tests.engine_fixtures import ORG, Engine

pytestmark = pytest.mark.integration


async def cron_trigger(
    engine: Engine,
    trigger_id: str,
    job: str,
    schedule: str,
    catch_up: str | None = None,
    fired_through_ago: timedelta | None = None,
) -> None:
    await engine.pool.execute(
        "INSERT INTO _reactor_jobs.triggers (id, org, job, kind, schedule, catch_up,"
        " fired_through) VALUES ($1, $2, $3, 'cron', $4, $5,"
        " date_trunc('minute', now()) - $6::interval)",
        trigger_id,
        ORG,
        job,
        schedule,
        catch_up,
        fired_through_ago,
    )


async def fired_slots(engine: Engine, trigger_id: str) -> list[str]:
    rows = await engine.pool.fetch(
        "SELECT data->'trigger'->>'scheduled_for' AS slot FROM _reactor_jobs.journal"
        " WHERE position = 1 AND data->'trigger'->>'source' = $1 ORDER BY 1",
        trigger_id,
    )
    return [r["slot"] for r in rows]


async def test_three_schedulers_fire_every_second_exactly_once(engine: Engine) -> None:
    await engine.job("ticker")
    await cron_trigger(engine, "trg_tick", "ticker", "* * * * * *")  # every second
    stop = asyncio.Event()
    schedulers = [Scheduler(engine.pool, engine.control, interval_ms=100) for _ in range(3)]
    tasks = [asyncio.create_task(s.run(stop)) for s in schedulers]
    await asyncio.sleep(4.5)
    stop.set()
    await asyncio.gather(*tasks)
    slots = await fired_slots(engine, "trg_tick")
    assert len(slots) >= 4 and len(slots) == len(set(slots))
    times = [datetime.fromisoformat(s) for s in slots]
    assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(times))
    runs = await engine.pool.fetch("SELECT trigger_kind, status FROM _reactor_jobs.runs")
    assert {(r["trigger_kind"], r["status"]) for r in runs} == {("cron", "queued")}
    first = (
        await engine.journal.read_stream(
            await engine.pool.fetchval("SELECT run_id FROM _reactor_jobs.runs LIMIT 1")
        )
    )[0].event
    assert isinstance(first, ev.Triggered) and first.payload["scheduled_for"]


@pytest.mark.parametrize(
    ("policy", "fired"), [("latest", {1}), ("all", {10, 11}), ("skip", {0})]
)  # all: 11 if a minute turns between setting up and the tick
async def test_catch_up_after_downtime_follows_the_policy(
    engine: Engine, policy: str, fired: set[int]
) -> None:
    await engine.job("nightly")
    await cron_trigger(
        engine,
        "trg_n",
        "nightly",
        "* * * * *",
        policy,
        fired_through_ago=timedelta(minutes=10),
    )
    scheduler = Scheduler(engine.pool, engine.control, interval_ms=100)
    await scheduler.tick()
    await scheduler.tick()  # a second tick fires nothing more
    assert len(await fired_slots(engine, "trg_n")) in fired
    behind = await engine.pool.fetchval(
        "SELECT now() - fired_through FROM _reactor_jobs.triggers WHERE id = 'trg_n'"
    )
    assert behind < timedelta(minutes=1)  # every missed slot counts as handled


async def test_a_trigger_another_scheduler_holds_is_left_to_it(engine: Engine) -> None:
    await engine.job("ticker")
    await cron_trigger(engine, "trg_held", "ticker", "* * * * * *")
    await cron_trigger(engine, "trg_free", "ticker", "* * * * * *")
    await asyncio.sleep(1.1)  # a slot of each is due
    scheduler = Scheduler(engine.pool, engine.control, interval_ms=100)
    other = await engine.pool.acquire()
    try:
        async with other.transaction():  # what a scheduler firing trg_held holds
            await other.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('reactor_jobs.cron/' || $1, 0))",
                "trg_held",
            )
            await scheduler.tick()
            assert await fired_slots(engine, "trg_held") == []
            # one or two slots are due by now, both on time: all fire
            assert len(await fired_slots(engine, "trg_free")) in (1, 2)
    finally:
        await engine.pool.release(other)
    await scheduler.tick()
    assert len(await fired_slots(engine, "trg_held")) in (1, 2)


async def test_a_schedule_that_never_fires_does_not_stop_the_others(engine: Engine) -> None:
    await engine.job("ticker")
    await cron_trigger(engine, "trg_never", "ticker", "0 0 31 2 *")  # February 31st
    await cron_trigger(engine, "trg_tick", "ticker", "* * * * * *")
    await asyncio.sleep(1.1)
    scheduler = Scheduler(engine.pool, engine.control, interval_ms=100)
    assert 0 < await scheduler.tick() <= 0.1
    # 1.1 s after creation one or two slots are due, both on time: all fire
    assert len(await fired_slots(engine, "trg_tick")) in (1, 2)
    assert await fired_slots(engine, "trg_never") == []


async def test_a_job_that_cannot_run_skips_its_slots_and_the_rest_fire(engine: Engine) -> None:
    await engine.registry.create_function(ORG, "unpromoted")
    await engine.job("ticker")
    await engine.registry.create_job(ORG, "stuck", "unpromoted")
    await cron_trigger(engine, "trg_stuck", "stuck", "* * * * * *")
    await cron_trigger(engine, "trg_tick", "ticker", "* * * * * *")
    await asyncio.sleep(1.1)
    ticked = await engine.pool.fetchval("SELECT clock_timestamp()")
    await Scheduler(engine.pool, engine.control, interval_ms=100).tick()
    # 1.1 s after creation one or two slots are due, both on time: all fire
    assert len(await fired_slots(engine, "trg_tick")) in (1, 2)
    assert await fired_slots(engine, "trg_stuck") == []
    through = await engine.pool.fetchval(
        "SELECT fired_through FROM _reactor_jobs.triggers WHERE id = 'trg_stuck'"
    )
    # handled (not fired) up to the tick, measured from when it began (a slow machine may
    # pass another second before this read): no catch-up storm later
    assert ticked - through < timedelta(seconds=1)
