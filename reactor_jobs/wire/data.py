"""The Data API's own objects (`/data/v1/_tables`, `/data/v1/_sql`): its rows are the org's."""

from __future__ import annotations

import msgspec


class TableInfo(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    kind: str  # table | view | materialized view | partitioned table | foreign table
    columns: dict[str, str]
    primary_key: list[str]


class Tables(msgspec.Struct, frozen=True, kw_only=True):
    tables: list[TableInfo]


class SqlBody(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    sql: str


class SqlDone(msgspec.Struct, frozen=True, kw_only=True):
    ok: bool
    tables: list[str]
