"""Pure projection handlers: event -> row changes. No database here.

The runs row is the run's state (domain/replay.py's `transition`) seen through its columns:
a patch is the columns the state machine wrote, run on a state that knows nothing of the
run, so the append never reads the row first. The value NOW stands for the event's recorded
time: inline, SQL turns it into now() (the same transaction time the journal records); on
rebuild, Python puts the event's recorded_at in its place. Both paths apply the same
changes, which is why a rebuilt projection equals the live one.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from reactor_jobs.domain import events as ev
from reactor_jobs.domain.replay import RunState, transition

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


class _AppendTime(datetime):
    """A time on the append's clock: its transaction's now() plus how far past it."""


# What the state machine is given as the events' time when projecting an append. Adding a
# delay to a datetime keeps its subclass, so every time a transition derives from it is
# recognisably "now() + ms", while times carried by events stay plain datetimes.
APPEND_NOW = _AppendTime(2000, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


class _Unknown:
    """A field of the run's state the append does not know (the row holds it)."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()


# The RunState field (or field.attribute) behind each column of the runs row.
_COLUMN_FIELDS = {
    "run_id": "run_id",
    "org": "org",
    "job": "job",
    "function_name": "function",
    "function_version": "function_version",
    "trigger_kind": "trigger.kind",
    "trigger_source": "trigger.source",
    "idempotency_key": "idempotency_key",
    "status": "status",
    "attempt": "attempt",
    "max_attempts": "max_attempts",
    "timeout_ms": "timeout_ms",
    "max_concurrency": "max_concurrency",
    "available_at": "available_at",
    "sleep_name": "sleep_name",
    "lease_owner": "worker",
    "lease_expires_at": "lease_expires_at",
    "created_at": "created_at",
    "started_at": "started_at",
    "finished_at": "finished_at",
    "updated_at": "updated_at",
    "last_error": "last_error",
    "output": "output",
    "dlq_id": "dlq_id",
    "last_position": "position",
}
assert tuple(_COLUMN_FIELDS) == RUN_COLUMNS
_COLUMN_PATHS = [(column, *path.partition(".")[::2]) for column, path in _COLUMN_FIELDS.items()]
_STATE_FIELDS = {field for _, field, _ in _COLUMN_PATHS}


_ALL_UNKNOWN = dict.fromkeys(_STATE_FIELDS, UNKNOWN)


def _unknown_run() -> RunState:
    """A run's state as an append to an existing run sees it: every field the row holds is
    unknown, so after the events the fields still unknown are the ones left as they were.
    (A Struct's constructor checks no types; the fold-only fields get their defaults.)"""
    return RunState(**_ALL_UNKNOWN)


def run_row(s: RunState) -> Row:
    """The runs row's columns the state knows, times on the append's clock as NOW markers."""
    row: Row = {}
    for column, field, attribute in _COLUMN_PATHS:
        value = getattr(s, field)
        if value is UNKNOWN:
            continue
        if attribute:
            value = getattr(value, attribute, None)
        if value is APPEND_NOW:  # the common case: the event's own time
            row[column] = NOW
        elif isinstance(value, _AppendTime):
            row[column] = NOW
            row[LATER + column] = round((value - APPEND_NOW) / _MS)
        elif column in ("last_error", "output"):
            row[column] = msgspec.to_builtins(value)
        else:
            row[column] = value
    return row


def _error(info: ev.ErrorInfo | None) -> Any:
    return None if info is None else msgspec.to_builtins(info)


def _side_effects(changes: Changes, run_id: str, event: ev.Event) -> None:
    """What an event does beyond its run's row: the dlq and events tables, the workers'
    wake-up."""
    match event:
        case ev.Triggered():
            changes.notify = changes.notify or event.available_at is None
            if event.trigger.event_id is not None:
                changes.events_consumed.append(event.trigger.event_id)
        case ev.AttemptInterrupted() | ev.Cancelled():  # interrupted: due at once, first
            changes.notify = True
        case ev.DeadLettered():
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
            opened = [row for row in changes.dlq_opened if row["dlq_id"] == event.dlq_id]
            if opened:  # opened by this same append: a sibling UPDATE could not see the row
                opened[0].update(status="retried", retried_at=NOW)
            elif event.dlq_id is not None:
                changes.dlq_retried.append(event.dlq_id)
            changes.notify = True
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
        case _:  # a retry due later: workers time their wake-up, no NOTIFY
            pass


def project(run_id: str, first_position: int, events: list[ev.Event]) -> Changes:
    """The projection changes of appending `events` at `first_position` onwards."""
    changes = Changes()
    new = isinstance(events[0], ev.Triggered) if events else False
    state = RunState(run_id=run_id) if new else _unknown_run()
    for offset, event in enumerate(events):
        transition(state, event, APPEND_NOW, first_position + offset)
        _side_effects(changes, run_id, event)
    row = run_row(state)
    if new:
        changes.new_run = row
    else:
        changes.run_patch = row
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


class RunInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A run as the runs projection shows it."""

    id: str
    org: str
    job: str
    status: str
    attempt: int
    function: str
    function_version: int
    trigger_kind: str
    created_at: datetime
    updated_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    available_at: datetime | None = None
    last_error: Any = None
    output: Any = None
    dlq_id: str | None = None
    idempotency_key: str | None = None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> RunInfo:
        decode = msgspec.json.decode
        return cls(
            id=row["run_id"],
            org=row["org"],
            job=row["job"],
            status=row["status"],
            attempt=row["attempt"],
            function=row["function_name"],
            function_version=row["function_version"],
            trigger_kind=row["trigger_kind"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            started_at=row["started_at"],
            finished_at=row["finished_at"],
            available_at=row["available_at"],
            last_error=None if row["last_error"] is None else decode(row["last_error"]),
            output=None if row["output"] is None else decode(row["output"]),
            dlq_id=row["dlq_id"],
            idempotency_key=row["idempotency_key"],
        )
