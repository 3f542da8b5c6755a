"""Jobs defined in your own Python code: `@app.job` on an async function, a worker started
from your application, no bundle to pack.

    app = App(database_url="postgresql://…", org="acme")

    @app.job(retry=Retry(max_attempts=5), triggers=[cron("0 * * * *")])
    async def send_report(ctx, payload):
        rows = await ctx.step("query", lambda: fetch_rows(payload))
        await ctx.emit("report.sent", {"rows": len(rows)})
        return {"rows": len(rows)}

    async with app:
        run_id = await app.trigger("send-report", {"day": "2026-12-04"})
        await app.worker(concurrency=8)        # until cancelled, or `stop` is set

A code job is a function `app:<job>` whose versions are derived from the code (a hash of the
function's module source, or `version=` when given). A run is pinned to the version it was
triggered with, and only a worker serving that version claims it. The code runs in the
app's own process (it is the user's code on the user's machine), behind the same protocol
and determinism guard as bundles in function hosts.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib
import inspect
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar, cast

import msgspec

from reactor_jobs.config import Config, HostSettings, load_config
from reactor_jobs.domain.errors import ReactorError
from reactor_jobs.domain.projection import RunInfo
from reactor_jobs.engine.attempt import function_key
from reactor_jobs.engine.hosts import Host, HostPool
from reactor_jobs.functions import manifest as manifests
from reactor_jobs.functions import registry_sql as sql
from reactor_jobs.functions.errors import AlreadyExists
from reactor_jobs.functions.messages import Request
from reactor_jobs.functions.runtime import Handler
from reactor_jobs.hosts.python import Session
from reactor_jobs.projections.auditor import Auditor, FunctionCheck
from reactor_jobs.projections.queries import get_run
from reactor_jobs.projections.replay_check import ReplayReport
from reactor_jobs.triggers.manifest_sync import sync_job, wanted_triggers

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
PREFIX = "app:"  # function names of code jobs; a bundle function's name cannot hold ':'
TERMINAL = frozenset({"completed", "failed", "cancelled"})


class AppError(ReactorError):
    """The application's jobs cannot be registered or run as asked."""

    code = "conflict"


class RunFailed(ReactorError):
    """The run ended without completing."""

    code = "internal"

    def __init__(self, run: RunInfo) -> None:
        error = run.last_error or {}
        super().__init__(
            f"run {run.id} of {run.job} ended {run.status}: "
            f"{error.get('type', '')}: {error.get('message', '')}".rstrip(": ")
        )
        self.run = run


class Retry(msgspec.Struct, frozen=True, kw_only=True):
    """A job's retry policy, as the manifest's `retry` block."""

    max_attempts: int = 3
    backoff: str = "exponential"
    initial_delay_ms: int = 1000
    max_delay_ms: int = 60_000


def cron(
    schedule: str, *, timezone: str | None = None, catch_up: str | None = None
) -> dict[str, Any]:
    """A cron trigger: `cron("0 * * * *")`."""
    trigger: dict[str, Any] = {"kind": "cron", "schedule": schedule}
    if timezone is not None:
        trigger["timezone"] = timezone
    if catch_up is not None:
        trigger["catchUp"] = catch_up
    return trigger


def event(topic: str) -> dict[str, Any]:
    """An event trigger: a run for each event emitted on exactly `topic`."""
    return {"kind": "event", "topic": topic}


def webhook() -> dict[str, Any]:
    return {"kind": "webhook"}


class CodeJob(msgspec.Struct, frozen=True, kw_only=True):
    """One `@app.job`: its name, its code's digest and its manifest (policy, triggers)."""

    name: str
    function: str
    sha256: str
    manifest: dict[str, Any]
    handler: Handler


def _as_fetch(fn: Callable[..., Awaitable[Any]]) -> Handler:
    """`async def f(ctx, payload)` or the bundle shape `fetch(request, env, ctx)`."""
    if len(inspect.signature(fn).parameters) == 3:
        return fn

    async def fetch(request: Request, env: Mapping[str, str], ctx: Any) -> Any:
        return await fn(ctx, await request.json())

    return fetch


def _digest(fn: Callable[..., Any], version: str | None, manifest: dict[str, Any]) -> str:
    """The code's identity: the defining module's source (or `version`) and the policy."""
    if version is not None:
        identity = f"version:{version}"
    else:
        module = sys.modules.get(fn.__module__)
        try:
            identity = inspect.getsource(module) if module is not None else ""
        except (OSError, TypeError):
            identity = ""
        identity = identity or inspect.getsource(fn)
    return hashlib.sha256((identity + msgspec.json.encode(manifest).decode()).encode()).hexdigest()


class App:
    """An application's jobs, their registration, triggering and workers."""

    def __init__(
        self,
        database_url: str | None = None,
        *,
        org: str,
        config: Config | None = None,
        pool_size: int = 10,
    ) -> None:
        self.org = org
        self.config = config or load_config()
        self.database_url = database_url or self.config.jobs.database_url
        self.pool_size = pool_size
        self.jobs: dict[str, CodeJob] = {}
        self._node: Any = None
        self._registered = False
        self.versions: dict[str, int] = {}  # job -> the version number of this code
        self._workers: dict[asyncio.Event, asyncio.Event] = {}  # stop -> stopped

    # Defining jobs

    def job(
        self,
        name: str | None = None,
        *,
        retry: Retry | None = None,
        max_concurrency: int | None = None,
        timeout: str | float | None = None,
        triggers: Sequence[Mapping[str, Any]] = (),
        version: str | None = None,
    ) -> Callable[[F], F]:
        """Declare `async def f(ctx, payload)` a job (named after the function, `_` as `-`)."""

        def register(fn: F) -> F:
            if not inspect.iscoroutinefunction(cast(Any, fn)):
                raise AppError(f"job {fn.__name__}: a job is an `async def`")
            job = name or fn.__name__.replace("_", "-")
            manifests.check_name(job)
            block: dict[str, Any] = {"triggers": [dict(t) for t in triggers]}
            if retry is not None:
                block["retry"] = {
                    "maxAttempts": retry.max_attempts,
                    "backoff": retry.backoff,
                    "initialDelayMs": retry.initial_delay_ms,
                    "maxDelayMs": retry.max_delay_ms,
                }
            if max_concurrency is not None:
                block["maxConcurrency"] = max_concurrency
            if timeout is not None:
                block["timeoutMs"] = _timeout_ms(timeout)
            manifest = {"runtime": "python", "job": block}
            self.jobs[job] = CodeJob(
                name=job,
                function=PREFIX + job,
                sha256=_digest(fn, version, manifest),
                manifest=manifest,
                handler=_as_fetch(fn),
            )
            return fn

        return register

    # Lifecycle

    async def __aenter__(self) -> App:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the engine (sized for a default Postgres) and register the app's jobs."""
        if self._node is None:
            from reactor_jobs.node import Node

            config = self.config
            if self.database_url:
                jobs = msgspec.structs.replace(config.jobs, database_url=self.database_url)
                config = msgspec.structs.replace(config, jobs=jobs)
            self._node = await Node.open(config, pool_size=self.pool_size)
        if not self._registered:
            self.versions = await register(self._node, self.org, list(self.jobs.values()))
            self._registered = True

    async def close(self) -> None:
        """Stop this app's workers (their runs finish or are handed back), then the engine."""
        for stop, stopped in list(self._workers.items()):
            stop.set()
            await stopped.wait()
        node, self._node = self._node, None
        if node is not None:
            await node.close()

    @property
    def node(self) -> Any:
        if self._node is None:
            raise AppError("the app is not started: use `async with app:` or `await app.start()`")
        return self._node

    # Running

    async def trigger(
        self, job: str, payload: Any = None, *, idempotency_key: str | None = None
    ) -> str:
        """Start a run; returns its id at once (admission as for every trigger path)."""
        await self.start()
        run = await self.node.control.trigger(
            self.org, job, payload=payload, idempotency_key=idempotency_key
        )
        return str(run.id)

    async def run(
        self,
        job: str,
        payload: Any = None,
        *,
        idempotency_key: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Start a run and wait for it; its output, or RunFailed."""
        run_id = await self.trigger(job, payload, idempotency_key=idempotency_key)
        finished = await self.wait(run_id, timeout=timeout)
        if finished.status != "completed":
            raise RunFailed(finished)
        return finished.output

    async def wait(self, run_id: str, *, timeout: float | None = None) -> RunInfo:
        async with asyncio.timeout(timeout):
            delay = 0.005
            while True:
                run: RunInfo = await get_run(self.node.pool, self.org, run_id)
                if run.status in TERMINAL:
                    return run
                await asyncio.sleep(delay)
                delay = min(delay * 2, 0.1)

    # Audit: code jobs are replayed here, in the app's process, against its current code

    async def replay(self, run_id: str) -> ReplayReport:
        """Replay a run of one of this app's jobs on this process's code (no side effects)."""
        await self.start()
        records = await self.node.journal.read_stream(run_id)
        first = records[0].event if records else None
        job = None if first is None else self._job_of(first.function)
        if job is None:
            raise AppError(f"run {run_id} is not a run of this app's jobs")
        async with self._auditor() as auditor:
            return await auditor.replay(self.org, run_id, self.versions[job.name])

    async def check(self, job: str) -> FunctionCheck:
        """Would this process's code replay every run of `job` in flight? (functions check)"""
        await self.start()
        code = self.jobs.get(job)
        if code is None:
            raise AppError(f"job {job} is not one of this app's jobs")
        async with self._auditor() as auditor:
            return await auditor.check_function(self.org, code.function, self.versions[job])

    def _job_of(self, function: str) -> CodeJob | None:
        return next((j for j in self.jobs.values() if j.function == function), None)

    @asynccontextmanager
    async def _auditor(self) -> AsyncIterator[Auditor]:
        hosts = InProcessHosts(self.org, self.jobs.values())
        try:
            yield Auditor(self.node.journal, self.node.registry, hosts, code_jobs=True)
        finally:
            await hosts.close()

    @asynccontextmanager
    async def running(self, concurrency: int = 4) -> AsyncIterator[None]:
        """A worker for this app's jobs in the background of the block."""
        stop = asyncio.Event()
        task = asyncio.create_task(self.worker(concurrency, stop))
        try:
            yield
        finally:
            stop.set()
            await task

    async def worker(self, concurrency: int = 4, stop: asyncio.Event | None = None) -> None:
        """Run this app's jobs in this process until `stop` is set (or the task is cancelled)."""
        await self.start()
        node = self.node
        hosts = InProcessHosts(self.org, self.jobs.values())
        serves = [
            f"{self.org}/{job.function}@{self.versions[job.name]}" for job in self.jobs.values()
        ]
        worker = node.worker(hosts=hosts, concurrency=concurrency, serves=serves)
        stop = stop or asyncio.Event()
        stopped = self._workers[stop] = asyncio.Event()
        try:
            await worker.run(stop, grace=5.0)
        finally:
            await hosts.close()
            del self._workers[stop]
            stopped.set()


def load_app(target: str) -> App:
    """The App at "package.module:attribute" (the current folder is importable)."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise AppError(f"--app takes MODULE:ATTRIBUTE (e.g. myproject.jobs:app), not {target!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise AppError(f"cannot import {module_name}: {exc}") from None
    app = getattr(module, attribute, None)
    if not isinstance(app, App):
        raise AppError(f"{target} is not a reactor_jobs.App")
    return app


def _timeout_ms(timeout: str | float) -> int:
    from reactor_jobs.functions.values import parse_duration

    return int(parse_duration(timeout).total_seconds() * 1000)


_VERSION_BY_DIGEST = """
SELECT version FROM _reactor_jobs.function_versions
 WHERE org = $1 AND name = $2 AND sha256 = $3 ORDER BY version DESC LIMIT 1"""
_JOB_FUNCTION = "SELECT function_name FROM _reactor_jobs.jobs WHERE org = $1 AND name = $2"


async def register(node: Any, org: str, jobs: Sequence[CodeJob]) -> dict[str, int]:
    """Each code job's function, its version for this code (reused when the code is the same),
    made live, the job bound to it, and its declared triggers reconciled: one transaction.
    Returns each job's version number."""
    limits = node.registry.limits
    versions: dict[str, int] = {}
    async with node.pool.acquire() as conn, conn.transaction():
        for job in jobs:
            manifest = manifests.parse_manifest(
                msgspec.json.encode(job.manifest),
                max_timeout_ms=limits.max_timeout_ms,
                max_concurrency_cap=limits.max_concurrency_cap,
            )
            await conn.execute(
                "INSERT INTO _reactor_jobs.functions (org, name, runtime) VALUES ($1, $2, 'python')"
                " ON CONFLICT DO NOTHING",
                org,
                job.function,
            )
            await conn.fetchval(sql.FUNCTIONS_LOCK, org, job.function)
            digest = bytes.fromhex(job.sha256)
            version = await conn.fetchval(_VERSION_BY_DIGEST, org, job.function, digest)
            if version is None:
                manifest_json = msgspec.json.encode(manifest).decode()
                version = await conn.fetchval(
                    sql.VERSIONS_INSERT, org, job.function, b"", digest, manifest_json
                )
            await conn.fetchval(sql.VERSIONS_PROMOTE, org, job.function, version)
            bound = await conn.fetchval(_JOB_FUNCTION, org, job.name)
            if bound is None:
                await conn.execute(sql.JOBS_INSERT, org, job.name, job.function, *([None] * 6))
            elif bound != job.function:
                raise AlreadyExists("job", job.name)
            declared = manifest.job.triggers if manifest.job is not None else []
            await sync_job(conn, org, job.name, wanted_triggers(declared))
            versions[job.name] = int(version)
    return versions


class InProcessHosts(HostPool):
    """The app's own process as its one function host: the same protocol over a socket
    pair, the same guard; the code is the app's, already imported."""

    def __init__(self, org: str, jobs: Any) -> None:
        super().__init__(HostSettings(sandbox="none", user="", single_tenant=True))
        self.org = org
        self.code = {job.function: job for job in jobs}
        self._host: Host | None = None
        self._session: asyncio.Task[None] | None = None
        self._host_side: asyncio.StreamWriter | None = None
        self._opening = asyncio.Lock()

    async def host(self, org: str, runtime: str, solo: str = "") -> Host:
        async with self._opening:  # attempts starting together share the one host
            if self._host is None or not self._host.alive:
                await self._close_session()
                self._host = await self._open(org, runtime)
        return self._host

    async def _open(self, org: str, runtime: str) -> Host:
        ours, theirs = socket.socketpair()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        host_reader, host_writer = await asyncio.open_unix_connection(sock=theirs)
        self._host_side = host_writer
        session = Session(host_reader, host_writer, Path("."))
        host = Host(org, runtime)
        host.attach(reader, writer)
        self._session = asyncio.create_task(session.serve())
        self._prime(host, session)
        return host

    def _prime(self, host: Host, session: Session) -> None:
        """Every version of this code is loaded already: its handler is in memory."""
        host.preloaded = lambda fv: self._handler(fv, session)

    def _handler(self, fv: Any, session: Session) -> bool:
        job = self.code.get(fv.name)
        if job is None or fv.sha256 != job.sha256:
            return False
        session.handlers[function_key(fv)] = job.handler
        return True

    async def release(self, host: Host) -> None:
        return None  # one host: the app's process

    async def close(self) -> None:
        if self._host is not None:
            await self._host.kill("the app's worker stopped")
        await self._close_session()

    async def _close_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.cancel()
            await asyncio.gather(session, return_exceptions=True)
        side, self._host_side = self._host_side, None
        if side is not None:
            side.close()
