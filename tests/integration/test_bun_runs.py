"""TypeScript bundles run by real workers through bun hosts: steps cached across a retry,
state across a retry, emit fan-out to a Python job, a durable sleep, timeout of a busy loop,
cancel, NonRetryableError, a thrown non-Error, and process.exit in job code."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from reactor_jobs.functions.bun_binary import find_bun
from reactor_jobs.functions.bundle import pack_dir
from tests.engine_fixtures import BUNDLES, ORG, Engine

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(60),
    pytest.mark.skipif(find_bun() is None, reason="no bun executable"),
]


async def ts_job(engine: Engine, job: str, **policy: Any) -> None:
    """Job `job` bound to the bun function ts-scenarios (created and deployed once)."""
    if "ts-scenarios" not in {f.name for f in await engine.registry.list_functions(ORG)}:
        await engine.registry.create_function(ORG, "ts-scenarios", runtime="bun")
        archive = pack_dir(BUNDLES / "ts-scenarios")
        await engine.registry.promote(
            ORG, "ts-scenarios", await engine.registry.deploy(ORG, "ts-scenarios", archive)
        )
    await engine.job(job, "ts-scenarios", **policy)


async def log_lines(
    engine: Engine, run_id: str, at_least: int = 1
) -> list[tuple[str, str | None, int]]:
    """The run's log lines, once there are `at_least` (log lines are written in batches)."""
    async with asyncio.timeout(10):
        while True:
            rows = await engine.pool.fetch(
                "SELECT message, step, attempt FROM _reactor_jobs.run_logs"
                " WHERE run_id = $1 ORDER BY id",
                run_id,
            )
            if len(rows) >= at_least:
                return [(r["message"], r["step"], r["attempt"]) for r in rows]
            await asyncio.sleep(0.05)


async def test_completed_steps_are_not_run_again_on_a_retry(engine: Engine) -> None:
    await ts_job(engine, "flaky")
    engine.start_worker()
    run = await engine.control.trigger(ORG, "flaky", payload={"mode": "flaky", "ok_on": 3})
    done = await engine.wait(run.id)
    assert (done.status, done.output) == ("completed", {"b": 2, "attempt": 3})
    assert await log_lines(engine, run.id, 4) == [
        ("running a", "a", 1), ("running b", "b", 1), ("running b", "b", 2),
        ("running b", "b", 3),
    ]  # fmt: skip
    types = await engine.types(run.id)
    assert types.count("StepFailed") == 2 and types.count("StepCompleted") == 2


async def test_state_survives_a_retry(engine: Engine) -> None:
    await ts_job(engine, "stateful")
    engine.start_worker()
    run = await engine.control.trigger(ORG, "stateful", payload={"mode": "state"})
    done = await engine.wait(run.id)
    assert done.output == {"seen": {"first": 1}, "attempt": 2}


async def test_emit_fans_out_to_a_python_job(engine: Engine) -> None:
    await ts_job(engine, "emitter")
    await engine.job("listener")  # the Python scenarios bundle
    await engine.pool.execute(
        "INSERT INTO _reactor_jobs.triggers (id, org, job, kind, topic)"
        " VALUES ('trg_ts', $1, 'listener', 'event', 'ts.done')",
        ORG,
    )
    engine.start_worker()
    run = await engine.control.trigger(ORG, "emitter", payload={"mode": "steps", "n": 2})
    done = await engine.wait(run.id)
    assert done.status == "completed"
    listener = await engine.pool.fetchval(
        "SELECT run_id FROM _reactor_jobs.runs WHERE job = 'listener'"
    )
    assert (await engine.wait(listener)).status == "completed"
    assert ("computing a for " + run.id, "a", 1) in await log_lines(engine, run.id, 2)


async def test_a_two_second_sleep(engine: Engine) -> None:
    await ts_job(engine, "sleepy")
    engine.start_worker(concurrency=1)
    started = time.monotonic()
    run = await engine.control.trigger(ORG, "sleepy", payload={"mode": "sleep", "seconds": 2})
    await engine.wait(run.id, lambda r: r.status == "sleeping")
    done = await engine.wait(run.id)
    assert (done.status, done.output) == ("completed", "xy")
    assert time.monotonic() - started >= 2


async def test_a_busy_loop_times_out(engine: Engine) -> None:
    await ts_job(engine, "busy", timeout_ms=1000, max_attempts=1)
    engine.start_worker()
    run = await engine.control.trigger(ORG, "busy", payload={"mode": "busy"})
    failed = await engine.wait(run.id, timeout=30)
    assert failed.status == "failed"
    assert "TimedOut" in await engine.types(run.id)


async def test_cancel_stops_a_waiting_run(engine: Engine) -> None:
    await ts_job(engine, "waiting")
    engine.start_worker()
    run = await engine.control.trigger(ORG, "waiting", payload={"mode": "wait-forever"})
    await engine.wait(run.id, lambda r: r.status == "running")
    while "StepCompleted" not in await engine.types(run.id):
        await asyncio.sleep(0.02)
    assert (await engine.control.cancel(ORG, run.id)).status == "cancelled"
    assert (await engine.types(run.id))[-1] == "Cancelled"


@pytest.mark.parametrize(
    ("mode", "error_type", "message", "attempts"),
    [
        ("nonretryable", "NonRetryableError", "the order is gone", 1),
        ("throw-string", "Error", "boom", 2),
    ],
)
async def test_errors_end_in_the_dlq(
    engine: Engine, mode: str, error_type: str, message: str, attempts: int
) -> None:
    await ts_job(engine, mode, max_attempts=2)
    engine.start_worker()
    run = await engine.control.trigger(ORG, mode, payload={"mode": mode})
    failed = await engine.wait(run.id)
    assert (failed.status, failed.attempt) == ("failed", attempts)
    assert (failed.last_error["type"], failed.last_error["message"]) == (error_type, message)
    assert failed.dlq_id is not None


async def test_process_exit_fails_the_attempt_not_the_worker(engine: Engine) -> None:
    await ts_job(engine, "exits", max_attempts=1)
    await ts_job(engine, "fine")
    engine.start_worker()
    run = await engine.control.trigger(ORG, "exits", payload={"mode": "exit"})
    failed = await engine.wait(run.id)
    assert failed.status == "failed"
    other = await engine.control.trigger(ORG, "fine", payload={"mode": "loop"})
    assert (await engine.wait(other.id)).output == [0, 1, 2]
