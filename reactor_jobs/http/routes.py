"""The route table's entry: method, path, who may call it, the handler, and what the
OpenAPI document says about it. Authenticated handlers receive the caller's Principal; the
role check happens here, once, so the document and the enforcement cannot disagree."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from aiohttp import web
from aiohttp.typedefs import Handler

from reactor_jobs.auth.principal import Principal, require

Access = Literal["public", "member", "admin"]
AuthedHandler = Callable[[web.Request, Principal], Awaitable[web.StreamResponse]]
# A request body: a Struct type or union of them (JSON), "gzip" (a bundle archive) or
# "any" (webhooks).
Body = object


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    schema: dict[str, Any]
    where: Literal["query", "header"] = "query"


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    access: Access
    name: str  # the OpenAPI operationId
    handle: Handler | None  # None: registered by another module (the auth routes)
    summary: str
    tag: str
    status: int = 200
    response: type | Literal["sse", "text"] | None = None  # None: no content
    body: Body = None
    body_required: bool = True
    params: tuple[Param, ...] = ()
    errors: tuple[int, ...] = ()
    note: str | None = None


def authed(
    method: str, path: str, access: Literal["member", "admin"], handler: AuthedHandler, **doc: Any
) -> Route:
    async def handle(request: web.Request) -> web.StreamResponse:
        return await handler(request, require(request, access))

    name = handler.__name__
    return Route(method=method, path=path, access=access, name=name, handle=handle, **doc)


def public(method: str, path: str, handler: Handler, **doc: Any) -> Route:
    name = handler.__name__
    return Route(method=method, path=path, access="public", name=name, handle=handler, **doc)


def param(name: str, description: str, kind: str = "string", **schema: Any) -> Param:
    return Param(name=name, description=description, schema={"type": kind, **schema})


def header(name: str, description: str) -> Param:
    return Param(name=name, description=description, schema={"type": "string"}, where="header")


LIMIT = param("limit", "Page size, 1 to 200 (default 50).", "integer", minimum=1, maximum=200)
CURSOR = param("cursor", "Opaque: the next_cursor of the previous page.")
