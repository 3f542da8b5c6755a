"""The hot queries use their indexes: the claim walks runs_ready, never the whole table."""

from __future__ import annotations

import asyncpg
import pytest

from reactor_jobs.engine.claim import CLAIM, LOCK_DUE_JOBS
from reactor_jobs.engine.worker import _NEXT_DUE

pytestmark = pytest.mark.integration


async def plan(pool: asyncpg.Pool, query: str, *args: object) -> str:
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")  # tiny tables: ask for intent
        rows = await conn.fetch(f"EXPLAIN {query}", *args)
    return "\n".join(r[0] for r in rows)


async def test_claim_queries_use_the_partial_runnable_indexes(pool: asyncpg.Pool) -> None:
    due_jobs = await plan(pool, LOCK_DUE_JOBS, 10)
    assert "runs_ready" in due_jobs and "runs_running" in due_jobs
    claim = await plan(pool, CLAIM, 10, ["acme"], ["job"])
    assert "runs_ready" in claim and "runs_running" in claim
    assert "runs_waiting" in await plan(pool, _NEXT_DUE)
