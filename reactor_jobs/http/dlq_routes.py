"""A job's dead-letter queue: list (open or retried entries, newest first) and retry."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from reactor_jobs.auth.principal import Principal
from reactor_jobs.domain.errors import DlqEntryNotFound
from reactor_jobs.functions.errors import JobNotFound
from reactor_jobs.http import query
from reactor_jobs.http.bodies import from_row, json_response
from reactor_jobs.http.jobs_routes import JOB
from reactor_jobs.http.keys import NODE
from reactor_jobs.http.objects import DlqEntry, DlqList, Run
from reactor_jobs.http.routes import CURSOR, LIMIT, Route, authed, param
from reactor_jobs.http.runs_routes import who

DLQ = JOB + "/dlq"
_COLUMNS = "dlq_id AS id, run_id, job, attempts, error, status, created_at, retried_at"
# Newest first by (created_at, dlq_id): the dlq_by_job index, read from the cursor on.
_LIST = f"""
SELECT {_COLUMNS} FROM _reactor_jobs.dlq
 WHERE org = $1 AND job = $2
   AND ($3::text IS NULL OR status = $3)
   AND ($4::timestamptz IS NULL OR (created_at, dlq_id) < ($4, $5::text))
 ORDER BY created_at DESC, dlq_id DESC
 LIMIT $6"""
_ENTRY_JOB = "SELECT job FROM _reactor_jobs.dlq WHERE org = $1 AND dlq_id = $2"
_JOB_EXISTS = "SELECT 1 FROM _reactor_jobs.jobs WHERE org = $1 AND name = $2"


def dlq_entry(row: Mapping[str, Any]) -> DlqEntry:
    return from_row(DlqEntry, row, json=("error",))


async def list_dlq(request: web.Request, principal: Principal) -> web.Response:
    query.check_params(request, ("status", *query.PAGE_PARAMS))
    status = query.one_of(request, "status", ("open", "retried"))
    limit, after = query.limit(request), query.cursor(request)
    org, name = principal.org, request.match_info["name"]
    async with request.app[NODE].pool.acquire() as conn:
        rows = await conn.fetch(
            _LIST, org, name, status, after and after.at, after and after.id, limit + 1
        )
        if not rows and await conn.fetchval(_JOB_EXISTS, org, name) is None:
            raise JobNotFound(name)
    entries = [dlq_entry(row) for row in rows[:limit]]
    more = len(rows) > limit
    cursor = query.next_cursor(entries[-1].created_at, entries[-1].id) if more else None
    return json_response(DlqList(entries=entries, next_cursor=cursor))


async def retry_dlq(request: web.Request, principal: Principal) -> web.Response:
    query.check_params(request, ())
    dlq_id = request.match_info["dlq_id"]
    node = request.app[NODE]
    job = await node.pool.fetchval(_ENTRY_JOB, principal.org, dlq_id)
    if job != request.match_info["name"]:
        raise DlqEntryNotFound(dlq_id)
    run = await node.control.retry_dlq(principal.org, dlq_id, by=who(principal))
    return json_response(Run.of(run))


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
