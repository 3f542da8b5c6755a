"""The server's side of the API's objects: the Structs themselves are defined once in
reactor_jobs.wire (shared with the client) and re-exported here; the functions below build
response objects from the engine's records, which the wire package must not know."""

from __future__ import annotations

from typing import Any

import msgspec

from reactor_jobs.domain.projection import RunInfo
from reactor_jobs.functions.records import FunctionInfo, JobInfo, VersionInfo
from reactor_jobs.triggers.manifest_sync import TriggerChanges as SyncedTriggers
from reactor_jobs.triggers.store import Trigger as TriggerRecord
from reactor_jobs.wire.objects import (
    Backoff,
    Cause,
    CreatedTrigger,
    DlqEntry,
    DlqList,
    Event,
    EventList,
    Fire,
    Function,
    FunctionCheck,
    FunctionCheckRequest,
    FunctionCreate,
    FunctionList,
    FunctionWithTriggers,
    Health,
    HostsHealth,
    Int32,
    Job,
    JobCreate,
    JobList,
    JobUpdate,
    JobWithTriggers,
    JournalEvent,
    JournalEvents,
    LineageRun,
    ManualTrigger,
    NextFires,
    Policy,
    Promote,
    ReplayRequest,
    ReplayResult,
    Run,
    RunList,
    RunStateAt,
    Runtime,
    SleepAt,
    StateChange,
    StateDiff,
    Trigger,
    TriggerChanges,
    TriggerFires,
    TriggerList,
    Version,
    VersionList,
    VersionNumber,
    WebhookAccepted,
)

__all__ = [
    "Backoff",
    "Cause",
    "CreatedTrigger",
    "DlqEntry",
    "DlqList",
    "Event",
    "EventList",
    "Fire",
    "Function",
    "FunctionCheck",
    "FunctionCheckRequest",
    "FunctionCreate",
    "FunctionList",
    "FunctionWithTriggers",
    "Health",
    "HostsHealth",
    "Int32",
    "Job",
    "JobCreate",
    "JobList",
    "JobUpdate",
    "JobWithTriggers",
    "JournalEvent",
    "JournalEvents",
    "LineageRun",
    "ManualTrigger",
    "NextFires",
    "Policy",
    "Promote",
    "ReplayRequest",
    "ReplayResult",
    "Run",
    "RunList",
    "RunStateAt",
    "Runtime",
    "SleepAt",
    "StateChange",
    "StateDiff",
    "Trigger",
    "TriggerChanges",
    "TriggerFires",
    "TriggerList",
    "Version",
    "VersionList",
    "VersionNumber",
    "WebhookAccepted",
]


def _without_org(record: msgspec.Struct) -> dict[str, Any]:
    """The record's fields but its org: the caller's org is implied by the request."""
    fields = msgspec.structs.asdict(record)
    del fields["org"]
    return fields


def run_of(info: RunInfo) -> Run:
    return Run(**_without_org(info))


def job_of(info: JobInfo, policy: Policy | None) -> Job:
    return Job(**_without_org(info), policy=policy)


def trigger_of(record: TriggerRecord) -> Trigger:
    return msgspec.convert(_without_org(record), Trigger)


def function_of(info: FunctionInfo) -> Function:
    return Function(**_without_org(info))


def version_of(info: VersionInfo) -> Version:
    return Version(**_without_org(info))


def trigger_changes_of(changes: SyncedTriggers, *, signed: bool) -> TriggerChanges | None:
    """None when there is nothing to tell; `signed`: the server has a webhook_secret
    (a manifest webhook has no secret of its own)."""
    if not changes:
        return None
    added = [
        CreatedTrigger(
            **msgspec.structs.asdict(trigger_of(new.trigger)),
            url=new.url,
            signed=signed if new.url is not None else None,
        )
        for new in changes.added
    ]
    return TriggerChanges(
        added=added,
        changed=[trigger_of(t) for t in changes.changed],
        removed=[trigger_of(t) for t in changes.removed],
        unchanged=[trigger_of(t) for t in changes.unchanged],
    )
