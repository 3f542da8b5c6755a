"""`client.jobs` and its parts: jobs, their triggers, runs, dead letters and the live log.

Lists that the API pages (runs, DLQ entries) return one `Page`: a sequence of items, newest
first, and `next_cursor` to pass back as `cursor=` for the next page (None on the last).
"""

from __future__ import annotations

import builtins
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
import msgspec
from msgspec import UNSET, UnsetType

from reactor_jobs.client.errors import ConnectionFailed
from reactor_jobs.client.sse import messages
from reactor_jobs.client.transport import Transport
from reactor_jobs.client.types import (
    Backoff,
    CreatedTrigger,
    DlqEntry,
    Job,
    JobWithTriggers,
    JournalEvent,
    LineageRun,
    LogEvent,
    LogLine,
    NextFires,
    Page,
    ReplayResult,
    Run,
    RunEvent,
    RunStateAt,
    StateDiff,
    Trigger,
    TriggerKind,
)

ADMIN = "/jobs/v1/_admin/jobs"
_LOG_EVENTS: dict[str, type[RunEvent] | type[LogLine]] = {"run": RunEvent, "log": LogLine}


def seg(value: str) -> str:
    """One path segment, escaped (a name cannot reach another path)."""
    return quote(value, safe="")


def job_path(name: str) -> str:
    return f"{ADMIN}/{seg(name)}"


def query(**values: str | int | bool | datetime | Sequence[str] | None) -> dict[str, str]:
    """Query parameters, leaving out the ones not given."""
    out: dict[str, str] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            out[key] = "true" if value else "false"
        elif isinstance(value, datetime):
            out[key] = value.isoformat()
        elif isinstance(value, str | int):
            out[key] = str(value)
        else:
            out[key] = ",".join(value)
    return out


class Triggers:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    async def create(
        self,
        name: str,
        *,
        kind: TriggerKind,
        schedule: str | None = None,
        timezone: str | None = None,
        catch_up: str | None = None,
        topic: str | None = None,
        secret: str | None = None,
        headers: builtins.list[str] | None = None,
    ) -> CreatedTrigger:
        """Add a trigger to job `name`. A webhook's ingress path is in `.url` (only here);
        `secret` (webhooks only, write-only) makes its requests require a signature;
        `headers` (webhooks only) names request headers its runs keep beyond the defaults."""
        fields = {"schedule": schedule, "timezone": timezone, "catch_up": catch_up,
                  "topic": topic, "secret": secret, "headers": headers}  # fmt: skip
        body = {"kind": kind, **{k: v for k, v in fields.items() if v is not None}}
        return await self._t.decode(CreatedTrigger, "POST", f"{job_path(name)}/triggers", json=body)

    async def list(self, name: str) -> builtins.list[Trigger]:
        return await self._t.items("triggers", Trigger, f"{job_path(name)}/triggers")

    async def delete(self, name: str, id: str) -> None:
        await self._t.call("DELETE", f"{job_path(name)}/triggers/{seg(id)}")

    async def next(self, name: str, *, count: int | None = None) -> NextFires:
        """The next `count` (default 5, at most 100) fire times of each cron trigger of job
        `name`, from the database clock's now."""
        path = f"{job_path(name)}/triggers/next"
        return await self._t.decode(NextFires, "GET", path, params=query(count=count))


class Runs:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    async def list(
        self,
        name: str,
        *,
        status: str | Sequence[str] | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[Run]:
        """One page of the job's runs, newest first; `status` may name several."""
        params = query(status=status, since=since, until=until, limit=limit, cursor=cursor)
        return await self._t.page("runs", Run, f"{job_path(name)}/runs", params=params)

    async def get(self, name: str, id: str) -> Run:
        return await self._t.decode(Run, "GET", f"{job_path(name)}/runs/{seg(id)}")

    async def cancel(self, name: str, id: str) -> Run:
        return await self._t.decode(Run, "POST", f"{job_path(name)}/runs/{seg(id)}/cancel")

    async def retry(self, name: str, id: str) -> Run:
        return await self._t.decode(Run, "POST", f"{job_path(name)}/runs/{seg(id)}/retry")

    async def journal(self, name: str, id: str) -> builtins.list[JournalEvent]:
        path = f"{job_path(name)}/runs/{seg(id)}/journal"
        return await self._t.items("events", JournalEvent, path)

    async def state(self, name: str, id: str, *, at: int | None = None) -> RunStateAt:
        """Time travel: the run's state folded up to journal position `at` (default: its
        head). A position below 1 or past the head raises InvalidFieldError."""
        path = f"{job_path(name)}/runs/{seg(id)}/state"
        return await self._t.decode(RunStateAt, "GET", path, params=query(at=at))

    async def diff(self, name: str, id: str, a: int, b: int) -> StateDiff:
        """What changed in the run's state from journal position `a` to position `b`."""
        path = f"{job_path(name)}/runs/{seg(id)}/state/diff"
        return await self._t.decode(StateDiff, "GET", path, params={"from": str(a), "to": str(b)})

    async def lineage(self, name: str, id: str) -> LineageRun:
        """The run's cause and the tree of runs its emitted events started."""
        return await self._t.decode(LineageRun, "GET", f"{job_path(name)}/runs/{seg(id)}/lineage")

    async def replay(self, name: str, id: str, *, version: int | None = None) -> ReplayResult:
        """Replay-check the run on its own version (or `version`): nothing runs for real
        and nothing is recorded. `.outcome` is "same" or "diverges" (then `.divergence`)."""
        body = {} if version is None else {"version": version}
        path = f"{job_path(name)}/runs/{seg(id)}/replay"
        return await self._t.decode(ReplayResult, "POST", path, json=body)


class Dlq:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    async def list(
        self,
        name: str,
        *,
        status: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Page[DlqEntry]:
        """One page of the job's dead letters, newest first (`status`: open or retried)."""
        params = query(status=status, limit=limit, cursor=cursor)
        return await self._t.page("entries", DlqEntry, f"{job_path(name)}/dlq", params=params)

    async def retry(self, name: str, dlq_id: str) -> Run:
        """Run the dead-lettered run again; returns the run."""
        return await self._t.decode(Run, "POST", f"{job_path(name)}/dlq/{seg(dlq_id)}/retry")


class Jobs:
    def __init__(self, transport: Transport) -> None:
        self._t = transport
        self.triggers = Triggers(transport)
        self.runs = Runs(transport)
        self.dlq = Dlq(transport)

    async def create(
        self,
        *,
        name: str,
        function_name: str,
        max_attempts: int | None = None,
        backoff: Backoff | None = None,
        initial_delay_ms: int | None = None,
        max_delay_ms: int | None = None,
        max_concurrency: int | None = None,
        timeout_ms: int | None = None,
    ) -> JobWithTriggers:
        """A job bound to a function; policy fields left out follow its manifest, and its
        live manifest's triggers are added (`.triggers`; new webhook URLs only there)."""
        policy = {"max_attempts": max_attempts, "backoff": backoff,
                  "initial_delay_ms": initial_delay_ms, "max_delay_ms": max_delay_ms,
                  "max_concurrency": max_concurrency, "timeout_ms": timeout_ms}  # fmt: skip
        body: dict[str, object] = {"name": name, "function_name": function_name}
        body.update({k: v for k, v in policy.items() if v is not None})
        return await self._t.decode(JobWithTriggers, "POST", ADMIN, json=body)

    async def list(self) -> builtins.list[Job]:
        return await self._t.items("jobs", Job, ADMIN)

    async def get(self, name: str) -> Job:
        return await self._t.decode(Job, "GET", job_path(name))

    async def update(
        self,
        name: str,
        *,
        function_name: str | UnsetType = UNSET,
        max_attempts: int | UnsetType | None = UNSET,
        backoff: Backoff | UnsetType | None = UNSET,
        initial_delay_ms: int | UnsetType | None = UNSET,
        max_delay_ms: int | UnsetType | None = UNSET,
        max_concurrency: int | UnsetType | None = UNSET,
        timeout_ms: int | UnsetType | None = UNSET,
    ) -> JobWithTriggers:
        """Change the fields given; None clears a policy field back to the manifest's."""
        fields = {"function_name": function_name, "max_attempts": max_attempts,
                  "backoff": backoff, "initial_delay_ms": initial_delay_ms,
                  "max_delay_ms": max_delay_ms, "max_concurrency": max_concurrency,
                  "timeout_ms": timeout_ms}  # fmt: skip
        body = {k: v for k, v in fields.items() if v is not UNSET}
        return await self._t.decode(JobWithTriggers, "PATCH", job_path(name), json=body)

    async def delete(self, name: str) -> None:
        await self._t.call("DELETE", job_path(name))

    async def trigger(
        self, name: str, *, payload: Any = None, idempotency_key: str | None = None
    ) -> Run:
        """Start a run now. With an idempotency key, a repeat returns the first run."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        path = f"/jobs/v1/{seg(name)}/trigger"
        return await self._t.decode(Run, "POST", path, json={"payload": payload}, headers=headers)

    async def logs(
        self,
        name: str,
        *,
        last_event_id: str | None = None,
        run_id: str | None = None,
        follow: bool = True,
    ) -> AsyncGenerator[LogEvent, None]:
        """The job's live log: a RunEvent per journal event of its runs and a LogLine per
        `ctx.log` line, from now (or after `last_event_id`; "0-0-0" replays everything);
        with `run_id`, only that run's. Ends when the server closes the stream; resume with
        the last event's `.id`. With `follow=False` it ends once the history up to now is
        sent."""
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if last_event_id is not None:
            headers["Last-Event-ID"] = last_event_id
        path = f"{job_path(name)}/logs"
        params = {"run_id": run_id} if run_id is not None else {}
        if not follow:
            params["follow"] = "false"
        if params:
            path += "?" + urlencode(params)
        async with self._t.stream(path, headers) as response:
            async for message in messages(_chunks(response, self._t.url)):
                kind = _LOG_EVENTS.get(message.event)
                if kind is None:
                    continue  # an event type this client does not know yet
                data = msgspec.json.decode(message.data)
                yield msgspec.convert({**data, "id": message.id}, kind)


async def _chunks(response: aiohttp.ClientResponse, url: str) -> AsyncIterator[bytes]:
    try:
        async for chunk in response.content.iter_any():
            yield chunk
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ConnectionFailed(
            f"the log stream from {url} broke: {exc or type(exc).__name__}"
        ) from None
