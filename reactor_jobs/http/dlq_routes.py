"""A job's dead-letter queue: list (open or retried entries, newest first) and retry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec
from aiohttp import web

from reactor_jobs.auth.principal import Principal
from reactor_jobs.domain.errors import DlqEntryNotFound
from reactor_jobs.functions.errors import JobNotFound
from reactor_jobs.http import query
from reactor_jobs.http.bodies import json_response
from reactor_jobs.http.jobs_routes import JOB
from reactor_jobs.http.keys import NODE
from reactor_jobs.http.objects import DlqEntry, DlqList, Run, run_of
from reactor_jobs.http.routes import CURSOR, LIMIT, Route, authed, param
from reactor_jobs.http.runs_routes import who
from reactor_jobs.projections import queries

DLQ = JOB + "/dlq"


def dlq_entry(row: Mapping[str, Any]) -> DlqEntry:
    return msgspec.convert(queries.json_columns(row, "error"), DlqEntry)


async def list_dlq(request: web.Request, principal: Principal) -> web.Response:
    query.check_params(request, ("status", *query.PAGE_PARAMS))
    status = query.one_of(request, "status", ("open", "retried"))
    limit, after = query.limit(request), query.cursor(request)
    org, name = principal.org, request.match_info["name"]
    page = await queries.list_dlq(
        request.app[NODE].pool, org, name, status=status, after=after, limit=limit
    )
    if page is None:
        raise JobNotFound(name)
    entries = [dlq_entry(row) for row in page.rows]
    more = page.more
    cursor = query.next_cursor(entries[-1].created_at, entries[-1].id) if more else None
    return json_response(DlqList(entries=entries, next_cursor=cursor))


async def retry_dlq(request: web.Request, principal: Principal) -> web.Response:
    query.check_params(request, ())
    dlq_id = request.match_info["dlq_id"]
    node = request.app[NODE]
    job = await queries.dlq_entry_job(node.pool, principal.org, dlq_id)
    if job != request.match_info["name"]:
        raise DlqEntryNotFound(dlq_id)
    run = await node.control.retry_dlq(principal.org, dlq_id, by=who(principal))
    return json_response(run_of(run))


ROUTES: list[Route] = [
    authed(
        "GET", DLQ, "member", list_dlq,
        summary="List a job's dead-letter entries, newest first", tag="dlq",
        response=DlqList,
        params=(param("status", "Only open or only retried entries.",
                      enum=["open", "retried"]), LIMIT, CURSOR),
        errors=(404, 422),
    ),
    authed(
        "POST", DLQ + "/{dlq_id}/retry", "admin", retry_dlq,
        summary="Retry a dead-lettered run", tag="dlq", response=Run, errors=(404, 409),
    ),
]  # fmt: skip
