"""Event fan-out: ctx.emit starts one run per subscribed event trigger, exactly once, in
the same transaction as the Emitted event; lineage links them."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
import pytest

from reactor_jobs.domain import events as ev
from reactor_jobs.domain.errors import FenceError
from reactor_jobs.engine.journal import AppendRequest, Fence, Journal
from reactor_jobs.projections.lineage import lineage
from tests.engine_fixtures import ORG, Engine

pytestmark = pytest.mark.integration


async def subscribe(pool: asyncpg.Pool, trigger_id: str, job: str, topic: str) -> None:
    await pool.execute(
        "INSERT INTO _reactor_jobs.triggers (id, org, job, kind, topic) VALUES ($1, $2, $3,"
        " 'event', $4)",
        trigger_id,
        ORG,
        job,
        topic,
    )


async def runs_of(engine: Engine, job: str) -> list[str]:
    rows = await engine.pool.fetch(
        "SELECT run_id FROM _reactor_jobs.runs WHERE job = $1 ORDER BY created_at", job
    )
    return [r[0] for r in rows]


async def test_emit_fans_out_exactly_once_even_when_the_emitter_retries(engine: Engine) -> None:
    for job in ("emitter", "listener", "shouter"):
        await engine.job(job)
    await subscribe(engine.pool, "trg_listen", "listener", "order.created")
    await subscribe(engine.pool, "trg_shout", "shouter", "ORDER.CREATED")  # case differs
    engine.start_worker()
    run = await engine.control.trigger(
        ORG, "emitter", payload={"mode": "emit_flaky", "topic": "order.created"}
    )
    done = await engine.wait(run.id)
    assert (done.status, done.attempt) == ("completed", 2)  # the emit was replayed
    (listener,) = await runs_of(engine, "listener")
    assert await runs_of(engine, "shouter") == []
    first = (await engine.journal.read_stream(listener))[0].event
    assert isinstance(first, ev.Triggered)
    assert (first.trigger.kind, first.trigger.source) == ("event", "trg_listen")
    assert (first.trigger.event_id, first.trigger.causation_run_id) == (done.output, run.id)
    assert first.payload == {"from": run.id}
    event = await engine.pool.fetchrow("SELECT * FROM _reactor_jobs.events")
    assert (event["fanout"], event["consumed_at"] is not None) == (1, True)
    # the emitter's Emitted and the listener's Triggered committed together
    tx = await engine.pool.fetch(
        "SELECT DISTINCT tx_id FROM _reactor_jobs.journal WHERE type = 'Emitted'"
        " OR (run_id = $1 AND position = 1)",
        listener,
    )
    assert len(tx) == 1
    tree = await lineage(engine.pool, ORG, run.id)
    assert [c.run_id for c in tree.caused] == [listener] and not tree.more
    assert (await lineage(engine.pool, ORG, listener)).trigger.causation_run_id == run.id
    # Cut at depth 0, the tree says there is more below instead of ending silently.
    cut = await lineage(engine.pool, ORG, run.id, depth=0)
    assert (cut.caused, cut.more) == ([], True)


async def test_an_event_nobody_subscribes_to_stays_unconsumed(engine: Engine) -> None:
    await engine.job("lonely")
    engine.start_worker()
    run = await engine.control.trigger(ORG, "lonely", payload={"mode": "emit", "topic": "void"})
    await engine.wait(run.id)
    row = await engine.pool.fetchrow("SELECT topic, consumed_at, fanout FROM _reactor_jobs.events")
    assert (row["topic"], row["consumed_at"], row["fanout"]) == ("void", None, 0)


async def test_a_fenced_emit_spawns_nothing(engine: Engine, journal: Journal) -> None:
    await engine.job("emitter")
    await engine.job("listener")
    run = await engine.control.trigger(ORG, "emitter", payload={"mode": "noop"})
    lease = (await engine.pool.fetchval("SELECT now()")) + timedelta(minutes=1)
    await journal.append(
        run.id,
        [ev.AttemptStarted(attempt=1, worker="w", lease_expires_at=lease)],
        expected_position=1,
    )
    child = await engine.control.trigger(ORG, "listener", payload={"mode": "noop"})
    spawned = AppendRequest(
        run_id="run_child",
        expected_position=0,
        events=[(await journal.read_stream(child.id))[0].event],
    )
    with pytest.raises(FenceError):
        await journal.append(
            run.id,
            [ev.Emitted(event_id="evt_x", topic="t")],
            expected_position=2,
            fence=Fence(attempt=1, lease_owner="intruder"),
            spawn=[spawned],
        )
    assert (
        await engine.pool.fetchval(
            "SELECT count(*) FROM _reactor_jobs.runs WHERE run_id = 'run_child'"
        )
        == 0
    )
