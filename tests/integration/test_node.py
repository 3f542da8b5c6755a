"""Node.open, the one way to open the engine in a process: its pool fits a default Postgres
whatever the concurrency, and a worker at high concurrency runs on it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from reactor_jobs.config import load_config
from reactor_jobs.functions.bundle import pack_dir
from reactor_jobs.node import BASE_POOL, Node
from tests.engine_fixtures import BUNDLES, ORG

pytestmark = pytest.mark.integration


async def test_the_pool_does_not_grow_with_concurrency_and_a_256_wide_worker_runs_on_it(
    db_url: str, tmp_path: Path
) -> None:
    env = {"REACTOR_DATABASE_URL": db_url, "REACTOR_WORKER_COUNT": "256",
           "REACTOR_DATA_DIR": str(tmp_path)}  # fmt: skip
    node = await Node.open(load_config(env=env))
    try:
        # Two such processes hold 2 x (12 + 1 LISTEN) connections: far below 100.
        assert node.pool.get_max_size() == BASE_POOL + 4 == 12
        await node.registry.create_function(ORG, "scenarios")
        version = await node.registry.deploy(ORG, "scenarios", pack_dir(BUNDLES / "scenarios"))
        await node.registry.promote(ORG, "scenarios", version)
        ids = []
        for n in range(26):  # maxConcurrency is at most 10 a job: 26 jobs make 260 at once
            await node.registry.create_job(ORG, f"wide{n}", "scenarios", max_concurrency=10)
            payload = {"mode": "nap", "steps": 2, "seconds": 0.5}
            ids += await node.control.trigger_many(ORG, f"wide{n}", [payload] * 10)
        stop = asyncio.Event()
        worker = asyncio.create_task(node.worker().run(stop, grace=1))
        most = 0
        try:
            async with asyncio.timeout(90):
                while await node.pool.fetchval(_UNFINISHED, ids):
                    most = max(most, await node.pool.fetchval(_RUNNING, ids))
                    await asyncio.sleep(0.05)
        finally:
            stop.set()
            await worker
        assert most > node.pool.get_max_size() * 4  # far more attempts than connections
        statuses = await node.pool.fetch(_STATUS, ids)
        assert {r["status"] for r in statuses} == {"completed"} and len(statuses) == 260
    finally:
        await node.close()


_UNFINISHED = """
SELECT count(*) FROM _reactor_jobs.runs
 WHERE run_id = ANY($1::text[]) AND status NOT IN ('completed', 'failed', 'cancelled')"""
_RUNNING = """
SELECT count(*) FROM _reactor_jobs.runs WHERE run_id = ANY($1::text[]) AND status = 'running'"""
_STATUS = "SELECT status FROM _reactor_jobs.runs WHERE run_id = ANY($1::text[])"
