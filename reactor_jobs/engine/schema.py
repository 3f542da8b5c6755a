"""Brings a database to the current schema: `journal_schema.sql` is canonical, idempotent."""

from __future__ import annotations

from importlib import resources

import asyncpg

SCHEMA_VERSION = 2
# Any constant works; it only keeps two starting processes from migrating at once.
_MIGRATE_LOCK = 7_242_001


def schema_sql() -> str:
    return resources.files("reactor_jobs").joinpath("journal_schema.sql").read_text("utf-8")


async def current_version(conn: asyncpg.Connection) -> int | None:
    exists = await conn.fetchval("SELECT to_regclass('_reactor_jobs.schema_version') IS NOT NULL")
    if not exists:
        return None
    version: int | None = await conn.fetchval(
        "SELECT max(version) FROM _reactor_jobs.schema_version"
    )
    return version


async def migrate(conn: asyncpg.Connection) -> int:
    """Apply the schema unless the database is already at SCHEMA_VERSION; return the version."""
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATE_LOCK)
    try:
        if await current_version(conn) != SCHEMA_VERSION:
            async with conn.transaction():
                await conn.execute("SET LOCAL client_min_messages = warning")
                await conn.execute(schema_sql())
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATE_LOCK)
    return SCHEMA_VERSION
