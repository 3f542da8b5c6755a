"""Schema versions: a database created at version 1 and upgraded ends exactly like a fresh
one, keeps its rows, and a database newer than the code is refused untouched."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import AsyncIterator
from typing import Any, cast

import asyncpg
import pytest

from reactor_jobs.database import connect, with_database
from reactor_jobs.domain import events as ev
from reactor_jobs.domain.errors import IdempotencyConflict, SchemaTooNew
from reactor_jobs.engine.journal import AppendRequest, Journal
from reactor_jobs.engine.schema import SCHEMA_VERSION, current_version, migrate, schema_sql
from tests.conftest import admin_sql

pytestmark = pytest.mark.integration

# The version-1 part of the schema file: everything up to its version insert. Later
# versions only append; the digest pins that part, so editing it (which would make a fresh
# install differ from an upgraded one) fails here.
V1_END = "INSERT INTO _reactor_jobs.schema_version (version) VALUES (1) ON CONFLICT DO NOTHING;\n"
V1_SHA256 = "37455976f2ff3a7b5e143178d103db9150efb80d104d7b83b2c83cf843d1fe09"


def v1_schema() -> str:
    text = schema_sql()
    start = text.index("CREATE SCHEMA IF NOT EXISTS _reactor_jobs;")
    return text[start : text.index(V1_END) + len(V1_END)]


def test_the_version_1_part_of_the_schema_is_unchanged() -> None:
    assert hashlib.sha256(v1_schema().encode()).hexdigest() == V1_SHA256


# Everything a migration can change, as comparable text.
_CATALOG = {
    "columns": """
        SELECT table_name, ordinal_position, column_name, data_type, is_nullable,
               column_default
          FROM information_schema.columns WHERE table_schema = '_reactor_jobs'
         ORDER BY 1, 2""",
    "indexes": """
        SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = '_reactor_jobs'
         ORDER BY 1""",
    "constraints": """
        SELECT c.conrelid::regclass::text, c.conname, pg_get_constraintdef(c.oid)
          FROM pg_constraint AS c JOIN pg_namespace AS n ON n.oid = c.connamespace
         WHERE n.nspname = '_reactor_jobs' ORDER BY 1, 2""",
    "triggers": """
        SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(t.oid)
          FROM pg_trigger AS t JOIN pg_class AS c ON c.oid = t.tgrelid
          JOIN pg_namespace AS n ON n.oid = c.relnamespace
         WHERE n.nspname = '_reactor_jobs' AND NOT t.tgisinternal ORDER BY 1, 2""",
    "functions": """
        SELECT p.proname, pg_get_functiondef(p.oid)
          FROM pg_proc AS p JOIN pg_namespace AS n ON n.oid = p.pronamespace
         WHERE n.nspname = '_reactor_jobs' ORDER BY 1""",
    "versions": "SELECT version FROM _reactor_jobs.schema_version ORDER BY 1",
}


@pytest.fixture
async def blank(pg_server_url: str) -> AsyncIterator[Any]:
    """A factory of empty databases, each dropped at the end."""
    names: list[str] = []
    conns: list[asyncpg.Connection] = []

    async def make() -> asyncpg.Connection:
        name = f"rj_up_{secrets.token_hex(6)}"
        await admin_sql(pg_server_url, f'CREATE DATABASE "{name}"')
        names.append(name)
        conns.append(await connect(with_database(pg_server_url, name)))
        return conns[-1]

    yield make
    for conn in conns:
        await conn.close()
    for name in names:
        await admin_sql(pg_server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def catalog(conn: asyncpg.Connection) -> dict[str, list[tuple[Any, ...]]]:
    return {key: [tuple(row) for row in await conn.fetch(sql)] for key, sql in _CATALOG.items()}


async def test_an_upgraded_database_equals_a_fresh_one_and_keeps_its_rows(blank: Any) -> None:
    fresh, old = await blank(), await blank()
    assert await migrate(fresh) == SCHEMA_VERSION
    await old.execute(v1_schema())
    assert await current_version(old) == 1
    await old.execute(
        "INSERT INTO _reactor_jobs.run_logs (org, job, run_id, attempt, level, message) "
        "VALUES ('acme', 'work', 'run_1', 1, 'info', 'from version 1')"
    )
    assert SCHEMA_VERSION > 1
    assert await migrate(old) == SCHEMA_VERSION
    assert await current_version(old) == SCHEMA_VERSION
    before, after = await catalog(fresh), await catalog(old)
    for key in _CATALOG:
        assert after[key] == before[key], key
    row = await old.fetchrow("SELECT message, tx_id FROM _reactor_jobs.run_logs")
    assert row is not None and row["message"] == "from version 1" and row["tx_id"] is not None
    # Migrating again changes nothing.
    assert await migrate(old) == SCHEMA_VERSION
    assert await catalog(old) == after


async def test_upgrading_from_version_4_takes_the_idempotency_keys_of_existing_runs(
    blank: Any,
) -> None:
    conn = await blank()
    v4_end = (
        "INSERT INTO _reactor_jobs.schema_version (version) VALUES (4) ON CONFLICT DO NOTHING;\n"
    )
    text = schema_sql()
    await conn.execute(text[: text.index(v4_end) + len(v4_end)])
    assert await current_version(conn) == 4
    for run_id, key in (("run_1", "k1"), ("run_2", None), ("run_3", "k3"), ("run_4", "k1")):
        first = ev.Triggered(
            org="acme",
            job="work",
            function="work",
            function_version=1,
            trigger=ev.TriggerInfo(kind="manual"),
            idempotency_key=key,
        )
        await conn.execute(
            "INSERT INTO _reactor_jobs.journal (run_id, position, org, type, version, payload)"
            " VALUES ($1, 1, 'acme', 'Triggered', $2, $3)",
            run_id,
            ev.event_version(first),
            ev.encode(first),
        )
    assert await migrate(conn) == SCHEMA_VERSION
    keys = await conn.fetch(
        "SELECT org, job, key, run_id FROM _reactor_jobs.idempotency_keys ORDER BY key"
    )
    # run_4 reused k1 (which version 4 could only have let through by a bug): the first keeps it
    assert [tuple(k) for k in keys] == [
        ("acme", "work", "k1", "run_1"),
        ("acme", "work", "k3", "run_3"),
    ]
    # The upgraded journal refuses a new run with a backfilled key.
    journal = Journal(cast(asyncpg.Pool, None))  # append_many on a given connection only
    second = ev.Triggered(
        org="acme",
        job="work",
        function="work",
        function_version=1,
        trigger=ev.TriggerInfo(kind="manual"),
        idempotency_key="k3",
    )
    (outcome,) = await journal.append_many(
        [AppendRequest(run_id="run_5", events=[second], expected_position=0)], conn
    )
    assert isinstance(outcome, IdempotencyConflict) and outcome.holder == "run_3"


async def test_a_database_from_a_newer_release_is_refused_untouched(blank: Any) -> None:
    conn = await blank()
    await migrate(conn)
    await conn.execute("INSERT INTO _reactor_jobs.schema_version (version) VALUES (99)")
    before = await catalog(conn)
    with pytest.raises(SchemaTooNew, match="version 99"):
        await migrate(conn)
    assert await catalog(conn) == before
