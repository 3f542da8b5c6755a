"""/data/v1/: the Data API over the caller's org's own tables, in PostgREST's wire protocol
(postgrest-py and postgrest-js speak it), plus two admin routes: `_tables` and `_sql`.

Members read and write rows; running SQL (DDL) needs the admin role. Every request runs on
a connection logged in as the org's own data role (reactor_jobs/data/service.py)."""

from __future__ import annotations

from typing import Any

import msgspec
from aiohttp import web

from reactor_jobs.auth.principal import Principal
from reactor_jobs.data.errors import DataBadRequest
from reactor_jobs.data.request import DataRequest, parse_prefer
from reactor_jobs.data.service import DataService, Result
from reactor_jobs.http.bodies import decode_bytes, json_response, read_body
from reactor_jobs.http.errors import MalformedJson
from reactor_jobs.http.inputs import check_json_text
from reactor_jobs.http.keys import NODE
from reactor_jobs.http.routes import Route, authed, header, param
from reactor_jobs.wire.data import SqlBody, SqlDone, Tables

PREFIX = "/data/v1"


def service(request: web.Request) -> DataService:
    data: DataService = request.app[NODE].data
    return data


async def _json_body(request: web.Request) -> Any:
    raw = await read_body(request)
    if not raw.strip():
        return None
    check_json_text(raw)
    try:
        return msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        raise MalformedJson(f"the request body is not valid JSON: {exc}") from None


async def data_request(request: web.Request, *, table: str | None, rpc: str | None) -> DataRequest:
    """The aiohttp request as a DataRequest (query pairs in order, Prefer tokens, body)."""
    body = None if request.method in ("GET", "DELETE") else await _json_body(request)
    return DataRequest(
        method=request.method,  # type: ignore[arg-type]
        table=table,
        rpc=rpc,
        query=list(request.query.items()),
        prefer=parse_prefer(request.headers.getall("Prefer", [])),
        body=body,
    )


def respond(req: DataRequest, result: Result) -> web.Response:
    """PostgREST's statuses and headers: 201 for an insert, 204 when nothing is returned,
    Content-Range on reads (`0-9/42`, `*/0`; the total with Prefer: count=exact)."""
    headers: dict[str, str] = {}
    if req.method == "GET":
        p_offset = 0
        for key, value in req.query:
            if key == "offset" and value.isdigit():
                p_offset = int(value)
        n = result.count or 0
        total = "*" if result.total is None else str(result.total)
        span = f"{p_offset}-{p_offset + n - 1}" if n else "*"
        headers["Content-Range"] = f"{span}/{total}"
        return json_response(result.rows, headers=headers)
    if req.rpc is not None:
        return json_response(result.rows)
    status = 201 if req.method == "POST" else 200
    if result.rows is None:  # Prefer: return=minimal (the default for writes)
        headers["Content-Range"] = f"*/{result.count or 0}"
        return web.Response(status=201 if status == 201 else 204, headers=headers)
    return json_response(result.rows, status=status)


async def table_rows(request: web.Request, principal: Principal) -> web.Response:
    table = request.match_info["table"]
    req = await data_request(request, table=table, rpc=None)
    return respond(req, await service(request).execute(principal.org, req))


async def call_rpc(request: web.Request, principal: Principal) -> web.Response:
    req = await data_request(request, table=None, rpc=request.match_info["function"])
    return respond(req, await service(request).execute(principal.org, req))


async def list_tables(request: web.Request, principal: Principal) -> web.Response:
    return json_response(Tables(tables=await service(request).tables(principal.org)))


async def run_sql(request: web.Request, principal: Principal) -> web.Response:
    body = decode_bytes(await read_body(request), SqlBody)
    if not body.sql.strip():
        raise DataBadRequest("sql is empty")
    data = service(request)
    await data.run_sql(principal.org, body.sql)
    tables = [t.name for t in await data.tables(principal.org)]
    return json_response(SqlDone(ok=True, tables=tables))


_FILTERS = (
    param("select", "Columns: `id,total`, renames `alias:column`; default `*`."),
    param("order", "`col.asc|desc[.nullsfirst|nullslast]`, comma-separated."),
    param("limit", "At most this many rows.", "integer", minimum=0),
    param("offset", "Skip this many rows.", "integer", minimum=0),
    param("or", "`(a.eq.1,b.gt.2)`; `and(…)` nests."),
    header("Prefer", "`count=exact`, `return=representation`, `resolution=merge-duplicates`."),
)
_NOTE = (
    "PostgREST's protocol: any other query parameter is a filter `column=op.value` with op "
    "in eq, neq, gt, gte, lt, lte, like, ilike, in.(a,b), is.null|true|false, and `not.` "
    "before any. See docs/data-api.md."
)


def _table_route(method: str, name: str, summary: str, status: int = 200) -> Route:
    async def handler(request: web.Request, principal: Principal) -> web.Response:
        return await table_rows(request, principal)

    handler.__name__ = name
    return authed(
        method, PREFIX + "/{table}", "member", handler, summary=summary, tag="data",
        status=status, response=list, params=_FILTERS, note=_NOTE,
        body=None if method in ("GET", "DELETE") else dict, body_required=False,
        errors=(400, 404, 409, 413),
    )  # fmt: skip


ROUTES: list[Route] = [
    authed(
        "GET", PREFIX + "/_tables", "member", list_tables,
        summary="The org's tables and views, with their columns", tag="data", response=Tables,
    ),
    authed(
        "POST", PREFIX + "/_sql", "admin", run_sql,
        summary="Run SQL (DDL) in the org's schema, as the org's data role", tag="data",
        body=SqlBody, response=SqlDone, errors=(400, 409, 413),
    ),
    authed(
        "POST", PREFIX + "/rpc/{function}", "member", call_rpc,
        summary="Call a function of the org's schema with named arguments", tag="data",
        body=dict, body_required=False, response=dict, errors=(400, 404, 413),
    ),
    _table_route("GET", "select_rows", "Read rows"),
    _table_route("POST", "insert_rows", "Insert rows (an object or an array); upsert", 201),
    _table_route("PATCH", "update_rows", "Update the rows matching the filters"),
    _table_route("DELETE", "delete_rows", "Delete the rows matching the filters"),
]  # fmt: skip
