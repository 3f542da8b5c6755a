"""Group commit: appends from concurrent callers share one statement and one commit.

While a batch is committing, new requests queue up; the next batch takes them all. Each
caller still waits for its own commit and gets its own result or error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, Protocol, TypeVar

from reactor_jobs.domain.errors import ReactorError


class _Keyed(Protocol):
    @property
    def run_ids(self) -> frozenset[str]: ...


Req = TypeVar("Req", bound=_Keyed)
Execute = Callable[[Sequence[Req]], Awaitable[list[int | ReactorError]]]


class GroupCommitter(Generic[Req]):
    def __init__(self, execute: Execute[Req], *, max_batch: int, max_in_flight: int) -> None:
        self._execute = execute
        self._max_batch = max_batch
        self._max_in_flight = max_in_flight
        self._pending: list[tuple[Req, asyncio.Future[int]]] = []
        self._in_flight = 0
        self._tasks: set[asyncio.Task[None]] = set()

    async def submit(self, request: Req) -> int:
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        self._kick()
        return await future

    def _kick(self) -> None:
        if self._pending and self._in_flight < self._max_in_flight:
            self._in_flight += 1
            task = asyncio.create_task(self._flush())
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _take_batch(self) -> list[tuple[Req, asyncio.Future[int]]]:
        """Up to max_batch requests, at most one per run; the rest wait their turn."""
        batch: list[tuple[Req, asyncio.Future[int]]] = []
        rest: list[tuple[Req, asyncio.Future[int]]] = []
        runs: set[str] = set()
        for item in self._pending:
            if len(batch) < self._max_batch and runs.isdisjoint(item[0].run_ids):
                runs.update(item[0].run_ids)
                batch.append(item)
            else:
                rest.append(item)
        self._pending = rest
        return batch

    async def _flush(self) -> None:
        await asyncio.sleep(0)  # callers of this same tick join this batch
        try:
            batch = self._take_batch()
            if batch:
                await self._run(batch)
        finally:
            self._in_flight -= 1
            self._kick()

    async def _run(self, batch: list[tuple[Req, asyncio.Future[int]]]) -> None:
        try:
            outcomes = await self._execute([req for req, _ in batch])
        except Exception as exc:  # the statement failed as a whole: retry each alone
            if len(batch) == 1:
                _settle(batch[0][1], exc)
                return
            for item in batch:
                await self._run([item])
            return
        for (_, future), outcome in zip(batch, outcomes, strict=True):
            _settle(future, outcome)


def _settle(future: asyncio.Future[int], outcome: int | BaseException) -> None:
    if future.done():  # the caller went away (cancelled); nothing to tell
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)
