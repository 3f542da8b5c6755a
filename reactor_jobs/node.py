"""One process's engine, wired from config: pool, journal, registry, function hosts, control
and workers. `reactor worker` runs a Node's workers; `reactor serve` adds the HTTP API."""

from __future__ import annotations

import asyncio

import asyncpg

from reactor_jobs.config import Config
from reactor_jobs.data.remote import RemoteData
from reactor_jobs.data.service import DataService
from reactor_jobs.database import DatabaseHealth, create_pool, resolve_database_url
from reactor_jobs.engine.attempt import function_env
from reactor_jobs.engine.hosts import HostPool
from reactor_jobs.engine.journal import Journal
from reactor_jobs.engine.runs import RunControl
from reactor_jobs.engine.scheduler import Scheduler
from reactor_jobs.engine.schema import migrate
from reactor_jobs.engine.worker import Worker
from reactor_jobs.functions.registry import Registry

# Connections a process needs besides extra_connections: the claim loop (1), the group
# commit (2), heartbeat and lease checks (2), logs (1), scheduler and API requests (2).
BASE_POOL = 8


class Node:
    """One process's engine: pool, journal, registry, hosts, run control, workers."""

    def __init__(self, config: Config, url: str, pool: asyncpg.Pool) -> None:
        jobs = config.jobs
        self.config, self.url, self.pool = config, url, pool
        self.health = DatabaseHealth()  # what this process's loops last saw of the database
        self.journal = Journal(pool)
        self.registry = Registry(
            pool,
            max_timeout_ms=jobs.max_timeout_ms,
            max_concurrency_cap=jobs.max_concurrency_cap,
            default_timeout_ms=jobs.default_timeout_ms,
        )
        self.control = RunControl(pool, self.journal, self.registry)
        # Job code runs in function hosts, never in this process.
        self.hosts = HostPool(jobs.functions, env=function_env())
        # Each org's own tables (the Data API, ctx.data), on connections of the org's role.
        self.data = DataService(pool, url)
        external = jobs.data.url
        self.remote_data = RemoteData(external, jobs.data.api_key) if external else None

    @classmethod
    async def open(
        cls,
        config: Config,
        *,
        extra_connections: int = 4,
        create_embedded: bool = False,
        pool_size: int | None = None,
    ) -> Node:
        """The one way to open the engine in a process (what `reactor serve`, `reactor
        worker` and `App` do): resolve the database (embedded when none is configured; a new
        embedded cluster only with `create_embedded`), migrate, connect. Then use
        `node.control` to trigger, `node.worker()` / `run_worker` / `run_serve` to run, and
        `await node.close()` at the end.

        The pool holds `pool_size` connections (default BASE_POOL + extra_connections = 12),
        whatever the concurrency: attempts hold no connection (their appends share the
        journal's group commit), so a worker needs its claim loop's connection, the group
        commit's (at most 2), and brief ones for heartbeats, lease checks, logs and the HTTP
        API; its LISTEN connection is outside the pool. Two processes at any concurrency
        stay far below a default Postgres's max_connections (100)."""
        url = await resolve_database_url(config, create=create_embedded)
        size = pool_size or BASE_POOL + extra_connections
        pool = await create_pool(url, min_size=1, max_size=size)
        async with pool.acquire() as conn:
            await migrate(conn)
        return cls(config, url, pool)

    def worker(
        self,
        *,
        hosts: HostPool | None = None,
        concurrency: int | None = None,
        serves: list[str] | None = None,
    ) -> Worker:
        jobs = self.config.jobs
        worker = Worker(
            self.pool,
            self.journal,
            self.registry,
            hosts or self.hosts,
            concurrency=concurrency or jobs.worker_count,
            serves=serves,
            lease_ms=jobs.lease_ms,
            poll_ms=jobs.scheduler_interval_ms,
            dsn=self.url,
            health=self.health,
        )
        worker.attempt.data = self.remote_data or self.data
        return worker

    async def run_worker(self, stop: asyncio.Event) -> None:
        await self.worker().run(stop)

    async def run_serve(self, stop: asyncio.Event) -> None:
        """Workers plus the cron scheduler: what one `reactor serve` process runs."""
        scheduler = Scheduler(
            self.pool,
            self.control,
            interval_ms=self.config.jobs.scheduler_interval_ms,
            health=self.health,
        )
        await asyncio.gather(self.worker().run(stop), scheduler.run(stop))

    async def close(self) -> None:
        await self.hosts.close()
        await self.data.close()
        if self.remote_data is not None:
            await self.remote_data.close()
        await self.journal.close()
        await self.pool.close()
