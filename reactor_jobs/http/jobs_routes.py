"""Jobs: create, list, get, update, delete (`/jobs/v1/_admin/jobs`)."""

from __future__ import annotations

import msgspec
from aiohttp import web

from reactor_jobs.auth.principal import Principal
from reactor_jobs.functions.errors import InvalidField, NotPromoted
from reactor_jobs.functions.records import JobInfo
from reactor_jobs.functions.registry import JobBinding, Registry
from reactor_jobs.http.bodies import decode_json, json_response
from reactor_jobs.http.keys import CONFIG, NODE
from reactor_jobs.http.objects import (
    Job,
    JobCreate,
    JobList,
    JobUpdate,
    JobWithTriggers,
    job_of,
    trigger_changes_of,
)
from reactor_jobs.http.query import check_params
from reactor_jobs.http.routes import Route, authed
from reactor_jobs.wire.objects import Policy

JOBS = "/jobs/v1/_admin/jobs"
JOB = JOBS + "/{name}"


def registry(request: web.Request) -> Registry:
    return request.app[NODE].registry


async def job_view(reg: Registry, info: JobInfo) -> Job:
    """The job with its effective policy; null while that cannot be resolved (the function
    has no live version, or the server's caps were lowered below the job's settings)."""
    policy: Policy | None
    try:
        policy = (await reg.resolve(info.org, info.name)).policy
    except (NotPromoted, InvalidField):
        policy = None
    return job_of(info, policy)


async def binding_view(request: web.Request, binding: JobBinding) -> JobWithTriggers:
    """The job and, when its function's manifest changed its triggers, what it did."""
    view = await job_view(registry(request), binding.job)
    signed = request.app[CONFIG].jobs.webhook_secret is not None
    triggers = trigger_changes_of(binding.triggers, signed=signed)
    return JobWithTriggers(**msgspec.structs.asdict(view), triggers=triggers)


async def create_job(request: web.Request, principal: Principal) -> web.Response:
    check_params(request, ())
    body = await decode_json(request, JobCreate)
    reg = registry(request)
    binding = await reg.create_job_with_triggers(principal.org, **msgspec.structs.asdict(body))
    return json_response(await binding_view(request, binding), status=201)


async def list_jobs(request: web.Request, principal: Principal) -> web.Response:
    check_params(request, ())
    reg = registry(request)
    jobs = [await job_view(reg, info) for info in await reg.list_jobs(principal.org)]
    return json_response(JobList(jobs=jobs))


async def get_job(request: web.Request, principal: Principal) -> web.Response:
    check_params(request, ())
    reg = registry(request)
    info = await reg.get_job(principal.org, request.match_info["name"])
    return json_response(await job_view(reg, info))


async def update_job(request: web.Request, principal: Principal) -> web.Response:
    check_params(request, ())
    body = await decode_json(request, JobUpdate, empty=b"{}")
    reg = registry(request)
    changes = {k: v for k, v in msgspec.structs.asdict(body).items() if v is not msgspec.UNSET}
    binding = await reg.update_job_with_triggers(
        principal.org, request.match_info["name"], **changes
    )
    return json_response(await binding_view(request, binding))


async def delete_job(request: web.Request, principal: Principal) -> web.Response:
    check_params(request, ())
    await registry(request).delete_job(principal.org, request.match_info["name"])
    return web.Response(status=204)


ROUTES: list[Route] = [
    authed(
        "POST", JOBS, "admin", create_job,
        summary="Create a job bound to a function", tag="jobs",
        status=201, body=JobCreate, response=JobWithTriggers, errors=(404, 409, 422),
        note="Policy fields left out (or null) follow the function's manifest. When the "
        "function has a live version, its manifest `job.triggers` become the job's triggers "
        "with source `manifest`, listed in `triggers` (a new webhook's `url` only there).",
    ),
    authed("GET", JOBS, "member", list_jobs, summary="List jobs", tag="jobs", response=JobList),
    authed(
        "GET", JOB, "member", get_job,
        summary="Get a job", tag="jobs", response=Job, errors=(404,),
    ),
    authed(
        "PATCH", JOB, "admin", update_job,
        summary="Update a job", tag="jobs", body=JobUpdate, response=JobWithTriggers,
        errors=(404, 422),
        note="Bound to another function, the job's manifest triggers become that function's "
        "live manifest's (none while it has no live version), listed in `triggers`.",
    ),
    authed(
        "DELETE", JOB, "admin", delete_job,
        summary="Delete a job and its triggers", tag="jobs", status=204, errors=(404,),
    ),
]  # fmt: skip
