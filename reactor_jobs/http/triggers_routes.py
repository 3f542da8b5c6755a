"""A job's triggers: create (a webhook's ingress URL is returned once), list, delete, and
the next fire times of its cron triggers.

Cron triggers are fired by the scheduler (engine/scheduler.py), event triggers by the
fan-out of ctx.emit (engine/fanout.py), webhook triggers by the ingress (webhooks.py)."""

from __future__ import annotations

import re
from datetime import UTC

import msgspec
from aiohttp import web

from reactor_jobs.auth.principal import Principal
from reactor_jobs.domain import cron
from reactor_jobs.functions.errors import InvalidField
from reactor_jobs.http.bodies import decode_json, json_response
from reactor_jobs.http.jobs_routes import JOB
from reactor_jobs.http.keys import CONFIG, NODE, TRIGGERS
from reactor_jobs.http.objects import (
    CreatedTrigger,
    Fire,
    NextFires,
    TriggerFires,
    TriggerList,
    trigger_of,
)
from reactor_jobs.http.query import check_params
from reactor_jobs.http.routes import Route, authed, param
from reactor_jobs.triggers import preview
from reactor_jobs.triggers.specs import TriggerSpec, WebhookSpec

TRIGGERS_PATH = JOB + "/triggers"
TRIGGER_PATH = TRIGGERS_PATH + "/{id}"
NEXT_PATH = TRIGGERS_PATH + "/next"
_COUNT = re.compile(r"[0-9]{1,4}")


async def create_trigger(request: web.Request, principal: Principal) -> web.Response:
    check_params(request, ())
    spec: TriggerSpec = await decode_json(request, TriggerSpec)  # type: ignore[arg-type]
    created = await request.app[TRIGGERS].create(principal.org, request.match_info["name"], spec)
    view = trigger_of(created.trigger)
    signed = None
    if isinstance(spec, WebhookSpec):  # the secret itself is write-only
        signed = spec.secret is not None or request.app[CONFIG].jobs.webhook_secret is not None
    body = CreatedTrigger(**msgspec.structs.asdict(view), url=created.url, signed=signed)
    return json_response(body, status=201)


async def list_triggers(request: web.Request, principal: Principal) -> web.Response:
    check_params(request, ())
    store = request.app[TRIGGERS]
    records = await store.list_for_job(principal.org, request.match_info["name"])
    return json_response(TriggerList(triggers=[trigger_of(r) for r in records]))


async def delete_trigger(request: web.Request, principal: Principal) -> web.Response:
    check_params(request, ())
    store = request.app[TRIGGERS]
    await store.delete(principal.org, request.match_info["name"], request.match_info["id"])
    return web.Response(status=204)


def fire_count(request: web.Request) -> int:
    raw = request.query.get("count")
    if raw is None:
        return preview.DEFAULT_COUNT
    if not _COUNT.fullmatch(raw):
        raise InvalidField(
            "count", f"must be an integer from 1 to {preview.MAX_COUNT}, got {raw!r}"
        )
    return preview.check_count(int(raw))


def fires_view(fires: preview.CronFires) -> TriggerFires:
    utc = fires.timezone == "UTC"
    zone = cron.zone(fires.timezone)
    return TriggerFires(
        id=fires.id,
        schedule=fires.schedule,
        timezone=fires.timezone,
        catch_up=fires.catch_up,
        source=fires.source,
        fires=[Fire(at=at.astimezone(UTC), local=None if utc else at.astimezone(zone))
               for at in fires.fires],
    )  # fmt: skip


async def next_fires(request: web.Request, principal: Principal) -> web.Response:
    check_params(request, ("count",))
    pool = request.app[NODE].pool
    found = await preview.next_fires(pool, principal.org, request.match_info["name"],
                                     fire_count(request))  # fmt: skip
    view = NextFires(job=found.job, now=found.now, triggers=[fires_view(t) for t in found.triggers])
    return json_response(view)


_LATER = (
    "A cron trigger fires once per slot from the scheduler (from its creation on); an event "
    "trigger fires when a run of the org emits its topic (exact, case-sensitive). A webhook "
    "trigger's `url` (/jobs/v1/webhooks/whk_…) is returned only in this response. A webhook "
    "trigger may carry a `secret` (write-only; `whsec_<base64>` or any string; other kinds "
    "refuse the field): its requests must then be signed with it, Standard Webhooks style, "
    "instead of with the server's webhook_secret. `signed` says whether requests must be signed."
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
        "GET", NEXT_PATH, "member", next_fires,
        summary="Preview the next fire times of a job's cron triggers", tag="triggers",
        response=NextFires, errors=(404, 422),
        params=(param("count", f"Fires per trigger, 1 to {preview.MAX_COUNT} (default "
                      f"{preview.DEFAULT_COUNT}).", "integer", minimum=1,
                      maximum=preview.MAX_COUNT),),
        note="From the database clock's now (`now`). `local` is the same instant in the "
        "trigger's timezone (null for UTC). A local time repeated when clocks fall back fires "
        "once, at its first occurrence; one skipped when they spring forward fires once, at "
        "the first instant after the gap.",
    ),
    authed(
        "DELETE", TRIGGER_PATH, "admin", delete_trigger,
        summary="Delete a trigger", tag="triggers", status=204, errors=(404,),
    ),
]  # fmt: skip
