"""RunControl answers with the run as its own append left it: equal to the projection row
when nothing else moved the run, and still `queued` when a worker claimed it at once."""

from __future__ import annotations

import pytest

from reactor_jobs.projections.queries import get_run
from tests.engine_fixtures import ORG, Engine

pytestmark = pytest.mark.integration


async def test_each_action_returns_what_the_projection_holds_after_it(engine: Engine) -> None:
    await engine.job("ctl", max_attempts=1)
    admitted = await engine.control.admit(ORG, "ctl", payload={"mode": "fatal"},
                                          idempotency_key="k-1")  # fmt: skip
    assert admitted.created and admitted.run.status == "queued"
    assert admitted.run == await get_run(engine.pool, ORG, admitted.run.id)
    again = await engine.control.admit(ORG, "ctl", payload={}, idempotency_key="k-1")
    assert (again.created, again.run) == (False, admitted.run)

    cancelled = await engine.control.cancel(ORG, admitted.run.id, by="tester")
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    assert cancelled == await get_run(engine.pool, ORG, admitted.run.id)

    doomed = await engine.control.trigger(ORG, "ctl", payload={"mode": "fatal"})
    engine.start_worker()
    failed = await engine.wait(doomed.id)
    assert failed.status == "failed" and failed.last_error is not None
    await engine.stop_workers()
    requeued = await engine.control.retry(ORG, doomed.id)
    assert requeued.status == "queued" and requeued.last_error == failed.last_error
    assert requeued == await get_run(engine.pool, ORG, doomed.id)


async def test_a_run_claimed_at_once_is_still_answered_as_queued(engine: Engine) -> None:
    await engine.job("fast")
    engine.start_worker(concurrency=8)
    for _ in range(30):  # one at a time: the idle worker is woken and claims it at once
        run = await engine.control.trigger(ORG, "fast", payload={"mode": "noop"})
        assert (run.status, run.attempt, run.started_at) == ("queued", 0, None)
        finished = await engine.wait(run.id)
        assert finished.status == "completed" and finished.created_at == run.created_at
