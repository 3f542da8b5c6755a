"""Functions (`/functions/v1/_admin/functions`): create, list, get, deploy a bundle (a
tar.gz of function.json and code/, checked before it is stored), list versions, promote,
delete (refused while a job uses the function)."""

from __future__ import annotations

import msgspec
from aiohttp import web

from reactor_jobs.auth.principal import Principal
from reactor_jobs.functions.bundle import MAX_ARCHIVE_BYTES
from reactor_jobs.functions.errors import VersionNotFound
from reactor_jobs.functions.registry import Registry
from reactor_jobs.http.bodies import decode_json, json_response, read_body
from reactor_jobs.http.keys import CONFIG, NODE
from reactor_jobs.http.objects import (
    Function,
    FunctionCreate,
    FunctionList,
    FunctionWithTriggers,
    Promote,
    Version,
    VersionList,
    function_of,
    trigger_changes_of,
    version_of,
)
from reactor_jobs.http.query import check_params
from reactor_jobs.http.routes import Route, authed

FUNCTIONS = "/functions/v1/_admin/functions"
FUNCTION = FUNCTIONS + "/{name}"


def registry(request: web.Request) -> Registry:
    return request.app[NODE].registry


async def create_function(request: web.Request, principal: Principal) -> web.Response:
    check_params(request, ())
    body = await decode_json(request, FunctionCreate)
    info = await registry(request).create_function(principal.org, body.name, body.runtime)
    return json_response(function_of(info), status=201)


async def list_functions(request: web.Request, principal: Principal) -> web.Response:
    check_params(request, ())
    infos = await registry(request).list_functions(principal.org)
    return json_response(FunctionList(functions=[function_of(i) for i in infos]))


async def get_function(request: web.Request, principal: Principal) -> web.Response:
    check_params(request, ())
    info = await registry(request).get_function(principal.org, request.match_info["name"])
    return json_response(function_of(info))


async def delete_function(request: web.Request, principal: Principal) -> web.Response:
    check_params(request, ())
    await registry(request).delete_function(principal.org, request.match_info["name"])
    return web.Response(status=204)


async def deploy(request: web.Request, principal: Principal) -> web.Response:
    """The body is the archive itself; up to the bundle limit, not the JSON body limit."""
    check_params(request, ())
    reg, name = registry(request), request.match_info["name"]
    await reg.get_function(principal.org, name)  # 404 before reading a large body
    archive = await read_body(request, MAX_ARCHIVE_BYTES)
    number = await reg.deploy(principal.org, name, archive)
    versions = await reg.list_versions(principal.org, name)
    version = next((v for v in versions if v.version == number), None)
    if version is None:
        raise VersionNotFound(name, number)
    return json_response(version_of(version), status=201)


async def list_versions(request: web.Request, principal: Principal) -> web.Response:
    check_params(request, ())
    versions = await registry(request).list_versions(principal.org, request.match_info["name"])
    return json_response(VersionList(versions=[version_of(v) for v in versions]))


async def promote(request: web.Request, principal: Principal) -> web.Response:
    check_params(request, ())
    body = await decode_json(request, Promote, empty=b"{}")
    reg, name = registry(request), request.match_info["name"]
    promoted = await reg.promote_with_triggers(principal.org, name, body.version)
    function = function_of(await reg.get_function(principal.org, name))
    signed = request.app[CONFIG].jobs.webhook_secret is not None
    triggers = trigger_changes_of(promoted.triggers, signed=signed)
    return json_response(
        FunctionWithTriggers(**msgspec.structs.asdict(function), triggers=triggers)
    )


ROUTES: list[Route] = [
    authed(
        "POST", FUNCTIONS, "admin", create_function,
        summary="Create a function", tag="functions", status=201, body=FunctionCreate,
        response=Function, errors=(409, 422),
    ),
    authed(
        "GET", FUNCTIONS, "member", list_functions,
        summary="List functions", tag="functions", response=FunctionList,
    ),
    authed(
        "GET", FUNCTION, "member", get_function,
        summary="Get a function", tag="functions", response=Function, errors=(404,),
    ),
    authed(
        "DELETE", FUNCTION, "admin", delete_function,
        summary="Delete a function and its versions", tag="functions", status=204,
        errors=(404, 409),
        note="Refused with 409 while a job is bound to the function.",
    ),
    authed(
        "POST", FUNCTION + "/deploy", "admin", deploy,
        summary="Deploy a bundle as the function's next version (not live until promoted)",
        tag="functions", status=201, body="gzip", response=Version,
        errors=(404, 413, 422),
        note="The body is the bundle: a tar.gz holding function.json and code/ "
        f"(Content-Type application/gzip), at most {MAX_ARCHIVE_BYTES} bytes. A bad archive "
        "or manifest is refused with 422 and the reason.",
    ),
    authed(
        "GET", FUNCTION + "/versions", "member", list_versions,
        summary="List a function's deployed versions", tag="functions",
        response=VersionList, errors=(404,),
    ),
    authed(
        "POST", FUNCTION + "/promote", "admin", promote,
        summary="Make a version live (default: the latest)", tag="functions",
        body=Promote, body_required=False, response=FunctionWithTriggers, errors=(404, 422),
        note="In the same transaction, the triggers with source `manifest` of every job bound "
        "to the function are made to match the version's manifest `job.triggers`: added, "
        "changed in place (same id; a webhook keeps its URL) and removed; triggers created "
        "through the API are never touched. `triggers` tells what happened; a new webhook's "
        "`url` is shown only there. Promoting the live version again changes nothing.",
    ),
]  # fmt: skip
