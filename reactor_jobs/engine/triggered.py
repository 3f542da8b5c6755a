"""A run's first event, built from a resolved job: its function version and policy pinned."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from reactor_jobs.domain import events as ev
from reactor_jobs.functions.records import ResolvedJob


def triggered_event(
    job: ResolvedJob,
    *,
    trigger: ev.TriggerInfo,
    payload: Any = None,
    headers: Mapping[str, str] | None = None,
    content_type: str = "application/json",
    idempotency_key: str | None = None,
    available_at: datetime | None = None,
) -> ev.Triggered:
    """A run's first event: the job's function version and policy pinned as of now."""
    p = job.policy
    return ev.Triggered(
        org=job.job.org,
        job=job.job.name,
        function=job.function.name,
        function_version=job.version,
        trigger=trigger,
        payload=payload,
        headers=dict(headers or {}),
        content_type=content_type,
        idempotency_key=idempotency_key,
        max_attempts=p.max_attempts,
        backoff=p.backoff,
        initial_delay_ms=p.initial_delay_ms,
        max_delay_ms=p.max_delay_ms,
        timeout_ms=p.timeout_ms,
        max_concurrency=p.max_concurrency,
        available_at=available_at,
    )
