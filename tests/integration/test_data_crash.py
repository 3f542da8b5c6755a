"""ctx.data across a worker process killed with SIGKILL in the middle of a built-in write,
and with an external Data service that is down.

The crash point is held by Postgres, not by test code in the worker: a trigger on the org's
table waits for an advisory lock the test holds, so the worker's transaction stops exactly
there (after the row is written, before its checkpoint; or inside COMMIT, after both), the
test sees the wait in pg_stat_activity and kills the process. A second worker process takes
the run over when the lease expires; the row must be written exactly once either way.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from reactor_jobs.data.remote import RemoteData
from reactor_jobs.data.service import DataService
from reactor_jobs.database import connect
from reactor_jobs.domain import events as ev
from tests.cli_runner import stop_all
from tests.data_fixtures import drop_data_roles
from tests.engine_fixtures import ORG, Engine

pytestmark = pytest.mark.integration
__all__ = ["drop_data_roles"]

GATE = 7_140_014  # the advisory lock the trigger waits for
SCHEMA = f"""
CREATE TABLE orders (id bigint PRIMARY KEY, note text);
CREATE FUNCTION order_count() RETURNS bigint LANGUAGE sql AS $$ SELECT count(*) FROM orders $$;
CREATE FUNCTION gate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_advisory_xact_lock({GATE});
    RETURN NULL;
END $$;
"""
# Where the worker's write transaction stops: after the insert statement (the row written,
# the checkpoint not yet called), or at COMMIT (write and checkpoint both done, not committed).
GATES = {
    "before_checkpoint": "CREATE TRIGGER gate AFTER INSERT ON orders"
    " FOR EACH STATEMENT EXECUTE FUNCTION gate()",
    "at_commit": "CREATE CONSTRAINT TRIGGER gate AFTER INSERT ON orders"
    " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION gate()",
}


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


@pytest.fixture
async def workers(engine: Engine, tmp_path: Path) -> AsyncIterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    stop_all(procs)


def spawn(engine: Engine, tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    config = tmp_path / "reactor.toml"
    config.write_text("[jobs]\nlease_ms = 1500\nscheduler_interval_ms = 100\n")
    env = {
        **os.environ, "REACTOR_DATABASE_URL": engine.db_url, "REACTOR_CONFIG": str(config),
        "REACTOR_WORKER_COUNT": "2", "REACTOR_DATA_DIR": str(tmp_path),
    }  # fmt: skip
    command = [sys.executable, "-m", "reactor_jobs.cli", "worker"]
    out = subprocess.DEVNULL
    procs.append(subprocess.Popen(command, env=env, stdout=out, stderr=out))


async def rows(data: DataService) -> list[tuple[int, str]]:
    async with data.connection(ORG) as conn:
        found = await conn.fetch("SELECT id, note FROM orders ORDER BY id")
    return [(r["id"], r["note"]) for r in found]


async def data_called(engine: Engine, run_id: str) -> list[str]:
    records = await engine.journal.read_stream(run_id)
    return [r.event.name for r in records if isinstance(r.event, ev.DataCalled)]


@pytest.mark.parametrize("where", sorted(GATES))
async def test_a_worker_killed_mid_write_leaves_the_row_written_exactly_once(
    engine: Engine,
    data: DataService,
    workers: list[subprocess.Popen[bytes]],
    tmp_path: Path,
    where: str,
) -> None:
    await data.run_sql(ORG, GATES[where])
    role = (await data.org(ORG)).role
    await engine.deploy("data-jobs")
    await engine.job("data-jobs", "data-jobs")
    holder = await connect(engine.db_url)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", GATE)
        run_id = (
            await engine.control.trigger(ORG, "data-jobs", payload={"mode": "read_write", "id": 5})
        ).id
        spawn(engine, tmp_path, workers)
        async with asyncio.timeout(30):  # the worker's write waits at the gate
            while not await holder.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE usename = $1"
                " AND wait_event_type = 'Lock' AND wait_event = 'advisory'",
                role,
            ):
                await asyncio.sleep(0.02)
        # The read is journaled, the write is not: the kill lands inside the write.
        assert await data_called(engine, run_id) == ["data:orders"]
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        await holder.execute("SELECT pg_advisory_unlock($1)", GATE)
    finally:
        await holder.close()
    spawn(engine, tmp_path, workers)
    run = await engine.wait(run_id, timeout=60)
    assert run.status == "completed" and run.attempt == 2, run.last_error
    # Before the checkpoint, the write died with its transaction and attempt 2 made it;
    # at COMMIT, both committed and attempt 2 was answered from the journal.
    note = "try 2" if where == "before_checkpoint" else "try 1"
    assert await rows(data) == [(5, note)]
    assert run.output == {"read": [], "wrote": [{"id": 5, "note": note}], "count": 1}
    assert await data_called(engine, run_id) == [
        "data:orders", "data:orders#2", "data:rpc/order_count",
    ]  # fmt: skip
    assert "LeaseExpired" in await engine.types(run_id)
    assert (await engine.journal.verify(run_id)).ok


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


async def test_an_external_data_service_that_is_down_fails_the_call_and_the_attempt_retries(
    engine: Engine, data: DataService
) -> None:
    worker = engine.start_worker()
    # Nothing listens there: every call is refused before anything is written anywhere.
    worker.attempt.data = RemoteData(f"http://127.0.0.1:{_free_port()}", "rj_key_unused")
    await engine.deploy("data-jobs")
    await engine.job("data-jobs", "data-jobs")
    run_id = (
        await engine.control.trigger(ORG, "data-jobs", payload={"mode": "read_write", "id": 6})
    ).id
    try:
        run = await engine.wait(run_id, timeout=30)
    finally:
        await worker.attempt.data.close()
    assert run.status == "failed" and run.attempt == 3  # the job's maxAttempts
    assert run.last_error is not None and "database_unavailable" in str(run.last_error)
    records = await engine.journal.read_stream(run_id)
    failed = [r.event for r in records if isinstance(r.event, ev.Failed)]
    assert [(f.attempt, f.error.type) for f in failed] == [
        (1, "DataRequestError"), (2, "DataRequestError"), (3, "DataRequestError"),
    ]  # fmt: skip
    retries = [r.event for r in records if isinstance(r.event, ev.RetryScheduled)]
    delays = [r.delay_ms or 0 for r in retries]  # the bundle's exponential backoff, jittered
    assert len(delays) == 2 and 25 <= delays[0] <= 50 and 50 <= delays[1] <= 100, delays
    assert not [r for r in records if isinstance(r.event, ev.DataCalled)]
    assert await rows(data) == []  # nothing half-written in the org's tables
