"""Event fan-out: the runs an emitted event starts, one per event trigger subscribed to
exactly its topic (case-sensitive) in the emitting run's org.

They are appended in the same statement as the Emitted event and exist only if it lands.
Each carries the idempotency key event:<event_id>:<trigger_id>, so the journal's
idempotency_keys table makes the fan-out exactly-once, whatever retries or replays happen.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import asyncpg

from reactor_jobs.domain import events as ev
from reactor_jobs.domain.errors import ReactorError
from reactor_jobs.domain.ids import new_id
from reactor_jobs.engine.journal import AppendRequest
from reactor_jobs.engine.triggered import triggered_event
from reactor_jobs.functions.registry import Registry

log = logging.getLogger("reactor_jobs.fanout")

SUBSCRIBERS = """
SELECT id, job FROM _reactor_jobs.triggers
 WHERE org = $1 AND kind = 'event' AND topic = $2 ORDER BY id
"""


class FanOut:
    def __init__(self, pool: asyncpg.Pool, registry: Registry) -> None:
        self.pool, self.registry = pool, registry

    async def runs_for(
        self,
        *,
        org: str,
        topic: str,
        event_id: str,
        payload: Any,
        emitter: str,
        headers: Mapping[str, str] | None = None,
    ) -> list[AppendRequest]:
        """The new runs for one emitted event; a subscriber that cannot run is skipped.
        `headers`: the emit's trace context (traceparent), carried by each run."""
        requests = []
        for trigger_id, job in await self.pool.fetch(SUBSCRIBERS, org, topic):
            try:
                resolved = await self.registry.resolve(org, job)
            except ReactorError as exc:
                log.warning("event %s: job %s cannot be triggered: %s", event_id, job, exc)
                continue
            trigger = ev.TriggerInfo(
                kind="event", source=trigger_id, event_id=event_id, causation_run_id=emitter
            )
            first = triggered_event(
                resolved,
                trigger=trigger,
                payload=payload,
                headers=headers,
                idempotency_key=f"event:{event_id}:{trigger_id}",
            )
            requests.append(
                AppendRequest(run_id=new_id("run"), events=[first], expected_position=0)
            )
        return requests
