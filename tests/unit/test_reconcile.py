"""The manifest trigger plan, pure: what to keep, change in place, remove and add."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reactor_jobs.functions.errors import InvalidField
from reactor_jobs.triggers import declared
from reactor_jobs.triggers.reconcile import plan, record_shape, spec_of, spec_shape
from reactor_jobs.triggers.specs import CronSpec, EventSpec, ManualSpec, TriggerSpec, WebhookSpec
from reactor_jobs.triggers.store import Trigger

AT = datetime(2026, 12, 1, tzinfo=UTC)


def record(n: int, spec: TriggerSpec) -> Trigger:
    kind, schedule, timezone, catch_up, topic, headers = spec_shape(spec)
    return Trigger(
        id=f"trg_{n}", org="acme", job="j", kind=kind, schedule=schedule, timezone=timezone,
        catch_up=catch_up, topic=topic, source="manifest", created_at=AT,
        headers=list(headers) or None,
    )  # fmt: skip


def test_equal_triggers_are_kept_whatever_the_order() -> None:
    existing = [record(1, CronSpec(schedule="0 * * * *")), record(2, WebhookSpec())]
    steps = plan(existing, [WebhookSpec(), CronSpec(schedule="0 * * * *")])
    assert [t.id for t in steps.unchanged] == ["trg_2", "trg_1"]
    assert (steps.changed, steps.removed, steps.added) == ([], [], [])


def test_same_kind_is_changed_in_place_the_rest_added_or_removed() -> None:
    existing = [
        record(1, CronSpec(schedule="0 * * * *")),
        record(2, EventSpec(topic="a")),
        record(3, WebhookSpec()),
        record(4, WebhookSpec()),
    ]
    wanted: list[TriggerSpec] = [
        CronSpec(schedule="0 * * * *", timezone="Europe/Paris"),
        WebhookSpec(),
        ManualSpec(),
    ]
    steps = plan(existing, wanted)
    assert [(t.id, spec) for t, spec in steps.changed] == [("trg_1", wanted[0])]
    assert [t.id for t in steps.unchanged] == ["trg_3"]
    assert sorted(t.id for t in steps.removed) == ["trg_2", "trg_4"]
    assert steps.added == [ManualSpec()]


def test_manifest_triggers_become_checked_specs() -> None:
    cron = spec_of(declared.CronTrigger(schedule="*/15  *  * * *", catch_up="all"))
    assert cron == CronSpec(schedule="*/15 * * * *", timezone="UTC", catch_up="all")
    assert spec_of(declared.WebhookTrigger()) == WebhookSpec()
    assert spec_of(declared.ManualTrigger()) == ManualSpec()
    with pytest.raises(InvalidField, match="topic"):
        spec_of(declared.EventTrigger(topic=" padded"))


SPECS = st.sampled_from(
    [CronSpec(schedule="0 * * * *"), CronSpec(schedule="5 * * * *"), EventSpec(topic="a"),
     EventSpec(topic="b"), WebhookSpec(), ManualSpec()]
)  # fmt: skip


@given(st.lists(SPECS, max_size=6), st.lists(SPECS, max_size=6))
def test_applying_the_plan_yields_what_is_wanted(
    before: list[TriggerSpec], wanted: list[TriggerSpec]
) -> None:
    existing = [record(n, spec) for n, spec in enumerate(before)]
    steps = plan(existing, wanted)
    after = [record_shape(t) for t in steps.unchanged]
    after += [spec_shape(spec) for _, spec in steps.changed]
    after += [spec_shape(spec) for spec in steps.added]
    assert sorted(after, key=str) == sorted((spec_shape(s) for s in wanted), key=str)
    touched = [t.id for t in steps.unchanged] + [t.id for t, _ in steps.changed]
    touched += [t.id for t in steps.removed]
    assert sorted(touched) == sorted(t.id for t in existing)  # each existing one, once
    assert all(t.kind == record_shape(t)[0] == spec_shape(s)[0] for t, s in steps.changed)
    # Nothing is removed and added of one kind: that is a change in place.
    assert not {t.kind for t in steps.removed} & {spec_shape(s)[0] for s in steps.added}
    # As many are kept as possible: a kept count below the multiset overlap is a failure.
    overlap = sum(min(before.count(s), wanted.count(s)) for s in set(wanted))
    assert len(steps.unchanged) == overlap


def test_a_webhook_whose_kept_headers_changed_is_changed_in_place() -> None:
    existing = [record(1, WebhookSpec(headers=["x-a"]))]
    same = plan(existing, [WebhookSpec(headers=["x-a"])])
    assert same.unchanged == existing and not same.changed
    changed = plan(existing, [WebhookSpec(headers=["x-b"])])
    assert changed.changed == [(existing[0], WebhookSpec(headers=["x-b"]))]
