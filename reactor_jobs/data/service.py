"""The built-in Data service: each org's schema and role, provisioned on first use, and
every data request executed on a connection that logged in as that org's role.

The engine's own connections never run an org's SQL: a request, a user's DDL (`reactor
data sql`), the functions and triggers it creates all run on the org role's connections,
which cannot switch back to the engine's role and see nothing of `_reactor_jobs` or of other
orgs' schemas. The role's random password is kept in `_reactor_jobs.data_roles`, which only
the engine can read; the role logs in with it to the engine's own host and database.

A write that must be exactly once (a ctx.data call outside any step) commits with its
journal entry: `checkpointed` runs BEGIN; the write; `_reactor_data.checkpoint(grant,
signature, payload)`; COMMIT on the org's connection. The grant (run, expected position,
fence, event) is signed with a key only the engine can read; the function (SECURITY DEFINER,
owned by the engine) checks the signature and the fence exactly as an append does, moves
the run's head and inserts the event.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import msgspec

from reactor_jobs.data import sql
from reactor_jobs.data.errors import (
    DataBadRequest,
    DataConflict,
    DataError,
    DataForbidden,
    DataNotFound,
    DataUnavailable,
)
from reactor_jobs.data.names import org_role, org_schema, quote_ident
from reactor_jobs.data.request import DataRequest, checked
from reactor_jobs.database import PooledConnection, is_disconnect
from reactor_jobs.wire.data import TableInfo

CATALOG_TTL_S = 5.0
ORG_POOL_SIZE = 4
ROLE_STATEMENT_TIMEOUT = "30s"
_PROVISION_LOCK = 7_242_014


class Result(msgspec.Struct, frozen=True, kw_only=True):
    """What a data call returns: rows (a JSON array, or one value for a scalar rpc), their
    count, and for a GET with Prefer: count=exact the total before limit and offset."""

    rows: Any
    count: int | None = None
    total: int | None = None
    single: bool = False

    @property
    def reported_count(self) -> int | None:
        """ctx.data's `count`: the exact total when asked for, else the rows returned or
        written."""
        return self.total if self.total is not None else self.count


_KINDS = {"r": "table", "p": "partitioned table", "v": "view", "m": "materialized view",
          "f": "foreign table"}  # fmt: skip


class OrgData(msgspec.Struct, frozen=True):
    org: str
    role: str
    schema: str
    password: str


def sign(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256; the checkpoint function computes the same from the padded keys."""
    return hmac.new(key, message, hashlib.sha256).digest()


def _pads(key: bytes) -> tuple[bytes, bytes]:
    block = key.ljust(64, b"\x00")
    return bytes(b ^ 0x36 for b in block), bytes(b ^ 0x5C for b in block)


class Grant(msgspec.Struct, frozen=True, kw_only=True):
    """What the engine allows one checkpoint to append: one DataCalled at one position of
    one run, within the attempt's fence."""

    run_id: str
    org: str
    expected: int
    attempt: int
    owner: str
    version: int
    payload_sha256: str
    nonce: str


class DataService:
    """Provisioning, per-org pools and execution of data requests for one database."""

    builtin = True  # same database as the journal: writes can commit with their event

    def __init__(self, pool: asyncpg.Pool, dsn: str | None = None) -> None:
        self.pool = pool
        self._dsn = dsn
        self._orgs: dict[str, OrgData] = {}
        self._pools: dict[str, asyncpg.Pool] = {}
        self._pool_locks: dict[str, asyncio.Lock] = {}
        # The catalog as each org's requests last saw it, for CATALOG_TTL_S: a request
        # costs no catalog round trip; this process's DDL (run_sql) and a request that
        # meets a missing table or column forget it at once, another process's DDL is
        # seen within the TTL.
        self._tables: dict[tuple[str, str], tuple[float, sql.Table | None]] = {}
        self._functions: dict[tuple[str, str], tuple[float, list[sql.Function]]] = {}
        self._key: bytes | None = None
        self._closed = False

    # --- provisioning (engine connection, engine-only tables) ----------------------------

    async def org(self, org: str) -> OrgData:
        known = self._orgs.get(org)
        if known is not None:
            return known
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock($1, hashtext($2))", _PROVISION_LOCK, org
            )
            row = await conn.fetchrow(
                "SELECT org, role, schema, password FROM _reactor_jobs.data_roles WHERE org = $1",
                org,
            )
            if row is None:
                row = await self._provision(conn, org)
        data = OrgData(row["org"], row["role"], row["schema"], row["password"])
        self._orgs[org] = data
        return data

    async def _provision(self, conn: asyncpg.Connection, org: str) -> Any:
        database = await conn.fetchval("SELECT current_database()")
        role, schema = org_role(org, database), org_schema(org)
        password = secrets.token_urlsafe(32)  # [A-Za-z0-9_-] only: safe as a literal
        r, s = quote_ident(role), quote_ident(schema)
        exists = await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role)
        verb = "ALTER" if exists else "CREATE"
        await conn.execute(
            f"{verb} ROLE {r} LOGIN NOINHERIT NOSUPERUSER NOCREATEDB NOCREATEROLE "
            f"NOREPLICATION NOBYPASSRLS CONNECTION LIMIT 32 PASSWORD '{password}'"
        )
        is_super = await conn.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
        if not is_super:  # a CREATEROLE engine must be a member to give the role a schema
            await conn.execute(f"GRANT {r} TO current_user")
        await conn.execute(f"ALTER ROLE {r} SET search_path = {s}")
        await conn.execute(f"ALTER ROLE {r} SET statement_timeout = '{ROLE_STATEMENT_TIMEOUT}'")
        await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s} AUTHORIZATION {r}")
        await conn.execute(f"REVOKE ALL ON SCHEMA {s} FROM PUBLIC")
        await conn.execute(f"GRANT USAGE ON SCHEMA _reactor_data TO {r}")
        await conn.execute(
            f"GRANT EXECUTE ON FUNCTION _reactor_data.checkpoint(text, bytea, bytea) TO {r}"
        )
        return await conn.fetchrow(
            "INSERT INTO _reactor_jobs.data_roles (org, role, schema, password) "
            "VALUES ($1, $2, $3, $4) RETURNING org, role, schema, password",
            org, role, schema, password,
        )  # fmt: skip

    async def signing_key(self) -> bytes:
        if self._key is None:
            key = secrets.token_bytes(32)
            inner, outer = _pads(key)
            async with self.pool.acquire() as conn:
                await conn.execute(
                    "INSERT INTO _reactor_jobs.data_keys (id, key, ikey, okey) "
                    "VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING",
                    key, inner, outer,
                )  # fmt: skip
                self._key = await conn.fetchval(
                    "SELECT key FROM _reactor_jobs.data_keys WHERE id = 1"
                )
        assert self._key is not None
        return self._key

    # --- the org's connections ------------------------------------------------------------

    async def _org_pool(self, org: str) -> asyncpg.Pool:
        found = self._pools.get(org)
        if found is not None:
            return found
        lock = self._pool_locks.setdefault(org, asyncio.Lock())
        async with lock:
            found = self._pools.get(org)
            if found is not None:
                return found
            data = await self.org(org)
            args, kwargs = self._connect_args()
            kwargs.update(user=data.role, password=data.password)
            kwargs.setdefault("server_settings", {})["jit"] = "off"
            try:
                created = await asyncpg.create_pool(
                    *args, min_size=0, max_size=ORG_POOL_SIZE, timeout=10,
                    connection_class=PooledConnection, **kwargs,
                )  # fmt: skip
            except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                raise DataUnavailable(f"cannot connect as org {org}'s data role: {exc}") from None
            assert created is not None
            self._pools[org] = created
            return created

    def _connect_args(self) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """Where the engine's pool connects (the same host and database), without its user."""
        if self._dsn is not None:
            return (self._dsn,), {}
        args = tuple(getattr(self.pool, "_connect_args", ()))
        kwargs = dict(getattr(self.pool, "_connect_kwargs", {}))
        for private in (
            "user", "password", "connection_class", "init", "setup", "record_class", "timeout",
        ):  # fmt: skip
            kwargs.pop(private, None)
        kwargs["server_settings"] = dict(kwargs.get("server_settings") or {})
        return args, kwargs

    def connection(self, org: str) -> _OrgConnection:
        """`async with service.connection(org) as conn`: a connection logged in as the org."""
        return _OrgConnection(self, org)

    async def close(self) -> None:
        self._closed = True
        pools, self._pools = self._pools, {}
        for pool in pools.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pool.close(), 5)

    def forget_catalog(self, org: str) -> None:
        for key in [k for k in self._tables if k[0] == org]:
            del self._tables[key]
        for key in [k for k in self._functions if k[0] == org]:
            del self._functions[key]

    # --- execution ------------------------------------------------------------------------

    async def table(self, conn: asyncpg.Connection, org: str, name: str) -> sql.Table:
        key = (org, name)
        cached = self._tables.get(key)
        if cached is not None and time.monotonic() - cached[0] < CATALOG_TTL_S:
            table = cached[1]
        else:
            schema = org_schema(org)
            row = await conn.fetchrow(sql.TABLES, schema, name)
            table = None if row is None else sql.table_from_row(schema, row)
            self._tables[key] = (time.monotonic(), table)
        if table is None:
            raise sql.not_found_table(name, org)
        return table

    async def functions(self, conn: asyncpg.Connection, org: str, name: str) -> list[sql.Function]:
        """The org's functions of that name, from the catalog or its cache (as tables)."""
        key = (org, name)
        cached = self._functions.get(key)
        if cached is not None and time.monotonic() - cached[0] < CATALOG_TTL_S:
            fns = cached[1]
        else:
            schema = org_schema(org)
            rows = await conn.fetch(sql.FUNCTIONS, schema, name)
            fns = [sql.function_from_row(schema, r) for r in rows]
            self._functions[key] = (time.monotonic(), fns)
        if not fns:
            raise sql.not_found_function(name, org)
        return fns

    async def statement(
        self, conn: asyncpg.Connection, org: str, request: DataRequest
    ) -> sql.Statement:
        request = checked(request)
        if request.rpc is not None:
            fns = await self.functions(conn, org, request.rpc)
            given = set(request.body or {}) if isinstance(request.body, dict) else set()
            fitting = [f for f in fns if given <= set(f.args)] or fns
            if len(fitting) > 1:
                raise DataBadRequest(f"function {request.rpc!r} is overloaded; cannot choose one")
            return sql.rpc_statement(fitting[0], request)
        assert request.table is not None
        table = await self.table(conn, org, request.table)
        if request.method == "GET":
            statement, _ = sql.select_statement(table, request)
            return statement
        if request.method == "POST":
            return sql.insert_statement(table, request)
        if request.method == "PATCH":
            return sql.update_statement(table, request)
        return sql.delete_statement(table, request)

    async def run_on(self, conn: asyncpg.Connection, org: str, request: DataRequest) -> Result:
        """Execute on a connection of the org's role (inside the caller's transaction)."""
        try:
            statement = await self.statement(conn, org, request)
            row = await conn.fetchrow(statement.sql, *statement.args)
        except asyncpg.PostgresError as exc:
            if isinstance(
                exc,
                asyncpg.UndefinedTableError
                | asyncpg.UndefinedColumnError
                | asyncpg.UndefinedFunctionError,
            ):
                self.forget_catalog(org)
            raise postgres_error(exc) from None
        assert row is not None
        text = row["rows"]
        rows = None if text is None else msgspec.json.decode(text)
        counted = request.method == "GET" and request.prefers("count=exact")
        count = len(rows) if isinstance(rows, list) and not statement.single else row["n"]
        return Result(
            rows=rows,
            count=int(count) if count is not None else None,
            total=int(row["n"]) if counted else None,
            single=statement.single,
        )

    async def execute(self, org: str, request: DataRequest) -> Result:
        """One request on the org's connection, autocommit: every request is one statement
        (a CTE for a write with its returned rows, one call for an rpc), atomic on its own,
        so an explicit BEGIN/COMMIT would only add two round trips."""
        try:
            async with self.connection(org) as conn:
                return await self.run_on(conn, org, request)
        except (OSError, asyncpg.InterfaceError) as exc:  # nothing committed
            raise _lost(org, exc) from None

    async def checkpointed(
        self,
        org: str,
        request: DataRequest,
        grant: Callable[[Result], Awaitable[tuple[Grant, bytes]]],
        *,
        before_checkpoint: Callable[[], Awaitable[None]] | None = None,
    ) -> tuple[Result, int]:
        """A call and its journal entry on the org's one connection. A write: BEGIN; the
        write; checkpoint; COMMIT, so the two commit together or not at all. A read: the
        read, then the checkpoint in its own commit (a read has nothing to undo, and this
        skips the engine pool, the group committer and two round trips). `grant` turns the
        result into the signed grant and the event's payload. Returns the result and the
        run's new head."""
        try:
            return await self._checkpointed(org, request, grant, before_checkpoint)
        except (OSError, asyncpg.InterfaceError) as exc:  # lost before COMMIT: rolled back
            raise _lost(org, exc) from None

    async def _checkpointed(
        self,
        org: str,
        request: DataRequest,
        grant: Callable[[Result], Awaitable[tuple[Grant, bytes]]],
        before_checkpoint: Callable[[], Awaitable[None]] | None,
    ) -> tuple[Result, int]:
        key = await self.signing_key()
        async with self.connection(org) as conn:
            if not request.writes:
                result = await self.run_on(conn, org, request)
                return result, await self._checkpoint(conn, key, result, grant, None)
            async with conn.transaction():
                result = await self.run_on(conn, org, request)
                return result, await self._checkpoint(conn, key, result, grant, before_checkpoint)

    async def _checkpoint(
        self,
        conn: asyncpg.Connection,
        key: bytes,
        result: Result,
        grant: Callable[[Result], Awaitable[tuple[Grant, bytes]]],
        before_checkpoint: Callable[[], Awaitable[None]] | None,
    ) -> int:
        granted, payload = await grant(result)
        text = msgspec.json.encode(granted)
        if before_checkpoint is not None:  # tests: a crash between write and checkpoint
            await before_checkpoint()
        try:
            head = await conn.fetchval(
                "SELECT _reactor_data.checkpoint($1, $2, $3)",
                text.decode(), sign(key, text), payload,
            )  # fmt: skip
        except asyncpg.PostgresError as exc:
            if exc.sqlstate == "RJ003":
                raise CheckpointFenced(str(exc)) from None
            raise
        return int(head)

    async def run_sql(self, org: str, text: str) -> list[str]:
        """An org admin's SQL (DDL and more), on the org role's connection, in its schema."""
        if not text.strip():
            raise DataBadRequest("no SQL given")
        async with self.connection(org) as conn:
            try:
                async with conn.transaction():
                    await conn.execute(text)
            except asyncpg.PostgresError as exc:
                raise postgres_error(exc) from None
            finally:
                self.forget_catalog(org)
                # The SQL may have left session state (SET, LISTEN, temp tables, prepared
                # statements, advisory locks) and pool connections are not reset: the pool
                # opens a fresh one instead of handing this one to the next request.
                conn.terminate()
        return ["ok"]

    async def tables(self, org: str) -> list[TableInfo]:
        schema = org_schema(org)
        async with self.connection(org) as conn:
            rows = await conn.fetch(sql.TABLES, schema, None)
        return [
            TableInfo(
                name=r["name"],
                kind=_KINDS.get(r["kind"], r["kind"]),
                columns=dict(zip(r["columns"], r["types"], strict=True)),
                primary_key=list(r["primary_key"]),
            )
            for r in rows
        ]


class CheckpointFenced(DataError):
    """The attempt no longer owns its run: the write was rolled back with the checkpoint."""

    code = "fenced"


class _OrgConnection:
    def __init__(self, service: DataService, org: str) -> None:
        self.service, self.org = service, org
        self._pool: asyncpg.Pool | None = None
        self._conn: Any = None

    async def __aenter__(self) -> asyncpg.Connection:
        self._pool = await self.service._org_pool(self.org)
        try:
            self._conn = await self._pool.acquire(timeout=30)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            raise DataUnavailable(f"org {self.org}'s data connection failed: {exc}") from None
        conn: asyncpg.Connection = self._conn
        return conn

    async def __aexit__(self, *exc: object) -> None:
        assert self._pool is not None
        conn, self._conn = self._conn, None
        if conn is not None:
            try:
                await self._pool.release(conn, timeout=5)
            except Exception:  # a broken connection: the pool replaces it
                with contextlib.suppress(Exception):
                    conn.terminate()


def _lost(org: str, exc: BaseException) -> DataError:
    if isinstance(exc, OSError) or is_disconnect(exc):
        return DataUnavailable(f"org {org}'s data connection failed: {exc}")
    return DataBadRequest(f"the data request could not be run: {exc}")


def postgres_error(exc: asyncpg.PostgresError) -> DataError:
    """A Postgres error from an org's request as the API's error: the client's fault (400,
    404, 409, 403) where it is one; a lost connection is 503 and may be retried."""
    message = str(exc.args[0] if exc.args else exc)
    state = getattr(exc, "sqlstate", "") or ""
    if is_disconnect(exc) or state.startswith(("08", "57P")):
        return DataUnavailable(f"the data connection failed: {message}")
    if state in ("42P01", "42883") and "function" not in message:
        return DataNotFound(message)
    if state in ("23505", "23503", "40001", "40P01"):
        return DataConflict(message)
    if state == "42501":
        return DataForbidden(message)
    return DataBadRequest(message)
