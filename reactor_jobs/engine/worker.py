"""The worker: claims due runs, runs each attempt as a task, keeps their leases alive,
stops the ones cancelled elsewhere, and requeues runs whose worker died.

LISTEN/NOTIFY only wakes it early; it polls every `poll_ms` anyway, so a dropped LISTEN
connection costs latency, never correctness. Nothing here is needed to recover: another
worker picks up whatever this one held once its leases expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
from collections.abc import Callable
from datetime import timedelta

import asyncpg

from reactor_jobs.engine import events as ev
from reactor_jobs.engine.append_sql import CANCEL_CHANNEL, WORK_CHANNEL
from reactor_jobs.engine.attempt import Attempt, LostOwnership, RunStream
from reactor_jobs.engine.claim import ClaimedRun, claim_due_runs
from reactor_jobs.engine.hosts import HostPool
from reactor_jobs.engine.ids import ulid
from reactor_jobs.engine.journal import Journal
from reactor_jobs.engine.leases import expire_leases
from reactor_jobs.engine.logs import LogSink
from reactor_jobs.functions.registry import Registry

log = logging.getLogger("reactor_jobs.worker")

# Sleeps and retries due later. Runs already due but over their job's limit wait for a
# completion instead, or every idle worker would spin on them.
_NEXT_DUE = """
SELECT extract(epoch FROM min(available_at) - clock_timestamp()) FROM _reactor_jobs.runs
 WHERE status IN ('sleeping', 'retrying') AND available_at > clock_timestamp()
"""
_OWNED = """
SELECT run_id FROM _reactor_jobs.runs
 WHERE run_id = ANY($1::text[]) AND status = 'running' AND lease_owner = $2
"""


class Worker:
    def __init__(
        self,
        pool: asyncpg.Pool,
        journal: Journal,
        registry: Registry,
        hosts: HostPool,
        *,
        concurrency: int = 4,
        lease_ms: int = 30_000,
        poll_ms: int = 1000,
        dsn: str | None = None,
        name: str | None = None,
    ) -> None:
        self.pool, self.journal, self.dsn = pool, journal, dsn
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{ulid()[-6:]}"
        self.concurrency, self.lease, self.poll = (
            concurrency,
            timedelta(milliseconds=lease_ms),
            poll_ms / 1000,
        )
        self.sink = LogSink(pool)
        self.hosts = hosts
        self.attempt = Attempt(journal, registry, hosts, worker=self.name, sink=self.sink)
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.streams: dict[str, RunStream] = {}
        self._wake = asyncio.Event()
        self._conn: asyncpg.Connection | None = None

    async def run(self, stop: asyncio.Event, *, grace: float = 10.0) -> None:
        """Work until `stop` is set; then let running attempts finish for `grace` seconds."""
        helpers = [
            asyncio.create_task(c)
            for c in (self._listen(stop), self._heartbeats(stop), self._watch(stop))
        ]
        self._conn = await self.pool.acquire()
        try:
            await self._loop(stop)
        finally:
            await self._drain(grace)
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self.pool.release(self._conn)
            await self.sink.close()

    async def _loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            free = self.concurrency - len(self.tasks)
            if free > 0 and await self._claim(free) == free:
                continue  # there may be more due right now
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(await self._until_next_due() if free > 0 else self.poll):
                    stopping = asyncio.create_task(stop.wait())
                    waking = asyncio.create_task(self._wake.wait())
                    try:
                        await asyncio.wait({stopping, waking}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        stopping.cancel()
                        waking.cancel()

    async def _until_next_due(self) -> float:
        """Seconds to wait: until the earliest scheduled run is due, at most the poll interval."""
        assert self._conn is not None
        try:
            seconds = await self._conn.fetchval(_NEXT_DUE)
        except (asyncpg.PostgresError, OSError):
            return self.poll
        return self.poll if seconds is None else min(self.poll, max(float(seconds), 0.001))

    async def _claim(self, free: int) -> int:
        assert self._conn is not None
        try:
            claimed = await claim_due_runs(
                self._conn, self.journal, limit=free, worker=self.name, lease=self.lease
            )
        except (asyncpg.PostgresError, OSError) as exc:
            log.warning("claim failed, retrying after the poll interval: %s", exc)
            return 0
        for run in claimed:
            self.tasks[run.run_id] = asyncio.create_task(self._attempt(run))
        return len(claimed)

    async def _attempt(self, run: ClaimedRun) -> None:
        try:
            outcome = await self.attempt.run(run, self.streams)
            log.debug("run %s: %s %s", run.run_id, outcome.kind, outcome.detail)
        except asyncio.CancelledError:
            log.info("run %s: attempt stopped (cancelled or lease lost)", run.run_id)
        except Exception:
            log.exception(
                "run %s: the attempt failed unexpectedly; its lease will expire", run.run_id
            )
        finally:
            self.tasks.pop(run.run_id, None)
            self._wake.set()

    async def _drain(self, grace: float) -> None:
        if self.tasks:
            await asyncio.wait(list(self.tasks.values()), timeout=grace)
        for task in list(self.tasks.values()):
            task.cancel()
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    def stop_run(self, run_id: str) -> None:
        task = self.tasks.get(run_id)
        if task is not None:
            task.cancel()

    async def _heartbeats(self, stop: asyncio.Event) -> None:
        interval = self.lease.total_seconds() / 3
        while not stop.is_set():
            await asyncio.sleep(interval)
            with contextlib.suppress(asyncpg.PostgresError, OSError):
                await self._extend_leases()

    async def _extend_leases(self) -> None:
        streams = list(self.streams.values())
        if not streams:
            return
        lease_ms = int(self.lease.total_seconds() * 1000)

        async def extend(stream: RunStream) -> None:
            # The database adds lease_ms to its own now(): no worker clock is involved.
            beat = ev.LeaseExtended(
                attempt=stream.fence.attempt or 0, worker=self.name, lease_ms=lease_ms
            )
            try:
                await stream.append([beat])
            except LostOwnership:
                self.stop_run(stream.run_id)

        await asyncio.gather(*(extend(s) for s in streams))

    async def _watch(self, stop: asyncio.Event) -> None:
        """Once a second: stop attempts whose run was taken away; requeue expired leases."""
        while not stop.is_set():
            await asyncio.sleep(min(1.0, self.poll))
            with contextlib.suppress(asyncpg.PostgresError, OSError):
                mine = list(self.tasks)
                if mine:
                    owned = {r[0] for r in await self.pool.fetch(_OWNED, mine, self.name)}
                    for run_id in mine:
                        if run_id not in owned and run_id in self.streams:
                            self.stop_run(run_id)
                async with self.pool.acquire() as conn:
                    if await expire_leases(conn, self.journal):
                        self._wake.set()

    async def _listen(self, stop: asyncio.Event) -> None:
        """Hold a LISTEN connection, reconnecting when it drops."""
        listeners: dict[str, Callable[..., None]] = {
            WORK_CHANNEL: lambda *_: self._wake.set(),
            CANCEL_CHANNEL: lambda _conn, _pid, _channel, run_id: self.stop_run(run_id),
        }
        while not stop.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await (asyncpg.connect(self.dsn) if self.dsn else self.pool.acquire())
                for channel, callback in listeners.items():
                    await conn.add_listener(channel, callback)
                while not stop.is_set() and not conn.is_closed():
                    await asyncio.sleep(0.5)
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning("LISTEN connection lost (%s); polling meanwhile", exc)
                await asyncio.sleep(1)
            finally:
                if conn is not None:
                    await _hang_up(conn, listeners, pooled=self.dsn is None, pool=self.pool)


async def _hang_up(
    conn: asyncpg.Connection,
    listeners: dict[str, Callable[..., None]],
    *,
    pooled: bool,
    pool: asyncpg.Pool,
) -> None:
    with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError):
        if not conn.is_closed():
            for channel, callback in listeners.items():
                await conn.remove_listener(channel, callback)
    if pooled:
        await pool.release(conn)
    elif not conn.is_closed():
        await conn.close()
