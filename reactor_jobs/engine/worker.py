"""The worker: claims due runs, runs each attempt as a task, keeps their leases alive,
stops the ones cancelled elsewhere, and requeues runs whose worker died.

LISTEN/NOTIFY only wakes it early; it polls every `poll_ms` anyway, so a dropped LISTEN
connection costs latency, never correctness. Nothing here is needed to recover: another
worker picks up whatever this one held once its leases expire.

A database outage (restart, killed backends, network) stops no loop: each logs it once,
backs off, takes fresh connections and carries on. An attempt cut short by a lost
connection is handed back uncharged as soon as the database answers again (leases.py), so
an outage costs the run time, not one of its attempts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from datetime import timedelta

import asyncpg

from reactor_jobs.database import DATABASE_ERRORS, DatabaseHealth, is_disconnect
from reactor_jobs.domain import events as ev
from reactor_jobs.domain.ids import ulid
from reactor_jobs.engine.append_sql import CANCEL_CHANNEL, WORK_CHANNEL
from reactor_jobs.engine.attempt import Attempt, LostOwnership, RunStream
from reactor_jobs.engine.claim import ClaimedRun, claim_due_runs
from reactor_jobs.engine.hosts import HostPool
from reactor_jobs.engine.journal import Journal
from reactor_jobs.engine.leases import expire_leases, release_interrupted
from reactor_jobs.engine.logs import LogSink
from reactor_jobs.functions.registry import Registry
from reactor_jobs.telemetry.metrics import METRICS

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
        health: DatabaseHealth | None = None,
        serves: Sequence[str] | None = None,
    ) -> None:
        self.pool, self.journal, self.dsn = pool, journal, dsn
        self.health = health or DatabaseHealth()
        self.serves = serves  # code-job versions of an app's worker; None: bundles
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
        # Attempts cut short by a lost connection: run id -> attempt, to hand back uncharged.
        self._interrupted: dict[str, int] = {}

    async def run(self, stop: asyncio.Event, *, grace: float = 10.0) -> None:
        """Work until `stop` is set; then let running attempts finish for `grace` seconds."""
        helpers = [
            asyncio.create_task(c)
            for c in (self._listen(stop), self._heartbeats(stop), self._watch(stop))
        ]
        try:
            await self._loop(stop)
        finally:
            await self._drain(grace)
            for task in helpers:
                task.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            await self._drop_connection()
            await self.sink.close()

    async def _loop(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            self._wake.clear()
            free = self.concurrency - len(self.tasks)
            try:
                if free > 0 and await self._claim(free) == free:
                    continue  # there may be more due right now
                wait = await self._until_next_due() if free > 0 else self.poll
                await self._hand_back_interrupted()
                self.health.reached()
            except DATABASE_ERRORS as exc:
                wait = self.health.failed(exc, "claim")
                await self._drop_connection()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(wait):
                    stopping = asyncio.create_task(stop.wait())
                    waking = asyncio.create_task(self._wake.wait())
                    try:
                        await asyncio.wait({stopping, waking}, return_when=asyncio.FIRST_COMPLETED)
                    finally:
                        stopping.cancel()
                        waking.cancel()

    async def _connection(self) -> asyncpg.Connection:
        """The claim loop's connection, taken afresh after one was lost."""
        if self._conn is None or self._conn.is_closed():
            await self._drop_connection()
            self._conn = await self.pool.acquire()
        return self._conn

    async def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # A broken connection is closed by the pool and replaced on a later acquire.
            with contextlib.suppress(*DATABASE_ERRORS):
                await self.pool.release(conn, timeout=5)

    async def _until_next_due(self) -> float:
        """Seconds to wait: until the earliest scheduled run is due, at most the poll interval."""
        seconds = await (await self._connection()).fetchval(_NEXT_DUE)
        return self.poll if seconds is None else min(self.poll, max(float(seconds), 0.001))

    async def _claim(self, free: int) -> int:
        began = time.perf_counter()
        claimed = await claim_due_runs(
            await self._connection(),
            self.journal,
            limit=free,
            worker=self.name,
            lease=self.lease,
            serves=self.serves,
        )
        if claimed:
            METRICS.claim_latency.observe(time.perf_counter() - began)
        for run in claimed:
            # trigger→start: the AttemptStarted's recorded_at minus when the run was due
            started = run.records[-1].recorded_at
            waited = None if run.due_at is None else (started - run.due_at).total_seconds()
            METRICS.run_claimed(waited, _STARTS.get(run.was, "first"))
            self.tasks[run.run_id] = asyncio.create_task(self._attempt(run))
        return len(claimed)

    async def _hand_back_interrupted(self) -> None:
        if not self._interrupted:
            return
        runs, self._interrupted = self._interrupted, {}
        try:
            released = await release_interrupted(
                await self._connection(), self.journal, runs, worker=self.name
            )
        except DATABASE_ERRORS:
            self._interrupted.update(runs)
            raise
        if released:
            log.info("handed back %d run(s) interrupted by the database outage", released)

    async def _attempt(self, run: ClaimedRun) -> None:
        ended = "error"
        try:
            outcome = await self.attempt.run(run, self.streams)
            ended = outcome.kind
            log.debug("run %s: %s %s", run.run_id, outcome.kind, outcome.detail)
        except asyncio.CancelledError:
            ended = "stopped"
            log.info("run %s: attempt stopped (cancelled or lease lost)", run.run_id)
        except Exception as exc:
            if is_disconnect(exc):
                ended = "database_lost"
                log.warning("run %s: attempt interrupted by the database: %s", run.run_id, exc)
                self._interrupted[run.run_id] = _attempt_number(run)
            else:
                log.exception(
                    "run %s: the attempt failed unexpectedly; its lease will expire", run.run_id
                )
        finally:
            METRICS.attempt_ended(*_org_job(run), ended)
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
            try:
                await self._extend_leases()
            except DATABASE_ERRORS as exc:
                self.health.failed(exc, "lease heartbeat")

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

        for failed in await asyncio.gather(*(extend(s) for s in streams), return_exceptions=True):
            if isinstance(failed, BaseException):
                raise failed

    async def _watch(self, stop: asyncio.Event) -> None:
        """Once a second: stop attempts whose run was taken away; requeue expired leases."""
        while not stop.is_set():
            await asyncio.sleep(min(1.0, self.poll))
            try:
                await self._check_ownership_and_leases()
            except DATABASE_ERRORS as exc:
                self.health.failed(exc, "lease check")

    async def _check_ownership_and_leases(self) -> None:
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
        """Hold a LISTEN connection, reconnecting when it drops (killed, server restarted)."""
        listeners: dict[str, Callable[..., None]] = {
            WORK_CHANNEL: lambda *_: self._wake.set(),
            CANCEL_CHANNEL: lambda _conn, _pid, _channel, run_id: self.stop_run(run_id),
        }
        backoff = 0.1
        while not stop.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await (
                    asyncpg.connect(self.dsn, timeout=10) if self.dsn else self.pool.acquire()
                )
                for channel, callback in listeners.items():
                    await conn.add_listener(channel, callback)
                backoff = 0.1
                self._wake.set()  # NOTIFYs sent while it was down are lost: look now
                while not stop.is_set() and not conn.is_closed():
                    await asyncio.sleep(0.2)
                log.info("LISTEN connection closed; reconnecting (polling meanwhile)")
            except DATABASE_ERRORS as exc:
                log.info("LISTEN connection failed (%s); polling meanwhile", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
            finally:
                if conn is not None:
                    await _hang_up(conn, listeners, pooled=self.dsn is None, pool=self.pool)


_STARTS = {"queued": "first", "retrying": "retry", "sleeping": "wake"}


def _org_job(run: ClaimedRun) -> tuple[str, str]:
    first = run.records[0].event  # a run's stream starts with its Triggered
    return (first.org, first.job) if isinstance(first, ev.Triggered) else ("", "")


def _attempt_number(run: ClaimedRun) -> int:
    started = run.records[-1].event  # a claim's stream ends with its AttemptStarted
    assert isinstance(started, ev.AttemptStarted)
    return started.attempt


async def _hang_up(
    conn: asyncpg.Connection,
    listeners: dict[str, Callable[..., None]],
    *,
    pooled: bool,
    pool: asyncpg.Pool,
) -> None:
    # Shielded: the listener is cancelled when its worker stops, and a pooled connection
    # that never went back would keep Pool.close() waiting for ever.
    await asyncio.shield(_give_back(conn, listeners, pooled=pooled, pool=pool))


async def _give_back(
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
    with contextlib.suppress(*DATABASE_ERRORS):
        if pooled:
            await pool.release(conn, timeout=5)
        elif not conn.is_closed():
            await conn.close(timeout=5)
