"""ctx.data in TypeScript job code run by bun hosts, with the Python SDK's durable
semantics: outside a step a call is journaled and a retry is answered from the journal (the
built-in write commits with its entry, so the retry does not write again); inside a step
calls are plain; a refused call throws DataRequestError with the API's code."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from reactor_jobs.data.service import DataService
from reactor_jobs.domain import events as ev
from reactor_jobs.functions.bun_binary import find_bun
from reactor_jobs.functions.bundle import pack_dir
from reactor_jobs.projections.auditor import Auditor
from tests.data_fixtures import drop_data_roles
from tests.engine_fixtures import BUNDLES, ORG, Engine

pytestmark = [
    pytest.mark.integration,
    pytest.mark.timeout(90),
    pytest.mark.skipif(find_bun() is None, reason="no bun executable"),
]
__all__ = ["drop_data_roles"]

SCHEMA = """
CREATE TABLE orders (id bigint PRIMARY KEY, note text);
CREATE FUNCTION order_count() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM orders $$;
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
    if "ts-data-jobs" not in {f.name for f in await engine.registry.list_functions(ORG)}:
        await engine.registry.create_function(ORG, "ts-data-jobs", runtime="bun")
        version = await engine.registry.deploy(
            ORG, "ts-data-jobs", pack_dir(BUNDLES / "ts-data-jobs")
        )
        await engine.registry.promote(ORG, "ts-data-jobs", version)
        await engine.job("ts-data-jobs", "ts-data-jobs")
    return (await engine.control.trigger(ORG, "ts-data-jobs", payload=payload)).id


async def rows(data: DataService) -> list[tuple[int, str]]:
    async with data.connection(ORG) as conn:
        found = await conn.fetch("SELECT id, note FROM orders ORDER BY id")
    return [(r["id"], r["note"]) for r in found]


async def test_a_retry_of_a_ts_job_returns_recorded_results_and_writes_once(
    engine: Engine, data: DataService
) -> None:
    engine.start_worker()
    run_id = await start(engine, {"mode": "read_write", "id": 11, "ok_on": 2})
    run = await engine.wait(run_id, timeout=60)
    assert run.status == "completed", run.last_error
    # attempt 2 got attempt 1's recorded read and write back, and wrote nothing itself
    assert run.output == {
        "read": [], "wrote": [{"id": 11, "note": "ts try 1"}], "count": 1, "attempt": 2,
    }  # fmt: skip
    assert await rows(data) == [(11, "ts try 1")]
    records = await engine.journal.read_stream(run_id)
    called = [r.event for r in records if isinstance(r.event, ev.DataCalled)]
    assert [c.name for c in called] == ["data:orders", "data:orders#2", "data:rpc/order_count"]
    assert called[1].request["body_keys"] == ["id", "note"]
    assert (called[1].rows, called[1].count) == ([{"id": 11, "note": "ts try 1"}], 1)
    assert (await engine.journal.verify(run_id)).ok
    report = await Auditor(engine.journal, engine.registry, engine.hosts).replay(ORG, run_id)
    assert report.ok and report.checked == 3, report


async def test_ts_calls_inside_a_step_are_plain_and_errors_are_thrown(
    engine: Engine, data: DataService
) -> None:
    engine.start_worker()
    run = await engine.wait(await start(engine, {"mode": "in_step", "id": 12}), timeout=60)
    assert (run.status, run.output) == ("completed", [{"id": 12}]), run.last_error
    assert "DataCalled" not in await engine.types(run.id)
    assert await rows(data) == [(12, "ts in step")]
    bad = await engine.wait(await start(engine, {"mode": "bad"}), timeout=60)
    assert bad.output is not None and bad.output["code"] == "not_found"
    assert "nosuch" in bad.output["message"]
