"""Runs: the manual trigger (`POST /jobs/v1/{name}/trigger`), and under a job: list with
filters and keyset pagination, get, cancel, retry, and the run's journal.

A run is addressed through its job: a run of another job (or org) is not found.
"""

from __future__ import annotations

import re

import msgspec
from aiohttp import web

from reactor_jobs.auth.principal import Principal
from reactor_jobs.domain.errors import RunNotFound
from reactor_jobs.domain.ids import ENGINE_KEY_PREFIXES
from reactor_jobs.domain.projection import RunInfo
from reactor_jobs.engine.journal import export_line
from reactor_jobs.engine.runs import RunControl
from reactor_jobs.functions.errors import InvalidField, JobNotFound
from reactor_jobs.http import query
from reactor_jobs.http.bodies import decode_json, json_response
from reactor_jobs.http.jobs_routes import JOB
from reactor_jobs.http.keys import NODE
from reactor_jobs.http.objects import (
    JournalEvent,
    JournalEvents,
    ManualTrigger,
    Run,
    RunList,
    run_of,
)
from reactor_jobs.http.routes import CURSOR, LIMIT, Route, authed, header, param
from reactor_jobs.projections import queries
from reactor_jobs.telemetry.tracing import trace_headers

STATUSES = ("queued", "running", "sleeping", "retrying", "completed", "failed", "cancelled")
RUNS = JOB + "/runs"
RUN = RUNS + "/{id}"
_KEY = re.compile(r"[\x21-\x7e]{1,255}")  # visible ASCII


def control(request: web.Request) -> RunControl:
    return request.app[NODE].control


async def job_run(request: web.Request, org: str) -> RunInfo:
    """The run at {id}, if it belongs to the job at {name} in the caller's org."""
    run_id = request.match_info["id"]
    run = await queries.get_run(request.app[NODE].pool, org, run_id)
    if run.job != request.match_info["name"]:
        raise RunNotFound(run_id)
    return run


async def trigger(request: web.Request, principal: Principal) -> web.Response:
    """201 with a new run; 200 when the Idempotency-Key matched an earlier run."""
    query.check_params(request, ())
    body = await decode_json(request, ManualTrigger, empty=b"{}")
    name, key = request.match_info["name"], request.headers.get("Idempotency-Key")
    if key is not None and not _KEY.fullmatch(key):
        raise InvalidField("Idempotency-Key", "must be 1 to 255 visible ASCII characters")
    if key is not None and key.startswith(ENGINE_KEY_PREFIXES):
        # cron slots' and webhook deliveries' keys: a manual trigger must not pre-empt one
        reserved = " or ".join(ENGINE_KEY_PREFIXES)
        raise InvalidField("Idempotency-Key", f"must not start with {reserved}")
    run, created = await control(request).admit(
        principal.org, name, payload=body.payload, idempotency_key=key, kind="manual",
        headers=trace_headers(request.headers),  # W3C trace context, kept with the run
    )  # fmt: skip
    return json_response(run_of(run), status=201 if created else 200)


async def list_runs(request: web.Request, principal: Principal) -> web.Response:
    query.check_params(request, ("status", "since", "until", *query.PAGE_PARAMS))
    statuses = query.choice(request, "status", STATUSES)
    since, until = query.timestamp(request, "since"), query.timestamp(request, "until")
    limit, after = query.limit(request), query.cursor(request)
    name = request.match_info["name"]
    page = await queries.list_runs(
        request.app[NODE].pool, principal.org, name, statuses=statuses, since=since,
        until=until, after=after, limit=limit,
    )  # fmt: skip
    if page is None:
        raise JobNotFound(name)
    runs = [run_of(info) for info in page[0]]
    more = page[1]
    cursor = query.next_cursor(runs[-1].created_at, runs[-1].id) if more else None
    return json_response(RunList(runs=runs, next_cursor=cursor))


async def get_run(request: web.Request, principal: Principal) -> web.Response:
    query.check_params(request, ())
    return json_response(run_of(await job_run(request, principal.org)))


async def cancel_run(request: web.Request, principal: Principal) -> web.Response:
    query.check_params(request, ())
    run = await job_run(request, principal.org)
    cancelled = await control(request).cancel(principal.org, run.id, by=who(principal))
    return json_response(run_of(cancelled))


async def retry_run(request: web.Request, principal: Principal) -> web.Response:
    query.check_params(request, ())
    run = await job_run(request, principal.org)
    retried = await control(request).retry(principal.org, run.id, by=who(principal))
    return json_response(run_of(retried))


async def run_journal(request: web.Request, principal: Principal) -> web.Response:
    query.check_params(request, ())
    run = await job_run(request, principal.org)
    recorded = await request.app[NODE].journal.read_stream(run.id)
    events = [msgspec.json.decode(export_line(r), type=JournalEvent) for r in recorded]
    return json_response(JournalEvents(events=events))


def who(principal: Principal) -> str:
    """Who asked, as recorded in Cancelled / Retried events."""
    return principal.email or f"{principal.kind}:{principal.subject}"


ROUTES: list[Route] = [
    authed(
        "POST", "/jobs/v1/{name}/trigger", "member", trigger,
        summary="Trigger a run manually", tag="runs", status=201,
        body=ManualTrigger, body_required=False, response=Run,
        params=(header("Idempotency-Key", "A repeat with the same key returns the first run "
                       "(status 200) instead of starting another."),
                header("traceparent", "W3C trace context: the run's spans join this trace "
                       "(kept with the run, with tracestate; a malformed one is ignored)."),),
        errors=(404, 409, 422, 429),
        note="201 for a new run, 200 when the Idempotency-Key matched an existing run of the "
        "job. 429 concurrency_exceeded (with Retry-After) when the job already has "
        "maxConcurrency runs queued or running.",
    ),
    authed(
        "GET", RUNS, "member", list_runs,
        summary="List a job's runs, newest first", tag="runs", response=RunList,
        params=(
            param("status", "Only runs in this status (or any of several, comma-separated).",
                  enum=list(STATUSES)),
            param("since", "Only runs created at or after this RFC 3339 time.",
                  format="date-time"),
            param("until", "Only runs created before this RFC 3339 time.", format="date-time"),
            LIMIT, CURSOR,
        ),
        errors=(404, 422),
    ),
    authed("GET", RUN, "member", get_run, summary="Get a run", tag="runs", response=Run,
           errors=(404,)),
    authed(
        "POST", RUN + "/cancel", "admin", cancel_run,
        summary="Cancel a run (a running one stops within about a second)", tag="runs",
        response=Run, errors=(404, 409),
    ),
    authed(
        "POST", RUN + "/retry", "admin", retry_run,
        summary="Retry a failed or cancelled run; its completed steps stay cached", tag="runs",
        response=Run, errors=(404, 409),
    ),
    authed(
        "GET", RUN + "/journal", "member", run_journal,
        summary="A run's journal: its events with their hash chain", tag="runs",
        response=JournalEvents, errors=(404,),
    ),
]  # fmt: skip
