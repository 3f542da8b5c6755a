"""Which of a job's manifest triggers to keep, change, remove and add so that they match a
function version's manifest `job.triggers`. Pure: no database.

A trigger is matched first by everything it says (kind, schedule, timezone, catch-up, topic),
so reordering the manifest changes nothing; the remaining ones are paired by kind, in order,
and a pair is a change in place (the trigger keeps its id; a webhook its token). What is left
over is removed or added.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

from reactor_jobs.triggers import declared
from reactor_jobs.triggers.specs import (
    CronSpec,
    EventSpec,
    ManualSpec,
    TriggerSpec,
    WebhookSpec,
    check_spec,
)
from reactor_jobs.triggers.store import Trigger

# What a trigger says: (kind, schedule, timezone, catch_up, topic, kept headers).
Shape = tuple[str, str | None, str | None, str | None, str | None, tuple[str, ...]]


class Plan(NamedTuple):
    unchanged: list[Trigger]
    changed: list[tuple[Trigger, TriggerSpec]]
    removed: list[Trigger]
    added: list[TriggerSpec]


def spec_of(trigger: declared.Trigger) -> TriggerSpec:
    """A manifest trigger as the spec the API would create it from, checked."""
    spec: TriggerSpec
    if isinstance(trigger, declared.CronTrigger):
        spec = CronSpec(
            schedule=trigger.schedule, timezone=trigger.timezone, catch_up=trigger.catch_up
        )
    elif isinstance(trigger, declared.EventTrigger):
        spec = EventSpec(topic=trigger.topic)
    elif isinstance(trigger, declared.WebhookTrigger):
        spec = WebhookSpec(headers=trigger.headers)
    else:
        spec = ManualSpec()
    return check_spec(spec)


def kind_of(spec: TriggerSpec) -> str:
    kind = type(spec).__struct_config__.tag
    assert isinstance(kind, str)
    return kind


def spec_shape(spec: TriggerSpec) -> Shape:
    if isinstance(spec, CronSpec):
        return "cron", spec.schedule, spec.timezone, spec.catch_up, None, ()
    if isinstance(spec, EventSpec):
        return "event", None, None, None, spec.topic, ()
    headers = tuple(spec.headers or ()) if isinstance(spec, WebhookSpec) else ()
    return kind_of(spec), None, None, None, None, headers


def record_shape(trigger: Trigger) -> Shape:
    if trigger.kind == "cron":
        timezone, catch_up = trigger.timezone or "UTC", trigger.catch_up or "latest"
        return "cron", trigger.schedule, timezone, catch_up, None, ()
    return trigger.kind, None, None, None, trigger.topic, tuple(trigger.headers or ())


def plan(existing: Sequence[Trigger], wanted: Sequence[TriggerSpec]) -> Plan:
    """How to turn `existing` (a job's manifest triggers) into `wanted` (in manifest order)."""
    result = Plan([], [], [], [])
    left = list(existing)
    unmatched: list[TriggerSpec] = []
    for spec in wanted:
        same = next((t for t in left if record_shape(t) == spec_shape(spec)), None)
        if same is None:
            unmatched.append(spec)
        else:
            left.remove(same)
            result.unchanged.append(same)
    for spec in unmatched:
        paired = next((t for t in left if t.kind == kind_of(spec)), None)
        if paired is None:
            result.added.append(spec)
        else:
            left.remove(paired)
            result.changed.append((paired, spec))
    result.removed.extend(left)
    return result
