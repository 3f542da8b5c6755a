"""The run state machine: `transition` takes a run's state past one event; the replay fold
and the runs projection (domain/projection.py) are both derived from it. Pure; no clock."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

import msgspec

from reactor_jobs.domain import events as ev
from reactor_jobs.domain.events import RecordedEvent

TERMINAL = frozenset({"completed", "failed", "cancelled"})


class Sleep(msgspec.Struct, kw_only=True):
    wake_at: datetime
    done: bool = False


class Decision(msgspec.Struct, kw_only=True):
    """One call the code made that a replay must make again: kind, name and place."""

    kind: str  # step | emit | sleep | data
    name: str  # the step or sleep key, the emit's topic, a data call's data:<table>#n
    pos: int  # place in the code's call order
    position: int  # journal position of the event that recorded it
    output: Any = None  # a step's output, an emit's payload, a data call's rows
    count: int | None = None  # a data call's row count
    failed: bool = False  # a step that raised: it never completed
    event_id: str | None = None  # an emit's id


def _after(at: datetime, ms: int | None) -> datetime:
    return at + timedelta(milliseconds=ms or 0)


class RunState(msgspec.Struct, kw_only=True):
    """Everything a worker needs to resume a run, rebuilt from its stream alone."""

    run_id: str = ""
    org: str = ""
    job: str = ""
    function: str = ""
    function_version: int = 0
    trigger: ev.TriggerInfo | None = None
    payload: Any = None
    headers: dict[str, str] = msgspec.field(default_factory=dict)
    content_type: str = "application/json"
    idempotency_key: str | None = None
    status: str = "new"
    attempt: int = 0  # executions so far (AttemptStarted), what fences an attempt
    tries: int = 0  # tries counted against max_attempts: not wake-ups, not interruptions
    interruptions: int = 0  # attempts released without being charged
    resume: bool = False  # the next start continues this try (after a sleep, an interruption)
    max_attempts: int = 3
    timeout_ms: int = 600_000
    max_concurrency: int = 10
    backoff: str = "exponential"
    initial_delay_ms: int = 1000
    max_delay_ms: int = 60_000
    worker: str | None = None
    lease_expires_at: datetime | None = None
    available_at: datetime | None = None
    sleep_name: str | None = None  # the sleep a sleeping run waits on
    steps: dict[str, Any] = msgspec.field(default_factory=dict)  # name -> recorded output
    state: dict[str, Any] = msgspec.field(default_factory=dict)
    emitted: list[str] = msgspec.field(default_factory=list)  # event ids, in order
    sleeps: dict[str, Sleep] = msgspec.field(default_factory=dict)
    decisions: dict[int, Decision] = msgspec.field(default_factory=dict)  # by pos
    last_error: ev.ErrorInfo | None = None
    output: Any = None
    dlq_id: str | None = None
    created_at: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    updated_at: datetime | None = None
    position: int = 0
    last_hash: bytes = b""

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    def recorded(self) -> list[Decision]:
        """The code's recorded calls in call order."""
        return [self.decisions[pos] for pos in sorted(self.decisions)]


def _decide(s: RunState, decision: Decision, pos: int | None) -> None:
    # Events older than `pos` take the next place in stream order.
    decision.pos = len(s.decisions) if pos is None else pos
    decision.position = s.position
    s.decisions[decision.pos] = decision


def _triggered(s: RunState, e: ev.Triggered, at: datetime) -> None:
    s.org, s.job, s.function, s.function_version = e.org, e.job, e.function, e.function_version
    s.trigger, s.payload, s.headers, s.content_type = (
        e.trigger,
        e.payload,
        e.headers,
        e.content_type,
    )
    s.idempotency_key = e.idempotency_key
    s.max_attempts, s.timeout_ms, s.max_concurrency = (
        e.max_attempts,
        e.timeout_ms,
        e.max_concurrency,
    )
    s.backoff, s.initial_delay_ms, s.max_delay_ms = e.backoff, e.initial_delay_ms, e.max_delay_ms
    s.status, s.available_at, s.created_at = "queued", e.available_at or at, at


def _attempt_started(s: RunState, e: ev.AttemptStarted, at: datetime) -> None:
    s.status, s.attempt, s.worker, s.lease_expires_at = (
        "running",
        e.attempt,
        e.worker,
        e.lease_expires_at,
    )
    if not s.resume or s.tries == 0:
        s.tries += 1
    s.resume = False
    s.available_at = None
    if e.attempt == 1:  # started_at is the run's first start (as the projection has it)
        s.started_at = at


def _lease_extended(s: RunState, e: ev.LeaseExtended, at: datetime) -> None:
    s.lease_expires_at = e.lease_expires_at or _after(at, e.lease_ms)


def _release(s: RunState, status: str, available_at: datetime | None) -> None:
    """The run leaves the running (or sleeping) state: no lease, no sleep to wait on."""
    s.status, s.available_at, s.worker, s.lease_expires_at = status, available_at, None, None
    s.sleep_name = None


def _step_completed(s: RunState, e: ev.StepCompleted, at: datetime) -> None:
    s.steps[e.name] = e.output
    _decide(s, Decision(kind="step", name=e.name, pos=0, position=0, output=e.output), e.pos)


def _step_failed(s: RunState, e: ev.StepFailed, at: datetime) -> None:
    if e.name not in s.steps:
        _decide(s, Decision(kind="step", name=e.name, pos=0, position=0, failed=True), e.pos)


def _state_set(s: RunState, e: ev.StateSet, at: datetime) -> None:
    if e.deleted:
        s.state.pop(e.key, None)
    else:
        s.state[e.key] = e.value


def _emitted(s: RunState, e: ev.Emitted, at: datetime) -> None:
    s.emitted.append(e.event_id)
    emit = Decision(
        kind="emit", name=e.topic, pos=0, position=0, output=e.payload, event_id=e.event_id
    )
    _decide(s, emit, e.pos)


def _data_called(s: RunState, e: ev.DataCalled, at: datetime) -> None:
    # Shown among the steps (`data:orders`): a recorded result, returned on replay.
    s.steps[e.name] = {"rows": e.rows, "count": e.count}
    call = Decision(kind="data", name=e.name, pos=0, position=0, output=e.rows, count=e.count)
    _decide(s, call, e.pos)


def _sleep_scheduled(s: RunState, e: ev.SleepScheduled, at: datetime) -> None:
    wake_at = e.wake_at or _after(at, e.delay_ms)
    s.sleeps[e.name] = Sleep(wake_at=wake_at)
    _decide(s, Decision(kind="sleep", name=e.name, pos=0, position=0), e.pos)
    _release(s, "sleeping", wake_at)
    s.sleep_name = e.name


def _sleep_completed(s: RunState, e: ev.SleepCompleted, at: datetime) -> None:
    if e.name in s.sleeps:
        s.sleeps[e.name].done = True
    s.resume = True
    _release(s, "queued", at)


def _failed(s: RunState, e: ev.Failed, at: datetime) -> None:
    s.last_error = e.error
    _release(s, "retrying", at)


def _interrupted(s: RunState, e: ev.AttemptInterrupted, at: datetime) -> None:
    s.interruptions += 1
    s.resume = True
    _release(s, "retrying", at)  # due at once, and resumed work goes first


def _timed_out(s: RunState, e: ev.TimedOut, at: datetime) -> None:
    s.last_error = e.error
    _release(s, "retrying", at)


def _lease_expired(s: RunState, e: ev.LeaseExpired, at: datetime) -> None:
    s.last_error = e.error
    if not e.charged:
        s.interruptions += 1
        s.resume = True
    _release(s, "retrying", at)


def _retry_scheduled(s: RunState, e: ev.RetryScheduled, at: datetime) -> None:
    _release(s, "retrying", e.available_at or _after(at, e.delay_ms))


def _dead_lettered(s: RunState, e: ev.DeadLettered, at: datetime) -> None:
    s.dlq_id, s.finished_at = e.dlq_id, at
    s.last_error = e.error or s.last_error
    _release(s, "failed", None)


def _retried(s: RunState, e: ev.Retried, at: datetime) -> None:
    s.dlq_id, s.finished_at = None, None
    if e.max_attempts is not None:
        s.max_attempts = e.max_attempts
    _release(s, "queued", at)


def _cancelled(s: RunState, e: ev.Cancelled, at: datetime) -> None:
    s.finished_at = at
    _release(s, "cancelled", None)


def _completed(s: RunState, e: ev.Completed, at: datetime) -> None:
    s.output, s.finished_at, s.last_error = e.output, at, None
    _release(s, "completed", None)


_TRANSITIONS: dict[type, Callable[[RunState, Any, datetime], None]] = {
    ev.Triggered: _triggered,
    ev.AttemptStarted: _attempt_started,
    ev.LeaseExtended: _lease_extended,
    ev.StepCompleted: _step_completed,
    ev.StepFailed: _step_failed,
    ev.StateSet: _state_set,
    ev.Emitted: _emitted,
    ev.SleepScheduled: _sleep_scheduled,
    ev.DataCalled: _data_called,
    ev.SleepCompleted: _sleep_completed,
    ev.Failed: _failed,
    ev.RetryScheduled: _retry_scheduled,
    ev.DeadLettered: _dead_lettered,
    ev.Retried: _retried,
    ev.Cancelled: _cancelled,
    ev.TimedOut: _timed_out,
    ev.LeaseExpired: _lease_expired,
    ev.AttemptInterrupted: _interrupted,
    ev.Completed: _completed,
}


def transition(s: RunState, event: ev.Event, at: datetime, position: int) -> RunState:
    """The run state machine: `s` after `event`, recorded at `at` in stream place `position`.

    It changes `s` in place and returns it: a fold over a long stream copies nothing. Times
    are derived from `at` only by adding to it, so a caller may pass a symbolic clock (the
    projection passes its append's now(), see domain/projection.py)."""
    s.position = position
    _TRANSITIONS[type(event)](s, event, at)
    s.updated_at = at
    return s


def fold(records: Iterable[RecordedEvent], state: RunState | None = None) -> RunState:
    """Apply recorded events in stream order; pass `state` to continue an earlier fold."""
    s = state if state is not None else RunState()
    for rec in records:
        if not s.run_id:
            s.run_id = rec.run_id
        transition(s, rec.event, rec.recorded_at, rec.position)
        s.last_hash = rec.hash
    return s
