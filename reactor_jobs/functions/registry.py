"""The function and job registry: functions, their immutable deployed versions, the live
version, and jobs bound to functions. Every call is scoped to an org.
"""

from __future__ import annotations

import asyncio
import hashlib
from typing import Any, NamedTuple, TypedDict, TypeVar, Unpack

import asyncpg
import msgspec

from reactor_jobs.functions import registry_sql as sql
from reactor_jobs.functions.bun_binary import HOW_TO_GET_BUN, find_bun
from reactor_jobs.functions.bundle import read_manifest, validate_bundle
from reactor_jobs.functions.code_check import check_code
from reactor_jobs.functions.errors import (
    AlreadyExists,
    FunctionInUse,
    FunctionNotFound,
    InvalidField,
    InvalidManifest,
    JobNotFound,
    NotPromoted,
    RuntimeUnavailable,
    VersionNotFound,
)
from reactor_jobs.functions.manifest import (
    MAX_TIMEOUT_MS,
    JobManifest,
    Limits,
    Manifest,
    PolicyOverrides,
    check_name,
    check_overrides,
    parse_manifest,
    resolve_policy,
)
from reactor_jobs.functions.records import (
    FunctionInfo,
    FunctionVersion,
    JobInfo,
    ResolvedJob,
    VersionInfo,
)
from reactor_jobs.triggers.declared import Trigger
from reactor_jobs.triggers.manifest_sync import TriggerChanges, sync_job, wanted_triggers
from reactor_jobs.triggers.reconcile import spec_of
from reactor_jobs.wire.objects import DEFAULT_MAX_CONCURRENCY, DEFAULT_TIMEOUT_MS, Backoff, Runtime

_POLICY_FIELDS = (
    "max_attempts",
    "backoff",
    "initial_delay_ms",
    "max_delay_ms",
    "max_concurrency",
    "timeout_ms",
)
_T = TypeVar("_T")


class PolicySettings(TypedDict, total=False):
    """A job's own policy settings; None (or absent) follows the manifest."""

    max_attempts: int | None
    backoff: Backoff | None
    initial_delay_ms: int | None
    max_delay_ms: int | None
    max_concurrency: int | None
    timeout_ms: int | None


class JobChanges(PolicySettings, total=False):
    """What update_job may change: absent keys stay, None clears a setting."""

    function_name: str


class Promotion(NamedTuple):
    """A promote: the live version, and what its manifest did to the jobs' triggers."""

    version: int
    triggers: TriggerChanges


class JobBinding(NamedTuple):
    """A job created or updated, and what its function's live manifest did to its triggers
    (nothing unless the job was created or bound to another function)."""

    job: JobInfo
    triggers: TriggerChanges


class Registry:
    """Functions, versions and jobs in Postgres, checked against the server's policy caps."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        max_timeout_ms: int = MAX_TIMEOUT_MS,
        max_concurrency_cap: int = DEFAULT_MAX_CONCURRENCY,
        default_timeout_ms: int = DEFAULT_TIMEOUT_MS,
    ) -> None:
        self._pool = pool
        self.limits = Limits(
            default_timeout_ms=default_timeout_ms,
            max_timeout_ms=max_timeout_ms,
            max_concurrency_cap=max_concurrency_cap,
        )

    # Functions and versions

    async def create_function(
        self, org: str, name: str, runtime: Runtime = "python"
    ) -> FunctionInfo:
        check_name(name)
        if runtime == "bun" and find_bun() is None:
            raise RuntimeUnavailable("bun", HOW_TO_GET_BUN)
        try:
            row = await self._pool.fetchrow(sql.FUNCTIONS_INSERT, org, name, runtime)
        except asyncpg.UniqueViolationError:
            raise AlreadyExists("function", name) from None
        except asyncpg.CheckViolationError:
            raise InvalidField("runtime", f"must be python or bun, got {runtime!r}") from None
        return _convert(row, FunctionInfo)

    async def get_function(self, org: str, name: str) -> FunctionInfo:
        row = await self._pool.fetchrow(sql.FUNCTIONS_GET, org, name)
        if row is None:
            raise FunctionNotFound(name)
        return _convert(row, FunctionInfo)

    async def list_functions(self, org: str) -> list[FunctionInfo]:
        return [
            _convert(row, FunctionInfo) for row in await self._pool.fetch(sql.FUNCTIONS_LIST, org)
        ]

    async def delete_function(self, org: str, name: str) -> None:
        """Delete the function and its versions, unless a job is bound to it (the jobs'
        foreign key is the guard; the lock only lets the refusal name them)."""
        async with self._pool.acquire() as conn, conn.transaction():
            jobs = [r["name"] for r in await conn.fetch(sql.JOBS_OF_FUNCTION_LOCK, org, name)]
            if jobs:
                raise FunctionInUse(name, jobs)
            try:
                deleted = await conn.fetchval(sql.FUNCTIONS_DELETE, org, name)
            except asyncpg.ForeignKeyViolationError:
                raise FunctionInUse(name, ["(one just created)"]) from None
        if deleted is None:
            raise FunctionNotFound(name)

    async def deploy(self, org: str, name: str, archive: bytes) -> int:
        """Store a checked bundle as the function's next version; returns its number."""
        function = await self.get_function(org, name)
        manifest = await asyncio.to_thread(self._check_bundle, function, archive)
        if function.runtime == "python":
            # Here, not in a thread: CPython 3.11's ast.parse is not safe to run in two
            # threads at once ("AST constructor recursion depth mismatch").
            check_code(archive, function.runtime)
        else:
            await asyncio.to_thread(check_code, archive, function.runtime)
        digest = hashlib.sha256(archive).digest()
        manifest_json = msgspec.json.encode(manifest).decode()
        async with self._pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(sql.FUNCTIONS_LOCK, org, name) is None:
                raise FunctionNotFound(name)
            version: int = await conn.fetchval(
                sql.VERSIONS_INSERT, org, name, archive, digest, manifest_json
            )
        return version

    async def promote(self, org: str, name: str, version: int | None = None) -> int:
        """Make a version (default: the latest) live; returns its number."""
        return (await self.promote_with_triggers(org, name, version)).version

    async def promote_with_triggers(
        self, org: str, name: str, version: int | None = None
    ) -> Promotion:
        """Make a version (default: the latest) live and, in the same transaction, make the
        manifest triggers of every job bound to the function match its `job.triggers`."""
        async with self._pool.acquire() as conn, conn.transaction():
            if await conn.fetchval(sql.FUNCTIONS_LOCK, org, name) is None:
                raise FunctionNotFound(name)
            live: int | None = await conn.fetchval(sql.VERSIONS_PROMOTE, org, name, version)
            if live is None:
                raise VersionNotFound(name, version)
            raw = await conn.fetchval(sql.VERSIONS_MANIFEST, org, name, live)
            wanted = wanted_triggers(_declared(msgspec.json.decode(raw, type=Manifest).job))
            changes = TriggerChanges()
            for job in await conn.fetch(sql.JOBS_OF_FUNCTION_LOCK, org, name):
                changes += await sync_job(conn, org, job["name"], wanted)
        return Promotion(live, changes)

    async def list_versions(self, org: str, name: str) -> list[VersionInfo]:
        rows = await self._pool.fetch(sql.VERSIONS_LIST, org, name)
        if not rows:
            await self.get_function(org, name)
        return [_convert(row, VersionInfo, sha256=row["sha256"].hex()) for row in rows]

    async def get_version(self, org: str, name: str, version: int) -> FunctionVersion:
        row = await self._pool.fetchrow(sql.VERSIONS_GET, org, name, version)
        if row is None:
            await self.get_function(org, name)
            raise VersionNotFound(name, version)
        manifest = msgspec.json.decode(row["manifest"], type=Manifest)
        return _convert(row, FunctionVersion, sha256=row["sha256"].hex(), manifest=manifest)

    def _check_bundle(self, function: FunctionInfo, archive: bytes) -> Manifest:
        validate_bundle(archive, function.runtime)
        manifest = parse_manifest(
            read_manifest(archive),
            max_timeout_ms=self.limits.max_timeout_ms,
            max_concurrency_cap=self.limits.max_concurrency_cap,
        )
        if manifest.name is not None and manifest.name != function.name:
            raise InvalidManifest(
                f"names function {manifest.name!r}, deployed to {function.name!r}", "$.name"
            )
        if manifest.runtime is not None and manifest.runtime != function.runtime:
            raise InvalidManifest(
                f"says runtime {manifest.runtime!r}, the function's is {function.runtime!r}",
                "$.runtime",
            )
        _check_triggers(manifest)
        return manifest

    # Jobs

    async def create_job(
        self, org: str, name: str, function_name: str, **policy: Unpack[PolicySettings]
    ) -> JobInfo:
        """Bind a job to a function; a policy setting left None follows the manifest."""
        return (await self.create_job_with_triggers(org, name, function_name, **policy)).job

    async def create_job_with_triggers(
        self, org: str, name: str, function_name: str, **policy: Unpack[PolicySettings]
    ) -> JobBinding:
        """Create a job (see create_job) with the manifest triggers of its function's live
        version, if it has one, in one transaction."""
        check_name(name)
        overrides = PolicyOverrides(**policy)
        check_overrides(overrides, self.limits)
        args = (org, name, function_name, *_policy_args(overrides))
        async with self._pool.acquire() as conn, conn.transaction():
            live = await _live_manifest_share(conn, org, function_name)
            try:
                row = await conn.fetchrow(sql.JOBS_INSERT, *args)
            except asyncpg.UniqueViolationError:
                raise AlreadyExists("job", name) from None
            changes = TriggerChanges()
            if live is not None:
                changes = await sync_job(conn, org, name, wanted_triggers(_declared(live.job)))
        return JobBinding(_convert(row, JobInfo), changes)

    async def get_job(self, org: str, name: str) -> JobInfo:
        row = await self._pool.fetchrow(sql.JOBS_GET, org, name)
        if row is None:
            raise JobNotFound(name)
        return _convert(row, JobInfo)

    async def list_jobs(self, org: str) -> list[JobInfo]:
        return [_convert(row, JobInfo) for row in await self._pool.fetch(sql.JOBS_LIST, org)]

    async def update_job(self, org: str, name: str, **changes: Unpack[JobChanges]) -> JobInfo:
        """Change the given settings; None clears one back to the manifest's value."""
        return (await self.update_job_with_triggers(org, name, **changes)).job

    async def update_job_with_triggers(
        self, org: str, name: str, **changes: Unpack[JobChanges]
    ) -> JobBinding:
        """Update a job (see update_job); bound to another function, its manifest triggers
        become that function's live manifest's (none while it has no live version)."""
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(sql.JOBS_GET_FOR_UPDATE, org, name)
            if row is None:
                raise JobNotFound(name)
            before = _convert(row, JobInfo)
            job = msgspec.structs.replace(before, **changes)  # absent keys: unchanged
            check_overrides(job.overrides, self.limits)
            rebound = job.function_name != before.function_name
            live: Manifest | None = None
            if rebound:
                live = await _live_manifest_share(conn, org, job.function_name)
            try:
                args = (org, name, job.function_name, *_policy_args(job.overrides))
                row = await conn.fetchrow(sql.JOBS_UPDATE, *args)
            except asyncpg.ForeignKeyViolationError:
                raise FunctionNotFound(job.function_name) from None
            triggers = TriggerChanges()
            if rebound:
                wanted = wanted_triggers(_declared(live.job if live is not None else None))
                triggers = await sync_job(conn, org, name, wanted)
        return JobBinding(_convert(row, JobInfo), triggers)

    async def delete_job(self, org: str, name: str) -> None:
        if await self._pool.fetchval(sql.JOBS_DELETE, org, name) is None:
            raise JobNotFound(name)

    async def resolve(self, org: str, job_name: str) -> ResolvedJob:
        """The job with its function's live version and effective policy."""
        return self._resolved(
            org, job_name, await self._pool.fetchrow(sql.JOBS_RESOLVE, org, job_name)
        )

    async def resolve_admission(self, org: str, job_name: str) -> tuple[ResolvedJob, int]:
        """resolve(), and in the same round trip the job's runs that count against its
        maxConcurrency when a manual or webhook trigger is admitted."""
        row = await self._pool.fetchrow(sql.JOBS_RESOLVE_ADMISSION, org, job_name)
        return self._resolved(org, job_name, row), row["active"]

    def _resolved(self, org: str, job_name: str, row: asyncpg.Record | None) -> ResolvedJob:
        if row is None:
            raise JobNotFound(job_name)
        job = _convert(row, JobInfo)
        if row["live_version"] is None or row["manifest"] is None:
            raise NotPromoted(job.function_name)
        function = FunctionInfo(
            org=org,
            name=job.function_name,
            runtime=row["runtime"],
            live_version=row["live_version"],
            created_at=row["function_created_at"],
            updated_at=row["function_updated_at"],
        )
        manifest = msgspec.json.decode(row["manifest"], type=Manifest)
        policy = resolve_policy(manifest.job, job.overrides, self.limits)
        return ResolvedJob(
            job=job,
            function=function,
            version=row["live_version"],
            policy=policy,
            manifest=manifest,
        )


def _declared(job: JobManifest | None) -> list[Trigger]:
    """The triggers a job's manifest declares; none without a job section."""
    return job.triggers if job is not None else []


def _check_triggers(manifest: Manifest) -> None:
    """The manifest's triggers as the API would take them, so a promote cannot refuse them."""
    triggers = manifest.job.triggers if manifest.job is not None else []
    for index, trigger in enumerate(triggers):
        try:
            spec_of(trigger)
        except InvalidField as exc:
            raise InvalidManifest(exc.reason, f"$.job.triggers[{index}].{exc.field}") from None


async def _live_manifest_share(
    conn: asyncpg.Connection, org: str, function_name: str
) -> Manifest | None:
    """The live version's manifest of a function (None: nothing promoted yet), its row
    share-locked until the transaction ends so no promote runs meanwhile."""
    row = await conn.fetchrow(sql.FUNCTIONS_SHARE, org, function_name)
    if row is None:
        raise FunctionNotFound(function_name)
    if row["live_version"] is None:
        return None
    raw = await conn.fetchval(sql.VERSIONS_MANIFEST, org, function_name, row["live_version"])
    return msgspec.json.decode(raw, type=Manifest)


def _convert(row: asyncpg.Record, kind: type[_T], **replaced: Any) -> _T:
    return msgspec.convert({**dict(row), **replaced}, kind)


def _policy_args(overrides: PolicyOverrides) -> tuple[Any, ...]:
    return tuple(getattr(overrides, field) for field in _POLICY_FIELDS)
