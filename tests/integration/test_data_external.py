"""ctx.data against an external Data service (`[jobs.data] url, api_key`): the worker
forwards each call as its PostgREST request to a real `/data/v1/` server with the org's API
key; calls outside a step are made, then recorded, and a retry is answered from the record."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from reactor_jobs.data.remote import RemoteData
from reactor_jobs.domain import events as ev
from tests.data_fixtures import drop_data_roles
from tests.engine_fixtures import ORG
from tests.http_fixtures import Api, api

pytestmark = pytest.mark.integration
__all__ = ["api", "drop_data_roles"]

SCHEMA = """
CREATE TABLE orders (id bigint PRIMARY KEY, note text);
CREATE FUNCTION order_count() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM orders $$;
"""


@pytest.fixture(autouse=True)
async def _roles(drop_data_roles: None) -> AsyncIterator[None]:
    yield


async def test_calls_through_an_external_data_service_are_recorded_and_replayed(
    api: Api,
) -> None:
    made = await api.call("POST", "/data/v1/_sql", as_="admin", json={"sql": SCHEMA})
    assert made.status == 200, made.text
    key = await api.add_api_key("jobs-data", ORG, "member")
    engine = api.engine
    worker = engine.start_worker()
    remote = RemoteData(api.base, key)
    worker.attempt.data = remote
    await engine.deploy("data-jobs")
    await engine.job("data-jobs", "data-jobs")
    try:
        run_id = (
            await engine.control.trigger(
                ORG, "data-jobs", payload={"mode": "read_write", "id": 21, "ok_on": 2}
            )
        ).id
        run = await engine.wait(run_id, timeout=30)
        bad = await engine.wait(
            (await engine.control.trigger(ORG, "data-jobs", payload={"mode": "bad"})).id
        )
    finally:
        await remote.close()
    assert run.status == "completed", run.last_error
    # attempt 2 was answered from attempt 1's records: one row, attempt 1's
    assert run.output == {"read": [], "wrote": [{"id": 21, "note": "try 1"}], "count": 1}
    listed = await api.call("GET", "/data/v1/orders?select=id,note", as_="member")
    assert listed.json == [{"id": 21, "note": "try 1"}]
    records = await engine.journal.read_stream(run_id)
    called = [r.event for r in records if isinstance(r.event, ev.DataCalled)]
    assert [c.name for c in called] == ["data:orders", "data:orders#2", "data:rpc/order_count"]
    assert called[1].rows == [{"id": 21, "note": "try 1"}]
    # the service's refusal reaches job code with its code and message
    assert bad.output is not None and bad.output["code"] == "not_found"
    assert "nosuch" in bad.output["message"]
