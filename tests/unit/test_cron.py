"""Cron policy: due slots, catch-up, DST in a named timezone, previews."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reactor_jobs.domain.cron import (
    MAX_CATCH_UP,
    MAX_SCAN,
    due_slots,
    next_fires,
    slot_key,
    to_fire,
)

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


@pytest.mark.parametrize("policy", ["latest", "all", "skip"])
def test_slots_within_the_tolerance_always_fire(policy: str) -> None:
    """A scheduler held up for a few seconds finds several slots of an every-second trigger
    due: all of them are on time, none is dropped as a catch-up."""
    recent = [T - timedelta(seconds=s) for s in (4, 3, 2, 1, 0)]
    assert to_fire(recent, policy, T, TOL) == recent
    late = [T - timedelta(minutes=m) for m in (30, 20)]
    expected = {"latest": recent, "all": late + recent, "skip": recent}[policy]
    assert to_fire(late + recent, policy, T, TOL) == expected


def test_latest_fires_the_newest_late_slot_only_when_none_is_on_time() -> None:
    late = [T - timedelta(minutes=m) for m in (30, 20, 10)]
    assert to_fire(late, "latest", T, TOL) == late[-1:]
    assert to_fire([*late, T], "latest", T, TOL) == [T]


def test_all_keeps_every_on_time_slot_within_the_cap() -> None:
    late = [T - timedelta(minutes=m) for m in range(300, 0, -1)]
    on_time = [T - timedelta(seconds=s) for s in (2, 1)]
    fired = to_fire(late + on_time, "all", T, TOL)
    assert len(fired) == MAX_CATCH_UP and fired[-2:] == on_time


NY = "America/New_York"
FALL_BACK = datetime(2026, 11, 1, 4, 0, tzinfo=UTC)  # 00:00 EDT; at 02:00 EDT it is 01:00 EST
SPRING_FORWARD = datetime(2026, 3, 8, 5, 0, tzinfo=UTC)  # 00:00 EST; 02:00 EST is 03:00 EDT


def test_a_repeated_local_time_fires_once_at_its_first_occurrence() -> None:
    """2026-11-01: New York falls back at 02:00, so 01:30 happens twice."""
    slots = due_slots("30 1 * * *", NY, FALL_BACK, FALL_BACK + timedelta(hours=6))
    assert slots == [datetime(2026, 11, 1, 5, 30, tzinfo=UTC)]  # 01:30 EDT
    assert slot_key("trg_1", slots[0], NY) == "cron:trg_1:2026-11-01T01:30:00"
    fires = next_fires("30 1 * * *", NY, FALL_BACK, 2)
    assert fires == [slots[0], datetime(2026, 11, 2, 6, 30, tzinfo=UTC)]  # next: 01:30 EST


def test_the_repeated_hour_of_a_frequent_schedule_fires_once() -> None:
    slots = due_slots("*/30 * * * *", NY, FALL_BACK, FALL_BACK + timedelta(hours=4))
    local = [s.astimezone(ZoneInfo(NY)).strftime("%H:%M%z") for s in slots]
    assert local == ["00:30-0400", "01:00-0400", "01:30-0400", "02:00-0500", "02:30-0500",
                     "03:00-0500"]  # fmt: skip
    assert len({slot_key("t", s, NY) for s in slots}) == len(slots)


@pytest.mark.parametrize("minutes", [15, 59, 60, 89])
def test_walking_from_inside_the_repeated_hour(minutes: int) -> None:
    """From the second pass of 01:xx (EST), the rest of that hour has already fired."""
    inside = datetime(2026, 11, 1, 6, 0, tzinfo=UTC) + timedelta(minutes=minutes - 60)
    after_fold = datetime(2026, 11, 1, 7, 0, tzinfo=UTC)  # 02:00 EST
    if inside.astimezone(ZoneInfo(NY)).fold:
        assert next_fires("*/5 * * * *", NY, inside, 1) == [after_fold]
        assert next_fires("* * * * * *", NY, inside, 1) == [after_fold]
    else:
        assert next_fires("*/5 * * * *", NY, inside, 1)[0] <= after_fold
    backwards = due_slots("*/5 * * * *", NY, inside - timedelta(hours=2), inside)
    assert backwards == sorted(set(backwards)) and backwards[-1] <= inside
    assert next_fires("*/5 * * * *", NY, backwards[-1], 1)[0] > inside  # none missed


def test_a_skipped_local_time_fires_at_the_next_valid_instant() -> None:
    """2026-03-08: New York springs forward at 02:00, so 02:30 does not happen."""
    start = SPRING_FORWARD
    (slot,) = due_slots("30 2 * * *", NY, start, start + timedelta(hours=4))
    assert slot == datetime(2026, 3, 8, 7, 0, tzinfo=UTC)  # 03:00 EDT
    assert next_fires("30 2 * * *", NY, start, 2) == [
        slot, datetime(2026, 3, 9, 6, 30, tzinfo=UTC)  # next day, 02:30 EDT
    ]  # fmt: skip


def test_several_skipped_slots_of_one_gap_fire_once() -> None:
    start = SPRING_FORWARD
    slots = due_slots("0,30 2 * * *", NY, start, start + timedelta(hours=4))
    assert slots == [datetime(2026, 3, 8, 7, 0, tzinfo=UTC)]
    every_minute = due_slots("* * * * *", NY, start, start + timedelta(hours=3))
    local = [s.astimezone(ZoneInfo(NY)).strftime("%H:%M") for s in every_minute]
    assert len(every_minute) == 180  # one per real minute: 00:01-01:59 EST, 03:00-04:00 EDT
    assert local[118:121] == ["01:59", "03:00", "03:01"]
    assert not any(t.startswith("02:") for t in local)


@pytest.mark.parametrize(
    ("zone_name", "schedule", "after", "fires_at"),
    [
        # London springs forward at 01:00 GMT: 01:30 fires at 02:00 BST.
        ("Europe/London", "30 1 * * *", datetime(2026, 3, 29, 0, 0, tzinfo=UTC),
         datetime(2026, 3, 29, 1, 0, tzinfo=UTC)),
        # Lord Howe's clocks move half an hour: 02:15 fires at 02:30 (+11:00).
        ("Australia/Lord_Howe", "15 2 * * *", datetime(2026, 10, 3, 12, 0, tzinfo=UTC),
         datetime(2026, 10, 3, 15, 30, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_gap_ends_in_other_zones(
    zone_name: str, schedule: str, after: datetime, fires_at: datetime
) -> None:
    assert next_fires(schedule, zone_name, after, 1) == [fires_at]
    assert due_slots(schedule, zone_name, after, fires_at) == [fires_at]


@settings(max_examples=150, deadline=None)
@given(
    schedule=st.sampled_from(["*/7 * * * *", "30 1,2,3 * * *", "0 * * * *", "*/20 0-4 * * *",
                              "45 2 * * 0", "0 0 * * *", "* * * * * */37"]),
    zone_name=st.sampled_from([NY, "Europe/London", "Australia/Lord_Howe", "UTC"]),
    start=st.datetimes(min_value=datetime(2026, 3, 6), max_value=datetime(2026, 11, 3),
                       timezones=st.just(UTC)),
    hours=st.integers(min_value=1, max_value=30),
)  # fmt: skip
def test_due_slots_and_previews_agree_and_only_move_forward(
    schedule: str, zone_name: str, start: datetime, hours: int
) -> None:
    """Whatever the zone and DST transitions: slots strictly increase, every one in the
    window, one per local wall-clock time (so one run per slot key), and the backward walk
    of the scheduler finds exactly what the forward preview lists."""
    end = start + timedelta(hours=hours)
    due = due_slots(schedule, zone_name, start, end)
    assert all(start < s <= end for s in due)
    assert all(a < b for a, b in itertools.pairwise(due))
    assert len({slot_key("t", s, zone_name) for s in due}) == len(due)
    preview = next_fires(schedule, zone_name, start, len(due) + 1)
    assert preview[: len(due)] == due and preview[len(due)] > end


def test_a_schedule_that_never_fires_has_no_slots() -> None:
    assert next_fires("0 0 31 2 *", None, T, 3) == []
    assert due_slots("0 0 31 2 *", None, T - timedelta(days=800), T) == []


def test_a_long_outage_is_walked_backwards_and_capped() -> None:
    slots = due_slots("* * * * * *", None, T - timedelta(days=365), T)
    assert len(slots) == MAX_SCAN and slots[-1] == T
    assert slots[0] == T - timedelta(seconds=MAX_SCAN - 1)
    assert to_fire(slots, "all", T, TOL) == slots[-MAX_CATCH_UP:]


def test_seconds_field_for_fine_schedules() -> None:
    fires = next_fires("* * * * * */2", None, T, 3)
    assert [(f - T).total_seconds() for f in fires] == [2, 4, 6]
