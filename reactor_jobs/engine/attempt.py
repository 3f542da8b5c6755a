"""One attempt of one run: replay the stream, call the pinned function version with ctx,
and record how it ended (Completed, a sleep, or Failed/TimedOut with a retry or the DLQ)."""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import Callable, Mapping
from datetime import datetime

import msgspec

from reactor_jobs.engine import events as ev
from reactor_jobs.engine import policy
from reactor_jobs.engine.claim import ClaimedRun
from reactor_jobs.engine.context import (
    JobContext,
    LostOwnership,
    RunStream,
    StepOutputError,
    Suspend,
    to_json_value,
)
from reactor_jobs.engine.errors import ReactorError
from reactor_jobs.engine.fanout import FanOut
from reactor_jobs.engine.ids import new_id
from reactor_jobs.engine.journal import Fence, Journal
from reactor_jobs.engine.logs import LogSink
from reactor_jobs.engine.replay import RunState, fold
from reactor_jobs.functions.errors import NonRetryableError
from reactor_jobs.functions.registry import Registry
from reactor_jobs.functions.runtime import Handler, Request, Runtimes, to_output


class Outcome(msgspec.Struct, frozen=True):
    """How an attempt ended, for the worker's books: completed, suspended, failed, lost."""

    kind: str
    detail: str = ""


class Attempt:
    """Everything an attempt needs from its worker."""

    def __init__(
        self,
        journal: Journal,
        registry: Registry,
        runtimes: Runtimes,
        *,
        worker: str,
        clock: Callable[[], datetime],
        sink: LogSink | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.journal, self.registry, self.runtimes = journal, registry, runtimes
        self.worker, self.clock, self.sink = worker, clock, sink
        self.env = dict(function_env() if env is None else env)
        self.fanout = FanOut(journal.pool, registry)
        self._handlers: dict[tuple[str, str, int], Handler] = {}

    async def run(self, claimed: ClaimedRun, streams: dict[str, RunStream]) -> Outcome:
        state = fold(claimed.records)
        fence = Fence(attempt=state.attempt, lease_owner=self.worker)
        stream = streams[claimed.run_id] = RunStream(
            self.journal, claimed.run_id, state.position, fence
        )
        try:
            return await self._execute(state, stream)
        except LostOwnership as lost:
            return Outcome("lost", str(lost))
        finally:
            del streams[claimed.run_id]

    async def _execute(self, state: RunState, stream: RunStream) -> Outcome:
        try:
            handler = await self._handler(state)
        except ReactorError as exc:  # a broken or missing bundle: retrying cannot help
            return await self._failed(state, stream, _error(exc, retryable=False))
        ctx = JobContext(state, stream, clock=self.clock, sink=self.sink, fanout=self.fanout)
        request = Request.from_payload(
            state.payload,
            headers=state.headers,
            content_type=state.content_type,
            method="POST",
            url=f"/jobs/v1/{state.job}/trigger",
        )
        try:
            async with asyncio.timeout(state.timeout_ms / 1000) as deadline:
                result = await handler(request, self.env, ctx)
        except Suspend:
            return Outcome("suspended")
        except TimeoutError as exc:
            if not deadline.expired():
                return await self._failed(state, stream, _error(exc))
            return await self._timed_out(state, stream)
        except Exception as exc:
            return await self._failed(state, stream, _error(exc))
        try:
            output = to_json_value(to_output(result), "the run's output")
        except (StepOutputError, TypeError) as exc:  # the same code would return it again
            return await self._failed(state, stream, _error(exc, retryable=False))
        await stream.append([ev.Completed(output=output)])
        return Outcome("completed")

    async def _handler(self, state: RunState) -> Handler:
        # A deployed version never changes, so its handler is fetched and loaded once per
        # process: the row holds the whole bundle, and reading it per attempt cost a round
        # trip and a pool reset each.
        key = (state.org, state.function, state.function_version)
        handler = self._handlers.get(key)
        if handler is None:
            version = await self.registry.get_version(*key)
            handler = self._handlers[key] = await self.runtimes.load(version)
        return handler

    async def _failed(self, state: RunState, stream: RunStream, error: ev.ErrorInfo) -> Outcome:
        failed = ev.Failed(attempt=state.attempt, error=error)
        await stream.append([failed, self._next(state, error)])
        return Outcome("failed", f"{error.type}: {error.message}")

    async def _timed_out(self, state: RunState, stream: RunStream) -> Outcome:
        timed_out = ev.TimedOut(attempt=state.attempt, timeout_ms=state.timeout_ms)
        error = ev.ErrorInfo(type="TimedOut", message=f"ran past {state.timeout_ms} ms")
        await stream.append([timed_out, self._next(state, error)])
        return Outcome("timed_out")

    def _next(self, state: RunState, error: ev.ErrorInfo) -> ev.Event:
        delay = policy.backoff_ms(
            state.attempt,
            backoff=state.backoff,
            initial_ms=state.initial_delay_ms,
            max_ms=state.max_delay_ms,
            jitter=random.random(),
        )
        return policy.after_failure(
            state.attempt,
            max_attempts=state.max_attempts,
            error=error,
            now=self.clock(),
            delay_ms=delay,
            dlq_id=new_id("dlq"),
        )


def function_env(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """What a function sees as `env`: the process's REACTOR_FN_* variables, prefix removed."""
    source = os.environ if environ is None else environ
    return {
        k.removeprefix("REACTOR_FN_"): v for k, v in source.items() if k.startswith("REACTOR_FN_")
    }


def _error(exc: BaseException, *, retryable: bool = True) -> ev.ErrorInfo:
    message = str(exc) if not isinstance(exc, ReactorError) else exc.message
    return ev.ErrorInfo(
        type=type(exc).__name__,
        message=message[:4000],
        retryable=retryable and not isinstance(exc, NonRetryableError),
    )
