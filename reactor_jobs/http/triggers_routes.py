"""A job's triggers: create (a webhook's ingress URL is returned once), list, delete.

Cron triggers are fired by the scheduler (engine/scheduler.py), event triggers by the
fan-out of ctx.emit (engine/fanout.py), webhook triggers by the ingress (webhooks.py)."""

from __future__ import annotations

import msgspec
from aiohttp import web

from reactor_jobs.auth.principal import Principal
from reactor_jobs.http.bodies import decode_json, json_response
from reactor_jobs.http.jobs_routes import JOB
from reactor_jobs.http.keys import TRIGGERS
from reactor_jobs.http.objects import CreatedTrigger, Trigger, TriggerList
from reactor_jobs.http.query import check_params
from reactor_jobs.http.routes import Route, authed
from reactor_jobs.triggers.specs import TriggerSpec

TRIGGERS_PATH = JOB + "/triggers"
TRIGGER_PATH = TRIGGERS_PATH + "/{id}"


async def create_trigger(request: web.Request, principal: Principal) -> web.Response:
    check_params(request, ())
    spec: TriggerSpec = await decode_json(request, TriggerSpec)  # type: ignore[arg-type]
    created = await request.app[TRIGGERS].create(principal.org, request.match_info["name"], spec)
    view = Trigger.of(created.trigger)
    body = CreatedTrigger(**msgspec.structs.asdict(view), url=created.url)
    return json_response(body, status=201)


async def list_triggers(request: web.Request, principal: Principal) -> web.Response:
    check_params(request, ())
    store = request.app[TRIGGERS]
    records = await store.list_for_job(principal.org, request.match_info["name"])
    return json_response(TriggerList(triggers=[Trigger.of(r) for r in records]))


async def delete_trigger(request: web.Request, principal: Principal) -> web.Response:
    check_params(request, ())
    store = request.app[TRIGGERS]
    await store.delete(principal.org, request.match_info["name"], request.match_info["id"])
    return web.Response(status=204)


_LATER = (
    "A cron trigger fires once per slot from the scheduler (from its creation on); an event "
    "trigger fires when a run of the org emits its topic (exact, case-sensitive). A webhook "
    "trigger's `url` (/jobs/v1/webhooks/whk_…) is returned only in this response; HMAC "
    "signature checks and rate limits for webhooks are a later issue."
)

ROUTES: list[Route] = [
    authed(
        "POST", TRIGGERS_PATH, "admin", create_trigger,
        summary="Add a trigger to a job", tag="triggers", status=201,
        body=TriggerSpec, response=CreatedTrigger, errors=(404, 422), note=_LATER,
    ),
    authed(
        "GET", TRIGGERS_PATH, "member", list_triggers,
        summary="List a job's triggers", tag="triggers", response=TriggerList, errors=(404,),
    ),
    authed(
        "DELETE", TRIGGER_PATH, "admin", delete_trigger,
        summary="Delete a trigger", tag="triggers", status=204, errors=(404,),
    ),
]  # fmt: skip
