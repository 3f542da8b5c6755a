"""The admin listing of emitted events (`ctx.emit`), newest first; `unconsumed=true` shows
the ones no subscribed job has taken yet (the spec's troubleshooting section)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from aiohttp import web

from reactor_jobs.auth.principal import Principal
from reactor_jobs.http import query
from reactor_jobs.http.bodies import json_response
from reactor_jobs.http.keys import NODE
from reactor_jobs.http.objects import Event, EventList
from reactor_jobs.http.routes import CURSOR, LIMIT, Route, authed, param
from reactor_jobs.projections import queries


def event(row: Mapping[str, Any]) -> Event:
    return msgspec.convert(queries.json_columns(row, "payload"), Event)


async def list_events(request: web.Request, principal: Principal) -> web.Response:
    query.check_params(request, ("topic", "unconsumed", *query.PAGE_PARAMS))
    topic = request.query.get("topic")
    unconsumed = query.boolean(request, "unconsumed") or False
    limit, after = query.limit(request), query.cursor(request)
    page = await queries.list_events(
        request.app[NODE].pool, principal.org, topic=topic, unconsumed=unconsumed,
        after=after, limit=limit,
    )  # fmt: skip
    events = [event(row) for row in page.rows]
    more = page.more
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
