"""Starting and steering runs: trigger (one or in bulk), cancel, retry, retry from the DLQ.

Every change is an append to the run's stream; what a change returns, and the checks before
it, read the runs projection (listing and getting runs is the read side's,
projections/queries.py).
Admission for manual and webhook triggers is checked against the projection when the
request arrives (concurrent requests may overshoot by the few in flight); execution
concurrency is enforced strictly by the claim.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
import msgspec

from reactor_jobs.domain import events as ev
from reactor_jobs.domain.errors import (
    ConcurrencyError,
    ConcurrencyExceeded,
    DlqEntryNotFound,
    IdempotencyConflict,
    InvalidState,
    RunNotFound,
)
from reactor_jobs.domain.ids import new_id
from reactor_jobs.domain.projection import RUN_TIME_COLUMNS, RunInfo, project, resolve_now
from reactor_jobs.engine.append_sql import CANCEL_CHANNEL
from reactor_jobs.engine.journal import AppendRequest, Journal
from reactor_jobs.engine.triggered import triggered_event
from reactor_jobs.functions.registry import Registry

ADMITTED_KINDS = frozenset({"manual", "webhook"})
TERMINAL = ("completed", "failed", "cancelled")
RETRYABLE = ("failed", "cancelled")

_RUN = "SELECT * FROM _reactor_jobs.runs WHERE org = $1 AND run_id = $2"
_BY_KEY = "SELECT * FROM _reactor_jobs.runs WHERE org = $1 AND job = $2 AND idempotency_key = $3"
_DLQ = "SELECT * FROM _reactor_jobs.dlq WHERE org = $1 AND dlq_id = $2"
_RECORDED_AT = "SELECT recorded_at FROM _reactor_jobs.journal WHERE run_id = $1 AND position = $2"
_FIRST = "SELECT payload FROM _reactor_jobs.journal WHERE run_id = $1 AND position = 1"


class Admission(NamedTuple):
    """What RunControl.admit did: the run, and whether this call created it."""

    run: RunInfo
    created: bool


class RunControl:
    def __init__(self, pool: asyncpg.Pool, journal: Journal, registry: Registry) -> None:
        self.pool, self.journal, self.registry = pool, journal, registry

    async def trigger(self, org: str, job: str, **options: Any) -> RunInfo:
        """Start a run (see admit); with an idempotency key, a repeat returns the first run."""
        return (await self.admit(org, job, **options)).run

    async def admit(
        self,
        org: str,
        job: str,
        *,
        payload: Any = None,
        kind: str = "manual",
        source: str | None = None,
        idempotency_key: str | None = None,
        headers: Mapping[str, str] | None = None,
        content_type: str = "application/json",
        event_id: str | None = None,
        causation_run_id: str | None = None,
        scheduled_for: datetime | None = None,
    ) -> Admission:
        """Start a run. With an idempotency key, a repeat (even a simultaneous one) gets the
        first run and created=False; exactly one caller per key sees created=True."""
        if idempotency_key is not None:
            existing = await self.pool.fetchrow(_BY_KEY, org, job, idempotency_key)
            if existing is not None:
                return Admission(RunInfo.from_row(existing), created=False)
        if kind in ADMITTED_KINDS:
            resolved, active = await self.registry.resolve_admission(org, job)
            if active >= resolved.policy.max_concurrency:
                raise ConcurrencyExceeded(job, resolved.policy.max_concurrency)
        else:
            resolved = await self.registry.resolve(org, job)
        trigger = ev.TriggerInfo(
            kind=kind,
            source=source,
            event_id=event_id,
            causation_run_id=causation_run_id,
            scheduled_for=scheduled_for,
        )
        first = triggered_event(
            resolved,
            trigger=trigger,
            payload=payload,
            headers=headers,
            content_type=content_type,
            idempotency_key=idempotency_key,
        )
        run_id = new_id("run")
        try:
            await self.journal.append(run_id, [first], expected_position=0)
        except IdempotencyConflict as conflict:  # a simultaneous repeat took the key first
            holder = await self.pool.fetchrow(_RUN, org, conflict.holder)
            if holder is None:  # the key's run is not projected (yet): refuse, don't guess
                raise
            return Admission(RunInfo.from_row(holder), created=False)
        return Admission(await self._as_appended(None, run_id, 0, [first]), created=True)

    async def trigger_many(
        self, org: str, job: str, payloads: Sequence[Any], *, kind: str = "manual"
    ) -> list[str]:
        """Bulk enqueue, one statement: no admission check (the claim still limits)."""
        resolved = await self.registry.resolve(org, job)
        trigger = ev.TriggerInfo(kind=kind)
        requests = [
            AppendRequest(
                run_id=new_id("run"),
                expected_position=0,
                events=[triggered_event(resolved, trigger=trigger, payload=p)],
            )
            for p in payloads
        ]
        outcomes = await self.journal.append_many(requests)
        for outcome in outcomes:
            if not isinstance(outcome, int):
                raise outcome
        return [r.run_id for r in requests]

    async def cancel(self, org: str, run_id: str, *, by: str | None = None) -> RunInfo:
        """Cancel a queued, sleeping, retrying or running run; a running one stops within ~1s."""
        run = await self._append_if(
            org,
            run_id,
            lambda row: row["status"] not in TERMINAL,
            "cannot cancel a {status} run",
            [ev.Cancelled(by=by)],
        )
        await self.pool.execute("SELECT pg_notify($1, $2)", CANCEL_CHANNEL, run_id)
        return run

    async def retry(self, org: str, run_id: str, *, by: str | None = None) -> RunInfo:
        """Queue a failed or cancelled run again (the spec's fix for a run stuck in running:
        cancel, then retry); its completed steps stay cached."""
        row = await self._row(org, run_id)
        if row["status"] not in RETRYABLE:
            raise InvalidState(
                f"only a failed or cancelled run can be retried; run {run_id} is {row['status']}"
            )
        return await self._requeue(org, row, by)

    async def retry_dlq(self, org: str, dlq_id: str, *, by: str | None = None) -> RunInfo:
        entry = await self.pool.fetchrow(_DLQ, org, dlq_id)
        if entry is None:
            raise DlqEntryNotFound(dlq_id)
        if entry["status"] != "open":
            raise InvalidState(f"dead-letter entry {dlq_id} was already retried")
        return await self._requeue(org, await self._row(org, entry["run_id"]), by)

    async def _requeue(self, org: str, row: asyncpg.Record, by: str | None) -> RunInfo:
        first = ev.decode(await self.pool.fetchval(_FIRST, row["run_id"]))
        assert isinstance(first, ev.Triggered)
        retried = ev.Retried(
            dlq_id=row["dlq_id"], by=by, max_attempts=row["attempt"] + first.max_attempts
        )
        return await self._append_if(
            org,
            row["run_id"],
            lambda r: r["status"] in RETRYABLE,
            "cannot retry a {status} run",
            [retried],
        )

    async def _row(self, org: str, run_id: str) -> asyncpg.Record:
        row = await self.pool.fetchrow(_RUN, org, run_id)
        if row is None:
            raise RunNotFound(run_id)
        return row

    async def _append_if(
        self, org: str, run_id: str, allowed: Any, refusal: str, events: list[ev.Event]
    ) -> RunInfo:
        """Append at the head the projection shows, re-reading if the run moves meanwhile;
        return the run as this append left it."""
        for _ in range(20):
            row = await self._row(org, run_id)
            if not allowed(row):
                raise InvalidState(refusal.format(status=row["status"]))
            try:
                await self.journal.append(run_id, events, expected_position=row["last_position"])
            except ConcurrencyError:
                continue
            return await self._as_appended(row, run_id, row["last_position"], events)
        raise InvalidState(f"run {run_id} kept changing; try again")

    async def _as_appended(
        self, before: Mapping[str, Any] | None, run_id: str, head: int, events: list[ev.Event]
    ) -> RunInfo:
        """The run as these events, appended after position `head`, left it: the projection
        handlers applied in Python at their recorded time (as a rebuild applies them), not
        a re-read, which a worker claiming the run at once could already have moved on."""
        recorded_at = await self.pool.fetchval(_RECORDED_AT, run_id, head + 1)
        changes = project(run_id, head + 1, events)
        patch = changes.new_run if changes.new_run is not None else changes.run_patch
        patch = resolve_now(patch, recorded_at, RUN_TIME_COLUMNS)
        for column in ("last_error", "output"):  # values; the row holds JSON text
            if patch.get(column) is not None:
                patch[column] = msgspec.json.encode(patch[column]).decode()
        return RunInfo.from_row({**(before or {}), **patch})
