"""Retry policy, pure: how long to back off and what a failed attempt leads to.

Backoff for the retry after attempt n (1-based): exponential = initial * 2^(n-1), linear =
initial * n, capped at max_delay. "Equal jitter" then picks uniformly from the upper half,
[capped/2, capped], so many runs failing together do not retry in lockstep.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from reactor_jobs.engine import events as ev


def backoff_ms(attempt: int, *, backoff: str, initial_ms: int, max_ms: int, jitter: float) -> int:
    """Delay before the retry that follows attempt `attempt`; jitter is a number in [0, 1)."""
    growth = attempt if backoff == "linear" else 2 ** min(attempt - 1, 62)
    capped = min(initial_ms * growth, max_ms)
    return int(capped / 2 + capped / 2 * jitter)


def after_failure(
    attempt: int,
    *,
    max_attempts: int,
    error: ev.ErrorInfo,
    now: datetime,
    delay_ms: int,
    dlq_id: str,
) -> ev.Event:
    """RetryScheduled while attempts remain and the error is retryable, else DeadLettered."""
    if error.retryable and attempt < max_attempts:
        return ev.RetryScheduled(
            attempt=attempt + 1, available_at=now + timedelta(milliseconds=delay_ms)
        )
    return ev.DeadLettered(dlq_id=dlq_id, attempts=attempt, error=error)
