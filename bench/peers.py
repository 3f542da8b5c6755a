"""Peers (issue 15): pgqueuer, a plain Postgres queue, beside Reactor Jobs on the same server.

Same N no-op jobs, same machine, in one run, so the ratios cancel machine noise:

- bulk enqueue: pgqueuer's `Queries.enqueue` with lists (best chunk of a grid) against
  `RunControl.trigger_many` (chunks of TRIGGER_CHUNK), wall clock around the calls;
- drain: pgqueuer's QueueManager in drain mode, in 1 or 2 worker processes (`python -m
  bench.peers drain ...`), best of a batch-size grid, first dequeue to exit; ours: one Worker
  through function hosts (as H1), first claim to last completion by the database clock;
- trigger -> handler start, one at a time into an idle worker: pgqueuer's entrypoint records
  perf_counter at its first line; ours the noop bundle returns it (the host shares the
  machine's monotonic clock), in-process (RunControl.trigger) and through `reactor serve`'s
  HTTP API;
- beside each: commits/job (pg_stat_database xact_commit deltas of each system's own
  database), statements per claim/dequeue (asyncpg query loggers; pg_stat_statements is not
  preloaded on the bench server) and rows written per job (our journal rows; pgqueuer's log
  rows, plus its queue row inserted and deleted).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from bench.database import database_url, server_url
from bench.harness import (
    ORG,
    SESSION_APP,
    Bench,
    Row,
    Session,
    attempt_ends,
    bench,
    ms,
    percentile,
)
from bench.journal import raw_insert_rate
from reactor_jobs.database import PooledConnection
from reactor_jobs.engine.claim import LOCK_DUE_JOBS


@dataclass
class Config:
    jobs: int = 5_000
    concurrency: int = 256
    batch_sizes: tuple[int, ...] = (10, 100, 500)
    processes: tuple[int, ...] = (1, 2)
    enqueue_chunks: tuple[int, ...] = (1_000, 5_000)
    latency_runs: int = 40

    def describe(self) -> list[str]:
        return [
            f"Peers. {self.jobs:,} no-op jobs each. pgqueuer: best of batch sizes"
            f" {list(self.batch_sizes)} x processes {list(self.processes)} (drain mode),"
            f" enqueue chunks {list(self.enqueue_chunks)}; Reactor Jobs: one Worker of"
            f" concurrency {self.concurrency} through function hosts, trigger_many chunks of"
            " 1,000.",
            f"  Latency: {self.latency_runs} jobs one at a time into an idle worker; handler's"
            " first line (perf_counter) minus just before the enqueue/trigger call.",
            "  commits/job: xact_commit delta of the system's database / jobs; statements/claim:"
            " statements on the claiming connection(s) / claim or dequeue calls (asyncpg query"
            " logger); rows/job: journal rows (ours), log rows + the queue row (pgqueuer).",
        ]


# --- pgqueuer --------------------------------------------------------------------------------


_XACTS = "SELECT xact_commit FROM pg_stat_database WHERE datname = $1"


@asynccontextmanager
async def _pgq_database() -> AsyncIterator[str]:
    """A database of pgqueuer's own on the bench server, with its schema installed."""
    from pgqueuer import AsyncpgDriver, Queries

    admin = await asyncpg.connect(server_url())
    name = f"rj_bench_pgq_{uuid.uuid4().hex[:10]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        conn = await asyncpg.connect(database_url(name))
        try:
            await Queries(AsyncpgDriver(conn)).install()
        finally:
            await conn.close()
        yield name
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


async def _commits(name: str) -> int:
    """Committed transactions in database `name`, read from another database (so the
    reading does not count) once its backends have exited and flushed their counts."""
    admin = await asyncpg.connect(server_url())
    try:
        async with asyncio.timeout(10):
            while await admin.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1", name
            ):
                await asyncio.sleep(0.01)
        return int(await admin.fetchval(_XACTS, name))
    finally:
        await admin.close()


async def _pgq_enqueue(name: str, n: int, chunk: int) -> float:
    """Seconds to enqueue n no-op jobs in calls of `chunk`."""
    from pgqueuer import AsyncpgDriver, Queries

    conn = await asyncpg.connect(database_url(name))
    try:
        queries = Queries(AsyncpgDriver(conn))
        started = time.perf_counter()
        for i in range(0, n, chunk):
            size = min(chunk, n - i)
            await queries.enqueue(["noop"] * size, [None] * size, [0] * size)
        return time.perf_counter() - started
    finally:
        await conn.close()


async def _pgq_clear(name: str) -> None:
    conn = await asyncpg.connect(database_url(name))
    try:
        await conn.execute("TRUNCATE pgqueuer, pgqueuer_log, pgqueuer_statistics")
    finally:
        await conn.close()


async def drain_child(url: str, batch_size: int) -> dict[str, Any]:
    """One pgqueuer worker process: drain the queue; first/last wall time, statements."""
    from datetime import timedelta

    from pgqueuer import AsyncpgDriver, Job, Queries, QueueManager
    from pgqueuer.types import QueueExecutionMode

    conn = await asyncpg.connect(url)
    statements: Counter[str] = Counter()
    conn.add_query_logger(
        lambda q: statements.update(["dequeue" if "SKIP LOCKED" in q.query else "other"])
    )
    qm = QueueManager(Queries(AsyncpgDriver(conn)))
    done = 0

    @qm.entrypoint("noop")
    async def noop(job: Job) -> None:
        nonlocal done
        done += 1

    started = time.time()
    await qm.run(
        batch_size=batch_size,
        mode=QueueExecutionMode.drain,
        dequeue_timeout=timedelta(seconds=0.2),
        log_aggregation_interval=timedelta(0),
    )
    ended = time.time()
    await conn.close()
    return {"started": started, "ended": ended, "jobs": done, **statements}


@dataclass
class Drain:
    setting: str
    per_second: float
    commits_per_job: float
    statements_per_claim: float
    statements_per_job: float
    rows_per_job: float


async def _pgq_drain(name: str, n: int, batch_size: int, processes: int) -> Drain:
    await _pgq_clear(name)
    await _pgq_enqueue(name, n, 5_000)
    before = await _commits(name)
    command = [sys.executable, "-m", "bench.peers", "drain", database_url(name), str(batch_size)]
    children = [
        await asyncio.create_subprocess_exec(*command, stdout=asyncio.subprocess.PIPE)
        for _ in range(processes)
    ]
    results = []
    for child in children:
        out, _ = await child.communicate()
        if child.returncode != 0:
            raise RuntimeError(f"pgqueuer drain child exited {child.returncode}")
        results.append(json.loads(out.decode().strip().splitlines()[-1]))
    after = await _commits(name)
    conn = await asyncpg.connect(database_url(name))
    try:
        left = await conn.fetchval("SELECT count(*) FROM pgqueuer")
        logs = await conn.fetchval("SELECT count(*) FROM pgqueuer_log")
    finally:
        await conn.close()
    jobs = sum(r["jobs"] for r in results)
    if left or jobs != n:
        raise RuntimeError(f"pgqueuer drained {jobs} of {n}; {left} left in the queue")
    seconds = max(r["ended"] for r in results) - min(r["started"] for r in results)
    dequeues = sum(r.get("dequeue", 0) for r in results)
    statements = sum(r.get("dequeue", 0) + r.get("other", 0) for r in results)
    return Drain(
        setting=f"batch {batch_size}, {processes} process{'es' if processes > 1 else ''}",
        per_second=n / seconds,
        commits_per_job=(after - before) / n,
        statements_per_claim=statements / max(dequeues, 1),
        statements_per_job=statements / n,
        rows_per_job=logs / n + 1,  # + its queue row (inserted, then deleted)
    )


async def _pgq_latencies(name: str, runs: int) -> list[float]:
    """An idle QueueManager in this process; one enqueue at a time from another connection."""
    from datetime import timedelta

    from pgqueuer import AsyncpgDriver, Job, Queries, QueueManager

    await _pgq_clear(name)
    worker_conn = await asyncpg.connect(database_url(name))
    sender_conn = await asyncpg.connect(database_url(name))
    qm = QueueManager(Queries(AsyncpgDriver(worker_conn)))
    started: dict[int, float] = {}
    arrived = asyncio.Event()

    @qm.entrypoint("lat")
    async def lat(job: Job) -> None:
        started[int(job.id)] = time.perf_counter()
        arrived.set()

    task = asyncio.create_task(
        qm.run(batch_size=10, dequeue_timeout=timedelta(seconds=1))  # LISTEN wakes it
    )
    sender = Queries(AsyncpgDriver(sender_conn))
    gaps: list[float] = []
    try:
        await asyncio.sleep(0.5)
        for i in range(runs + 1):
            arrived.clear()
            sent = time.perf_counter()
            (job_id,) = await sender.enqueue("lat", None)
            async with asyncio.timeout(10):
                await arrived.wait()
            if i:  # the first warms the worker up
                gaps.append(started[int(job_id)] - sent)
            await asyncio.sleep(0.02)
    finally:
        qm.shutdown.set()
        await task
        await sender_conn.close()
        if not worker_conn.is_closed():
            await worker_conn.close()
    return gaps


# --- Reactor Jobs ----------------------------------------------------------------------------


@dataclass
class Statements:
    """Statements per connection of a session pool, and which ran the claim."""

    by_conn: Counter[int] = field(default_factory=Counter)
    claims: Counter[int] = field(default_factory=Counter)

    def init(self, conn: asyncpg.Connection) -> None:
        key = id(conn)

        def logged(q: Any) -> None:
            self.by_conn[key] += 1
            if q.query == LOCK_DUE_JOBS:
                self.claims[key] += 1

        conn.add_query_logger(logged)

    def per_claim(self) -> float:
        claiming = [k for k in self.claims]
        return sum(self.by_conn[k] for k in claiming) / max(sum(self.claims.values()), 1)


@asynccontextmanager
async def _counted_session(b: Bench, statements: Statements) -> AsyncIterator[Session]:
    async def init(conn: asyncpg.Connection) -> None:
        statements.init(conn)

    pool = await asyncpg.create_pool(
        b.url, min_size=2, max_size=24, init=init, connection_class=PooledConnection,
        server_settings={"jit": "off", "application_name": SESSION_APP},
    )  # fmt: skip
    s = Session(pool)
    try:
        yield s
    finally:
        await s.hosts.close()
        await s.journal.close()
        await pool.close()


@dataclass
class Ours:
    trigger_s: float
    drain: Drain


async def _ours_bulk_and_drain(b: Bench, cfg: Config) -> Ours:
    statements = Statements()
    async with b.session() as s:
        await s.job("peers-noop", "noop")
    before = await b.commits()
    async with _counted_session(b, statements) as s:
        started = time.perf_counter()
        ids = await s.trigger_bulk("peers-noop", [None] * cfg.jobs)
        trigger_s = time.perf_counter() - started
        await s.warm("noop")
        async with s.worker(cfg.concurrency):
            await s.wait_finished("peers-noop", timeout=600)
        polls = s.polls
    after = await b.commits()
    span = await b.span(ids)
    total = sum(statements.by_conn.values()) - polls
    return Ours(
        trigger_s=trigger_s,
        drain=Drain(
            setting=f"1 worker, concurrency {cfg.concurrency}, through hosts",
            per_second=cfg.jobs / span.seconds,
            commits_per_job=(after[0] - before[0] - polls) / cfg.jobs,
            statements_per_claim=statements.per_claim(),
            statements_per_job=total / cfg.jobs,
            rows_per_job=span.rows / cfg.jobs,
        ),
    )


async def _ours_latencies(b: Bench, runs: int) -> list[float]:
    sent: dict[str, float] = {}
    async with b.session() as s:
        await s.job("peers-latency", "noop")
        async with s.worker(concurrency=4, poll_ms=1000) as worker:
            ended = attempt_ends(worker)
            warm = (await s.control.trigger(ORG, "peers-latency")).id
            await ended.wait_for(warm)
            await asyncio.sleep(0.5)
            for _ in range(runs):
                before = time.perf_counter()
                run_id = (await s.control.trigger(ORG, "peers-latency")).id
                sent[run_id] = before
                await ended.wait_for(run_id)
                await asyncio.sleep(0.02)
        outputs = await s.outputs(list(sent))
    return [float(outputs[r]) - sent[r] for r in sent]


async def _ours_http_latencies(b: Bench, pool: asyncpg.Pool, runs: int) -> list[float]:
    """One trigger at a time through `reactor serve` (its own workers and hosts)."""
    import aiohttp

    from bench.http import EMAIL, PASSWORD, _sign_up, _start_server, _stop

    async with b.session() as s:
        await s.job("peers-http", "noop")
    data_dir = b.tmp / "peers"
    await _sign_up(pool, data_dir)
    server, base = await _start_server(b.url, data_dir / "serve")
    sent: dict[str, float] = {}
    try:
        async with aiohttp.ClientSession(base) as http:
            async with http.post(
                "/auth/v1/token", params={"grant_type": "password"},
                json={"email": EMAIL, "password": PASSWORD},
            ) as response:  # fmt: skip
                response.raise_for_status()
                token = (await response.json())["access_token"]
            headers = {"Authorization": f"Bearer {token}", "X-Reactor-Org": ORG}
            for i in range(runs + 1):
                before = time.perf_counter()
                async with http.post(
                    "/jobs/v1/peers-http/trigger", json={"payload": None}, headers=headers
                ) as response:
                    if response.status != 201:
                        raise RuntimeError(f"trigger: {response.status} {await response.text()}")
                    run_id = (await response.json())["id"]
                if i:  # the first starts the server's host and loads the bundle
                    sent[run_id] = before
                await _wait_completed(pool, run_id)
                await asyncio.sleep(0.02)
    finally:
        await _stop(server)
    rows = await pool.fetch(
        "SELECT run_id, output FROM _reactor_jobs.runs WHERE run_id = ANY($1::text[])", list(sent)
    )
    return [float(json.loads(r["output"])) - sent[r["run_id"]] for r in rows]


async def _wait_completed(pool: asyncpg.Pool, run_id: str) -> None:
    async with asyncio.timeout(30):
        while (
            await pool.fetchval("SELECT status FROM _reactor_jobs.runs WHERE run_id = $1", run_id)
        ) != "completed":
            await asyncio.sleep(0.002)


# --- the table -------------------------------------------------------------------------------


def _ratio(ours: float, theirs: float) -> str:
    return f"{ours / theirs:.2f}x"


def _costs(d: Drain) -> str:
    return (
        f"{d.commits_per_job:.3f} commits/job, {d.statements_per_claim:.1f} statements/claim,"
        f" {d.statements_per_job:.2f} statements/job, {d.rows_per_job:.2f} rows/job"
    )


def _lat(values: list[float]) -> str:
    return f"{ms(percentile(values, 50))} / {ms(percentile(values, 99))}"


async def peers_figures(pool: asyncpg.Pool, cfg: Config, seconds: float) -> list[Row]:
    import pgqueuer

    raw1 = await raw_insert_rate(pool, 1, seconds)
    rows: list[Row] = [
        (
            "reference: raw single-row INSERT commits, 1 conn",
            f"{raw1:,.0f} /s",
            "",
            "",
        )
    ]
    version = getattr(pgqueuer, "__version__", "?")
    async with _pgq_database() as name:
        enqueue: dict[int, float] = {}
        for chunk in cfg.enqueue_chunks:
            await _pgq_clear(name)
            enqueue[chunk] = cfg.jobs / await _pgq_enqueue(name, cfg.jobs, chunk)
        drains = [
            await _pgq_drain(name, cfg.jobs, batch, procs)
            for procs in cfg.processes
            for batch in cfg.batch_sizes
        ]
        pgq_lat = await _pgq_latencies(name, cfg.latency_runs)
    async with bench(pool) as b:
        ours = await _ours_bulk_and_drain(b, cfg)
        our_lat = await _ours_latencies(b, cfg.latency_runs)
        http_lat = await _ours_http_latencies(b, pool, cfg.latency_runs)
    best_chunk = max(enqueue, key=lambda c: enqueue[c])
    best = max(drains, key=lambda d: d.per_second)
    our_enqueue = cfg.jobs / ours.trigger_s
    d = ours.drain
    rows += [
        (
            f"P1. bulk enqueue, {cfg.jobs:,} jobs: pgqueuer {version} (chunks of {best_chunk:,})"
            " vs trigger_many",
            f"{enqueue[best_chunk]:,.0f}/s vs {our_enqueue:,.0f}/s ="
            f" {_ratio(our_enqueue, enqueue[best_chunk])}",
            ">= 0.5x",
            "yes" if our_enqueue >= 0.5 * enqueue[best_chunk] else "NO",
        ),
        (
            f"P2. drain no-op: pgqueuer best ({best.setting}) vs ours ({d.setting})",
            f"{best.per_second:,.0f}/s vs {d.per_second:,.0f}/s ="
            f" {_ratio(d.per_second, best.per_second)}",
            ">= 1.0x",
            "yes" if d.per_second >= best.per_second else "NO",
        ),
        ("P2. pgqueuer's costs (best setting)", _costs(best), "", ""),
        ("P2. ours", _costs(d), "", ""),
        *[
            (f"P2. pgqueuer grid: {g.setting}", f"{g.per_second:,.0f}/s; {_costs(g)}", "", "")
            for g in drains
        ],
        (
            "P3. trigger -> handler start p50 / p99: pgqueuer vs ours in-process",
            f"{_lat(pgq_lat)} vs {_lat(our_lat)} ="
            f" {_ratio(percentile(our_lat, 50), percentile(pgq_lat, 50))} /"
            f" {_ratio(percentile(our_lat, 99), percentile(pgq_lat, 99))}",
            "<= 1.0x",
            "yes"
            if percentile(our_lat, 50) <= percentile(pgq_lat, 50)
            and percentile(our_lat, 99) <= percentile(pgq_lat, 99)
            else "NO",
        ),
        (
            "P3. ours through the HTTP API (reactor serve), p50 / p99",
            f"{_lat(http_lat)} = {_ratio(percentile(http_lat, 50), percentile(pgq_lat, 50))} /"
            f" {_ratio(percentile(http_lat, 99), percentile(pgq_lat, 99))} of pgqueuer's",
            "<= 1.0x",
            "yes"
            if percentile(http_lat, 50) <= percentile(pgq_lat, 50)
            and percentile(http_lat, 99) <= percentile(pgq_lat, 99)
            else "NO",
        ),
    ]
    return rows


def _main(argv: list[str]) -> None:
    if argv[:1] == ["drain"]:
        print(json.dumps(asyncio.run(drain_child(argv[1], int(argv[2])))))
        return
    raise SystemExit("usage: python -m bench.peers drain URL BATCH_SIZE")


if __name__ == "__main__":
    _main(sys.argv[1:])
