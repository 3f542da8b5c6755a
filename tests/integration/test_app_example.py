"""examples/app: an aiohttp route triggers a code job that a `reactor worker --app` process
runs; the job's emit starts the second code job."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest
from aiohttp.test_utils import TestClient, TestServer

pytestmark = pytest.mark.integration

EXAMPLE = Path(__file__).resolve().parent.parent.parent / "examples" / "app"


async def test_the_example_app_triggers_and_its_worker_runs(
    db_url: str, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REACTOR_DATABASE_URL", db_url)
    monkeypatch.syspath_prepend(str(EXAMPLE))
    for name in ("jobs", "web"):
        sys.modules.pop(name, None)
    import web  # type: ignore[import-not-found]  # examples/app/web.py, on sys.path above

    env = {**os.environ, "REACTOR_DATABASE_URL": db_url, "REACTOR_WORKER_COUNT": "4"}
    worker = subprocess.Popen(
        [sys.executable, "-m", "reactor_jobs.cli", "worker", "--app", "jobs:app"],
        cwd=EXAMPLE, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with TestClient(TestServer(web.make_app())) as client:
            first = await client.post("/orders", json={"orderId": "ord_1"})
            again = await client.post("/orders", json={"orderId": "ord_1"})
            assert first.status == again.status == 202
            run_id = (await first.json())["run_id"]
            assert (await again.json())["run_id"] == run_id  # the order id is the key
            async with asyncio.timeout(30):
                while True:
                    rows = await pool.fetch(
                        "SELECT job, status, output FROM _reactor_jobs.runs ORDER BY created_at"
                    )
                    if len(rows) == 2 and all(r["status"] == "completed" for r in rows):
                        break
                    assert worker.poll() is None, worker.stdout.read() if worker.stdout else ""
                    await asyncio.sleep(0.1)
        assert [r["job"] for r in rows] == ["process-order", "send-receipt"]
        assert "charged" in rows[0]["output"]
    finally:
        worker.terminate()
        output = worker.communicate(timeout=20)[0].decode()
    assert worker.returncode == 0, output
    assert "jobs: process-order, send-receipt" in output
