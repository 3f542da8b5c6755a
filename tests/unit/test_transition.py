"""One run state machine: the runs-row patches an append writes are the fold's state seen
through the row's columns, and each lifecycle message comes from its event."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import given, settings

from reactor_jobs.domain import events as ev
from reactor_jobs.domain.projection import (
    LATER,
    NOW,
    RUN_COLUMNS,
    RUN_TIME_COLUMNS,
    Row,
    project,
    resolve_now,
    run_row,
)
from reactor_jobs.domain.replay import fold
from tests.histories import T0, run_history
from tests.unit.test_replay import record


def _live_row(run_id: str, appends: list[list[ev.Event]]) -> Row:
    """The row as the inline projection leaves it: one patch per append, NOW at its time."""
    row: Row = {}
    head = 0
    for n, events in enumerate(appends):
        changes = project(run_id, head + 1, events)
        at = T0 + timedelta(seconds=n)  # record() gives each append one recorded time
        patch = changes.new_run if changes.new_run is not None else changes.run_patch
        row.update(resolve_now(patch, at, RUN_TIME_COLUMNS))
        head += len(events)
    return row


@settings(max_examples=300)
@given(run_history("run_1"))
def test_every_column_of_the_projected_row_is_the_folds_state(
    appends: list[list[ev.Event]],
) -> None:
    row = _live_row("run_1", appends)
    assert set(row) == set(RUN_COLUMNS)
    assert row == run_row(fold(record("run_1", appends)))


def test_a_patch_names_only_what_the_events_change() -> None:
    assert project("run_1", 5, [ev.StepCompleted(name="charge", attempt=1)]).run_patch == {
        "updated_at": NOW,
        "last_position": 5,
    }
    beat = ev.LeaseExtended(attempt=1, worker="w1", lease_ms=30_000)
    assert project("run_1", 6, [beat]).run_patch == {
        "lease_expires_at": NOW,
        LATER + "lease_expires_at": 30_000,
        "updated_at": NOW,
        "last_position": 6,
    }


def test_a_later_event_sets_a_time_afresh() -> None:
    """A retry due in 1.5 s, then a retry due at a fixed time: no stale '+available_at'."""
    due = T0 + timedelta(minutes=1)
    patch = project(
        "run_1",
        3,
        [
            ev.RetryScheduled(attempt=2, delay_ms=1500),
            ev.RetryScheduled(attempt=2, available_at=due),
        ],
    ).run_patch
    assert patch["available_at"] == due and LATER + "available_at" not in patch


def test_timeout_and_lost_lease_messages_are_the_events_own() -> None:
    timed_out = ev.TimedOut(attempt=2, timeout_ms=5000)
    lost = ev.LeaseExpired(attempt=3, worker="w1")
    assert timed_out.error.message == "attempt 2 ran past its timeout of 5000 ms"
    assert lost.error.message == "worker w1 lost its lease during attempt 3"
    for event in (timed_out, lost):
        state = fold(record("run_1", [[_TRIGGERED], [event]]))
        assert state.last_error == event.error
        assert project("run_1", 2, [event]).run_patch["last_error"] == {
            "type": event.error.type,
            "message": event.error.message,
            "retryable": True,
            "traceback": None,
        }


_TRIGGERED = ev.Triggered(
    org="acme", job="a", function="fn", function_version=1, trigger=ev.TriggerInfo(kind="manual")
)
