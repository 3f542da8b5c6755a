"""Events: stable tags, canonical bytes, round trips, upcasting of stored older versions."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import given

from reactor_jobs.domain import events as ev
from tests.histories import json_values


def test_every_event_type_has_a_stable_tag_and_version() -> None:
    assert set(ev.EVENT_TYPES) == {
        "Triggered",
        "AttemptStarted",
        "LeaseExtended",
        "StepCompleted",
        "StepFailed",
        "StateSet",
        "Emitted",
        "SleepScheduled",
        "DataCalled",
        "SleepCompleted",
        "Failed",
        "RetryScheduled",
        "DeadLettered",
        "Retried",
        "Cancelled",
        "TimedOut",
        "LeaseExpired",
        "AttemptInterrupted",
        "Completed",
    }
    for tag, cls in ev.EVENT_TYPES.items():
        assert "." not in tag  # a name, never an import path
        assert cls.VERSION >= 1


@given(json_values)
def test_canonical_bytes_round_trip_exactly(value: Any) -> None:
    event = ev.StepCompleted(name="charge", attempt=1, output=value)
    payload = ev.encode(event)
    assert ev.decode(payload) == event
    # what an offline verifier does with an exported line: parse untyped, re-encode
    assert ev.canonical_json(msgspec.json.decode(payload)) == payload


def test_canonical_bytes_sort_keys_at_every_level() -> None:
    a = ev.Emitted(event_id="e", topic="t", payload={"b": 1, "a": {"y": 1, "x": 2}})
    b = ev.Emitted(event_id="e", topic="t", payload={"a": {"x": 2, "y": 1}, "b": 1})
    assert ev.encode(a) == ev.encode(b)
    assert ev.encode(a).index(b'"a"') < ev.encode(a).index(b'"b"')


def test_decode_many_equals_decoding_one_by_one() -> None:
    items: list[ev.Event] = [
        ev.Completed(output=[1, 2]),
        ev.SleepScheduled(name="nap", wake_at=datetime(2026, 1, 1, tzinfo=UTC)),
    ]
    assert ev.decode_many(ev.encode(e) for e in items) == items


@pytest.fixture
def step_completed_v2() -> Iterator[None]:
    """Pretend StepCompleted moved to version 2, renaming `output` from v1's `result`."""
    original = ev.StepCompleted.VERSION
    ev.StepCompleted.VERSION = 2
    ev.UPCASTERS[("StepCompleted", 1)] = lambda d: {
        **{k: v for k, v in d.items() if k != "result"},
        "output": d.get("result"),
    }
    yield
    ev.StepCompleted.VERSION = original
    del ev.UPCASTERS[("StepCompleted", 1)]


@pytest.mark.usefixtures("step_completed_v2")
def test_older_version_is_upcast_on_read() -> None:
    stored_v1 = b'{"attempt":2,"name":"charge","result":{"ok":true},"type":"StepCompleted"}'
    event = ev.decode(stored_v1, "StepCompleted", 1)
    assert event == ev.StepCompleted(name="charge", attempt=2, output={"ok": True})


def test_a_version_newer_than_the_code_is_refused() -> None:
    with pytest.raises(ValueError, match="newer than this code"):
        ev.decode(b'{"type":"Completed","output":1}', "Completed", 9)


def test_missing_upcaster_is_named() -> None:
    ev.Completed.VERSION = 3
    try:
        with pytest.raises(ValueError, match="no upcaster for Completed version 1"):
            ev.decode(b'{"type":"Completed","output":1}', "Completed", 1)
    finally:
        ev.Completed.VERSION = 1
