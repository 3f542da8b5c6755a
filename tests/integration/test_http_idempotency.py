"""The manual trigger's Idempotency-Key under contention: 100 simultaneous requests over real
HTTP with one key start exactly one run; every caller gets its id, one with 201 (it created
the run), the other 99 with 200."""

from __future__ import annotations

import asyncio
from collections import Counter

import pytest

from tests.http_fixtures import Api, api

pytestmark = pytest.mark.integration
__all__ = ["api"]

CALLERS = 100


async def test_one_key_from_100_concurrent_callers_starts_one_run(api: Api) -> None:
    job = {"name": "charge", "function_name": "scenarios"}
    assert (await api.call("POST", "/jobs/v1/_admin/jobs", json=job)).status == 201
    go = asyncio.Event()

    async def caller(n: int) -> tuple[int, str]:
        await go.wait()  # all requests leave together
        reply = await api.call(
            "POST", "/jobs/v1/charge/trigger", json={"payload": {"caller": n}},
            headers={"Idempotency-Key": "charge-2026-12-01"},
        )  # fmt: skip
        assert reply.status in (200, 201), reply.text
        return reply.status, str(reply.json["id"])

    tasks = [asyncio.create_task(caller(n)) for n in range(CALLERS)]
    await asyncio.sleep(0)
    go.set()
    replies = await asyncio.gather(*tasks)

    assert Counter(status for status, _ in replies) == {201: 1, 200: CALLERS - 1}
    run_ids = {run_id for _, run_id in replies}
    assert len(run_ids) == 1
    rows = await api.node.pool.fetch(
        "SELECT run_id, idempotency_key FROM _reactor_jobs.runs WHERE job = 'charge'"
    )
    assert [(r["run_id"], r["idempotency_key"]) for r in rows] == [
        (run_ids.pop(), "charge-2026-12-01")
    ]
    triggered = await api.node.pool.fetchval(
        "SELECT count(*) FROM _reactor_jobs.journal WHERE type = 'Triggered'"
    )
    assert triggered == 1
    # The run's input is the one caller's that created it.
    (created_id,) = [run_id for status, run_id in replies if status == 201]
    payload = await api.node.pool.fetchval(
        "SELECT data->'payload'->>'caller' FROM _reactor_jobs.journal WHERE run_id = $1"
        " AND position = 1",
        created_id,
    )
    assert payload is not None and 0 <= int(payload) < CALLERS
