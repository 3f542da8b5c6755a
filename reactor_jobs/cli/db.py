"""`reactor db …` and `reactor projections …`: schema and read-model maintenance."""

from __future__ import annotations

from reactor_jobs.cli.connection import open_pool
from reactor_jobs.config import Config
from reactor_jobs.database import connect, resolve_database_url
from reactor_jobs.engine.schema import migrate as migrate_schema


async def migrate(config: Config) -> int:
    conn = await connect(await resolve_database_url(config, create=True))
    try:
        version = await migrate_schema(conn)
    finally:
        await conn.close()
    print(f"schema at version {version}")
    return 0


async def rebuild_projections(config: Config) -> int:
    from reactor_jobs.projections.rebuild import rebuild

    async with open_pool(config) as pool:
        report = await rebuild(pool)
    print(
        f"rebuilt projections from {report.events} events of {report.runs} runs "
        f"in {report.seconds:.2f}s"
    )
    return 0
