"""The engine wired up for benchmarks: bench bundles deployed, one job per figure, a worker
running in this process with its own function hosts (HostPool, HostSettings() defaults).

Job code runs in host processes, so bench bundles report timings through what the engine
records: their output (the runs projection's output column), read back after the runs."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from bench.database import database_url
from reactor_jobs.config import HostSettings
from reactor_jobs.database import create_pool
from reactor_jobs.engine.attempt import Outcome, RunStream, function_key
from reactor_jobs.engine.claim import ClaimedRun
from reactor_jobs.engine.hosts import HostPool
from reactor_jobs.engine.journal import Journal
from reactor_jobs.engine.runs import RunControl
from reactor_jobs.engine.worker import Worker
from reactor_jobs.functions.bundle import pack_dir
from reactor_jobs.functions.registry import Registry

ORG = "bench"
BUNDLES = Path(__file__).resolve().parent / "bundles"
FUNCTIONS = ("noop", "steps5", "sleeper", "resumer")
# The spec caps a job's maxConcurrency at 10; a benchmark raises the server's cap so the
# worker's own concurrency is the limit.
CONCURRENCY_CAP = 100_000
JOB_MAX_CONCURRENCY = 100_000
TRIGGER_CHUNK = 1_000

_UNFINISHED = """
SELECT (SELECT count(*) FROM _reactor_jobs.runs
         WHERE org = $1 AND job = $2 AND status IN ('queued', 'sleeping', 'retrying'))
     + (SELECT count(*) FROM _reactor_jobs.runs
         WHERE org = $1 AND job = $2 AND status = 'running')
"""
_NOT_COMPLETED = """
SELECT count(*) FROM _reactor_jobs.runs WHERE run_id = ANY($1::text[]) AND status <> 'completed'
"""
SESSION_APP = "rj-bench-session"
_SESSIONS = """
SELECT count(*) FROM pg_stat_activity
 WHERE datname = current_database() AND application_name = $1
"""
_OTHERS = """
SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()
"""
_COMMITS = """
SELECT (SELECT xact_commit FROM pg_stat_database WHERE datname = current_database())
           AS commits,
       pg_snapshot_xmax(pg_current_snapshot())::text::bigint AS xids
"""
_OUTPUTS = """
SELECT run_id, output FROM _reactor_jobs.runs WHERE run_id = ANY($1::text[])
"""
_SPAN = """
SELECT min(j.recorded_at) FILTER (WHERE j.type = 'AttemptStarted') AS first_claim,
       max(j.recorded_at) FILTER (WHERE j.type = 'Completed') AS last_done,
       count(*) FILTER (WHERE j.type = 'Completed') AS completed,
       count(*) AS rows
  FROM _reactor_jobs.journal AS j WHERE j.run_id = ANY($1::text[])
"""


class Span:
    """What a batch of runs of one job did, by the database clock."""

    def __init__(self, row: asyncpg.Record) -> None:
        self.first_claim: datetime = row["first_claim"]
        self.last_done: datetime = row["last_done"]
        self.completed: int = row["completed"]
        self.rows: int = row["rows"]

    @property
    def seconds(self) -> float:
        return max((self.last_done - self.first_claim).total_seconds(), 1e-6)


class Session:
    """One figure's engine: its own pool (closed at the end, so its backends' statistics
    are flushed), journal, registry, run control and function hosts (one HostPool, as a
    worker process has; closed at the end); workers run in this process."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self.hosts = HostPool(HostSettings())
        self.journal = Journal(pool)
        self.registry = Registry(pool, max_concurrency_cap=CONCURRENCY_CAP)
        self.control = RunControl(pool, self.journal, self.registry)
        self.polls = 0  # statements this bench sent while waiting (counted in commits)

    async def job(self, name: str, function: str) -> str:
        await self.registry.create_job(
            ORG, name, function, max_concurrency=JOB_MAX_CONCURRENCY, max_attempts=1
        )
        return name

    async def trigger_bulk(self, job: str, payloads: Sequence[Any]) -> list[str]:
        ids: list[str] = []
        for i in range(0, len(payloads), TRIGGER_CHUNK):
            ids += await self.control.trigger_many(ORG, job, payloads[i : i + TRIGGER_CHUNK])
        return ids

    async def warm(self, function: str) -> None:
        """Start the org's host and load `function` into it before a worker runs, so a
        figure measures runs, not the host's cold start (the hosts group measures that)."""
        fv = await self.registry.get_version(ORG, function, 1)  # Bench.setup deployed v1
        self.polls += 1
        host = await self.hosts.host(ORG, fv.runtime)
        await host.load(function_key(fv), fv)

    async def outputs(self, run_ids: Sequence[str]) -> dict[str, Any]:
        """The runs' outputs (what their code returned), by run id."""
        rows = await self.pool.fetch(_OUTPUTS, list(run_ids))
        return {r["run_id"]: _json(r["output"]) for r in rows}

    @asynccontextmanager
    async def worker(
        self, concurrency: int, poll_ms: int = 1000, hosts: HostPool | None = None
    ) -> AsyncIterator[Worker]:
        """A worker on this session's hosts (or on `hosts`), stopped at the end."""
        worker = Worker(
            self.pool,
            self.journal,
            self.registry,
            hosts or self.hosts,
            concurrency=concurrency,
            poll_ms=poll_ms,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop, grace=10))
        try:
            yield worker
        finally:
            stop.set()
            await task

    async def wait_finished(self, job: str, timeout: float, every: float = 0.1) -> None:
        """Poll (two partial-index counts) until no run of `job` is runnable or running."""
        async with asyncio.timeout(timeout):
            while True:
                self.polls += 1
                if not await self.pool.fetchval(_UNFINISHED, ORG, job):
                    break
                await asyncio.sleep(every)


class Ends:
    """Attempts of one worker that have ended, by run id (wraps its Attempt.run)."""

    def __init__(self) -> None:
        self.ended: set[str] = set()
        self.changed = asyncio.Event()

    async def wait_for(self, run_id: str, timeout: float = 10) -> None:
        async with asyncio.timeout(timeout):
            while run_id not in self.ended:
                self.changed.clear()
                await self.changed.wait()


def attempt_ends(worker: Worker) -> Ends:
    ends, run = Ends(), worker.attempt.run

    async def tracked(claimed: ClaimedRun, streams: dict[str, RunStream]) -> Outcome:
        try:
            return await run(claimed, streams)
        finally:
            ends.ended.add(claimed.run_id)
            ends.changed.set()

    worker.attempt.run = tracked  # type: ignore[method-assign]
    return ends


class Bench:
    """The bench database with the bench bundles deployed; a Session per figure."""

    def __init__(self, pool: asyncpg.Pool, database: str, cache_dir: Path) -> None:
        self.pool, self.database, self.url = pool, database, database_url(database)
        self.tmp = cache_dir  # the bench's scratch folder, removed at the end

    async def setup(self) -> None:
        registry = Registry(self.pool, max_concurrency_cap=CONCURRENCY_CAP)
        for name in FUNCTIONS:
            await registry.create_function(ORG, name)
            version = await registry.deploy(ORG, name, pack_dir(BUNDLES / name))
            await registry.promote(ORG, name, version)

    @asynccontextmanager
    async def session(self, max_size: int = 24) -> AsyncIterator[Session]:
        pool = await create_pool(
            self.url, min_size=2, max_size=max_size, application_name=SESSION_APP
        )
        session = Session(pool)
        try:
            yield session
        finally:
            await session.hosts.close()
            await session.journal.close()
            await pool.close()

    async def span(self, run_ids: list[str]) -> Span:
        """First claim to last completion of these runs; each must have completed."""
        missing = await self.pool.fetchval(_NOT_COMPLETED, run_ids)
        if missing:
            raise RuntimeError(f"{missing} of {len(run_ids)} bench runs did not complete")
        return Span(await self.pool.fetchrow(_SPAN, run_ids))

    async def commits(self) -> tuple[int, int]:
        """Committed transactions in this database, and write transactions (xids) so far,
        once every session's backend has exited (a backend flushes its counts on exit)."""
        async with asyncio.timeout(10):
            while await self.pool.fetchval(_SESSIONS, SESSION_APP):
                await asyncio.sleep(0.01)
        await self.pool.execute("SELECT pg_stat_force_next_flush()")
        row = await self.pool.fetchrow(_COMMITS)
        assert row is not None
        return int(row["commits"]), int(row["xids"])


async def reconnect_all(pool: asyncpg.Pool) -> None:
    """Replace every connection of `pool` and wait for the old backends to exit: a backend
    flushes its statistics (xact_commit) only now and then, or when it exits."""
    old = {r[0] for r in await pool.fetch(_OTHERS)}
    await pool.expire_connections()
    held = [await pool.acquire() for _ in range(pool.get_size())]
    for conn in held:
        await pool.release(conn)
    async with asyncio.timeout(10):
        while old & {r[0] for r in await pool.fetch(_OTHERS)}:
            await asyncio.sleep(0.01)


@asynccontextmanager
async def bench(pool: asyncpg.Pool) -> AsyncIterator[Bench]:
    name = await pool.fetchval("SELECT current_database()")
    with tempfile.TemporaryDirectory(prefix="rj-bench-") as tmp:
        b = Bench(pool, name, Path(tmp))
        await b.setup()
        await reconnect_all(pool)  # earlier benchmarks' commits must not land in a figure's
        yield b


Row = tuple[str, str, str, str]  # figure, measured, goal, met?


def _json(value: Any) -> Any:
    """A jsonb column as asyncpg returns it (text, unless the pool decodes it)."""
    return msgspec.json.decode(value) if isinstance(value, str | bytes) else value


def met(ok: bool) -> str:
    return "yes" if ok else "NO"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def percentile(values: Sequence[float], p: float) -> float:
    """The p-th percentile (0-100), by linear interpolation; NaN for no values."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[min(int(p), 99) - 1]
