"""`reactor jobs logs NAME`: a job's log, one line per event of its runs and per `ctx.log`
line (one JSON object per line with --json), in time order. It prints the history (from the
start, or after --last-event-id) and exits; with --follow it then streams live until Ctrl-C,
and when the stream ends (the server restarted, the network dropped) it reconnects and
resumes after the last event it printed."""

from __future__ import annotations

import asyncio
from datetime import datetime

import msgspec

from reactor_jobs.cli.output import cell
from reactor_jobs.cli.remote import Remote
from reactor_jobs.client import ConnectionFailed, LogEvent, LogLine, RunEvent

RECONNECT_S = 1.0
FROM_START = "0-0-0"


def format_event(event: LogEvent) -> str:
    if isinstance(event, RunEvent):
        parts = [cell(event.recorded_at), event.run_id, event.type]
        if event.name is not None:
            parts.append(f"[{event.name}]")
        if event.attempt is not None:
            parts.append(f"attempt={event.attempt}")
        if event.error is not None:
            parts.append(f"error={cell(event.error, None)}")
        return "  ".join(parts)
    assert isinstance(event, LogLine)
    parts = [cell(event.at), event.run_id, event.level.upper()]
    if event.step is not None:
        parts.append(f"[{event.step}]")
    parts.append(event.message)
    if event.fields:
        parts.append(cell(event.fields, None))
    return "  ".join(parts)


def _when(event: LogEvent) -> datetime:
    return event.recorded_at if isinstance(event, RunEvent) else event.at


def _show(remote: Remote, event: LogEvent) -> None:
    if remote.out.json_mode:
        remote.out.line(msgspec.json.encode(event).decode())
    else:
        remote.out.line(format_event(event))


async def print_history(
    remote: Remote, name: str, last_event_id: str | None, run_id: str | None
) -> str | None:
    """Everything up to now, sorted by time; returns the cursor after it."""
    history = [
        event
        async for event in remote.client.jobs.logs(
            name, last_event_id=last_event_id or FROM_START, run_id=run_id, follow=False
        )
    ]
    # Each event's id also covers every event sent before it: the last one resumes after all.
    cursor = history[-1].id if history else last_event_id
    for event in sorted(history, key=lambda e: (_when(e), isinstance(e, LogLine))):
        _show(remote, event)
    return cursor


async def follow_logs(
    remote: Remote, name: str, last_event_id: str | None, run_id: str | None = None
) -> int:
    """The history, then live events until Ctrl-C, reconnecting when the stream breaks."""
    cursor = await print_history(remote, name, last_event_id, run_id)
    announced = False
    while True:
        try:
            stream = remote.client.jobs.logs(
                name, last_event_id=cursor or FROM_START, run_id=run_id
            )
            async for event in stream:
                _show(remote, event)
                cursor = event.id or cursor
                announced = False
        except ConnectionFailed as exc:
            if not announced:
                remote.out.note(f"{exc.message}; reconnecting (Ctrl-C to stop)")
        else:
            if not announced:
                remote.out.note("the server closed the stream; reconnecting (Ctrl-C to stop)")
        announced = True
        await asyncio.sleep(RECONNECT_S)
