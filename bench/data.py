"""`python -m bench --only data`: ctx.data through a function host, beside raw asyncpg.

A job does one keyed select and one insert through ctx.data (outside steps: each is a
recorded decision; the insert commits with its DataCalled). Figures: runs/s, per-call
latency seen by job code, the same two statements by raw asyncpg from this process in the
same run, the per-call overhead (p50 difference), and the commits each write costs."""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import asyncpg

from bench.journal import raw_insert_rate
from reactor_jobs.config import HostSettings
from reactor_jobs.data.service import DataService
from reactor_jobs.engine.hosts import HostPool
from reactor_jobs.engine.journal import Journal
from reactor_jobs.engine.runs import RunControl
from reactor_jobs.engine.worker import Worker
from reactor_jobs.functions.bundle import pack_dir
from reactor_jobs.functions.registry import Registry
from reactor_jobs.projections.queries import get_run

ORG = "bench"
RUNS = 200
RAW_START = 40_000_000  # ids of the raw asyncpg inserts; ctx.data's are below
AT_ONCE = 8  # runs in flight for runs/s (the worker runs 4 at a time)
Row = tuple[str, ...]
_CODE = """
import time

async def fetch(request, env, ctx):
    p = await request.json()
    t0 = time.perf_counter()
    await ctx.data.from_("items").select("id,v").eq("id", p["id"])
    t1 = time.perf_counter()
    if p.get("write", True):
        await ctx.data.from_("items").insert({"id": p["id"], "v": "x"}, returning="minimal")
    t2 = time.perf_counter()
    return {"select_ms": (t1 - t0) * 1000, "insert_ms": (t2 - t1) * 1000}
"""
_MANIFEST = '{"name": "data-bench", "runtime": "python", "job": {"maxConcurrency": 10}}'


def _p50(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


async def _commits_per_write(pool: asyncpg.Pool, schema: str) -> tuple[int, int]:
    """(ctx.data inserts, distinct transactions that committed them and their DataCalled
    events): each row and each journal entry keeps the id of the transaction that wrote it
    (items.tx, journal.tx_id), so this counts commits exactly, unlike a server-wide commit
    counter that every poll and every other database also moves."""
    row = await pool.fetchrow(
        f"""
        WITH w AS (SELECT tx FROM "{schema}".items WHERE id < $1),
             j AS (SELECT tx_id AS tx FROM _reactor_jobs.journal
                    WHERE type = 'DataCalled' AND data ->> 'name' = 'data:items#2')
        SELECT (SELECT count(*) FROM w) AS n,
               (SELECT count(DISTINCT tx) FROM (SELECT tx FROM w UNION ALL SELECT tx FROM j) u)
                 AS commits
        """,
        RAW_START,
    )
    assert row is not None
    return int(row["n"]), int(row["commits"])


async def _runs(
    control: RunControl, journal: Journal, start: int, n: int, write: bool, at_once: int = AT_ONCE
) -> tuple[float, list[dict[str, Any]]]:
    began = time.perf_counter()
    outputs: list[dict[str, Any]] = []
    for chunk in range(0, n, at_once):  # within the job's maxConcurrency (admission)
        ids = [
            (await control.trigger(ORG, "data-bench", payload={"id": start + i, "write": write})).id
            for i in range(chunk, min(n, chunk + at_once))
        ]
        async with asyncio.timeout(120):
            for run_id in ids:
                while True:
                    run = await get_run(control.pool, ORG, run_id)
                    if run.status in ("completed", "failed"):
                        outputs.append(run.output or {})
                        break
                    await asyncio.sleep(0.002)
    return time.perf_counter() - began, outputs


async def _raw(
    pool: asyncpg.Pool, data: DataService, start: int, n: int
) -> tuple[list[float], list[float]]:
    selects, inserts = [], []
    async with data.connection(ORG) as conn:
        for i in range(n):
            t0 = time.perf_counter()
            await conn.fetch("SELECT id, v FROM items WHERE id = $1", start + i)
            t1 = time.perf_counter()
            await conn.execute("INSERT INTO items (id, v) VALUES ($1, $2)", start + i, "x")
            inserts.append((time.perf_counter() - t1) * 1000)
            selects.append((t1 - t0) * 1000)
    return selects, inserts


async def data_figures(pool: asyncpg.Pool, runs: int = RUNS) -> tuple[list[Row], list[str]]:
    url = pool._connect_args[0]  # the bench database's URL (asyncpg keeps it)
    data = DataService(pool, url)
    await data.run_sql(
        ORG,
        "CREATE TABLE items (id bigint PRIMARY KEY, v text,"
        " tx xid8 NOT NULL DEFAULT pg_current_xact_id())",  # which commit wrote the row
    )
    journal = Journal(pool)
    registry = Registry(pool)
    control = RunControl(pool, journal, registry=registry)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "code").mkdir()
        (Path(tmp) / "code" / "index.py").write_text(_CODE)
        (Path(tmp) / "function.json").write_text(_MANIFEST)
        await registry.create_function(ORG, "data-bench")
        version = await registry.deploy(ORG, "data-bench", pack_dir(Path(tmp)))
    await registry.promote(ORG, "data-bench", version)
    await registry.create_job(ORG, "data-bench", "data-bench")
    hosts = HostPool(HostSettings(), env={})
    worker = Worker(pool, journal, registry, hosts, concurrency=4, poll_ms=50)
    worker.attempt.data = data
    stop = asyncio.Event()
    task = asyncio.create_task(worker.run(stop, grace=0.2))
    try:
        await _runs(control, journal, 10_000_000, 10, True)  # warm-up: host, pools
        reads_s, _ = await _runs(control, journal, 20_000_000, runs, False)
        rw_s, _ = await _runs(control, journal, 30_000_000, runs, True)
        # Latency one run at a time, as the raw statements below run: with runs in flight
        # the figures would mostly measure queueing for 2 cores, not the call's overhead.
        _, rw = await _runs(control, journal, 35_000_000, runs, True, at_once=1)
        raw_select, raw_insert = await _raw(pool, data, RAW_START, runs)
        raw1 = await raw_insert_rate(pool, 1, 2.0)  # the reference: commits/s, 1 connection
        writes, commits = await _commits_per_write(pool, (await data.org(ORG)).schema)
    finally:
        stop.set()
        await task
        await hosts.close()
        role = (await data.org(ORG)).role
        await data.close()
        await journal.close()
        # Roles are cluster-wide and outlive the bench database: drop the org's.
        await pool.execute(f'DROP OWNED BY "{role}" CASCADE')
        await pool.execute(f'DROP ROLE IF EXISTS "{role}"')
    select_ms = [o["select_ms"] for o in rw if "select_ms" in o]
    insert_ms = [o["insert_ms"] for o in rw if "insert_ms" in o]
    per_write = commits / writes if writes else float("nan")
    over_select = _p50(select_ms) - _p50(raw_select)
    over_insert = _p50(insert_ms) - _p50(raw_insert)
    commit_ms = 1000 / raw1

    def vs(ms: float) -> str:
        return f"{ms:.2f} ms = {ms / commit_ms:.1f}x raw commit"

    rows: list[Row] = [
        ("data: runs/s (1 keyed select + 1 insert via ctx.data, 4 at a time)",
         f"{runs / rw_s:,.0f}", "", ""),
        ("data: raw(1) commit reference (single-row INSERTs, 1 connection)",
         f"{raw1:,.0f} commits/s = {commit_ms:.2f} ms", "", ""),
        ("data: ctx.data select, p50 (job code's view, 1 run at a time)",
         vs(_p50(select_ms)), "", ""),
        ("data: ctx.data insert (exactly once), p50, 1 run at a time",
         vs(_p50(insert_ms)), "", ""),
        ("data: raw asyncpg select / insert, p50", f"{_p50(raw_select):.2f} / "
         f"{_p50(raw_insert):.2f} ms", "", ""),
        ("data: per-call overhead p50, select / insert",
         f"{over_select:.2f} / {over_insert:.2f} ms",
         "<= 1 ms", "yes" if max(over_select, over_insert) <= 1 else "no"),
        ("data: commits per ctx.data write (its own, with its journal entry)",
         f"{per_write:.2f} ({commits} commits for {writes} writes)", "1 (0 extra)",
         "yes" if per_write <= 1 else "no"),
    ]  # fmt: skip
    notes = [
        f"data: {runs} runs of select+insert vs {runs} of select only"
        f" ({runs / reads_s:,.0f} runs/s);"
        " commits per write = distinct transaction ids of the inserted rows and of their"
        " DataCalled entries / inserts. Raw asyncpg: the same statements on the org's own"
        " connection, autocommit, from the bench process (its insert p50 is the cost of one"
        " commit here); ctx.data's figures are seen by job code in its host and"
        " include the host <-> worker round trip and the journal entry.",
    ]
    return rows, notes
