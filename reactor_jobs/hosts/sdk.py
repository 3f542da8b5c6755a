"""The `ctx` that Python job code gets inside a function host.

It answers calls the run already recorded from the invocation's history (a completed step
returns its output without running again) and proposes every new decision to the worker,
returning only once the worker has committed it (docs/host-protocol.md). Names repeat in
loops: the n-th use of a step (or sleep) name in a run is keyed `name#n` from the second use
on. Sync step functions run in a thread, so a blocking step does not stall other attempts.
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import os
import re
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator, Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

import msgspec

from reactor_jobs.domain import events as ev
from reactor_jobs.functions.errors import NonRetryableError
from reactor_jobs.functions.values import (
    StepOutputError,
    check_name,
    parse_duration,
    to_json_value,
)
from reactor_jobs.hosts.sdk_data import DataClient, DataRequestError, DataResult

T = TypeVar("T")
current_step: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "reactor_step", default=None
)
# Step functions of the current attempt still running in threads. A thread cannot be
# stopped: when a cancelled attempt leaves one behind, its host must be replaced.
step_threads: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar(
    "reactor_step_threads", default=None
)
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_ASYNCIO = os.path.dirname(os.path.abspath(asyncio.__file__))
_IN_BUNDLE = re.compile(r"^.*?/bundles/[^/]+/[^/]+/(?=code/)")


class Suspend(BaseException):
    """The attempt stops here and the run resumes later (durable sleep).

    A BaseException, so a job's `except Exception` cannot swallow it.
    """


class Refused(StepOutputError):
    """The worker refused a decision."""


class Channel(Protocol):
    """What a context needs from its host: proposals that wait for the worker, log lines."""

    async def propose(self, message: dict[str, Any]) -> dict[str, Any]: ...

    def log(
        self, level: str, message: str, fields: dict[str, Any] | None, step: str | None
    ) -> None: ...


def error_info(exc: BaseException) -> dict[str, Any]:
    """An exception as the protocol carries it, with the user's frames (file:line) only."""
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not f.filename.startswith((_PACKAGE, _ASYNCIO))
    ]
    for frame in frames:  # a bundle's files by their place in the bundle: code/index.py
        frame.filename = _IN_BUNDLE.sub("", frame.filename)
    lines = traceback.format_list(frames)
    lines += traceback.format_exception_only(type(exc), exc)
    message = exc.message if isinstance(exc, StepOutputError) else str(exc)
    return {
        "type": type(exc).__name__,
        "message": message[:4000],
        "retryable": not isinstance(exc, NonRetryableError),
        "traceback": "".join(lines)[-8000:],
    }


class State(Mapping[str, Any]):
    """The run's durable key-value state: reads are local, writes are committed first."""

    def __init__(self, ctx: JobContext, values: dict[str, Any]) -> None:
        self._ctx, self._values = ctx, values

    def __getitem__(self, key: str) -> Any:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    async def set(self, key: str, value: Any) -> None:
        check_name(key, "state key")
        stored = to_json_value(value, f"state {key!r}")
        if key in self._values and self._values[key] == stored:
            return  # a replay writing what is already there records nothing
        await self._ctx.channel.propose({"t": "state", "key": key, "value": stored})
        self._values[key] = stored

    async def delete(self, key: str) -> None:
        if key in self._values:
            await self._ctx.channel.propose({"t": "state", "key": key, "deleted": True})
            del self._values[key]


class RunLog:
    """Structured log lines tied to the run, its attempt and the current step. While the
    code replays what an earlier execution recorded (after a sleep, a retry), its lines were
    written then and are not written again: each line appears once."""

    def __init__(self, channel: Channel, replaying: Callable[[], bool] = lambda: False) -> None:
        self._channel, self._replaying = channel, replaying

    def _write(self, level: str, message: object, fields: dict[str, Any]) -> None:
        if self._replaying():
            return
        try:
            clean = msgspec.json.decode(msgspec.json.encode(fields)) if fields else None
        except (TypeError, ValueError, OverflowError):
            clean = {k: repr(v) for k, v in fields.items()}
        self._channel.log(level, str(message)[:16_000], clean, current_step.get())

    def debug(self, message: object, **fields: Any) -> None:
        self._write("debug", message, fields)

    def info(self, message: object, **fields: Any) -> None:
        self._write("info", message, fields)

    def warning(self, message: object, **fields: Any) -> None:
        self._write("warning", message, fields)

    def error(self, message: object, **fields: Any) -> None:
        self._write("error", message, fields)


class JobContext:
    """What `fetch(request, env, ctx)` gets as ctx inside a function host."""

    def __init__(self, invocation: dict[str, Any], channel: Channel) -> None:
        run = invocation.get("run") or {}
        self.channel = channel
        self.run_id: str = run.get("run_id", "")
        self.org: str = run.get("org", "")
        self.job: str = run.get("job", "")
        self.attempt: int = run.get("attempt", 0)
        trigger = run.get("trigger")
        self.trigger = None if trigger is None else msgspec.convert(trigger, ev.TriggerInfo)
        self.payload: Any = run.get("payload")
        self.state = State(self, dict(invocation.get("state") or {}))
        self.log = RunLog(channel, self._replaying)
        self._recorded: list[dict[str, Any]] = list(invocation.get("recorded") or [])
        self._replay = bool(invocation.get("replay"))
        self._uses: dict[str, int] = {}
        self._pos = 0
        self._data = DataClient(self._data_call)

    def _replaying(self) -> bool:
        """Decisions recorded by an earlier execution lie ahead: this code ran before."""
        return self._pos < len(self._recorded)

    @property
    def current_step(self) -> str | None:
        return current_step.get()

    @property
    def data(self) -> DataClient:
        """The Data client over the org's own tables (postgrest-py's builder)."""
        return self._data

    async def _data_call(self, request: dict[str, Any]) -> DataResult:
        """Outside a step: a durable decision (recorded, answered from the recording on a
        retry). Inside one: a plain call, made again if the step runs again."""
        target = request.get("table") or f"rpc/{request.get('rpc')}"
        name = f"data:{target}"
        body = request.get("body")
        if body is not None:
            request["body"] = to_json_value(body, f"the body of {name}")
        if current_step.get() is not None:
            answer = await self.channel.propose(
                {"t": "data", "in_step": True, "name": name, "request": request}
            )
        else:
            key = self._key(name, "data")
            pos, recorded = self._take("data", key)
            if recorded is not None:
                return DataResult(recorded.get("data"), recorded.get("count"))
            message = {"t": "data", "pos": pos, "name": key, "request": request}
            if self._replay:
                message["replay"] = True
            answer = await self.channel.propose(message)
        error = answer.get("error")
        if isinstance(error, dict):
            raise DataRequestError(str(error.get("code")), str(error.get("message")))
        return DataResult(answer.get("data"), answer.get("count"))

    def _key(self, name: str, kind: str) -> str:
        check_name(name, kind)
        n = self._uses[f"{kind}:{name}"] = self._uses.get(f"{kind}:{name}", 0) + 1
        return name if n == 1 else f"{name}#{n}"

    def _take(self, kind: str, name: str) -> tuple[int, dict[str, Any] | None]:
        """This call's place in call order, and what was recorded there if it matches."""
        pos, self._pos = self._pos, self._pos + 1
        if self._replay or pos >= len(self._recorded):
            return pos, None
        recorded = self._recorded[pos]
        if recorded.get("kind") == kind and recorded.get("name") == name:
            return pos, recorded
        return pos, None  # the worker names the difference

    async def step(self, name: str, fn: Callable[[], T | Awaitable[T]]) -> T:
        """Run fn once per run: a recorded output is returned without calling fn again."""
        key = self._key(name, "step")
        pos, recorded = self._take("step", key)
        if recorded is not None and not recorded.get("failed"):
            cached: T = recorded.get("output")  # type: ignore[assignment]
            return cached
        base = {"t": "step", "pos": pos, "name": key}
        if self._replay:  # an audit replay never runs a step: the recording answers
            answer = await self.channel.propose({**base, "replay": True})
            replayed: T = answer.get("output")  # type: ignore[assignment]
            return replayed
        token = current_step.set(key)
        started = time.perf_counter()
        try:
            output = await _call(fn)
        except Exception as exc:
            await self.channel.propose({**base, "error": error_info(exc)})
            raise
        finally:
            current_step.reset(token)
        stored = to_json_value(output, f"the output of step {key!r}")
        duration = round((time.perf_counter() - started) * 1000, 3)
        await self.channel.propose({**base, "output": stored, "duration_ms": duration})
        result: T = stored
        return result

    async def emit(self, topic: str, payload: Any = None) -> str:
        """Record an event on `topic` once per run; returns its id (the same on replays)."""
        check_name(topic, "topic")
        pos, recorded = self._take("emit", topic)
        if recorded is not None:
            return str(recorded.get("event_id"))
        stored = to_json_value(payload, f"the payload of event {topic!r}")
        answer = await self.channel.propose(
            {"t": "emit", "pos": pos, "name": topic, "payload": stored}
        )
        return str(answer.get("event_id"))

    async def sleep(self, name: str, duration: str | float | timedelta) -> None:
        """Release the worker; resume `duration` after this call, by the database's clock."""
        span = parse_duration(duration)
        await self._sleep(name, {"ms": round(span.total_seconds() * 1000)})

    async def sleep_until(self, name: str, when: datetime) -> None:
        if not isinstance(when, datetime) or when.tzinfo is None:
            raise ValueError("sleep_until needs a timezone-aware datetime")
        await self._sleep(name, {"until": when.isoformat()})

    async def _sleep(self, name: str, wake: dict[str, Any]) -> None:
        key = self._key(name, "sleep")
        pos, recorded = self._take("sleep", key)
        if recorded is not None and recorded.get("done"):
            return
        answer = await self.channel.propose(
            {"t": "sleep", "pos": pos, "name": key, **wake, "replay": self._replay}
        )
        if not answer.get("resume"):
            raise Suspend()


async def _call(fn: Callable[[], T | Awaitable[T]]) -> T:
    if inspect.iscoroutinefunction(fn):
        result: T = await fn()
        return result
    running = step_threads.get()

    def in_thread() -> T | Awaitable[T]:
        try:
            return fn()
        finally:
            if running is not None:
                running.pop()

    if running is not None:
        running.append(1)
    value = await asyncio.to_thread(in_thread)
    if inspect.isawaitable(value):
        awaited: T = await value
        return awaited
    return value
