"""The worker: claims due runs, runs each attempt as a task, keeps their leases alive,
stops the ones cancelled elsewhere, and requeues runs whose worker died.

Leases live outside the journal: the worker heartbeats one row of its own in `workers`
every lease/3 (write.sql), and its runs' leases hold while that row is current, so a run
that merely runs writes no journal rows. A worker that finds its row lapsed (paused, cut
off) stops every attempt it holds and takes a new name: its runs are being expired, and the
old name stays fenced out. An attempt that ends without releasing its run (an unexpected
error, stopped) is expired by the worker itself, charged, since its heartbeat would
otherwise keep that lease alive.

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
from reactor_jobs.engine.attempt import Attempt, RunStream
from reactor_jobs.engine.claim import ClaimedRun, claim_due_runs
from reactor_jobs.engine.hosts import HostPool
from reactor_jobs.engine.journal import Journal
from reactor_jobs.engine.leases import expire_leases, release_abandoned, release_interrupted
from reactor_jobs.engine.logs import LogSink
from reactor_jobs.functions.registry import Registry
from reactor_jobs.statements import load
from reactor_jobs.telemetry.metrics import METRICS

log = logging.getLogger("reactor_jobs.worker")
_SQL = load("reactor_jobs.engine", "write.sql")
# How often a worker prunes the rows of workers long gone (a cheap DELETE on a small table).
_PRUNE_EVERY_S = 600.0

# Sleeps and retries due later. Runs already due but over their job's limit wait for a
# completion instead, or every idle worker would spin on them.
NEXT_DUE = """
SELECT extract(epoch FROM min(available_at) - clock_timestamp()) FROM _reactor_jobs.runs
 WHERE status IN ('sleeping', 'retrying') AND available_at > clock_timestamp()
"""
# Each run by the name it was claimed under (a worker takes a new name when its row lapsed).
_OWNED = """
SELECT r.run_id FROM _reactor_jobs.runs AS r
  JOIN unnest($1::text[], $2::text[]) AS o (run_id, owner) ON o.run_id = r.run_id
 WHERE r.status = 'running' AND r.lease_owner = o.owner
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
        self._base_name = name or f"{socket.gethostname()}:{os.getpid()}"
        self.name = name or f"{self._base_name}:{ulid()[-6:]}"
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
        # Attempts that ended still holding their run: run id -> (attempt, owner name).
        self._abandoned: dict[str, tuple[int, str]] = {}
        self._registered = False  # our row in `workers` exists under self.name
        self._registering = asyncio.Lock()  # the claim loop and the heartbeat both may
        self._owners: dict[str, str] = {}  # run id -> the name it was claimed under
        self._pruned_at = 0.0

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
            await self._sign_off()
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
                await self._give_up_abandoned()
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
        seconds = await (await self._connection()).fetchval(NEXT_DUE)
        return self.poll if seconds is None else min(self.poll, max(float(seconds), 0.001))

    async def _claim(self, free: int) -> int:
        if not self._registered:
            await self._register(await self._connection())
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
        owner = self._owners[run.run_id] = _claimed_by(run)
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
            if ended in _MAY_HOLD:  # the run may still be ours: give it up (leases.py)
                self._abandoned[run.run_id] = (_attempt_number(run), owner)
            METRICS.attempt_ended(*_org_job(run), ended)
            self.tasks.pop(run.run_id, None)
            self._owners.pop(run.run_id, None)
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
            wait = interval
            try:
                await self._beat()
            except DATABASE_ERRORS as exc:
                self.health.failed(exc, "lease heartbeat")
                # Soon again: after a restart the pool hands out its dead connections one by
                # one, and every lost beat brings the lease closer to lapsing.
                wait = min(interval, 0.05)
            await asyncio.sleep(wait)

    @property
    def _lease_ms(self) -> int:
        return int(self.lease.total_seconds() * 1000)

    async def _register(self, conn: asyncpg.Connection) -> None:
        """Our row in `workers`, under a name never used before (so never a lapsed one)."""
        async with self._registering:
            if self._registered:
                return
            while not await conn.fetchval(_SQL.workers_register, self.name, self._lease_ms):
                self._rename()
            self._registered = True

    def _rename(self) -> None:
        self.name = f"{self._base_name}:{ulid()[-6:]}"
        self.attempt.worker = self.name

    async def _beat(self) -> None:
        """One heartbeat: a single-row UPDATE, whatever the number of running runs."""
        async with self.pool.acquire() as conn:
            if not self._registered:
                await self._register(conn)
                return
            if await conn.fetchval(_SQL.workers_heartbeat, self.name, self._lease_ms):
                return
            lapsed = self.name
            log.warning(
                "worker %s: its heartbeat lapsed (paused or cut off for over a lease);"
                " stopping its %d attempt(s), they are expired and retried",
                lapsed,
                len(self.tasks),
            )
            self._registered = False
            self._rename()
            for run_id in list(self.tasks):
                self.stop_run(run_id)
            await self._register(conn)

    async def _give_up_abandoned(self) -> None:
        if not self._abandoned:
            return
        held, self._abandoned = self._abandoned, {}
        by_owner: dict[str, dict[str, int]] = {}
        for run_id, (attempt, owner) in held.items():
            by_owner.setdefault(owner, {})[run_id] = attempt
        try:
            for owner, runs in by_owner.items():
                given = await release_abandoned(
                    await self._connection(), self.journal, runs, worker=owner
                )
                if given:
                    log.info("expired %d run(s) whose attempt ended holding them", given)
                for run_id in runs:
                    held.pop(run_id)
        except DATABASE_ERRORS:
            self._abandoned.update(held)
            raise

    async def _sign_off(self) -> None:
        """Stopping: give up the runs still held, then our row (their leases end now)."""
        with contextlib.suppress(*DATABASE_ERRORS):
            await self._give_up_abandoned()
            async with self.pool.acquire() as conn:
                await conn.execute(_SQL.workers_forget, self.name)

    async def _watch(self, stop: asyncio.Event) -> None:
        """Once a second: stop attempts whose run was taken away; requeue expired leases."""
        while not stop.is_set():
            await asyncio.sleep(min(1.0, self.poll))
            try:
                await self._check_ownership_and_leases()
            except DATABASE_ERRORS as exc:
                self.health.failed(exc, "lease check")

    async def _check_ownership_and_leases(self) -> None:
        mine = [run_id for run_id in self.tasks if run_id in self._owners]
        if mine:
            owners = [self._owners[run_id] for run_id in mine]
            owned = {r[0] for r in await self.pool.fetch(_OWNED, mine, owners)}
            for run_id in mine:
                if run_id not in owned and run_id in self.streams:
                    self.stop_run(run_id)
        async with self.pool.acquire() as conn:
            if await expire_leases(conn, self.journal):
                self._wake.set()
            if time.monotonic() - self._pruned_at > _PRUNE_EVERY_S:
                await conn.execute(_SQL.workers_prune)
                self._pruned_at = time.monotonic()

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
# Attempt ends that may leave the run running under our name: nothing else releases it.
_MAY_HOLD = frozenset({"error", "stopped", "lost"})


def _org_job(run: ClaimedRun) -> tuple[str, str]:
    first = run.records[0].event  # a run's stream starts with its Triggered
    return (first.org, first.job) if isinstance(first, ev.Triggered) else ("", "")


def _claimed_by(run: ClaimedRun) -> str:
    started = run.records[-1].event  # a claim's stream ends with its AttemptStarted
    assert isinstance(started, ev.AttemptStarted)
    return started.worker


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
