"""The fold is pure and consistent: incremental equals whole, and it agrees with the
projection handlers about every run's lifecycle."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reactor_jobs.domain import events as ev
from reactor_jobs.domain.events import RecordedEvent
from reactor_jobs.domain.replay import RunState, fold
from reactor_jobs.projections.rebuild import Projections
from tests.histories import T0, run_history


def record(run_id: str, appends: list[list[ev.Event]]) -> list[RecordedEvent]:
    """Envelope the events as the journal would; one recorded time per append."""
    out: list[RecordedEvent] = []
    for n, append in enumerate(appends):
        for event in append:
            payload = ev.encode(event)
            out.append(
                RecordedEvent(
                    global_position=len(out) + 1,
                    run_id=run_id,
                    position=len(out) + 1,
                    org="acme",
                    type=ev.event_type(event),
                    version=1,
                    recorded_at=T0 + timedelta(seconds=n),
                    prev_hash=b"",
                    hash=hashlib.sha256(payload).digest(),
                    payload=payload,
                    event=event,
                )
            )
    return out


@settings(max_examples=200)
@given(run_history("run_1"), st.data())
def test_incremental_fold_equals_whole_fold(appends: list[list[ev.Event]], data: Any) -> None:
    recs = record("run_1", appends)
    cut = data.draw(st.integers(0, len(recs)))
    assert fold(recs[cut:], fold(recs[:cut])) == fold(recs)


@settings(max_examples=200)
@given(run_history("run_1"))
def test_fold_matches_the_events(appends: list[list[ev.Event]]) -> None:
    recs = record("run_1", appends)
    state = fold(recs)
    events = [r.event for r in recs]
    steps: dict[str, Any] = {}
    for e in events:  # completed steps and ctx.data calls, shown alike
        if isinstance(e, ev.StepCompleted):
            steps[e.name] = e.output
        elif isinstance(e, ev.DataCalled):
            steps[e.name] = {"rows": e.rows, "count": e.count}
    assert state.steps == steps
    assert state.emitted == [e.event_id for e in events if isinstance(e, ev.Emitted)]
    assert state.position == len(recs)
    assert state.last_hash == recs[-1].hash
    starts = [e.attempt for e in events if isinstance(e, ev.AttemptStarted)]
    assert state.attempt == (starts[-1] if starts else 0)
    assert state.terminal == isinstance(events[-1], ev.TERMINAL_EVENTS)
    expected_state: dict[str, Any] = {}
    for e in events:
        if isinstance(e, ev.StateSet):
            if e.deleted:
                expected_state.pop(e.key, None)
            else:
                expected_state[e.key] = e.value
    assert state.state == expected_state


@settings(max_examples=200)
@given(run_history("run_1"))
def test_fold_and_runs_projection_agree(appends: list[list[ev.Event]]) -> None:
    recs = record("run_1", appends)
    state: RunState = fold(recs)
    projections = Projections()
    for rec in recs:
        projections.apply(rec)
    row = projections.runs["run_1"]
    assert row["status"] == state.status
    assert row["attempt"] == state.attempt
    assert row["available_at"] == state.available_at
    assert row["finished_at"] == state.finished_at
    assert row["dlq_id"] == state.dlq_id
    assert row["lease_owner"] == state.worker
    assert row["max_attempts"] == state.max_attempts
    assert row["last_position"] == state.position
    assert (row["output"] if state.status == "completed" else None) == (
        state.output if state.status == "completed" else None
    )
