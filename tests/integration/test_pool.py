"""The engine's pools skip asyncpg's reset round trip on release; nothing leaks through."""

from __future__ import annotations

import pytest

from reactor_jobs.database import create_pool
from reactor_jobs.domain import events as ev
from reactor_jobs.engine.journal import Journal

pytestmark = pytest.mark.integration


async def test_release_sends_no_reset_yet_rolls_back_an_open_transaction(db_url: str) -> None:
    pool = await create_pool(db_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            assert conn.get_reset_query() == ""
            await conn.execute("CREATE TABLE t (x int)")
            tx = conn.transaction()
            await tx.start()
            await conn.execute("INSERT INTO t VALUES (1)")  # left open on purpose
        async with pool.acquire() as conn:  # the same, single connection
            assert await conn.fetchval("SELECT count(*) FROM t") == 0
            assert not conn.is_in_transaction()
    finally:
        await pool.close()


async def test_the_journal_hands_back_its_connections_with_default_settings(db_url: str) -> None:
    pool = await create_pool(db_url, min_size=1, max_size=1)
    try:
        journal = Journal(pool)
        event = ev.Triggered(
            org="acme", job="j", function="f", function_version=1,
            trigger=ev.TriggerInfo(kind="manual"), payload=None,
        )  # fmt: skip
        await journal.append("run_pool", [event], expected_position=0)
        await journal.close()
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW plan_cache_mode") == "auto"
    finally:
        await pool.close()
