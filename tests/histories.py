"""Hypothesis strategies for valid run histories: lists of appends, each a list of events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import strategies as st

from reactor_jobs.domain import events as ev

T0 = datetime(2026, 1, 1, tzinfo=UTC)
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.text(max_size=8)
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
# jsonb cannot store NUL characters; the journal refuses them up front
json_values = json_values.filter(lambda v: "\\u0000" not in ev.canonical_json(v).decode())
names = st.sampled_from(["validate", "charge", "ship", "notify"])


def _error(draw: Any) -> ev.ErrorInfo:
    return ev.ErrorInfo(type=draw(st.sampled_from(["ValueError", "Boom"])), message="failed")


@st.composite
def run_history(draw: Any, run_id: str, event_ids: list[str] | None = None) -> list[list[ev.Event]]:
    """One run's appends, in order, following the engine's lifecycle rules."""
    topic_ids = event_ids if event_ids is not None else []
    source = draw(st.sampled_from([None, *topic_ids])) if topic_ids else None
    trigger = ev.TriggerInfo(kind="event" if source else "manual", event_id=source)
    appends: list[list[ev.Event]] = [
        [
            ev.Triggered(
                org=draw(st.sampled_from(["acme", "globex"])),
                job=draw(st.sampled_from(["a", "b"])),
                function="fn",
                function_version=draw(st.integers(1, 3)),
                trigger=trigger,
                payload=draw(json_values),
                max_attempts=draw(st.integers(1, 4)),
            )
        ]
    ]
    attempt, emitted, finished, dead = 0, 0, False, 0
    for _ in range(draw(st.integers(0, 6))):
        if finished:
            if draw(st.booleans()):
                break
            appends.append([ev.Retried(dlq_id=f"dlq_{run_id}_{dead}", max_attempts=attempt + 2)])
            finished = False
            continue
        attempt += 1
        lease = T0 + timedelta(seconds=attempt)
        appends.append([ev.AttemptStarted(attempt=attempt, worker="w1", lease_expires_at=lease)])
        for _ in range(draw(st.integers(0, 3))):
            kind = draw(
                st.sampled_from(["step", "state", "unset", "emit", "step_failed", "beat", "data"])
            )
            if kind == "beat":  # older beats carry the time, newer ones the lease's length
                step: ev.Event = draw(
                    st.sampled_from(
                        [
                            ev.LeaseExtended(
                                attempt=attempt,
                                worker="w1",
                                lease_expires_at=lease + timedelta(minutes=1),
                            ),
                            ev.LeaseExtended(attempt=attempt, worker="w1", lease_ms=30_000),
                        ]
                    )
                )
            elif kind == "step":
                step = ev.StepCompleted(name=draw(names), attempt=attempt, output=draw(json_values))
            elif kind == "data":  # a ctx.data call outside a step: history only
                step = ev.DataCalled(
                    name=f"data:{draw(names)}",
                    request={"method": "GET", "table": "orders"},
                    rows=[draw(json_values)],
                    count=1,
                )
            elif kind in ("state", "unset"):
                step = ev.StateSet(
                    key=draw(names), value=draw(json_values), deleted=kind == "unset"
                )
            elif kind == "emit":
                emitted += 1
                step = ev.Emitted(
                    event_id=f"evt_{run_id}_{emitted}", topic="t", payload=draw(json_values)
                )
            else:
                step = ev.StepFailed(name=draw(names), attempt=attempt, error=_error(draw))
            appends.append([step])
        ending = draw(
            st.sampled_from(
                ["complete", "fail", "sleep", "timeout", "lease", "cancel", "interrupted"]
            )
        )
        if ending == "complete":
            appends.append([ev.Completed(output=draw(json_values))])
            break
        if ending == "cancel":
            appends.append([ev.Cancelled(reason="test")])
            break
        if ending == "sleep":  # until a time (sleep_until), or for a while by the database clock
            wake = T0 + timedelta(hours=attempt)
            nap = draw(
                st.sampled_from(
                    [
                        ev.SleepScheduled(name=f"nap{attempt}", wake_at=wake),
                        ev.SleepScheduled(name=f"nap{attempt}", delay_ms=90_000, pos=attempt),
                    ]
                )
            )
            appends.append([nap])
            appends.append([ev.SleepCompleted(name=f"nap{attempt}")])
            continue
        if ending == "interrupted":  # its host died under it: queued again, not charged
            appends.append([ev.AttemptInterrupted(attempt=attempt, reason="host died")])
            continue
        failure: ev.Event = {  # type: ignore[assignment]  # a dict of event types
            "fail": ev.Failed(attempt=attempt, error=_error(draw)),
            "timeout": ev.TimedOut(attempt=attempt, timeout_ms=1000),
            "lease": ev.LeaseExpired(attempt=attempt, worker="w1", charged=draw(st.booleans())),
        }[ending]
        if draw(st.booleans()):
            appends.append(
                [
                    failure,
                    draw(
                        st.sampled_from(
                            [
                                ev.RetryScheduled(
                                    attempt=attempt + 1, available_at=T0 + timedelta(minutes=1)
                                ),
                                ev.RetryScheduled(attempt=attempt + 1, delay_ms=1500),
                            ]
                        )
                    ),
                ]
            )
        else:
            dead += 1
            appends.append(
                [
                    failure,
                    ev.DeadLettered(
                        dlq_id=f"dlq_{run_id}_{dead}", attempts=attempt, error=_error(draw)
                    ),
                ]
            )
            finished = True
    if draw(st.booleans()) and len(appends) > 1:  # sometimes merge appends into one
        cut = draw(st.integers(1, len(appends) - 1))
        appends = [*appends[:cut], [e for a in appends[cut:] for e in a]]
    return appends
