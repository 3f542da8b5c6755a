"""The scheduler loop of `reactor serve`: fires cron slots exactly once, on any number of
nodes. A slot's run carries the idempotency key cron:<trigger>:<local slot time>, so the
runs_idempotency index lets only one scheduler's fire through; `fired_through` on the
trigger records how far the slots are handled (fire first, then advance: a crash between
the two re-fires the same slots, which the key absorbs). Sleeps, retries and leases are
the workers' (see worker.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime, timedelta

import asyncpg

from reactor_jobs.engine import cron
from reactor_jobs.engine.errors import ReactorError
from reactor_jobs.engine.runs import RunControl

log = logging.getLogger("reactor_jobs.scheduler")

CRON_TRIGGERS = """
SELECT id, org, job, schedule, timezone, coalesce(catch_up, 'latest') AS catch_up,
       coalesce(fired_through, created_at) AS fired_through, clock_timestamp() AS now
  FROM _reactor_jobs.triggers WHERE kind = 'cron' ORDER BY id
"""
ADVANCE = """
UPDATE _reactor_jobs.triggers SET fired_through = $2
 WHERE id = $1 AND coalesce(fired_through, created_at) < $2
"""


class Scheduler:
    def __init__(self, pool: asyncpg.Pool, control: RunControl, *, interval_ms: int = 1000) -> None:
        self.pool, self.control, self.interval = pool, control, interval_ms / 1000
        # a slot fired within this long of its time counts as on time, not a catch-up
        self.tolerance = timedelta(seconds=max(2 * self.interval, 5))

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            wait = self.interval
            try:
                wait = min(wait, await self.tick())
            except (asyncpg.PostgresError, OSError) as exc:
                log.warning("scheduler tick failed, retrying: %s", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max(wait, 0.001))

    async def tick(self) -> float:
        """Fire what is due; return the seconds until the next slot of any trigger."""
        rows = await self.pool.fetch(CRON_TRIGGERS)
        until_next = self.interval
        for row in rows:
            await self._fire_due(row)
            upcoming = cron.next_fires(row["schedule"], row["timezone"], row["now"], 1)[0]
            until_next = min(until_next, (upcoming - row["now"]).total_seconds())
        return until_next

    async def _fire_due(self, row: asyncpg.Record) -> None:
        slots = cron.due_slots(row["schedule"], row["timezone"], row["fired_through"], row["now"])
        if not slots:
            return
        for slot in cron.to_fire(slots, row["catch_up"], row["now"], self.tolerance):
            await self._fire(row, slot)
        await self.pool.execute(ADVANCE, row["id"], slots[-1])

    async def _fire(self, row: asyncpg.Record, slot: datetime) -> None:
        try:
            await self.control.trigger(
                row["org"],
                row["job"],
                kind="cron",
                source=row["id"],
                scheduled_for=slot,
                payload={"scheduled_for": slot.isoformat()},
                idempotency_key=cron.slot_key(row["id"], slot, row["timezone"]),
            )
        except ReactorError as exc:  # e.g. the job's function has no live version
            log.warning("cron trigger %s: slot %s not fired: %s", row["id"], slot, exc)
