"""Data API fixtures: org roles are cluster-wide, so each test that provisions some drops
them (and what they own in its database) when it ends."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from reactor_jobs.data.names import quote_ident
from reactor_jobs.database import connect


@pytest.fixture
async def drop_data_roles(db_url: str) -> AsyncIterator[None]:
    """Use as autouse in a module: set up first, so it tears down after every other fixture
    (the pools that log in as the roles are closed by then)."""
    yield
    conn = await connect(db_url)
    try:
        roles = [r["role"] for r in await conn.fetch("SELECT role FROM _reactor_jobs.data_roles")]
        for role in roles:
            await conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1", role
            )
            await conn.execute(f"DROP OWNED BY {quote_ident(role)} CASCADE")
            await conn.execute(f"DROP ROLE IF EXISTS {quote_ident(role)}")
    finally:
        await conn.close()
