"""`reactor worker` processes sharing one database: kill -9 recovery and maxConcurrency
held across processes, checked from the journal."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from tests.cli_runner import stop_all
from tests.engine_fixtures import ORG, Engine

pytestmark = pytest.mark.acceptance

RELEASING = {"Completed", "Failed", "TimedOut", "LeaseExpired", "SleepScheduled", "Cancelled"}


@pytest.fixture
async def spawn(
    engine: Engine, tmp_path: Path
) -> AsyncIterator[Callable[[int], subprocess.Popen[bytes]]]:
    config = tmp_path / "reactor.toml"
    config.write_text("[jobs]\nlease_ms = 1500\nscheduler_interval_ms = 200\n")
    procs: list[subprocess.Popen[bytes]] = []

    def start(worker_count: int = 4) -> subprocess.Popen[bytes]:
        env = {
            **os.environ, "REACTOR_DATABASE_URL": engine.db_url, "REACTOR_CONFIG": str(config),
            "REACTOR_WORKER_COUNT": str(worker_count), "REACTOR_DATA_DIR": str(tmp_path),
            "REACTOR_FN_DSN": engine.db_url,
        }  # fmt: skip
        proc = subprocess.Popen(
            [sys.executable, "-m", "reactor_jobs.cli", "worker"], env=env,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )  # fmt: skip
        procs.append(proc)
        return proc

    yield start
    stop_all(procs)


async def test_kill_9_mid_run_is_recovered_without_rerunning_completed_steps(
    engine: Engine, spawn: Callable[[int], subprocess.Popen[bytes]]
) -> None:
    await engine.job("slow")
    run = await engine.control.trigger(ORG, "slow", payload={"mode": "slow", "seconds": 2})
    first = spawn(4)
    async with asyncio.timeout(30):
        while ("slow", 1) not in await engine.effects(run.id):
            await asyncio.sleep(0.05)
    first.send_signal(signal.SIGKILL)  # mid-way through step "slow"
    first.wait()
    spawn(4)
    done = await engine.wait(run.id, timeout=40)
    assert done.status == "completed" and done.attempt == 2
    assert await engine.effects(run.id) == [("first", 1), ("slow", 1), ("slow", 2)]
    types = await engine.types(run.id)
    assert "LeaseExpired" in types and types[-1] == "Completed"


async def test_worker_processes_never_exceed_max_concurrency(
    engine: Engine, spawn: Callable[[int], subprocess.Popen[bytes]]
) -> None:
    await engine.job("bounded", max_concurrency=3)
    runs = await engine.control.trigger_many(
        ORG, "bounded", [{"mode": "slow", "seconds": 0.2}] * 24
    )
    for _ in range(4):
        spawn(1)  # four processes of one slot each, for a job limited to three
    for run_id in runs:
        assert (await engine.wait(run_id, timeout=60)).status == "completed"
    rows = await engine.pool.fetch(
        "SELECT type FROM _reactor_jobs.journal WHERE org = $1 ORDER BY global_position", ORG
    )
    running = peak = 0
    for row in rows:
        if row["type"] == "AttemptStarted":
            running += 1
            peak = max(peak, running)
        elif row["type"] in RELEASING:
            running -= 1
    assert running == 0
    assert peak == 3  # reached, never passed
    owners = await engine.pool.fetch(
        "SELECT DISTINCT data->>'worker' AS w FROM _reactor_jobs.journal"
        " WHERE type = 'AttemptStarted'"
    )
    assert len(owners) >= 3  # the limit held across processes, not inside one
