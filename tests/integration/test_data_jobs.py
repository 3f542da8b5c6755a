"""ctx.data in job code: calls outside steps are durable decisions (journaled, returned on
retry, checked by the guard), built-in writes commit with their journal entry (exactly once,
even when the connection dies between the write and the checkpoint), calls inside steps are
plain, and replays answer from the recording."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from reactor_jobs.data.service import DataService
from reactor_jobs.domain import events as ev
from reactor_jobs.domain.replay import fold
from reactor_jobs.projections.auditor import Auditor
from tests.data_fixtures import drop_data_roles
from tests.engine_fixtures import ORG, Engine

pytestmark = pytest.mark.integration
__all__ = ["drop_data_roles"]

SCHEMA = """
CREATE TABLE orders (id bigint PRIMARY KEY, note text);
CREATE FUNCTION order_count() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM orders $$;
CREATE VIEW big AS SELECT repeat('x', 1500000) AS t;
CREATE FUNCTION fill_big(k bigint) RETURNS text LANGUAGE sql AS
  $$ INSERT INTO orders (id, note) VALUES (k, 'big'); SELECT repeat('y', 1500000) $$;
"""


@pytest.fixture(autouse=True)
async def _roles(drop_data_roles: None) -> AsyncIterator[None]:
    yield


@pytest.fixture
async def data(pool: asyncpg.Pool, db_url: str) -> AsyncIterator[DataService]:
    service = DataService(pool, db_url)
    await service.run_sql(ORG, SCHEMA)
    try:
        yield service
    finally:
        await service.close()


async def start(engine: Engine, payload: dict[str, object]) -> str:
    if "data-jobs" not in {j.name for j in await engine.registry.list_jobs(ORG)}:
        await engine.deploy("data-jobs")
        await engine.job("data-jobs", "data-jobs")
    return (await engine.control.trigger(ORG, "data-jobs", payload=payload)).id


async def rows(data: DataService) -> list[tuple[int, str]]:
    async with data.connection(ORG) as conn:
        found = await conn.fetch("SELECT id, note FROM orders ORDER BY id")
    return [(r["id"], r["note"]) for r in found]


async def test_a_retry_returns_recorded_results_and_writes_once(
    engine: Engine, data: DataService
) -> None:
    engine.start_worker()
    run_id = await start(engine, {"mode": "read_write", "id": 7, "ok_on": 2})
    run = await engine.wait(run_id)
    assert run.status == "completed", run.last_error
    assert run.output == {"read": [], "wrote": [{"id": 7, "note": "try 1"}], "count": 1}
    assert await rows(data) == [(7, "try 1")]  # the retry did not insert again
    records = await engine.journal.read_stream(run_id)
    called = [r.event for r in records if isinstance(r.event, ev.DataCalled)]
    assert [c.name for c in called] == ["data:orders", "data:orders#2", "data:rpc/order_count"]
    assert called[0].request == {
        "method": "GET", "table": "orders", "query": [["select", "id,note"], ["id", "eq.7"]],
    }  # fmt: skip
    assert called[1].request["body_keys"] == ["id", "note"] and "body" not in called[1].request
    assert (called[1].rows, called[1].count) == ([{"id": 7, "note": "try 1"}], 1)
    decisions = fold(records).recorded()
    assert [d.kind for d in decisions] == ["data", "data", "data"]
    assert (await engine.journal.verify(run_id)).ok
    # an auditor's replay answers the data calls from the journal and finds them the same
    report = await Auditor(engine.journal, engine.registry, engine.hosts).replay(ORG, run_id)
    assert report.ok and report.checked == 3, report


async def test_a_connection_lost_between_write_and_checkpoint_writes_nothing(
    engine: Engine, data: DataService, pool: asyncpg.Pool
) -> None:
    worker = engine.start_worker()
    crashes: list[int] = []
    role = (await data.org(ORG)).role

    async def crash() -> None:
        if not crashes:  # kill the org's connection inside its transaction, once
            crashes.append(1)
            await pool.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE usename = $1 AND state LIKE 'idle in transaction%'",
                role,
            )

    worker.attempt.before_checkpoint = crash
    run_id = await start(engine, {"mode": "read_write", "id": 8})
    run = await engine.wait(run_id)
    assert run.status == "completed", run.last_error
    assert crashes == [1]
    assert await rows(data) == [(8, "try 2")]  # attempt 1's write was rolled back
    types = await engine.types(run_id)
    assert types.count("DataCalled") == 3  # the read (once: replayed), the write, the rpc
    assert (await engine.journal.verify(run_id)).ok


async def test_calls_inside_a_step_are_plain_and_errors_reach_the_code(
    engine: Engine, data: DataService
) -> None:
    engine.start_worker()
    run_id = await start(engine, {"mode": "in_step", "id": 9})
    run = await engine.wait(run_id)
    assert run.status == "completed" and run.output == [{"id": 9}]
    assert "DataCalled" not in await engine.types(run_id)
    bad = await engine.wait(await start(engine, {"mode": "bad"}))
    assert bad.output is not None and bad.output["code"] == "not_found"
    assert "nosuch" in bad.output["message"]
    more = await engine.wait(await start(engine, {"mode": "update_delete"}))
    assert more.status == "completed", more.last_error
    assert more.output == {
        "changed": [{"id": 1, "note": "x"}], "gone": [{"id": 2, "note": "u2"}],
        "left": [{"id": 1, "note": "x"}, {"id": 9, "note": "in step"}], "n": 2,
    }  # fmt: skip


async def test_a_result_too_large_to_record_is_refused_and_its_write_rolled_back(
    engine: Engine, data: DataService
) -> None:
    engine.start_worker()
    run = await engine.wait(await start(engine, {"mode": "too_big", "id": 31}))
    assert run.status == "completed", run.last_error
    assert run.output == ["payload_too_large", "payload_too_large"]
    assert "DataCalled" not in await engine.types(run.id)
    assert await rows(data) == []  # the rpc's insert went with its refused record
