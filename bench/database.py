"""A throwaway, migrated database for one benchmark run, on the machine's Postgres or embedded."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg

from reactor_jobs.engine.schema import migrate

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_url() -> str:
    return os.environ.get("REACTOR_BENCH_DATABASE_URL", DEFAULT_SERVER)


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@asynccontextmanager
async def bench_database(max_size: int = 24) -> AsyncIterator[asyncpg.Pool]:
    admin = await asyncpg.connect(server_url())
    name = f"rj_bench_{uuid.uuid4().hex[:10]}"
    await admin.execute(f'CREATE DATABASE "{name}"')
    try:
        pool = await asyncpg.create_pool(
            _with_database(server_url(), name),
            min_size=2,
            max_size=max_size,
            server_settings={"jit": "off"},
        )
        async with pool.acquire() as conn:
            await migrate(conn)
        try:
            yield pool
        finally:
            await pool.close()
    finally:
        await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        await admin.close()


def database_url(name: str) -> str:
    """The URL of database `name` on the bench server."""
    return _with_database(server_url(), name)
