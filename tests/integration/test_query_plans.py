"""The hot queries use their indexes: the claim walks runs_ready, never the whole table."""

from __future__ import annotations

import asyncpg
import pytest

from reactor_jobs.engine.claim import CLAIM, LOCK_DUE_JOBS
from reactor_jobs.engine.worker import NEXT_DUE

pytestmark = pytest.mark.integration


async def plan(pool: asyncpg.Pool, query: str, *args: object) -> str:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")  # tiny tables: ask for intent
        rows = await conn.fetch(f"EXPLAIN {query}", *args)
    return "\n".join(r[0] for r in rows)


async def test_claim_queries_use_the_partial_runnable_indexes(pool: asyncpg.Pool) -> None:
    due_jobs = await plan(pool, LOCK_DUE_JOBS, 10, None)
    assert "runs_ready" in due_jobs and "runs_running" in due_jobs
    claim = await plan(pool, CLAIM, 10, ["acme"], ["job"], None)
    assert "runs_ready" in claim and "runs_running" in claim and "runs_resumed" in claim
    assert "runs_waiting" in await plan(pool, NEXT_DUE)


async def test_log_tails_events_listing_and_lineage_use_their_indexes(pool: asyncpg.Pool) -> None:
    from reactor_jobs.projections.queries import SQL

    assert "run_logs_tx_order" in await plan(pool, SQL.logs_tail_job, "acme", "job", "1", 0, 500)
    one_run = await plan(pool, SQL.logs_tail_run, "acme", "job", "1", 0, 500, "run_1")
    assert "run_logs_run_tx_order" in one_run
    listing = await plan(pool, SQL.events_list, "acme", None, False, None, None, 51)
    assert "events_by_org" in listing
    assert "journal_caused_by" in await plan(pool, SQL.lineage_caused, "acme", ["run_1"])


async def test_the_metrics_scrape_reads_unfinished_runs_through_the_partial_indexes(
    pool: asyncpg.Pool,
) -> None:
    from reactor_jobs.telemetry.metrics import ACTIVE_RUNS

    active = await plan(pool, ACTIVE_RUNS)
    assert "runs_ready" in active and "runs_running" in active
    assert "Seq Scan on runs" not in active
