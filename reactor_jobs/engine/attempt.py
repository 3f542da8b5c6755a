"""One attempt of one run: replay the stream, invoke the pinned function version in its org's
function host, and turn each decision the code proposes into events — checked against the
run's history, appended within the attempt's fence, then acknowledged — until it ends
(Completed, a sleep, or Failed/TimedOut with a retry or the DLQ).

The worker is the only writer of the journal; the host only proposes (docs/host-protocol.md).
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

import msgspec

from reactor_jobs.data.errors import DataError
from reactor_jobs.data.request import DataRequest, checked
from reactor_jobs.data.service import CheckpointFenced, DataService, Grant, Result
from reactor_jobs.domain import events as ev
from reactor_jobs.domain import policy
from reactor_jobs.domain.errors import ConcurrencyError, FenceError, Nondeterministic, ReactorError
from reactor_jobs.domain.guard import Guard, ProtocolViolation
from reactor_jobs.domain.ids import new_id
from reactor_jobs.domain.replay import RunState, fold
from reactor_jobs.engine.claim import ClaimedRun
from reactor_jobs.engine.fanout import FanOut
from reactor_jobs.engine.hosts import (
    STOP_GRACE_S,
    Channel,
    HostDied,
    HostPool,
    HostUnavailable,
)
from reactor_jobs.engine.journal import AppendRequest, Fence, Journal
from reactor_jobs.engine.logs import LogLine, LogSink
from reactor_jobs.functions.registry import Registry
from reactor_jobs.functions.values import (
    MAX_SLEEP,
    StepOutputError,
    check_name,
    to_json_value,
)
from reactor_jobs.telemetry.metrics import METRICS
from reactor_jobs.telemetry.tracing import (
    TRACING,
    attempt_context,
    current_attempt,
    emit_traceparent,
)

_VERSIONS_KEPT = 64
_LEVELS = frozenset({"debug", "info", "warning", "error"})


class LostOwnership(BaseException):
    """The attempt no longer owns its run (cancelled, lease lost, fenced): stop at once."""


class Outcome(msgspec.Struct, frozen=True):
    """How an attempt ended, for the worker's books: completed, suspended, failed, lost."""

    kind: str
    detail: str = ""


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

    async def checkpointed(self, write: Callable[[int], Awaitable[int]]) -> int:
        """A write that appends its own event in its own transaction (a ctx.data write
        through the checkpoint function): given our head, it returns the new one."""
        async with self._lock:
            try:
                head = await write(self.head)
            except CheckpointFenced as exc:
                raise LostOwnership(str(exc)) from exc
            self.head = head
            return head


class _Ended(Exception):
    """The conversation is over with this outcome (already recorded)."""

    def __init__(self, outcome: Outcome) -> None:
        self.outcome = outcome


class Attempt:
    """Everything an attempt needs from its worker."""

    def __init__(
        self,
        journal: Journal,
        registry: Registry,
        hosts: HostPool,
        *,
        worker: str,
        sink: LogSink | None = None,
    ) -> None:
        self.journal, self.registry, self.hosts = journal, registry, hosts
        self.worker, self.sink = worker, sink
        self.fanout = FanOut(journal.pool, registry)
        # ctx.data: the built-in Data service (a DataService) or an external one (RemoteData).
        self.data: Any = None
        # Tests: awaited between a checkpointed write and its checkpoint (a crash there).
        self.before_checkpoint: Callable[[], Awaitable[None]] | None = None
        self._versions: OrderedDict[tuple[str, str, int], asyncio.Future[Any]] = OrderedDict()

    async def run(self, claimed: ClaimedRun, streams: dict[str, RunStream]) -> Outcome:
        state = fold(claimed.records)
        # The name it was claimed under (a worker whose heartbeat lapsed takes a new one).
        fence = Fence(attempt=state.attempt, lease_owner=state.worker or self.worker)
        stream = streams[claimed.run_id] = RunStream(
            self.journal, claimed.run_id, state.position, fence
        )
        span = TRACING.start_attempt(state, self.worker)
        ended = Outcome("error")
        try:
            with attempt_context(span):
                ended = await self._execute(state, stream)
            return ended
        except LostOwnership as lost:
            ended = Outcome("lost", str(lost))
            return ended
        except asyncio.CancelledError:
            ended = Outcome("stopped")
            raise
        finally:
            del streams[claimed.run_id]
            TRACING.end_attempt(span, ended.kind, ended.detail)

    async def version(self, org: str, function: str, version: int) -> Any:
        """A function version with its archive, kept per process (versions never change).
        Concurrent first uses share one read: a cold worker claiming 256 runs of one
        version reads its archive once, not 256 times."""
        key = (org, function, version)
        fetch = self._versions.get(key)
        if fetch is None:
            fetch = self._versions[key] = asyncio.ensure_future(self.registry.get_version(*key))
            if len(self._versions) > _VERSIONS_KEPT:
                self._versions.popitem(last=False)
        self._versions.move_to_end(key)
        try:
            return await asyncio.shield(fetch)
        except BaseException:
            if fetch.done() and self._versions.get(key) is fetch:
                del self._versions[key]  # a failed read is not kept: the next use retries
            raise

    async def _execute(self, state: RunState, stream: RunStream) -> Outcome:
        try:
            fv = await self.version(state.org, state.function, state.function_version)
            # A run that was on a host when it died runs alone until it ends, so the next
            # death is blamed on the run that caused it and no neighbour is disturbed.
            solo = state.run_id if state.interruptions else ""
            host = await self.hosts.host(state.org, fv.runtime, solo)
            await host.load(function_key(fv), fv)
        except HostUnavailable as exc:  # may pass: a host that could not start in time
            return await self._failed(state, stream, _error(exc))
        except ReactorError as exc:  # a broken bundle: retrying cannot help
            return await self._failed(state, stream, _error(exc, retryable=False))
        channel = host.open(f"{state.run_id}/{state.attempt}")
        try:
            channel.send(invocation(state, fv, env=self.hosts.env))
            return await self._converse(state, stream, channel)
        finally:
            host.close(channel.id)
            if solo:
                await asyncio.shield(self.hosts.release(host))

    async def _converse(self, state: RunState, stream: RunStream, channel: Channel) -> Outcome:
        talk = _Conversation(self, state, stream, channel)
        try:
            async with asyncio.timeout(state.timeout_ms / 1000) as deadline:
                return await talk.run()
        except TimeoutError:
            if not deadline.expired():
                raise
            await stop_attempt(channel)
            return await self._timed_out(state, stream)
        except HostDied as died:
            return await self._host_died(state, stream, died, channel.id)
        except (ProtocolViolation, StepOutputError) as bad:
            await channel.host.kill(f"it broke the protocol: {bad}", culprit=channel.id)
            error = ev.ErrorInfo(type="HostProtocolError", message=str(bad)[:4000])
            return await self._failed(state, stream, error)
        except Nondeterministic as exc:
            await stop_attempt(channel)
            error = ev.ErrorInfo(type="nondeterministic", message=exc.message, retryable=False)
            return await self._failed(state, stream, error)
        except (asyncio.CancelledError, LostOwnership):
            await asyncio.shield(stop_attempt(channel))
            raise

    async def _host_died(
        self, state: RunState, stream: RunStream, died: HostDied, attempt_id: str
    ) -> Outcome:
        blamed = died.culprit == attempt_id or died.attempts <= 1
        if not blamed and state.interruptions < state.max_attempts:
            await stream.append([ev.AttemptInterrupted(attempt=state.attempt, reason=died.reason)])
            return Outcome("interrupted", died.reason)
        error = ev.ErrorInfo(type="HostCrashed", message=f"the function host died: {died.reason}")
        return await self._failed(state, stream, error)

    async def _failed(self, state: RunState, stream: RunStream, error: ev.ErrorInfo) -> Outcome:
        failed = ev.Failed(attempt=state.attempt, error=error)
        then = self._next(state, error)
        await stream.append([failed, then])
        _after_failure(state, then, error.type)
        return Outcome("failed", f"{error.type}: {error.message}")

    async def _timed_out(self, state: RunState, stream: RunStream) -> Outcome:
        timed_out = ev.TimedOut(attempt=state.attempt, timeout_ms=state.timeout_ms)
        error = timed_out.error
        then = self._next(state, error)
        await stream.append([timed_out, then])
        _after_failure(state, then, error.type)
        return Outcome("timed_out")

    def _next(self, state: RunState, error: ev.ErrorInfo) -> ev.Event:
        delay = policy.backoff_ms(
            state.tries,
            backoff=state.backoff,
            initial_ms=state.initial_delay_ms,
            max_ms=state.max_delay_ms,
            jitter=random.random(),
        )
        return policy.after_failure(
            state.tries,
            max_attempts=state.max_attempts,
            error=error,
            delay_ms=delay,
            dlq_id=new_id("dlq"),
            next_attempt=state.attempt + 1,
        )

    def data_calls(self) -> Any:
        """The Data service ctx.data calls go to (the built-in one by default)."""
        if self.data is None:
            self.data = DataService(self.journal.pool)
        return self.data

    def log(self, state: RunState, message: dict[str, Any]) -> None:
        if self.sink is None:
            return
        level = message.get("level")
        step = message.get("step")
        fields = message.get("fields")
        self.sink.write(
            LogLine(
                org=state.org,
                job=state.job,
                run_id=state.run_id,
                attempt=state.tries,
                step=step[:200] if isinstance(step, str) else None,
                level=level if level in _LEVELS else "info",
                message=str(message.get("message", ""))[:16_000].replace("\x00", ""),
                fields=fields if isinstance(fields, dict) and len(str(fields)) < 16_000 else None,
            )
        )


class _Conversation:
    """The worker's half of one attempt: each message from the host, answered in turn."""

    def __init__(
        self, attempt: Attempt, state: RunState, stream: RunStream, channel: Channel
    ) -> None:
        self.attempt, self.state, self.stream, self.channel = attempt, state, stream, channel
        self.guard = Guard(state.recorded())
        self.requests: set[int] = set()

    async def run(self) -> Outcome:
        while True:
            message = await self.channel.receive()
            kind = message["t"]
            if kind == "log":
                self.attempt.log(self.state, message)
                continue
            if kind == "done":
                return await self._done(message)
            handler = _PROPOSALS.get(kind)
            if handler is None:
                raise ProtocolViolation(f"unexpected message {kind!r}")
            req = message.get("req")
            if not isinstance(req, int) or req in self.requests:
                raise ProtocolViolation(f"a {kind} proposal has no fresh request number")
            self.requests.add(req)
            try:  # a value the SDK would have refused (too large, NUL) breaks the protocol
                answer = await handler(self, message)
            except _Ended as ended:
                self.channel.send({"t": "ack", "req": req})
                return ended.outcome
            self.channel.send({"t": "ack", "req": req, **answer})

    async def _step(self, m: dict[str, Any]) -> dict[str, Any]:
        key, pos = m.get("name"), m.get("pos")
        recorded = self.guard.check("step", key, pos)
        if recorded is not None and not recorded.failed:
            raise ProtocolViolation(f"step {key!r} is recorded; the host should have answered it")
        assert isinstance(key, str) and isinstance(pos, int)
        attempt = self.state.tries
        if "error" in m:
            error = _error_info(m["error"])
            await self.stream.append(
                [ev.StepFailed(name=key, attempt=attempt, error=error, pos=pos)]
            )
            METRICS.steps_failed.inc()
            TRACING.step(current_attempt(), key, _duration(m), error=error.type)
            return {}
        output = to_json_value(m.get("output"), f"the output of step {key!r}")
        duration = _duration(m)
        done = ev.StepCompleted(
            name=key, attempt=attempt, output=output, duration_ms=duration, pos=pos
        )
        await self.stream.append([done])
        METRICS.step_duration.observe(duration / 1000)
        TRACING.step(current_attempt(), key, duration)
        return {}

    async def _data(self, m: dict[str, Any]) -> dict[str, Any]:
        """A ctx.data call. In a step: a plain call (at least once, nothing recorded).
        Outside: a decision of its own, checked by the guard; through the built-in Data API
        its DataCalled is appended by the checkpoint function on the org's connection (a
        write commits with it: exactly once); through an external one it is made and then
        recorded. Errors are answered, never nacked, so the SDK raises them as
        DataRequestError with their code."""
        try:
            request = checked(msgspec.convert(m.get("request"), DataRequest))
        except (msgspec.ValidationError, DataError) as exc:
            return _data_error("bad_request", str(exc))
        calls = self.attempt.data_calls()
        org = self.state.org
        if m.get("in_step") is True:
            try:
                result = await calls.execute(org, request)
            except DataError as exc:
                return _data_error(exc.code, exc.message)
            return {"data": result.rows, "count": result.reported_count}
        key, pos = m.get("name"), m.get("pos")
        recorded = self.guard.check("data", key, pos)
        if recorded is not None:
            return {"data": recorded.output, "count": recorded.count}
        assert isinstance(key, str) and isinstance(pos, int)
        if key.split("#", 1)[0] != f"data:{request.target}":
            raise ProtocolViolation(f"data call {key!r} does not name {request.target!r}")
        try:
            if getattr(calls, "builtin", False):  # a read too: its entry on the org's conn
                result = await self._checkpointed(calls, request, key, pos)
            else:
                result = await calls.execute(org, request)
                event = self._data_event(request, key, pos, result)
                await self.stream.append([event])
        except DataError as exc:
            return _data_error(exc.code, exc.message)
        except StepOutputError as exc:  # a result too large, or one holding NUL
            return _data_error("payload_too_large", exc.message)
        return {"data": result.rows, "count": result.reported_count}

    def _data_event(
        self, request: DataRequest, key: str, pos: int, result: Result
    ) -> ev.DataCalled:
        rows = to_json_value(result.rows, f"the result of {key}")
        return ev.DataCalled(
            name=key, request=request.audit(), rows=rows, count=result.reported_count, pos=pos
        )

    async def _checkpointed(
        self, calls: DataService, request: DataRequest, key: str, pos: int
    ) -> Result:
        fence, state = self.stream.fence, self.state
        done: list[Result] = []

        async def write(head: int) -> int:
            async def grant(result: Result) -> tuple[Grant, bytes]:
                payload = ev.encode(self._data_event(request, key, pos, result))
                if b"\\u0000" in payload:
                    raise StepOutputError(f"the result of {key} contains a NUL character")
                return Grant(
                    run_id=state.run_id, org=state.org, expected=head,
                    attempt=fence.attempt or 0, owner=fence.lease_owner or "",
                    version=ev.DataCalled.VERSION,
                    payload_sha256=hashlib.sha256(payload).hexdigest(), nonce=new_id("grant"),
                ), payload  # fmt: skip

            result, new_head = await calls.checkpointed(
                state.org, request, grant, before_checkpoint=self.attempt.before_checkpoint
            )
            if new_head != head + 1:
                raise LostOwnership(f"run {state.run_id}: head {new_head} after {head}")
            done.append(result)
            return new_head

        await self.stream.checkpointed(write)
        return done[0]

    async def _state(self, m: dict[str, Any]) -> dict[str, Any]:
        key = m.get("key")
        try:
            check_name(key, "state key")
        except ValueError as exc:
            raise StepOutputError(str(exc)) from None
        assert isinstance(key, str)
        if m.get("deleted") is True:
            await self.stream.append([ev.StateSet(key=key, deleted=True)])
        else:
            value = to_json_value(m.get("value"), f"state {key!r}")
            await self.stream.append([ev.StateSet(key=key, value=value)])
        return {}

    async def _emit(self, m: dict[str, Any]) -> dict[str, Any]:
        topic, pos = m.get("name"), m.get("pos")
        recorded = self.guard.check("emit", topic, pos)
        if recorded is not None:
            return {"event_id": recorded.event_id}
        assert isinstance(topic, str) and isinstance(pos, int)
        try:
            check_name(topic, "topic")
        except ValueError as exc:
            raise StepOutputError(str(exc)) from None
        payload = to_json_value(m.get("payload"), f"the payload of event {topic!r}")
        event_id = new_id("evt")
        span = TRACING.start_emit(current_attempt(), topic)
        try:
            spawn = await self.attempt.fanout.runs_for(
                org=self.state.org, topic=topic, event_id=event_id, payload=payload,
                emitter=self.state.run_id, headers=emit_traceparent(span, self.state),
            )  # fmt: skip
            if span is not None:
                span.set_attribute("reactor.runs_started", len(spawn))
            emitted = ev.Emitted(event_id=event_id, topic=topic, payload=payload, pos=pos)
            await self.stream.append([emitted], spawn=spawn)
        finally:
            if span is not None:
                span.end()
        return {"event_id": event_id}

    async def _sleep(self, m: dict[str, Any]) -> dict[str, Any]:
        key, pos = m.get("name"), m.get("pos")
        recorded = self.guard.check("sleep", key, pos)
        assert isinstance(key, str) and isinstance(pos, int)
        slept = self.state.sleeps.get(key)
        if recorded is not None and slept is not None and slept.done:
            return {"resume": True}
        if recorded is not None and slept is not None:  # scheduled, never woken: keep its time
            event = ev.SleepScheduled(name=key, wake_at=slept.wake_at, pos=pos)
        else:
            event = _sleep_event(key, pos, m)
        await self.stream.append([event])
        raise _Ended(Outcome("suspended"))

    async def _done(self, m: dict[str, Any]) -> Outcome:
        outcome = m.get("outcome")
        if self.attempt.sink is not None:
            # The attempt's lines are stored before its end: whoever sees the run finished
            # (`jobs trigger --wait`, then `jobs logs`) finds all of them.
            await self.attempt.sink.flush()
        if outcome == "completed":
            try:
                output = to_json_value(m.get("output"), "the run's output")
            except StepOutputError as exc:  # the same code would return it again
                return await self.attempt._failed(
                    self.state, self.stream, _error(exc, retryable=False)
                )
            await self.stream.append([ev.Completed(output=output)])
            METRICS.run_finished(self.state.org, self.state.job, "completed")
            TRACING.end_run(self.state, "completed")
            return Outcome("completed")
        if outcome == "failed":
            error = _error_info(m.get("error"))
            return await self.attempt._failed(self.state, self.stream, error)
        raise ProtocolViolation(f"an attempt cannot end {outcome!r} here")


_PROPOSALS = {
    "step": _Conversation._step,
    "state": _Conversation._state,
    "emit": _Conversation._emit,
    "sleep": _Conversation._sleep,
    "data": _Conversation._data,
}


def _data_error(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message[:4000]}}


def invocation(state: RunState, fv: Any, *, env: Mapping[str, str]) -> dict[str, Any]:
    """The `invoke` message: who the run is, its request, state and recorded decisions."""
    recorded = []
    for d in state.recorded():
        entry: dict[str, Any] = {"kind": d.kind, "name": d.name}
        if d.kind == "step":
            entry.update({"failed": True} if d.failed else {"output": d.output})
        elif d.kind == "emit":
            entry["event_id"] = d.event_id
        elif d.kind == "data":
            entry.update(data=d.output, count=d.count)
        else:
            slept = state.sleeps.get(d.name)
            entry["done"] = bool(slept and slept.done)
        recorded.append(entry)
    return {
        "t": "invoke",
        "fn": function_key(fv),
        "timeout_ms": state.timeout_ms,
        "env": dict(env),
        "run": {
            "run_id": state.run_id,
            "attempt": state.tries,
            "job": state.job,
            "org": state.org,
            "trigger": None if state.trigger is None else msgspec.to_builtins(state.trigger),
            "payload": state.payload,
        },
        "request": {
            "method": "POST",
            "url": f"/jobs/v1/{state.job}/trigger",
            "headers": state.headers,
            "content_type": state.content_type,
            "payload": state.payload,
        },
        "state": state.state,
        "recorded": recorded,
    }


def _duration(m: dict[str, Any]) -> float:
    """A step's duration_ms as the host reported it (0 when it sent none)."""
    duration = m.get("duration_ms")
    return float(duration) if isinstance(duration, int | float) else 0.0


def _after_failure(state: RunState, then: ev.Event, error_type: str) -> None:
    """Count a retry, or end the run's books when the failure sent it to the DLQ."""
    if isinstance(then, ev.RetryScheduled):
        METRICS.retry_scheduled(state.org, state.job)
    elif isinstance(then, ev.DeadLettered):
        METRICS.run_finished(state.org, state.job, "failed")
        TRACING.end_run(state, "failed", error_type)


def _sleep_event(key: str, pos: int, m: dict[str, Any]) -> ev.SleepScheduled:
    ms, until = m.get("ms"), m.get("until")
    if isinstance(ms, int) and not isinstance(ms, bool):
        if not 0 <= ms <= MAX_SLEEP.total_seconds() * 1000:
            raise StepOutputError("a sleep must last between 0 and 365 days")
        return ev.SleepScheduled(name=key, delay_ms=ms, pos=pos)
    if isinstance(until, str):
        try:
            when = datetime.fromisoformat(until)
        except ValueError:
            raise StepOutputError(f"cannot read {until!r} as a time") from None
        if when.tzinfo is None or not 1 <= when.year <= 9999:
            raise StepOutputError("sleep_until needs a timezone-aware time")
        return ev.SleepScheduled(name=key, wake_at=when.astimezone(UTC), pos=pos)
    raise ProtocolViolation("a sleep proposal has neither ms nor until")


def function_key(fv: Any) -> str:
    """How a worker names a function version to its host."""
    return f"{fv.org}/{fv.name}/{fv.version}/{fv.sha256[:16]}"


async def stop_attempt(channel: Channel) -> None:
    """Ask the host to stop the attempt's code; kill the host if it cannot within a second
    (code that never yields: a busy loop, a blocking call)."""
    if not channel.host.alive:
        return
    channel.send({"t": "cancel"})
    try:
        async with asyncio.timeout(STOP_GRACE_S):
            while True:
                message = await channel.receive()
                if message["t"] == "done" and not message.get("stuck"):
                    return
                if message["t"] == "done":
                    break  # a step thread the host cannot stop runs on
    except HostDied:
        return
    except TimeoutError:
        pass
    await channel.host.kill("an attempt's code did not stop when asked", culprit=channel.id)


def function_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What a function sees as `env`: the process's REACTOR_FN_* variables, prefix removed."""
    source = os.environ if environ is None else environ
    return {
        k.removeprefix("REACTOR_FN_"): v for k, v in source.items() if k.startswith("REACTOR_FN_")
    }


def _error(exc: BaseException, *, retryable: bool = True) -> ev.ErrorInfo:
    message = exc.message if isinstance(exc, ReactorError) else str(exc)
    return ev.ErrorInfo(type=type(exc).__name__, message=message[:4000], retryable=retryable)


def _error_info(raw: Any) -> ev.ErrorInfo:
    """A failure as a host reported it, bounded; a host cannot make it anything else."""
    raw = raw if isinstance(raw, dict) else {}
    kind = raw.get("type")
    message = raw.get("message")
    trace = raw.get("traceback")
    return ev.ErrorInfo(
        type=(kind if isinstance(kind, str) and kind else "Error")[:200].replace("\x00", ""),
        message=(message if isinstance(message, str) else str(message))[:4000].replace("\x00", ""),
        retryable=raw.get("retryable") is not False,
        traceback=(trace[-8000:].replace("\x00", "") if isinstance(trace, str) else None),
    )
