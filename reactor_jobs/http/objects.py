"""The API's objects as msgspec Structs: requests are decoded into them (unknown fields
refused), responses encoded from them, and the OpenAPI document's schemas generated from
them, so the three cannot drift apart."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from reactor_jobs.engine.runs import RunInfo
from reactor_jobs.functions.manifest import Backoff, Policy, Runtime
from reactor_jobs.functions.records import FunctionInfo, JobInfo, VersionInfo
from reactor_jobs.triggers.store import Trigger as TriggerRecord


class _In(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


class _Out(msgspec.Struct, frozen=True, kw_only=True):
    pass


# Requests


class JobCreate(_In, frozen=True):
    name: str
    function_name: str
    max_attempts: int | None = None
    backoff: Backoff | None = None
    initial_delay_ms: int | None = None
    max_delay_ms: int | None = None
    max_concurrency: int | None = None
    timeout_ms: int | None = None


class JobUpdate(_In, frozen=True):
    """Only the fields sent change; null clears a policy field back to the manifest's."""

    function_name: str | UnsetType = UNSET
    max_attempts: int | UnsetType | None = UNSET
    backoff: Backoff | UnsetType | None = UNSET
    initial_delay_ms: int | UnsetType | None = UNSET
    max_delay_ms: int | UnsetType | None = UNSET
    max_concurrency: int | UnsetType | None = UNSET
    timeout_ms: int | UnsetType | None = UNSET


class ManualTrigger(_In, frozen=True):
    payload: Any = None


class FunctionCreate(_In, frozen=True):
    name: str
    runtime: Runtime = "python"


class Promote(_In, frozen=True):
    version: int | None = None


# Responses


class Run(_Out, frozen=True):
    id: str
    job: str
    status: str
    attempt: int
    function: str
    function_version: int
    trigger_kind: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    available_at: datetime | None
    last_error: Any
    output: Any
    dlq_id: str | None
    idempotency_key: str | None

    @classmethod
    def of(cls, info: RunInfo) -> Run:
        fields = msgspec.structs.asdict(info)
        del fields["org"]
        return cls(**fields)


class Job(_Out, frozen=True):
    name: str
    function_name: str
    max_attempts: int | None
    backoff: Backoff | None
    initial_delay_ms: int | None
    max_delay_ms: int | None
    max_concurrency: int | None
    timeout_ms: int | None
    created_at: datetime
    updated_at: datetime
    policy: Policy | None  # the effective policy; null while the function has no live version

    @classmethod
    def of(cls, info: JobInfo, policy: Policy | None) -> Job:
        fields = msgspec.structs.asdict(info)
        del fields["org"]
        return cls(**fields, policy=policy)


class Trigger(_Out, frozen=True):
    id: str
    job: str
    kind: Literal["cron", "event", "webhook", "manual"]
    schedule: str | None
    timezone: str | None
    catch_up: Literal["latest", "skip", "all"] | None
    topic: str | None
    source: Literal["api", "manifest"]
    created_at: datetime

    @classmethod
    def of(cls, record: TriggerRecord) -> Trigger:
        fields = msgspec.structs.asdict(record)
        del fields["org"]
        return msgspec.convert(fields, cls)


class CreatedTrigger(Trigger, frozen=True, omit_defaults=True):
    """A trigger as its creation returns it: a webhook's ingress URL is shown only here
    (and the field is absent for other kinds)."""

    url: str | None = None


class DlqEntry(_Out, frozen=True):
    id: str
    run_id: str
    job: str
    attempts: int
    error: Any
    status: Literal["open", "retried"]
    created_at: datetime
    retried_at: datetime | None


class Event(_Out, frozen=True):
    id: str
    topic: str
    payload: Any
    run_id: str
    job: str
    emitted_at: datetime
    consumed_at: datetime | None
    fanout: int


class JournalEvent(_Out, frozen=True):
    """A journal row as `reactor journal dump` exports it; `data` is the event itself."""

    global_position: int
    run_id: str
    position: int
    org: str
    type: str
    version: int
    recorded_at: datetime
    prev_hash: str
    hash: str
    data: Any


class Function(_Out, frozen=True):
    name: str
    runtime: Runtime
    live_version: int | None
    created_at: datetime
    updated_at: datetime

    @classmethod
    def of(cls, info: FunctionInfo) -> Function:
        fields = msgspec.structs.asdict(info)
        del fields["org"]
        return cls(**fields)


class Version(_Out, frozen=True):
    name: str
    version: int
    sha256: str
    size: int
    live: bool
    created_at: datetime

    @classmethod
    def of(cls, info: VersionInfo) -> Version:
        fields = msgspec.structs.asdict(info)
        del fields["org"]
        return cls(**fields)


class WebhookAccepted(_Out, frozen=True):
    run_id: str
    status: str


class Health(_Out, frozen=True):
    status: str


# Lists


class RunList(_Out, frozen=True):
    runs: list[Run]
    next_cursor: str | None


class JobList(_Out, frozen=True):
    jobs: list[Job]


class TriggerList(_Out, frozen=True):
    triggers: list[Trigger]


class DlqList(_Out, frozen=True):
    entries: list[DlqEntry]
    next_cursor: str | None


class EventList(_Out, frozen=True):
    events: list[Event]
    next_cursor: str | None


class JournalEvents(_Out, frozen=True):
    events: list[JournalEvent]


class FunctionList(_Out, frozen=True):
    functions: list[Function]


class VersionList(_Out, frozen=True):
    versions: list[Version]
