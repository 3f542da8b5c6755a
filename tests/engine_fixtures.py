"""Engine fixtures: a registry with the test bundles deployed, run control, and a worker
running in the background of the test's event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from reactor_jobs.config import HostSettings
from reactor_jobs.domain.projection import RunInfo
from reactor_jobs.engine.hosts import HostPool
from reactor_jobs.engine.journal import Journal
from reactor_jobs.engine.runs import RunControl
from reactor_jobs.engine.worker import Worker
from reactor_jobs.functions.bundle import pack_dir
from reactor_jobs.functions.registry import Registry
from reactor_jobs.projections.queries import get_run

BUNDLES = Path(__file__).resolve().parent / "bundles"
ORG = "acme"
TERMINAL = ("completed", "failed", "cancelled")


class Engine:
    """What a test drives: deploy, create jobs, trigger, wait; and the worker(s)."""

    def __init__(self, pool: asyncpg.Pool, journal: Journal, db_url: str, tmp: Path) -> None:
        self.pool, self.journal, self.db_url, self.tmp = pool, journal, db_url, tmp
        self.registry = Registry(pool)
        self.control = RunControl(pool, journal, registry=self.registry)
        self.workers: list[tuple[Worker, asyncio.Event, asyncio.Task[None]]] = []
        # Job code runs in function hosts; the test bundles record side effects via DSN.
        self.hosts = HostPool(HostSettings(), env={"DSN": db_url})

    async def deploy(self, bundle: str, name: str | None = None) -> int:
        name = name or bundle
        if name not in {f.name for f in await self.registry.list_functions(ORG)}:
            await self.registry.create_function(ORG, name)
        version = await self.registry.deploy(ORG, name, pack_dir(BUNDLES / bundle))
        await self.registry.promote(ORG, name, version)
        return version

    async def job(self, name: str, function: str = "scenarios", **policy: Any) -> None:
        await self.registry.create_job(ORG, name, function, **policy)

    def start_worker(self, concurrency: int = 4, lease_ms: int = 3000) -> Worker:
        worker = Worker(
            self.pool, self.journal, self.registry, self.hosts,
            concurrency=concurrency, lease_ms=lease_ms, poll_ms=100,
        )  # fmt: skip
        stop = asyncio.Event()
        self.workers.append((worker, stop, asyncio.create_task(worker.run(stop, grace=0.2))))
        return worker

    async def stop_workers(self) -> None:
        for _, stop, _task in self.workers:
            stop.set()
        await asyncio.gather(*(task for _, _, task in self.workers))
        self.workers.clear()

    async def wait(
        self, run_id: str, until: Callable[[RunInfo], bool] | None = None, timeout: float = 20
    ) -> RunInfo:
        """Poll the run until `until` holds (default: a terminal status)."""
        check = until or (lambda r: r.status in TERMINAL)
        async with asyncio.timeout(timeout):
            while True:
                run = await get_run(self.pool, ORG, run_id)
                if check(run):
                    return run
                await asyncio.sleep(0.05)

    async def effects(self, run_id: str) -> list[tuple[str, int]]:
        rows = await self.pool.fetch(
            "SELECT step, attempt FROM side_effects WHERE run_id = $1 ORDER BY id", run_id
        )
        return [(r["step"], r["attempt"]) for r in rows]

    async def types(self, run_id: str) -> list[str]:
        return [r.type for r in await self.journal.read_stream(run_id)]


@pytest.fixture
async def engine(
    pool: asyncpg.Pool, journal: Journal, db_url: str, tmp_path: Path
) -> AsyncIterator[Engine]:
    await pool.execute(
        "CREATE TABLE side_effects (id bigserial PRIMARY KEY, run_id text, step text, attempt int)"
    )
    engine = Engine(pool, journal, db_url, tmp_path)
    await engine.deploy("scenarios")
    try:
        yield engine
    finally:
        await engine.stop_workers()
        await engine.hosts.close()
