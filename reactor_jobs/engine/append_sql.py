"""The append statements' parameters: a batch of requests as the arrays that
`journal_append_steps` or `journal_append` (engine/write.sql) take, and which of the two.

Both statements are used as written; a part a batch does not need gets empty arrays.
"""

from __future__ import annotations

from typing import Any

import msgspec

from reactor_jobs.domain.projection import Changes
from reactor_jobs.statements import load

WORK_CHANNEL = "reactor_jobs_work"  # runnable work appeared (named in write.sql's NOTIFY)
CANCEL_CHANNEL = "reactor_jobs_cancel"  # payload: the id of a run cancelled while running

WRITE = load("reactor_jobs.engine", "write.sql")
APPEND_STEPS = WRITE.journal_append_steps
APPEND = WRITE.journal_append
REFUSALS = WRITE.journal_refusals

_json = msgspec.json.Encoder()


def jsonb(value: Any) -> str:
    """asyncpg's default jsonb codec takes text."""
    return _json.encode(value).decode()


class AppendArgs:
    """One batch's arguments, filled request by request in journal order."""

    def __init__(self) -> None:
        # one element per request
        self.run_ids: list[str] = []
        self.expected: list[int] = []
        self.patches: list[str | None] = []
        self.fence_status: list[str | None] = []
        self.fence_attempt: list[int | None] = []
        self.fence_owner: list[str | None] = []
        self.notify: list[bool] = []
        # one per new run
        self.new_runs: list[str] = []
        self.after: list[str | None] = []
        # one per event
        self.event_runs: list[str] = []
        self.positions: list[int] = []
        self.types: list[str] = []
        self.versions: list[int] = []
        self.payloads: list[bytes] = []
        # the side tables
        self.consumed_events: list[str] = []
        self.consumer_runs: list[str] = []
        self.dlq_opened: list[str] = []
        self.dlq_retried: list[str] = []
        self.dlq_retried_runs: list[str] = []
        self.events_recorded: list[str] = []

    def add(
        self,
        run_id: str,
        expected: int,
        fence: tuple[str | None, int | None, str | None],
        changes: Changes,
        events: list[tuple[str, int, bytes]],
        after: str | None = None,
    ) -> None:
        """One request: its fence (status, attempt, lease owner; None: unchecked), its
        projection changes, and its events as (type, version, canonical payload)."""
        self.run_ids.append(run_id)
        self.expected.append(expected)
        self.patches.append(None if changes.new_run is not None else jsonb(changes.run_patch))
        self.fence_status.append(fence[0])
        self.fence_attempt.append(fence[1])
        self.fence_owner.append(fence[2])
        self.notify.append(changes.notify)
        if changes.new_run is not None:
            self.new_runs.append(jsonb(changes.new_run))
            self.after.append(after)
        for offset, (type_name, version, payload) in enumerate(events, start=1):
            self.event_runs.append(run_id)
            self.positions.append(expected + offset)
            self.types.append(type_name)
            self.versions.append(version)
            self.payloads.append(payload)
        for event_id in changes.events_consumed:
            self.consumed_events.append(event_id)
            self.consumer_runs.append(run_id)
        self.dlq_opened.extend(jsonb(row) for row in changes.dlq_opened)
        for dlq_id in changes.dlq_retried:
            self.dlq_retried.append(dlq_id)
            self.dlq_retried_runs.append(run_id)
        self.events_recorded.extend(jsonb(row) for row in changes.events_recorded)

    def _steps_only(self) -> bool:
        return not (
            self.new_runs
            or self.consumed_events
            or self.dlq_opened
            or self.dlq_retried
            or self.events_recorded
        )

    def statement(self) -> tuple[str, list[Any]]:
        """The statement for this batch and its arguments: the step append when every
        request only moves an existing run, else the general one."""
        requests = [
            self.run_ids,
            self.expected,
            self.patches,
            self.fence_status,
            self.fence_attempt,
            self.fence_owner,
            self.notify,
        ]
        events = [self.event_runs, self.positions, self.types, self.versions, self.payloads]
        if self._steps_only():
            return APPEND_STEPS, [*requests, *events]
        return APPEND, [
            *requests,
            self.new_runs,
            self.after,
            *events,
            self.consumed_events,
            self.consumer_runs,
            self.dlq_opened,
            self.dlq_retried,
            self.dlq_retried_runs,
            self.events_recorded,
        ]
