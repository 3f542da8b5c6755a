"""The JobContext a job function receives as `ctx`: checkpointed steps, durable state,
emit, durable sleep, logs. Every write is an append to the run's journal stream.

Names repeat in loops: the n-th use of a step (or sleep) name in a run is keyed
`name#n` from the second use on, so replays line up as long as the code takes the same
path. Sync step functions run in a thread, so a blocking step cannot stop heartbeats.
"""

from __future__ import annotations

import asyncio
import inspect
import re
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, TypeVar

import msgspec

from reactor_jobs.engine import events as ev
from reactor_jobs.engine.errors import ConcurrencyError, FenceError, ReactorError
from reactor_jobs.engine.fanout import FanOut
from reactor_jobs.engine.ids import new_id
from reactor_jobs.engine.journal import AppendRequest, Fence, Journal
from reactor_jobs.engine.logs import LogLine, LogSink
from reactor_jobs.engine.replay import RunState
from reactor_jobs.functions.errors import NonRetryableError

MAX_OUTPUT_BYTES = 1024 * 1024
MAX_SLEEP = timedelta(days=365)
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
T = TypeVar("T")


class Suspend(BaseException):
    """The attempt stops here and the run resumes later (durable sleep).

    A BaseException, so a job's `except Exception` cannot swallow it.
    """


class LostOwnership(BaseException):
    """The attempt no longer owns its run (cancelled, lease lost, fenced): stop at once."""


class StepOutputError(ReactorError):
    """A step's output cannot be recorded."""

    code = "step_output"


class DataClientUnavailable(ReactorError):
    """ctx.data (the Data client) is not built yet in this version of Reactor Jobs."""

    code = "not_built"


class RunStream:
    """A run's appends in order, from one attempt: each at the head it last saw, fenced."""

    def __init__(self, journal: Journal, run_id: str, head: int, fence: Fence) -> None:
        self.journal, self.run_id, self.head, self.fence = journal, run_id, head, fence
        self._lock = asyncio.Lock()

    async def append(self, events: list[ev.Event], spawn: Sequence[AppendRequest] = ()) -> int:
        """Append at our head, fenced; a refusal means another owns the run now."""
        async with self._lock:
            try:
                self.head = await self.journal.append(
                    self.run_id,
                    events,
                    expected_position=self.head,
                    fence=self.fence,
                    spawn=spawn,
                )
            except (FenceError, ConcurrencyError) as exc:
                raise LostOwnership(str(exc)) from exc
            return self.head


def to_json_value(value: Any, what: str) -> Any:
    """The value as it will come back from the journal (a JSON round trip), size-checked."""
    try:
        raw = msgspec.json.encode(value)
    except (TypeError, ValueError) as exc:
        raise StepOutputError(f"{what} cannot be stored as JSON: {exc}") from None
    if len(raw) > MAX_OUTPUT_BYTES:
        raise StepOutputError(f"{what} is {len(raw)} bytes; the limit is {MAX_OUTPUT_BYTES}")
    return msgspec.json.decode(raw)


def parse_duration(duration: str | float | timedelta) -> timedelta:
    """'500ms', '30s', '15m', '24h', '7d', a number of seconds, or a timedelta (<= 365 days)."""
    if isinstance(duration, timedelta):
        span = duration
    elif isinstance(duration, int | float) and not isinstance(duration, bool):
        span = timedelta(seconds=duration)
    elif isinstance(duration, str) and (match := _DURATION.match(duration)):
        span = timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
    else:
        raise ValueError(f"cannot read {duration!r} as a duration: use '30s', '15m', '24h', '7d'")
    if span < timedelta(0) or span > MAX_SLEEP:
        raise ValueError(f"a sleep must last between 0 and 365 days, not {span}")
    return span


class State(Mapping[str, Any]):
    """The run's durable key-value state: reads from the replay, writes are appends."""

    def __init__(self, ctx: JobContext) -> None:
        self._ctx = ctx

    def __getitem__(self, key: str) -> Any:
        return self._ctx.replayed.state[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._ctx.replayed.state)

    def __len__(self) -> int:
        return len(self._ctx.replayed.state)

    async def set(self, key: str, value: Any) -> None:
        stored = to_json_value(value, f"state {key!r}")
        current = self._ctx.replayed.state
        if key in current and current[key] == stored:
            return  # a replay writing what is already there appends nothing
        await self._ctx.stream.append([ev.StateSet(key=key, value=stored)])
        current[key] = stored

    async def delete(self, key: str) -> None:
        if key in self._ctx.replayed.state:
            await self._ctx.stream.append([ev.StateSet(key=key, deleted=True)])
            del self._ctx.replayed.state[key]


class RunLog:
    """Structured log lines tied to the run, its attempt and the current step."""

    def __init__(self, ctx: JobContext, sink: LogSink | None) -> None:
        self._ctx, self._sink = ctx, sink

    def _write(self, level: str, message: str, fields: dict[str, Any]) -> None:
        if self._sink is not None:
            s = self._ctx.replayed
            self._sink.write(
                LogLine(
                    org=s.org,
                    job=s.job,
                    run_id=s.run_id,
                    attempt=self._ctx.attempt,
                    step=self._ctx.current_step,
                    level=level,
                    message=str(message),
                    fields=fields or None,
                )
            )

    def debug(self, message: str, **fields: Any) -> None:
        self._write("debug", message, fields)

    def info(self, message: str, **fields: Any) -> None:
        self._write("info", message, fields)

    def warning(self, message: str, **fields: Any) -> None:
        self._write("warning", message, fields)

    def error(self, message: str, **fields: Any) -> None:
        self._write("error", message, fields)


class JobContext:
    """What `fetch(request, env, ctx)` gets as ctx."""

    def __init__(
        self,
        replayed: RunState,
        stream: RunStream,
        *,
        clock: Callable[[], datetime],
        sink: LogSink | None = None,
        fanout: FanOut | None = None,
    ) -> None:
        self.replayed, self.stream, self._clock = replayed, stream, clock
        self._fanout = fanout
        self.run_id, self.org, self.job = replayed.run_id, replayed.org, replayed.job
        self.attempt = replayed.attempt
        self.trigger = replayed.trigger
        self.payload = replayed.payload
        self.state = State(self)
        self.log = RunLog(self, sink)
        self.current_step: str | None = None
        self._uses: dict[str, int] = {}
        self._emits = 0

    @property
    def data(self) -> Any:
        raise DataClientUnavailable()

    def _key(self, name: str, kind: str) -> str:
        if not isinstance(name, str) or not name or len(name) > 200:
            raise ValueError(f"a {kind} name must be a non-empty string of at most 200 characters")
        n = self._uses[f"{kind}:{name}"] = self._uses.get(f"{kind}:{name}", 0) + 1
        return name if n == 1 else f"{name}#{n}"

    async def step(self, name: str, fn: Callable[[], T | Awaitable[T]]) -> T:
        """Run fn once per run: a recorded output is returned without calling fn again."""
        key = self._key(name, "step")
        if key in self.replayed.steps:
            cached: T = self.replayed.steps[key]
            return cached
        self.current_step = key
        started = time.perf_counter()
        try:
            output = await _call(fn)
        except Exception as exc:
            error = ev.ErrorInfo(
                type=type(exc).__name__,
                message=str(exc),
                retryable=not isinstance(exc, NonRetryableError),
            )
            await self.stream.append([ev.StepFailed(name=key, attempt=self.attempt, error=error)])
            raise
        finally:
            self.current_step = None
        stored = to_json_value(output, f"the output of step {key!r}")
        duration = round((time.perf_counter() - started) * 1000, 3)
        await self.stream.append(
            [ev.StepCompleted(name=key, attempt=self.attempt, output=stored, duration_ms=duration)]
        )
        self.replayed.steps[key] = stored
        result: T = stored
        return result

    async def emit(self, topic: str, payload: Any = None) -> str:
        """Record an event on `topic` once per run; returns its id (the same on replays)."""
        if not isinstance(topic, str) or not topic or len(topic) > 200:
            raise ValueError("a topic must be a non-empty string of at most 200 characters")
        self._emits += 1
        if self._emits <= len(self.replayed.emitted):
            return self.replayed.emitted[self._emits - 1]
        event_id = new_id("evt")
        stored = to_json_value(payload, f"the payload of event {topic!r}")
        spawn: list[AppendRequest] = []
        if self._fanout is not None:
            spawn = await self._fanout.runs_for(
                org=self.org, topic=topic, event_id=event_id, payload=stored, emitter=self.run_id
            )
        await self.stream.append(
            [ev.Emitted(event_id=event_id, topic=topic, payload=stored)], spawn=spawn
        )
        self.replayed.emitted.append(event_id)
        return event_id

    async def sleep(self, name: str, duration: str | float | timedelta) -> None:
        """Release the worker; resume after `duration` (database clock) past this call."""
        span = parse_duration(duration)
        await self._sleep(self._key(name, "sleep"), lambda: self._clock() + span)

    async def sleep_until(self, name: str, when: datetime) -> None:
        if when.tzinfo is None:
            raise ValueError("sleep_until needs a timezone-aware datetime")
        await self._sleep(self._key(name, "sleep"), lambda: when)

    async def _sleep(self, key: str, wake_at: Callable[[], datetime]) -> None:
        recorded = self.replayed.sleeps.get(key)
        if recorded is not None and (recorded.done or recorded.wake_at <= self._clock()):
            return
        if recorded is None:
            await self.stream.append([ev.SleepScheduled(name=key, wake_at=wake_at())])
        raise Suspend()


async def _call(fn: Callable[[], T | Awaitable[T]]) -> T:
    if inspect.iscoroutinefunction(fn):
        result: T = await fn()
        return result
    value = await asyncio.to_thread(fn)
    if inspect.isawaitable(value):
        awaited: T = await value
        return awaited
    return value
