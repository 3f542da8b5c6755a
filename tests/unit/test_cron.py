"""Cron policy: due slots, catch-up, DST in a named timezone, previews."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from reactor_jobs.engine.cron import MAX_CATCH_UP, due_slots, next_fires, slot_key, to_fire

T = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
TOL = timedelta(seconds=5)


@pytest.mark.parametrize(
    ("schedule", "expected"),
    [
        ("0 * * * *", ["13:00", "14:00"]),
        ("0 0 * * *", ["00:00", "00:00"]),
        ("*/15 * * * *", ["12:15", "12:30"]),
        ("0 9 * * 1-5", ["09:00", "09:00"]),
    ],
)
def test_the_specs_examples(schedule: str, expected: list[str]) -> None:
    fires = next_fires(schedule, None, T, 2)
    assert [f.strftime("%H:%M") for f in fires] == expected
    if schedule == "0 9 * * 1-5":
        assert all(f.weekday() < 5 for f in fires)


def test_due_slots_are_those_after_the_mark_up_to_now() -> None:
    slots = due_slots("*/15 * * * *", None, T, T + timedelta(minutes=45))
    assert slots == [T + timedelta(minutes=m) for m in (15, 30, 45)]
    assert due_slots("*/15 * * * *", None, T, T + timedelta(minutes=14)) == []


def test_catch_up_policies() -> None:
    slots = [T - timedelta(minutes=m) for m in (30, 20, 10)]
    assert to_fire(slots, "latest", T, TOL) == slots[-1:]
    assert to_fire(slots, "all", T, TOL) == slots
    assert to_fire(slots, "skip", T, TOL) == []
    on_time = [T - timedelta(seconds=1)]
    assert to_fire(on_time, "skip", T, TOL) == on_time  # not a catch-up: fires
    many = [T - timedelta(minutes=m) for m in range(500, 0, -1)]
    assert to_fire(many, "all", T, TOL) == many[-MAX_CATCH_UP:]


def test_a_repeated_local_time_fires_once() -> None:
    """2026-11-01: New York falls back at 02:00, so 01:30 happens twice."""
    start = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # 00:00 EDT
    slots = due_slots("30 1 * * *", "America/New_York", start, start + timedelta(hours=6))
    assert len(slots) == 2 and slots[1] - slots[0] == timedelta(hours=1)
    keys = {slot_key("trg_1", s, "America/New_York") for s in slots}
    assert keys == {"cron:trg_1:2026-11-01T01:30:00"}


def test_a_skipped_local_time_fires_at_the_next_valid_instant() -> None:
    """2026-03-08: New York springs forward at 02:00, so 02:30 does not happen."""
    start = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # 00:00 EST
    (slot,) = due_slots("30 2 * * *", "America/New_York", start, start + timedelta(hours=4))
    assert slot == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 03:00 EDT


def test_seconds_field_for_fine_schedules() -> None:
    fires = next_fires("* * * * * */2", None, T, 3)
    assert [(f - T).total_seconds() for f in fires] == [2, 4, 6]
