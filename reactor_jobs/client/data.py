"""`client.data`: the org's own tables through the Data API (/data/v1/): list tables, run
SQL (admins), and simple queries. For the full PostgREST grammar any postgrest client works
against the same URL with the same token and X-Reactor-Org."""

from __future__ import annotations

import builtins
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import msgspec
from multidict import MultiDict

from reactor_jobs.client.transport import Transport
from reactor_jobs.wire.data import SqlDone, TableInfo, Tables

DATA = "/data/v1"


DataTable = TableInfo  # the Data API's table description, as the server defines it


class Data:
    def __init__(self, transport: Transport) -> None:
        self._t = transport

    async def tables(self) -> builtins.list[DataTable]:
        return (await self._t.decode(Tables, "GET", f"{DATA}/_tables")).tables

    async def sql(self, text: str) -> SqlDone:
        """Run SQL (DDL) in the org's schema as the org's data role; needs the admin role."""
        return await self._t.decode(SqlDone, "POST", f"{DATA}/_sql", json={"sql": text})

    async def query(
        self,
        table: str,
        *,
        select: str = "*",
        eq: Mapping[str, Any] | None = None,
        filters: Sequence[tuple[str, str]] = (),
        order: str | None = None,
        limit: int | None = None,
    ) -> builtins.list[dict[str, Any]]:
        """Rows of `table`: `eq={"status": "paid"}` is `status=eq.paid`; `filters` are raw
        PostgREST pairs such as `("total", "gt.10")`."""
        params: MultiDict[str] = MultiDict([("select", select)])
        for column, value in (eq or {}).items():
            params.add(column, f"eq.{value}")
        for column, expr in filters:
            params.add(column, expr)
        if order:
            params.add("order", order)
        if limit is not None:
            params.add("limit", str(limit))
        raw = await self._t.call("GET", f"{DATA}/{quote(table, safe='')}", params=params)
        rows: builtins.list[dict[str, Any]] = msgspec.json.decode(raw)
        return rows
