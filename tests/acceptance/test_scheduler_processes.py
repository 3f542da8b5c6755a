"""Three `reactor serve` processes schedule one per-second cron trigger against one
database; one is killed -9 and another started across several slots. Every slot between
the first and the last fire is fired exactly once: the slot key is in the database, there
is no leader to lose."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from tests.cli_runner import stop_all
from tests.engine_fixtures import ORG, Engine

pytestmark = [pytest.mark.acceptance, pytest.mark.timeout(120)]


@pytest.fixture
def serve(engine: Engine, tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """A list to start `reactor serve` processes into; all are stopped at the end."""
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    stop_all(procs)


def start(engine: Engine, tmp_path: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ, "REACTOR_DATABASE_URL": engine.db_url, "REACTOR_DATA_DIR": str(tmp_path),
        "REACTOR_HTTP_PORT": "0", "REACTOR_WORKER_COUNT": "1",
        "REACTOR_SCHEDULER_INTERVAL_MS": "200",
    }  # fmt: skip
    return subprocess.Popen(
        [sys.executable, "-m", "reactor_jobs.cli", "serve"], env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip


async def test_three_serve_processes_fire_every_slot_once_through_a_kill(
    engine: Engine, serve: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    await engine.job("ticker", max_attempts=1)
    await engine.pool.execute(
        "INSERT INTO _reactor_jobs.triggers (id, org, job, kind, schedule)"
        " VALUES ('trg_tick', $1, 'ticker', 'cron', '* * * * * *')",
        ORG,
    )
    serve.extend(start(engine, tmp_path) for _ in range(3))
    await asyncio.sleep(6)
    serve[0].send_signal(signal.SIGKILL)  # mid-flight: whatever it held is let go
    serve[0].wait()
    await asyncio.sleep(3)
    serve.append(start(engine, tmp_path))
    await asyncio.sleep(5)
    stop_all(serve)
    rows = await engine.pool.fetch(
        "SELECT data->'trigger'->>'scheduled_for' AS slot FROM _reactor_jobs.journal"
        " WHERE position = 1 AND data->'trigger'->>'source' = 'trg_tick'"
    )
    slots = sorted(datetime.fromisoformat(r["slot"]) for r in rows)
    assert len(slots) >= 8, slots  # the processes took a few seconds to start
    assert len(slots) == len(set(slots)), "a slot fired twice"
    gaps = [b - a for a, b in itertools.pairwise(slots)]
    assert set(gaps) == {timedelta(seconds=1)}, "a slot was missed"
