"""Cron policy, pure: which slots of a schedule are due, and which of them to fire.

Schedules are croniter expressions (5 fields; a 6th, last, counts seconds), read in the
trigger's IANA timezone (UTC by default). A slot is named by its local wall-clock time, so
a time that repeats when clocks fall back fires once; a skipped local time (clocks spring
forward) fires once, at the next valid instant, as croniter yields it.

Catch-up after downtime (more than one slot due, or the only one is late): `latest` fires
the most recent missed slot once; `skip` fires none of them; `all` fires each, at most
MAX_CATCH_UP (the most recent ones).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter

MAX_CATCH_UP = 100
MAX_SCAN = 10_000  # slots walked per trigger and tick; a years-long outage is not replayed


def zone(timezone: str | None) -> ZoneInfo:
    return ZoneInfo(timezone or "UTC")


def slot_key(trigger_id: str, slot: datetime, timezone: str | None) -> str:
    """The idempotency key of one fire: the trigger and the slot's local wall-clock time."""
    local = slot.astimezone(zone(timezone)).replace(tzinfo=None)
    return f"cron:{trigger_id}:{local.isoformat()}"


def due_slots(
    schedule: str, timezone: str | None, after: datetime, now: datetime
) -> list[datetime]:
    """Slots in (after, now], in UTC, oldest first (at most MAX_SCAN of the newest)."""
    it = croniter(schedule, after.astimezone(zone(timezone)))
    slots: list[datetime] = []
    while True:
        slot = it.get_next(datetime).astimezone(UTC)
        if slot > now:
            return slots
        slots.append(slot)
        if len(slots) > MAX_SCAN:
            del slots[0]


def to_fire(
    slots: list[datetime], policy: str, now: datetime, tolerance: timedelta
) -> list[datetime]:
    """The slots to fire under the catch-up policy; on time means within `tolerance`."""
    if not slots:
        return []
    on_time = len(slots) == 1 and now - slots[0] <= tolerance
    if on_time or policy == "latest":
        return slots[-1:]
    if policy == "all":
        return slots[-MAX_CATCH_UP:]
    return []  # skip


def next_fires(schedule: str, timezone: str | None, after: datetime, count: int) -> list[datetime]:
    """The next `count` fire times after `after`, in UTC: the preview of a trigger."""
    it = croniter(schedule, after.astimezone(zone(timezone)))
    return [it.get_next(datetime).astimezone(UTC) for _ in range(count)]
