"""The OpenAPI 3.1 document, generated from the route table: paths and roles from the
routes, schemas from the very Structs that decode requests and encode responses.
tests/integration/test_http_openapi.py fails when a registered route is missing from it or
the document names a route the app does not serve."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import msgspec
from aiohttp import web

from reactor_jobs.http.bodies import json_response
from reactor_jobs.http.inputs import (
    MAX_PATH_PARAM_CHARS,
    MAX_QUERY_VALUE_CHARS,
    PATH_PARAM_PATTERN,
)
from reactor_jobs.http.keys import OPENAPI
from reactor_jobs.http.routes import Param, Route
from reactor_jobs.wire.errors import ErrorResponse

VERSION = "0.1.0"
_PATH_PARAM = re.compile(r"\{(\w+)\}")
_REF = "#/components/schemas/{name}"
_ERRORS = {
    400: "Malformed JSON, JSON nested past 64 levels, or a malformed request (bad_request)",
    401: "No, bad or expired token (unauthorized)",
    403: "Not a member of the org, or the role is too low (forbidden)",
    404: "Unknown, or another org's (not_found)",
    409: "Conflict with the current state (conflict, invalid_state)",
    413: "The body is too large (payload_too_large)",
    422: "A field or parameter is invalid (a NUL or control character, a value out of "
    "range, too long); the message names it (invalid_field)",
    429: "Too many requests: concurrent runs (concurrency_exceeded), webhook deliveries "
    "(rate_limited) or failed sign-ins (too_many_requests); see Retry-After",
    503: "The database is unreachable (database_unavailable) or the server is busy "
    "checking passwords (server_busy)",
}
# What a path parameter may hold (http/inputs.py enforces the same).
_PATH_SCHEMA = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_PATH_PARAM_CHARS,
    "pattern": PATH_PARAM_PATTERN,
}
_ORG = {
    "name": "X-Reactor-Org",
    "in": "header",
    "required": False,
    "description": "The org to act in: required with a user's token; with an API key it "
    "may be left out (the key's org) and must name the key's org if sent.",
    "schema": {"type": "string"},
}


def build_document(routes: Sequence[Route]) -> dict[str, Any]:
    types: list[object] = [ErrorResponse]
    for route in routes:
        for kind in (route.body, route.response):
            if kind is not None and not isinstance(kind, str) and kind not in types:
                types.append(kind)
    schemas, components = msgspec.json.schema_components(types, ref_template=_REF)
    refs = dict(zip(map(id, types), schemas, strict=True))
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, refs)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Reactor Jobs API",
            "version": VERSION,
            "description": "Durable jobs on Postgres. Errors are "
            '{"error": {"code", "message"}}; every response has X-Request-Id.',
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A user's access token (JWT) or a service API key rk_…",
                }
            },
        },
    }


def _operation(route: Route, refs: dict[int, Any]) -> dict[str, Any]:
    role = "public" if route.access == "public" else f"needs the {route.access} role"
    description = f"Access: {role}." + (f" {route.note}" if route.note else "")
    op: dict[str, Any] = {
        "operationId": route.name,
        "summary": route.summary,
        "description": description,
        "tags": [route.tag],
        "x-reactor-access": route.access,
        "parameters": _parameters(route),
        "responses": _responses(route, refs),
        "security": [] if route.access == "public" else [{"bearer": []}],
    }
    if route.body is not None:
        op["requestBody"] = {"required": route.body_required, "content": _body(route, refs)}
    return op


def _parameters(route: Route) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": _PATH_SCHEMA}
        for name in _PATH_PARAM.findall(route.path)
    ]
    if route.access != "public" and not route.path.startswith("/auth/"):
        params.append(_ORG)
    params += [
        {"name": p.name, "in": p.where, "description": p.description, "schema": _strict(p)}
        for p in route.params
    ]
    return params


def _strict(param: Param) -> dict[str, Any]:
    """A query string's schema with the limits every query value has (http/inputs.py)."""
    if param.where != "query" or param.schema.get("type") != "string":
        return param.schema
    limits = {"maxLength": MAX_QUERY_VALUE_CHARS, "pattern": r"^[^\x00-\x1f\x7f]*$"}
    return {**limits, **param.schema}


def _body(route: Route, refs: dict[int, Any]) -> dict[str, Any]:
    if route.body == "gzip":
        return {"application/gzip": {"schema": {"contentMediaType": "application/gzip"}}}
    if route.body == "any":
        return {"*/*": {"schema": {}}}
    return {"application/json": {"schema": refs[id(route.body)]}}


def _responses(route: Route, refs: dict[int, Any]) -> dict[str, Any]:
    ok: dict[str, Any] = {"description": route.summary}
    if route.response == "sse":
        ok["content"] = {"text/event-stream": {"schema": {"type": "string"}}}
    elif route.response == "text":
        ok["content"] = {"text/plain": {"schema": {"type": "string"}}}
    elif route.response is not None:
        ok["content"] = {"application/json": {"schema": refs[id(route.response)]}}
    responses = {str(route.status): ok}
    # Any route: a bad query value (422), the database away (503); with path parameters,
    # one that names nothing (404); signed in, the token and the org header (400, 401, 403).
    codes = set(route.errors) | {422, 503}
    if route.access != "public":
        codes |= {400, 401, 403}
    if _PATH_PARAM.search(route.path):
        codes |= {404}
    if route.body is not None and route.body not in ("gzip", "any"):
        codes |= {400, 413, 422}
    for code in sorted(codes):
        responses[str(code)] = _error(code, refs[id(ErrorResponse)])
    return responses


def _error(code: int, schema: Any) -> dict[str, Any]:
    error: dict[str, Any] = {
        "description": _ERRORS[code],
        "content": {"application/json": {"schema": schema}},
    }
    if code in (429, 503):
        error["headers"] = {
            "Retry-After": {"description": "Seconds to wait", "schema": {"type": "integer"}}
        }
    return error


async def openapi_json(request: web.Request) -> web.Response:
    return json_response(request.app[OPENAPI])
