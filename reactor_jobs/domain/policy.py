"""Retry policy, pure: how long to back off and what a failed attempt leads to.

Backoff for the retry after attempt n (1-based): exponential = initial * 2^(n-1), linear =
initial * n, capped at max_delay. "Equal jitter" then picks uniformly from the upper half,
[capped/2, capped], so many runs failing together do not retry in lockstep.
"""

from __future__ import annotations

from reactor_jobs.domain import events as ev


def backoff_ms(attempt: int, *, backoff: str, initial_ms: int, max_ms: int, jitter: float) -> int:
    """Delay before the retry that follows attempt `attempt`; jitter is a number in [0, 1)."""
    growth = attempt if backoff == "linear" else 2 ** min(attempt - 1, 62)
    capped = min(initial_ms * growth, max_ms)
    return int(capped / 2 + capped / 2 * jitter)


def after_failure(
    tries: int,
    *,
    max_attempts: int,
    error: ev.ErrorInfo,
    delay_ms: int,
    dlq_id: str,
    next_attempt: int | None = None,
) -> ev.Event:
    """RetryScheduled while tries remain and the error is retryable, else DeadLettered.

    The retry is due `delay_ms` after the event is recorded: the database's clock decides."""
    if error.retryable and tries < max_attempts:
        return ev.RetryScheduled(attempt=next_attempt or tries + 1, delay_ms=delay_ms)
    return ev.DeadLettered(dlq_id=dlq_id, attempts=tries, error=error)
