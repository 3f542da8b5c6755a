"""`reactor jobs logs NAME`: follow a job's live log until Ctrl-C, one line per event (one
JSON object per line with --json). When the stream ends (the server restarted, the network
dropped) it reconnects and resumes after the last event it printed."""

from __future__ import annotations

import asyncio

import msgspec

from reactor_jobs.cli.output import cell
from reactor_jobs.cli.remote import Remote
from reactor_jobs.client import ConnectionFailed, LogEvent, LogLine, RunEvent

RECONNECT_S = 1.0


def format_event(event: LogEvent) -> str:
    if isinstance(event, RunEvent):
        parts = [cell(event.recorded_at), event.run_id, event.type]
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


async def follow_logs(
    remote: Remote, name: str, last_event_id: str | None, run_id: str | None = None
) -> int:
    announced = False
    while True:
        try:
            stream = remote.client.jobs.logs(name, last_event_id=last_event_id, run_id=run_id)
            async for event in stream:
                if remote.out.json_mode:
                    remote.out.line(msgspec.json.encode(event).decode())
                else:
                    remote.out.line(format_event(event))
                last_event_id = event.id or last_event_id
                announced = False
        except ConnectionFailed as exc:
            if not announced:
                remote.out.note(f"{exc.message}; reconnecting (Ctrl-C to stop)")
        else:
            if not announced:
                remote.out.note("the server closed the stream; reconnecting (Ctrl-C to stop)")
        announced = True
        await asyncio.sleep(RECONNECT_S)
