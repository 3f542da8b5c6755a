"""Durable execution end to end: a real worker claims, replays and runs Python bundles."""

from __future__ import annotations

import asyncio

import pytest

from reactor_jobs.domain.errors import ConcurrencyExceeded, InvalidState
from reactor_jobs.domain.replay import fold
from tests.engine_fixtures import ORG, Engine

pytestmark = pytest.mark.integration


async def test_quickstart_runs_to_completion(engine: Engine) -> None:
    await engine.deploy("process-order")
    await engine.job("process-order", "process-order")
    engine.start_worker()
    run = await engine.control.trigger(ORG, "process-order", payload={"orderId": "ord_123"})
    assert run.status == "queued"
    done = await engine.wait(run.id)
    assert done.status == "completed"
    assert done.output == {"success": True, "orderId": "ord_123"}
    assert await engine.types(run.id) == [
        "Triggered",
        "AttemptStarted",
        "StepCompleted",
        "StepCompleted",
        "Emitted",
        "Completed",
    ]
    topics = await engine.pool.fetch("SELECT topic, run_id FROM _reactor_jobs.events")
    assert [(t["topic"], t["run_id"]) for t in topics] == [("order.processed", run.id)]
    assert (await engine.journal.verify(run.id)).ok


async def test_failing_step_retries_without_rerunning_completed_steps(engine: Engine) -> None:
    await engine.job("flaky")
    engine.start_worker()
    run = await engine.control.trigger(ORG, "flaky", payload={"mode": "flaky", "ok_on": 3})
    done = await engine.wait(run.id)
    assert done.status == "completed"
    assert done.output == {"b": 2, "attempt": 3}
    # "a" ran once; "b" ran on each of the three attempts
    assert await engine.effects(run.id) == [("a", 1), ("b", 1), ("b", 2), ("b", 3)]
    types = await engine.types(run.id)
    assert types.count("StepFailed") == 2 and types.count("RetryScheduled") == 2


async def test_sleep_frees_the_worker_and_resumes_after_the_sleep(engine: Engine) -> None:
    await engine.job("sleepy")
    worker = engine.start_worker(concurrency=1)
    run = await engine.control.trigger(ORG, "sleepy", payload={"mode": "sleep", "seconds": 1})
    sleeping = await engine.wait(run.id, lambda r: r.status == "sleeping")
    assert sleeping.available_at is not None
    await asyncio.sleep(0.1)
    assert worker.tasks == {}  # the only slot is free while the run sleeps
    other = await engine.control.trigger(ORG, "sleepy", payload={"mode": "noop"})
    assert (await engine.wait(other.id)).status == "completed"  # ran during the sleep
    done = await engine.wait(run.id)
    assert (done.status, done.output) == ("completed", "xy")
    # A wake-up continues the same try: ctx.attempt is still 1 after the sleep.
    assert await engine.effects(run.id) == [("before", 1), ("after", 1)]
    state = fold(await engine.journal.read_stream(run.id))
    assert state.sleeps["nap"].done
    woke = next(r for r in await engine.journal.read_stream(run.id) if r.type == "SleepCompleted")
    assert woke.recorded_at >= state.sleeps["nap"].wake_at


async def test_state_survives_a_retry(engine: Engine) -> None:
    await engine.job("stateful")
    engine.start_worker()
    run = await engine.control.trigger(ORG, "stateful", payload={"mode": "state"})
    done = await engine.wait(run.id)
    assert done.output == {"state": {"seen": {"first": 1}}, "attempt": 2}


async def test_exhausted_attempts_land_in_the_dlq_and_a_dlq_retry_completes(
    engine: Engine,
) -> None:
    await engine.job("doomed", max_attempts=2)
    engine.start_worker()
    run = await engine.control.trigger(ORG, "doomed", payload={"mode": "flaky", "ok_on": 3})
    failed = await engine.wait(run.id)
    assert failed.status == "failed" and failed.attempt == 2
    assert failed.last_error["type"] == "RuntimeError"
    entry = await engine.pool.fetchrow("SELECT * FROM _reactor_jobs.dlq WHERE run_id = $1", run.id)
    assert entry["dlq_id"] == failed.dlq_id and entry["status"] == "open"
    requeued = await engine.control.retry_dlq(ORG, entry["dlq_id"])
    assert requeued.status == "queued"
    done = await engine.wait(run.id)
    assert (done.status, done.output) == ("completed", {"b": 2, "attempt": 3})
    assert ("a", 2) not in await engine.effects(run.id)  # step a stayed cached
    status = await engine.pool.fetchval(
        "SELECT status FROM _reactor_jobs.dlq WHERE run_id = $1", run.id
    )
    assert status == "retried"
    with pytest.raises(InvalidState):
        await engine.control.retry_dlq(ORG, entry["dlq_id"])


async def test_non_retryable_error_goes_straight_to_the_dlq(engine: Engine) -> None:
    await engine.job("fatal")
    engine.start_worker()
    run = await engine.control.trigger(ORG, "fatal", payload={"mode": "fatal"})
    failed = await engine.wait(run.id)
    assert (failed.status, failed.attempt) == ("failed", 1)
    assert failed.last_error is not None
    trace = failed.last_error.pop("traceback")
    # The job's own frame, relative to its bundle: file and line, no host paths.
    assert trace.startswith('  File "code/index.py", line ') and "NonRetryableError" in trace
    assert failed.last_error == {
        "type": "NonRetryableError",
        "message": "do not retry this",
        "retryable": False,
    }


async def test_cancel_stops_a_running_run_within_a_second(engine: Engine) -> None:
    await engine.job("slow")
    engine.start_worker()
    run = await engine.control.trigger(ORG, "slow", payload={"mode": "slow", "seconds": 30})
    await engine.wait(run.id, lambda r: r.status == "running")
    while ("slow", 1) not in await engine.effects(run.id):
        await asyncio.sleep(0.02)
    cancelled = await engine.control.cancel(ORG, run.id)
    assert cancelled.status == "cancelled"
    worker = engine.workers[0][0]
    async with asyncio.timeout(1):
        while run.id in worker.tasks:
            await asyncio.sleep(0.02)
    assert (await engine.types(run.id))[-1] == "Cancelled"
    with pytest.raises(InvalidState):
        await engine.control.cancel(ORG, run.id)


async def test_a_stuck_run_is_cancelled_then_retried_as_the_spec_says(engine: Engine) -> None:
    await engine.job("stuck")
    engine.start_worker()
    run = await engine.control.trigger(ORG, "stuck", payload={"mode": "slow", "seconds": 1})
    while ("slow", 1) not in await engine.effects(run.id):
        await asyncio.sleep(0.02)
    await engine.control.cancel(ORG, run.id)
    await engine.wait(run.id)
    retried = await engine.control.retry(ORG, run.id)
    assert (retried.status, retried.finished_at) == ("queued", None)
    done = await engine.wait(run.id)
    assert (done.status, done.output) == ("completed", "done")
    # step "first" stayed cached; the interrupted step ran again on the retry
    assert await engine.effects(run.id) == [("first", 1), ("slow", 1), ("slow", 2)]
    with pytest.raises(InvalidState, match="only a failed or cancelled run"):
        await engine.control.retry(ORG, run.id)


async def test_cancel_of_a_queued_run(engine: Engine) -> None:
    await engine.job("idle")
    run = await engine.control.trigger(ORG, "idle", payload={"mode": "noop"})
    assert (await engine.control.cancel(ORG, run.id)).status == "cancelled"
    engine.start_worker()
    await asyncio.sleep(0.3)
    assert await engine.types(run.id) == ["Triggered", "Cancelled"]


async def test_timeout_fires_and_follows_the_retry_policy(engine: Engine) -> None:
    await engine.job("timeboxed", timeout_ms=300, max_attempts=2)
    engine.start_worker()
    run = await engine.control.trigger(ORG, "timeboxed", payload={"mode": "slow", "seconds": 30})
    failed = await engine.wait(run.id)
    assert (failed.status, failed.attempt) == ("failed", 2)
    types = await engine.types(run.id)
    assert types.count("TimedOut") == 2 and types[-1] == "DeadLettered"
    assert failed.last_error["type"] == "TimedOut"


async def test_same_step_name_in_a_loop_gets_occurrence_keys(engine: Engine) -> None:
    await engine.job("loop")
    engine.start_worker()
    run = await engine.control.trigger(ORG, "loop", payload={"mode": "loop"})
    assert (await engine.wait(run.id)).output == 3
    state = fold(await engine.journal.read_stream(run.id))
    assert list(state.steps) == ["add", "add#2", "add#3"]


async def test_manual_trigger_refused_over_max_concurrency(engine: Engine) -> None:
    await engine.job("limited", max_concurrency=2)
    for _ in range(2):
        await engine.control.trigger(ORG, "limited", payload={"mode": "noop"})
    before = await engine.pool.fetchval("SELECT count(*) FROM _reactor_jobs.journal")
    with pytest.raises(ConcurrencyExceeded) as info:
        await engine.control.trigger(ORG, "limited", payload={"mode": "noop"})
    assert info.value.retry_after >= 1
    assert await engine.pool.fetchval("SELECT count(*) FROM _reactor_jobs.journal") == before
    # cron and event triggers queue anyway; the claim keeps execution within the limit
    await engine.control.trigger(ORG, "limited", payload={"mode": "noop"}, kind="cron")


async def test_idempotency_key_returns_the_first_run(engine: Engine) -> None:
    await engine.job("once")
    runs = await asyncio.gather(
        *(
            engine.control.trigger(ORG, "once", payload={"mode": "noop"}, idempotency_key="k1")
            for _ in range(20)
        )
    )
    assert len({r.id for r in runs}) == 1
    assert await engine.pool.fetchval("SELECT count(*) FROM _reactor_jobs.runs") == 1


async def test_run_replays_on_its_pinned_version(engine: Engine) -> None:
    await engine.deploy("process-order")
    await engine.job("process-order", "process-order")
    run = await engine.control.trigger(ORG, "process-order", payload={"orderId": "ord_1"})
    await engine.deploy("process-order-v2", name="process-order")  # v2: a different program
    assert run.function_version == 1
    engine.start_worker()
    done = await engine.wait(run.id)
    assert done.output == {"success": True, "orderId": "ord_1"}  # v1 ran, not v2
    newer = await engine.control.trigger(ORG, "process-order", payload={"orderId": "ord_2"})
    finished = await engine.wait(newer.id)
    assert (newer.function_version, finished.output) == (2, {"version": 2, "orderId": "ord_2"})


async def test_worker_survives_a_dropped_listen_connection(engine: Engine) -> None:
    await engine.job("listening")
    worker = engine.start_worker()
    worker.dsn = engine.db_url  # a dedicated LISTEN connection we can find and kill
    await asyncio.sleep(0.2)
    find = (
        "SELECT pid FROM pg_stat_activity"
        " WHERE query LIKE 'LISTEN%' AND datname = current_database()"
    )
    async with asyncio.timeout(5):
        while not (pids := [r[0] for r in await engine.pool.fetch(find)]):
            await asyncio.sleep(0.05)
    for pid in pids:
        await engine.pool.execute("SELECT pg_terminate_backend($1)", pid)
    run = await engine.control.trigger(ORG, "listening", payload={"mode": "noop"})
    assert (await engine.wait(run.id, timeout=5)).status == "completed"  # polling carried it
    async with asyncio.timeout(5):  # and the listener came back
        while not [r[0] for r in await engine.pool.fetch(find) if r[0] not in pids]:
            await asyncio.sleep(0.05)
