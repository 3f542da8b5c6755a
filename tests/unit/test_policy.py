"""Retry policy, durations and ids: pure functions, checked for all inputs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reactor_jobs.domain import events as ev
from reactor_jobs.domain.ids import new_id, ulid
from reactor_jobs.domain.policy import after_failure, backoff_ms
from reactor_jobs.functions.values import parse_duration

NOW = datetime(2026, 1, 1, tzinfo=UTC)


@given(
    attempt=st.integers(1, 200),
    backoff=st.sampled_from(["exponential", "linear"]),
    initial=st.integers(0, 100_000),
    cap=st.integers(0, 10_000_000),
    jitter=st.floats(0, 1, exclude_max=True),
)
def test_backoff_stays_within_the_upper_half_of_the_capped_delay(
    attempt: int, backoff: str, initial: int, cap: int, jitter: float
) -> None:
    growth = attempt if backoff == "linear" else 2 ** (attempt - 1)
    capped = min(initial * growth, cap)
    delay = backoff_ms(attempt, backoff=backoff, initial_ms=initial, max_ms=cap, jitter=jitter)
    assert capped // 2 <= delay <= capped


def test_backoff_grows_exponentially_or_linearly() -> None:
    top = [backoff_ms(n, backoff="exponential", initial_ms=1000, max_ms=60_000, jitter=0.999999)
           for n in range(1, 9)]  # fmt: skip
    assert top == [999, 1999, 3999, 7999, 15999, 31999, 59999, 59999]
    linear = [backoff_ms(n, backoff="linear", initial_ms=1000, max_ms=60_000, jitter=0.0)
              for n in range(1, 4)]  # fmt: skip
    assert linear == [500, 1000, 1500]


def test_after_failure_retries_while_attempts_remain() -> None:
    error = ev.ErrorInfo(type="E", message="m")
    retry = after_failure(1, max_attempts=3, error=error, delay_ms=250, dlq_id="dlq_x")
    # The retry carries its delay: the database adds it to its own clock when it is recorded.
    assert retry == ev.RetryScheduled(attempt=2, delay_ms=250)
    resumed = after_failure(1, max_attempts=3, error=error, delay_ms=5, dlq_id="x", next_attempt=4)
    assert resumed == ev.RetryScheduled(attempt=4, delay_ms=5)  # wake-ups were executions
    last = after_failure(3, max_attempts=3, error=error, delay_ms=250, dlq_id="dlq_x")
    assert last == ev.DeadLettered(dlq_id="dlq_x", attempts=3, error=error)
    fatal = ev.ErrorInfo(type="E", message="m", retryable=False)
    assert isinstance(
        after_failure(1, max_attempts=3, error=fatal, delay_ms=1, dlq_id="d"),
        ev.DeadLettered,
    )


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("30s", 30), ("15m", 900), ("24h", 86400), ("7d", 604800), (90, 90),
     (1.5, 1.5), (timedelta(minutes=2), 120), ("365d", 365 * 86400)],
)  # fmt: skip
def test_durations(text: str | float | timedelta, seconds: float) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("bad", ["soon", "10 weeks", "-5s", -1, "366d", True, None])
def test_bad_durations_are_refused_clearly(bad: object) -> None:
    with pytest.raises(ValueError, match=r"duration|between 0 and 365 days"):
        parse_duration(bad)  # type: ignore[arg-type]


def test_ids_are_prefixed_sortable_and_unique() -> None:
    assert new_id("run").startswith("run_") and len(new_id("run")) == 30
    assert ulid(1000) < ulid(2000)
    assert len({new_id("dlq") for _ in range(1000)}) == 1000
