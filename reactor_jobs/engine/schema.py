"""Brings a database to the current schema: `journal_schema.sql` is canonical, idempotent."""

from __future__ import annotations

from importlib import resources

import asyncpg

from reactor_jobs.domain.errors import SchemaTooNew

SCHEMA_VERSION = 5
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
    """Bring the database to SCHEMA_VERSION and return it. A fresh database and one at an
    older version both run the whole (idempotent) schema file; one at SCHEMA_VERSION is left
    alone; one at a newer version is refused (SchemaTooNew) rather than touched."""
    await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATE_LOCK)
    try:
        found = await current_version(conn)
        if found is not None and found > SCHEMA_VERSION:
            raise SchemaTooNew(found, SCHEMA_VERSION)
        if found != SCHEMA_VERSION:
            async with conn.transaction():
                await conn.execute("SET LOCAL client_min_messages = warning")
                await conn.execute(schema_sql())
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATE_LOCK)
    return SCHEMA_VERSION
