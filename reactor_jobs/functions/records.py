"""What the registry returns: functions, their versions and jobs, as immutable records."""

from __future__ import annotations

from datetime import datetime

import msgspec

from reactor_jobs.functions.manifest import Manifest, PolicyOverrides
from reactor_jobs.wire.objects import Backoff, Policy, Runtime


class FunctionInfo(msgspec.Struct, frozen=True, kw_only=True):
    org: str
    name: str
    runtime: Runtime
    live_version: int | None
    created_at: datetime
    updated_at: datetime


class VersionInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A deployed version without its archive, for listings."""

    org: str
    name: str
    version: int
    sha256: str  # hex
    size: int  # archive bytes
    live: bool
    created_at: datetime


class FunctionVersion(msgspec.Struct, frozen=True, kw_only=True):
    """A deployed bundle: what a runtime loads."""

    org: str
    name: str
    version: int
    runtime: Runtime
    archive: bytes
    sha256: str  # hex
    manifest: Manifest
    created_at: datetime


class JobInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A job; a policy field left None takes the live version manifest's value."""

    org: str
    name: str
    function_name: str
    max_attempts: int | None = None
    backoff: Backoff | None = None
    initial_delay_ms: int | None = None
    max_delay_ms: int | None = None
    max_concurrency: int | None = None
    timeout_ms: int | None = None
    created_at: datetime
    updated_at: datetime

    @property
    def overrides(self) -> PolicyOverrides:
        return PolicyOverrides(
            max_attempts=self.max_attempts,
            backoff=self.backoff,
            initial_delay_ms=self.initial_delay_ms,
            max_delay_ms=self.max_delay_ms,
            max_concurrency=self.max_concurrency,
            timeout_ms=self.timeout_ms,
        )


class ResolvedJob(msgspec.Struct, frozen=True, kw_only=True):
    """What a trigger needs: the job, its function, the live version and the policy."""

    job: JobInfo
    function: FunctionInfo
    version: int
    policy: Policy
    manifest: Manifest
