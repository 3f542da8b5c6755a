"""Shared fixtures: one Postgres server per session, one migrated template, one fresh clone
per test (`db_url`, `pool`), so no test sees another's rows.

The server is REACTOR_TEST_DATABASE_URL if set; else the local Postgres on 127.0.0.1:5432 (always
under CI); else an embedded Postgres with its files in .reactor/test-pgdata
(REACTOR_TEST_DATABASE_URL=embedded forces that).
"""

from __future__ import annotations

import os
import secrets
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest

from reactor_jobs.database import connect, create_pool, start_embedded, with_database
from reactor_jobs.engine.journal import Journal
from reactor_jobs.engine.schema import migrate

# The engine fixtures (registry, run control, workers) for integration and acceptance tests.
pytest_plugins = ["tests.engine_fixtures"]

REPO = Path(__file__).resolve().parent.parent
LOCAL_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _local_postgres_listening() -> bool:
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=0.5):
            return True
    except OSError:
        return False


def _embedded_server_url() -> str:
    # Kept between sessions (initdb is the slow part); stopped when the last user exits.
    return start_embedded(REPO / ".reactor" / "test-pgdata")


@pytest.fixture(scope="session")
def pg_server_url() -> str:
    """URL of the session's Postgres server, on its maintenance database."""
    url = os.environ.get("REACTOR_TEST_DATABASE_URL", "")
    if url == "embedded":
        return _embedded_server_url()
    if url:
        return url
    if os.environ.get("CI") or _local_postgres_listening():
        return LOCAL_URL
    return _embedded_server_url()


@pytest.fixture(scope="session")
async def template_db(pg_server_url: str) -> AsyncIterator[str]:
    """Name of a database migrated once per session, cloned by every `db_url`."""
    name = f"rj_tmpl_{os.getpid()}_{secrets.token_hex(4)}"
    await admin_sql(pg_server_url, f'CREATE DATABASE "{name}"')
    conn = await connect(with_database(pg_server_url, name))
    try:
        await migrate(conn)
    finally:
        await conn.close()  # a template must have no connections when it is cloned
    yield name
    await admin_sql(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def db_url(pg_server_url: str, template_db: str) -> AsyncIterator[str]:
    """URL of a fresh, migrated database for this test only; dropped afterwards."""
    name = f"rj_t_{secrets.token_hex(6)}"
    await admin_sql(pg_server_url, f'CREATE DATABASE "{name}" TEMPLATE "{template_db}"')
    yield with_database(pg_server_url, name)
    await admin_sql(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
async def pool(db_url: str) -> AsyncIterator[asyncpg.Pool]:
    """An asyncpg pool on this test's database."""
    pool = await create_pool(db_url, min_size=1, max_size=8)
    try:
        yield pool
    finally:
        await pool.close()


@pytest.fixture
async def journal(pool: asyncpg.Pool) -> AsyncIterator[Journal]:
    """The journal of this test's database; closed (its connections returned) afterwards."""
    async with Journal(pool) as journal:
        yield journal


async def admin_sql(server_url: str, statement: str) -> None:
    # Database names are generated above, never user input; identifiers cannot be bound.
    conn = await connect(server_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()
