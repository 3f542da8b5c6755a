"""Cron policy, pure: which slots of a schedule are due, and which of them to fire.

Schedules are croniter expressions (5 fields; a 6th, last, counts seconds), read in the
trigger's IANA timezone (UTC by default). croniter walks local wall-clock times with no
zone attached (its own arithmetic across DST transitions repeats and reorders slots); this
module maps each local slot to the instant it fires at, by one rule:

- a local time that happens twice (clocks fall back) fires once, at its first occurrence;
- a local time that never happens (clocks spring forward) fires once, at the first valid
  instant after the gap (e.g. 02:30 on a New York spring-forward day fires at 03:00 EDT).
  Several skipped slots of one gap share that instant and fire once together.

A slot is named by its local wall-clock time (slot_key), so a fire is unique per trigger and
local time in the database too.

A slot due within the tolerance (max(2 * the scheduler interval, 5 s)) is on time and
always fires, whatever the policy and however many other slots are due with it. Catch-up
after downtime applies to the late ones: `latest` fires the most recent late slot once, and
only when no slot is on time; `skip` fires none of them; `all` fires each, at most
MAX_CATCH_UP in all (the most recent ones). Due slots are walked backwards from now, so an
outage of any length costs at most MAX_SCAN steps per trigger.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import CroniterBadDateError, CroniterError, croniter

from reactor_jobs.domain.ids import CRON_KEY_PREFIX

MAX_CATCH_UP = 100
MAX_SCAN = 10_000  # slots looked at per trigger and tick; a longer outage is not replayed
_SECOND = timedelta(seconds=1)


def zone(timezone: str | None) -> ZoneInfo:
    return ZoneInfo(timezone or "UTC")


def slot_key(trigger_id: str, slot: datetime, timezone: str | None) -> str:
    """The idempotency key of one fire: the trigger and the slot's local wall-clock time."""
    local = slot.astimezone(zone(timezone)).replace(tzinfo=None)
    return f"{CRON_KEY_PREFIX}{trigger_id}:{local.isoformat()}"


def fire_instant(local: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant at which the naive local slot `local` fires (the DST rule above)."""
    first = local.replace(tzinfo=tz, fold=0).astimezone(UTC)
    if first.astimezone(tz).replace(tzinfo=None) == local:
        return first  # exists; for a repeated time, fold=0 is its first occurrence
    return _gap_end(local, tz)


def _gap_end(local: datetime, tz: ZoneInfo) -> datetime:
    """The first instant after the gap that swallowed `local`: the transition itself."""
    # In a gap, fold=1 reads the wall time with the offset after the transition and fold=0
    # with the one before, so the transition lies between the two instants. Zone
    # transitions fall on whole seconds: bisect over seconds.
    low = int(local.replace(tzinfo=tz, fold=1).astimezone(UTC).timestamp())
    high = int(local.replace(tzinfo=tz, fold=0).astimezone(UTC).timestamp())
    after = datetime.fromtimestamp(high, UTC).astimezone(tz).utcoffset()
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, UTC).astimezone(tz).utcoffset() == after:
            high = middle
        else:
            low = middle
    return datetime.fromtimestamp(high, UTC)


def _forward(schedule: str, tz: ZoneInfo, after: datetime) -> Iterator[datetime]:
    """Fire instants after `after`, oldest first, each once."""
    it = croniter(schedule, after.astimezone(tz).replace(tzinfo=None))
    last = after
    while True:
        slot = fire_instant(it.get_next(datetime), tz)
        if slot > last:  # skips the second pass of a repeated hour and shared gap instants
            last = slot
            yield slot


def _backward(schedule: str, tz: ZoneInfo, now: datetime) -> Iterator[datetime]:
    """Fire instants at or before `now`, newest first, each once."""
    wall = now.astimezone(tz)
    start = wall.replace(tzinfo=None, microsecond=0)
    if wall.fold:
        # In the second pass of a repeated hour, the later wall times of that hour fired
        # before now (at their first occurrence): start the walk past them.
        repeat = (wall.replace(fold=0).utcoffset() or timedelta()) - (
            wall.utcoffset() or timedelta()
        )
        start += max(repeat, timedelta())
    it = croniter(schedule, start + _SECOND)
    last: datetime | None = None
    while True:
        slot = fire_instant(it.get_prev(datetime), tz)
        if slot <= now and slot != last:
            last = slot
            yield slot


def due_slots(
    schedule: str, timezone: str | None, after: datetime, now: datetime
) -> list[datetime]:
    """Slots in (after, now], in UTC, oldest first (at most MAX_SCAN, the newest).

    A schedule that never fires (e.g. February 31st) has none."""
    slots: list[datetime] = []
    try:
        for slot in _backward(schedule, zone(timezone), now):
            if slot <= after or len(slots) == MAX_SCAN:
                break
            slots.append(slot)
    except CroniterError:
        return []
    slots.reverse()
    return slots


def to_fire(
    slots: list[datetime], policy: str, now: datetime, tolerance: timedelta
) -> list[datetime]:
    """The slots to fire under the catch-up policy; on time means within `tolerance`."""
    on_time = [slot for slot in slots if now - slot <= tolerance]
    late = slots[: len(slots) - len(on_time)]  # slots are oldest first
    if policy == "all":
        room = max(MAX_CATCH_UP - len(on_time), 0)
        return [*late[len(late) - room :], *on_time][-MAX_CATCH_UP:]
    if policy == "latest" and not on_time:
        return late[-1:]
    return on_time


def next_fires(schedule: str, timezone: str | None, after: datetime, count: int) -> list[datetime]:
    """The next `count` fire times after `after`, in UTC: the preview of a trigger (fewer,
    or none, when the schedule stops matching, e.g. February 31st)."""
    fires: list[datetime] = []
    try:
        for slot in _forward(schedule, zone(timezone), after):
            if len(fires) == count:
                break
            fires.append(slot)
    except CroniterError:
        pass
    return fires


MAX_TIMEZONE_CHARS = 64
_CRON_PROBE_START = datetime(2000, 1, 1, tzinfo=UTC)


def check_cron(schedule: str) -> str | None:
    """Why the cron schedule is invalid, or None when it parses."""
    fields = schedule.split()
    if len(fields) not in (5, 6):
        return f"expected 5 fields (6 with seconds), got {len(fields)} in {schedule!r}"
    if not croniter.is_valid(schedule):
        return f"not a valid cron schedule: {schedule!r}"
    try:  # e.g. "0 0 31 2 *": valid fields, but no such day
        croniter(schedule, _CRON_PROBE_START).get_next(datetime)
    except CroniterBadDateError:
        return f"the cron schedule {schedule!r} never fires"
    return None


def check_timezone(name: str) -> str | None:
    """Why the time zone name is invalid, or None when it is one."""
    if len(name) > MAX_TIMEZONE_CHARS:  # ZoneInfo opens a file by that name: OSError
        return f"must be at most {MAX_TIMEZONE_CHARS} characters"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return f"unknown time zone {name!r}"
    return None
