"""The run journal's vocabulary: one tagged union of immutable, versioned events.

Tags are stable names written into the journal, never Python import paths. Each event
carries a schema version; `decode` upcasts stored older versions to the current shape.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from typing import Any, ClassVar, NewType

import msgspec

RunId = NewType("RunId", str)
OrgId = NewType("OrgId", str)


class _Event(msgspec.Struct, frozen=True, kw_only=True, tag_field="type"):
    VERSION: ClassVar[int] = 1


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True):
    """A failure as recorded: exception type, message and whether a retry may help."""

    type: str
    message: str
    retryable: bool = True
    traceback: str | None = None  # the job code's own frames (file:line), when it raised


class TriggerInfo(msgspec.Struct, frozen=True, kw_only=True):
    """What started a run: the trigger kind and where it came from."""

    kind: str  # manual | cron | webhook | event | retry
    source: str | None = None  # trigger id, webhook trigger id, cron trigger id
    event_id: str | None = None  # the Emitted event that caused it (kind == "event")
    causation_run_id: str | None = None  # the run that emitted that event
    scheduled_for: datetime | None = None  # the cron slot


class Triggered(_Event, frozen=True, tag="Triggered"):
    org: str
    job: str
    function: str
    function_version: int
    trigger: TriggerInfo
    payload: Any = None
    headers: dict[str, str] = {}
    content_type: str = "application/json"
    idempotency_key: str | None = None
    # the job's policy as resolved when triggered; the run keeps it whatever changes later
    max_attempts: int = 3
    backoff: str = "exponential"
    initial_delay_ms: int = 1000
    max_delay_ms: int = 60_000
    timeout_ms: int = 600_000
    max_concurrency: int = 10
    available_at: datetime | None = None  # None: runnable at once


class AttemptStarted(_Event, frozen=True, tag="AttemptStarted"):
    attempt: int
    worker: str
    lease_expires_at: datetime


class LeaseExtended(_Event, frozen=True, tag="LeaseExtended"):
    """The executing worker's heartbeat: it still owns the attempt for `lease_ms` past the
    event's recorded time (the database's clock). Older events carry the absolute time."""

    attempt: int
    worker: str
    lease_expires_at: datetime | None = None
    lease_ms: int | None = None


# `pos` on a step, emit or sleep: the decision's place in the order the code made its calls
# (not the order they finished in), which replays check. Older events have none: their
# order in the stream is their place.


class StepCompleted(_Event, frozen=True, tag="StepCompleted"):
    name: str
    attempt: int
    output: Any = None
    duration_ms: float = 0.0
    pos: int | None = None


class StepFailed(_Event, frozen=True, tag="StepFailed"):
    name: str
    attempt: int
    error: ErrorInfo
    pos: int | None = None


class StateSet(_Event, frozen=True, tag="StateSet"):
    key: str
    value: Any = None
    deleted: bool = False


class Emitted(_Event, frozen=True, tag="Emitted"):
    event_id: str
    topic: str
    payload: Any = None
    pos: int | None = None


class SleepScheduled(_Event, frozen=True, tag="SleepScheduled"):
    """A durable sleep: until `wake_at` (sleep_until), or for `delay_ms` past the event's
    recorded time, so the database's clock sets the wake time, never a worker's."""

    name: str
    wake_at: datetime | None = None
    delay_ms: int | None = None
    pos: int | None = None


class DataCalled(_Event, frozen=True, tag="DataCalled"):
    """A ctx.data call made outside any step, with its result: a retry or a resume returns
    these rows instead of calling again, and an auditor sees what the run read or wrote.
    `name` is `data:<table>` (or `data:rpc/<function>`), `#n` from the second use on;
    `request` is what was asked (method, table, filters, Prefer; never a body or a key)."""

    name: str
    request: dict[str, Any]
    rows: Any = None
    count: int | None = None
    pos: int | None = None


class SleepCompleted(_Event, frozen=True, tag="SleepCompleted"):
    name: str


class Failed(_Event, frozen=True, tag="Failed"):
    attempt: int
    error: ErrorInfo


class RetryScheduled(_Event, frozen=True, tag="RetryScheduled"):
    """The next try is due `delay_ms` past the event's recorded time (older events carry an
    absolute `available_at`)."""

    attempt: int  # the attempt that will run next
    available_at: datetime | None = None
    delay_ms: int | None = None


class DeadLettered(_Event, frozen=True, tag="DeadLettered"):
    dlq_id: str
    attempts: int
    error: ErrorInfo | None = None


class Retried(_Event, frozen=True, tag="Retried"):
    dlq_id: str | None = None
    by: str | None = None
    max_attempts: int | None = None  # the new ceiling on the attempt number


class Cancelled(_Event, frozen=True, tag="Cancelled"):
    reason: str = "cancelled"
    by: str | None = None


class TimedOut(_Event, frozen=True, tag="TimedOut"):
    attempt: int
    timeout_ms: int

    @property
    def error(self) -> ErrorInfo:
        """The run's last error after it: the one message for a timeout."""
        return ErrorInfo(
            type="TimedOut",
            message=f"attempt {self.attempt} ran past its timeout of {self.timeout_ms} ms",
        )


class LeaseExpired(_Event, frozen=True, tag="LeaseExpired"):
    attempt: int
    worker: str
    # False when the lease ran out only because the database was unreachable: not a try.
    charged: bool = True

    @property
    def error(self) -> ErrorInfo:
        """The run's last error after it: the one message for a lost lease."""
        return ErrorInfo(
            type="LeaseExpired",
            message=f"worker {self.worker} lost its lease during attempt {self.attempt}",
        )


class AttemptInterrupted(_Event, frozen=True, tag="AttemptInterrupted"):
    """The attempt stopped through no fault of its own (its function host died while running
    another run's code, the worker shut down): the run is queued again and this attempt is
    not counted against maxAttempts."""

    attempt: int
    reason: str


class Completed(_Event, frozen=True, tag="Completed"):
    output: Any = None


Event = (
    Triggered
    | AttemptStarted
    | LeaseExtended
    | StepCompleted
    | StepFailed
    | StateSet
    | Emitted
    | SleepScheduled
    | DataCalled
    | SleepCompleted
    | Failed
    | RetryScheduled
    | DeadLettered
    | Retried
    | Cancelled
    | TimedOut
    | LeaseExpired
    | AttemptInterrupted
    | Completed
)

EVENT_TYPES: dict[str, type[_Event]] = {
    cls.__struct_config__.tag: cls  # type: ignore[misc]
    for cls in (
        Triggered,
        AttemptStarted,
        LeaseExtended,
        StepCompleted,
        StepFailed,
        StateSet,
        Emitted,
        SleepScheduled,
        DataCalled,
        SleepCompleted,
        Failed,
        RetryScheduled,
        DeadLettered,
        Retried,
        Cancelled,
        TimedOut,
        LeaseExpired,
        AttemptInterrupted,
        Completed,
    )
}

TERMINAL_EVENTS = (Completed, DeadLettered, Cancelled)

# (type, stored version) -> function turning that version's data into the next version's.
# One small function per version step; decode applies them in a chain.
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
UPCASTERS: dict[tuple[str, int], Upcaster] = {}

_encoder = msgspec.json.Encoder(order="sorted")
_decoder: msgspec.json.Decoder[Event] = msgspec.json.Decoder(Event)
_list_decoder: msgspec.json.Decoder[list[Event]] = msgspec.json.Decoder(list[Event])


def event_type(event: Event) -> str:
    return str(type(event).__struct_config__.tag)


def event_version(event: Event) -> int:
    return type(event).VERSION


def encode(event: Event) -> bytes:
    """The event's canonical bytes: JSON with sorted keys, the bytes the hash chain covers."""
    return _encoder.encode(event)


def canonical_json(value: Any) -> bytes:
    return _encoder.encode(value)


def decode(payload: bytes | str, type_name: str | None = None, version: int | None = None) -> Event:
    """Decode stored bytes into the current event shape, upcasting older versions."""
    if type_name is None or version is None or version == EVENT_TYPES[type_name].VERSION:
        return _decoder.decode(payload)
    return upcast(msgspec.json.decode(payload), type_name, version)


def decode_many(payloads: Iterable[bytes]) -> list[Event]:
    """Decode current-version payloads in one call: the replay fast path."""
    return _list_decoder.decode(b"[" + b",".join(payloads) + b"]")


def upcast(data: dict[str, Any], type_name: str, version: int) -> Event:
    current = EVENT_TYPES[type_name].VERSION
    while version < current:
        step = UPCASTERS.get((type_name, version))
        if step is None:
            raise ValueError(f"no upcaster for {type_name} version {version}")
        data = step(data)
        version += 1
    if version > current:
        raise ValueError(
            f"{type_name} version {version} is newer than this code understands ({current})"
        )
    data["type"] = type_name
    event: Event = msgspec.convert(data, Event)
    return event


class RecordedEvent(msgspec.Struct, frozen=True, kw_only=True):
    """An event as the journal holds it, with its envelope."""

    global_position: int
    run_id: str
    position: int
    org: str
    type: str
    version: int
    recorded_at: datetime
    prev_hash: bytes
    hash: bytes
    payload: bytes
    event: Event


def to_recorded(rows: Sequence[Any]) -> list[RecordedEvent]:
    """Build RecordedEvents from journal rows (global_position, run_id, position, org, type,
    version, recorded_at, prev_hash, hash, payload), decoding current versions in one call."""
    if all(r["version"] == EVENT_TYPES[r["type"]].VERSION for r in rows):
        decoded = decode_many(r["payload"] for r in rows)
    else:
        decoded = [decode(r["payload"], r["type"], r["version"]) for r in rows]
    return [
        RecordedEvent(
            global_position=r[0],
            run_id=r[1],
            position=r[2],
            org=r[3],
            type=r[4],
            version=r[5],
            recorded_at=r[6],
            prev_hash=r[7],
            hash=r[8],
            payload=r[9],
            event=event,
        )
        for r, event in zip(rows, decoded, strict=True)
    ]
