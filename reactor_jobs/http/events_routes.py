"""The admin listing of emitted events (`ctx.emit`), newest first; `unconsumed=true` shows
the ones no subscribed job has taken yet (the spec's troubleshooting section)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from reactor_jobs.auth.principal import Principal
from reactor_jobs.http import query
from reactor_jobs.http.bodies import from_row, json_response
from reactor_jobs.http.keys import NODE
from reactor_jobs.http.objects import Event, EventList
from reactor_jobs.http.routes import CURSOR, LIMIT, Route, authed, param

_COLUMNS = "event_id AS id, topic, payload, run_id, job, emitted_at, consumed_at, fanout"
_LIST = f"""
SELECT {_COLUMNS} FROM _reactor_jobs.events
 WHERE org = $1
   AND ($2::text IS NULL OR topic = $2)
   AND (NOT $3::boolean OR consumed_at IS NULL)
   AND ($4::timestamptz IS NULL OR (emitted_at, event_id) < ($4, $5::text))
 ORDER BY emitted_at DESC, event_id DESC
 LIMIT $6"""


def event(row: Mapping[str, Any]) -> Event:
    return from_row(Event, row, json=("payload",))


async def list_events(request: web.Request, principal: Principal) -> web.Response:
    query.check_params(request, ("topic", "unconsumed", *query.PAGE_PARAMS))
    topic = request.query.get("topic")
    unconsumed = query.boolean(request, "unconsumed") or False
    limit, after = query.limit(request), query.cursor(request)
    rows = await request.app[NODE].pool.fetch(
        _LIST, principal.org, topic, unconsumed, after and after.at, after and after.id,
        limit + 1,
    )  # fmt: skip
    events = [event(row) for row in rows[:limit]]
    more = len(rows) > limit
    cursor = query.next_cursor(events[-1].emitted_at, events[-1].id) if more else None
    return json_response(EventList(events=events, next_cursor=cursor))


ROUTES: list[Route] = [
    authed(
        "GET", "/jobs/v1/_admin/events", "member", list_events,
        summary="List emitted events, newest first", tag="events", response=EventList,
        params=(
            param("topic", "Only events of this topic (exact, case-sensitive)."),
            param("unconsumed", "true: only events no subscribed job has taken yet.",
                  "boolean"),
            LIMIT, CURSOR,
        ),
        errors=(422,),
    ),
]  # fmt: skip
