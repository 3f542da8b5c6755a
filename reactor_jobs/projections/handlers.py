"""Pure projection handlers: event -> row changes. No database here.

A change names columns and values. The value NOW stands for the event's recorded time:
inline, SQL turns it into now() (the same transaction time the journal records); on
rebuild, Python puts the event's recorded_at in its place. Both paths apply the same
changes, which is why a rebuilt projection equals the live one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec

from reactor_jobs.domain import events as ev

NOW = "now"  # also PostgreSQL's input literal for the transaction time
# A patch key "+column" holds milliseconds: the column becomes NOW plus that many, so the
# database's clock sets wake, retry and lease times (SQL adds them; a rebuild adds them to
# the event's recorded time).
LATER = "+"

RUN_COLUMNS = (
    "run_id",
    "org",
    "job",
    "function_name",
    "function_version",
    "trigger_kind",
    "trigger_source",
    "idempotency_key",
    "status",
    "attempt",
    "max_attempts",
    "timeout_ms",
    "max_concurrency",
    "available_at",
    "sleep_name",
    "lease_owner",
    "lease_expires_at",
    "created_at",
    "started_at",
    "finished_at",
    "updated_at",
    "last_error",
    "output",
    "dlq_id",
    "last_position",
)
RUN_TIME_COLUMNS = frozenset(
    {"available_at", "lease_expires_at", "created_at", "started_at", "finished_at", "updated_at"}
)
DLQ_COLUMNS = (
    "dlq_id",
    "org",
    "job",
    "run_id",
    "attempts",
    "error",
    "status",
    "created_at",
    "retried_at",
)
EVENT_COLUMNS = (
    "event_id",
    "org",
    "topic",
    "payload",
    "run_id",
    "job",
    "emitted_at",
    "consumed_at",
    "fanout",
)

Row = dict[str, Any]


class Changes(msgspec.Struct, kw_only=True):
    """Everything one append does to the projections, merged over its events in order."""

    new_run: Row | None = None  # from Triggered: the run's first row
    run_patch: Row = msgspec.field(default_factory=dict)
    dlq_opened: list[Row] = msgspec.field(default_factory=list)
    dlq_retried: list[str] = msgspec.field(default_factory=list)
    events_recorded: list[Row] = msgspec.field(default_factory=list)
    events_consumed: list[str] = msgspec.field(default_factory=list)
    notify: bool = False  # runnable work may have appeared: wake the workers


def _error(info: ev.ErrorInfo | None) -> Any:
    return None if info is None else msgspec.to_builtins(info)


def _released(status: str, **values: Any) -> Row:
    """A patch for a run that leaves the running state and gives up its lease."""
    return {
        "status": status,
        "lease_owner": None,
        "lease_expires_at": None,
        "sleep_name": None,
        **values,
    }


def _set_time(patch: Row, column: str, at: datetime | None, later_ms: int | None) -> None:
    """An absolute time, or NOW plus `later_ms`."""
    if at is not None:
        patch[column] = at
        patch.pop(LATER + column, None)
    else:
        patch[column], patch[LATER + column] = NOW, later_ms or 0


def _apply(changes: Changes, run_id: str, position: int, event: ev.Event) -> None:
    patch = changes.run_patch
    for column in ("available_at", "lease_expires_at"):
        patch.pop(LATER + column, None)  # a later event sets these columns afresh
    match event:
        case ev.Triggered():
            changes.new_run = {
                "run_id": run_id,
                "org": event.org,
                "job": event.job,
                "function_name": event.function,
                "function_version": event.function_version,
                "trigger_kind": event.trigger.kind,
                "trigger_source": event.trigger.source,
                "idempotency_key": event.idempotency_key,
                "status": "queued",
                "attempt": 0,
                "max_attempts": event.max_attempts,
                "timeout_ms": event.timeout_ms,
                "max_concurrency": event.max_concurrency,
                "available_at": event.available_at or NOW,
                "sleep_name": None,
                "lease_owner": None,
                "lease_expires_at": None,
                "created_at": NOW,
                "started_at": None,
                "finished_at": None,
                "updated_at": NOW,
                "last_error": None,
                "output": None,
                "dlq_id": None,
                "last_position": position,
            }
            changes.notify = changes.notify or event.available_at is None
            if event.trigger.event_id is not None:
                changes.events_consumed.append(event.trigger.event_id)
        case ev.AttemptStarted():
            patch.update(
                status="running",
                attempt=event.attempt,
                lease_owner=event.worker,
                lease_expires_at=event.lease_expires_at,
                available_at=None,
            )
            if event.attempt == 1:  # started_at is the run's first start, not its latest
                patch["started_at"] = NOW
        case ev.LeaseExtended():
            _set_time(patch, "lease_expires_at", event.lease_expires_at, event.lease_ms)
        case ev.SleepScheduled():
            patch.update(_released("sleeping", sleep_name=event.name))
            _set_time(patch, "available_at", event.wake_at, event.delay_ms)
        case ev.SleepCompleted():
            patch.update(status="queued", available_at=NOW, sleep_name=None)
        case ev.Failed():
            patch.update(_released("retrying", available_at=NOW, last_error=_error(event.error)))
        case ev.TimedOut():
            error = ev.ErrorInfo(
                type="TimedOut",
                message=f"attempt {event.attempt} ran past its timeout of {event.timeout_ms} ms",
            )
            patch.update(_released("retrying", available_at=NOW, last_error=_error(error)))
        case ev.LeaseExpired():
            error = ev.ErrorInfo(
                type="LeaseExpired",
                message=f"worker {event.worker} lost its lease during attempt {event.attempt}",
            )
            patch.update(_released("retrying", available_at=NOW, last_error=_error(error)))
        case ev.AttemptInterrupted():  # due at once, taken before fresh runs
            patch.update(_released("retrying", available_at=NOW))
            changes.notify = True
        case ev.RetryScheduled():  # due later: workers time their wake-up, no NOTIFY
            patch.update(status="retrying")
            _set_time(patch, "available_at", event.available_at, event.delay_ms)
        case ev.DeadLettered():
            patch.update(
                _released("failed", available_at=None, finished_at=NOW, dlq_id=event.dlq_id)
            )
            if event.error is not None:
                patch["last_error"] = _error(event.error)
            changes.dlq_opened.append(
                {
                    "dlq_id": event.dlq_id,
                    "run_id": run_id,
                    "attempts": event.attempts,
                    "error": _error(event.error),
                    "status": "open",
                    "created_at": NOW,
                    "retried_at": None,
                }
            )
        case ev.Retried():
            patch.update(status="queued", available_at=NOW, finished_at=None, dlq_id=None)
            if event.max_attempts is not None:
                patch["max_attempts"] = event.max_attempts
            opened = [row for row in changes.dlq_opened if row["dlq_id"] == event.dlq_id]
            if opened:  # opened by this same append: a sibling UPDATE could not see the row
                opened[0].update(status="retried", retried_at=NOW)
            elif event.dlq_id is not None:
                changes.dlq_retried.append(event.dlq_id)
            changes.notify = True
        case ev.Cancelled():
            patch.update(_released("cancelled", available_at=None, finished_at=NOW))
            changes.notify = True
        case ev.Completed():
            patch.update(
                _released(
                    "completed",
                    available_at=None,
                    finished_at=NOW,
                    output=msgspec.to_builtins(event.output),
                    last_error=None,  # the failures before it are in the journal
                )
            )
        case ev.Emitted():
            changes.events_recorded.append(
                {
                    "event_id": event.event_id,
                    "topic": event.topic,
                    "run_id": run_id,
                    "payload": msgspec.to_builtins(event.payload),
                    "emitted_at": NOW,
                    "consumed_at": None,
                    "fanout": 0,
                }
            )
        case _:  # StepCompleted, StepFailed, StateSet, DataCalled: history only, the row moves on
            pass


def project(run_id: str, first_position: int, events: list[ev.Event]) -> Changes:
    """The projection changes of appending `events` at `first_position` onwards."""
    changes = Changes()
    for offset, event in enumerate(events):
        _apply(changes, run_id, first_position + offset, event)
    last = first_position + len(events) - 1
    if changes.new_run is not None:
        changes.new_run.update(changes.run_patch)
        changes.new_run["last_position"] = last
        changes.run_patch = {}
    else:
        changes.run_patch.update(updated_at=NOW, last_position=last)
    return changes


def resolve_now(row: Row, recorded_at: datetime, time_columns: frozenset[str]) -> Row:
    """Replace NOW markers with the recorded time (plus any "+column" milliseconds): what SQL
    does with the 'now' literal and the statement's now() + interval."""
    resolved = {
        k: recorded_at if (v == NOW and k in time_columns) else v
        for k, v in row.items()
        if not k.startswith(LATER)
    }
    for key, ms in row.items():
        if key.startswith(LATER):
            resolved[key[1:]] = recorded_at + timedelta(milliseconds=ms)
    return resolved
