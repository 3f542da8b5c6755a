"""How CLI commands reach the database: the resolved URL and a short-lived pool."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from reactor_jobs.config import Config
from reactor_jobs.database import create_pool, resolve_database_url


@asynccontextmanager
async def open_pool(config: Config, *, max_size: int = 4) -> AsyncIterator[asyncpg.Pool]:
    url = await resolve_database_url(config)
    pool = await create_pool(url, min_size=1, max_size=max_size)
    try:
        yield pool
    finally:
        await pool.close()
