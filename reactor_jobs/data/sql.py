"""From a parsed Data API request to one SQL statement, checked against the org schema's
catalog: every identifier is a table, column or function that exists there (else 404/400
naming it) and is quoted; every value is a bound parameter, cast to its column's type by
Postgres (a value that does not fit is a 400).

Each statement returns one row: the result as JSON text and a count.
"""

from __future__ import annotations

from typing import Any

import msgspec

from reactor_jobs.data.errors import DataBadRequest, DataNotFound
from reactor_jobs.data.names import quote_ident
from reactor_jobs.data.request import OPS, Condition, DataRequest, Filter, Logic, Plan, plan

_T = "_rj_t"  # the table's alias in every statement
_JSON_TYPES = frozenset({"json", "jsonb"})

TABLES = """
SELECT c.relname AS name, c.relkind::text AS kind,
       array_agg(a.attname::text ORDER BY a.attnum) AS columns,
       array_agg(format_type(a.atttypid, a.atttypmod) ORDER BY a.attnum) AS types,
       coalesce((SELECT array_agg(k.attname::text ORDER BY k.attnum)
                   FROM pg_index i JOIN pg_attribute k
                     ON k.attrelid = i.indrelid AND k.attnum = ANY(i.indkey)
                  WHERE i.indrelid = c.oid AND i.indisprimary), '{}') AS primary_key
  FROM pg_class c
  JOIN pg_namespace n ON n.oid = c.relnamespace
  JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE n.nspname = $1 AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND ($2::text IS NULL OR c.relname = $2)
 GROUP BY c.oid, c.relname, c.relkind
 ORDER BY c.relname
"""

FUNCTIONS = """
SELECT p.proname AS name, p.proretset AS retset,
       format_type(p.prorettype, NULL) AS returns, t.typtype::text AS rettype_kind,
       p.pronargs AS nargs, p.proargnames AS argnames, p.proargmodes::text[] AS argmodes,
       array(SELECT format_type(x, NULL) FROM unnest(p.proargtypes) AS x) AS argtypes
  FROM pg_proc p
  JOIN pg_namespace n ON n.oid = p.pronamespace
  JOIN pg_type t ON t.oid = p.prorettype
 WHERE n.nspname = $1 AND p.proname = $2 AND p.prokind = 'f'
"""


class Table(msgspec.Struct, frozen=True, kw_only=True):
    schema: str
    name: str
    kind: str
    columns: dict[str, str]  # name -> type, in order
    primary_key: list[str]

    @property
    def ref(self) -> str:
        return f"{quote_ident(self.schema)}.{quote_ident(self.name)}"

    def column(self, name: str) -> str:
        if name not in self.columns:
            raise DataBadRequest(f"column {name!r} does not exist in table {self.name!r}")
        return f"{_T}.{quote_ident(name)}"


class Function(msgspec.Struct, frozen=True, kw_only=True):
    schema: str
    name: str
    retset: bool
    returns: str
    rettype_kind: str  # b base, c composite, d domain, e enum, p pseudo
    args: dict[str, str]  # input argument name -> type


def table_from_row(schema: str, row: Any) -> Table:
    return Table(
        schema=schema,
        name=row["name"],
        kind=row["kind"],
        columns=dict(zip(row["columns"], row["types"], strict=True)),
        primary_key=list(row["primary_key"]),
    )


def function_from_row(schema: str, row: Any) -> Function:
    names = list(row["argnames"] or [])
    modes = row["argmodes"]
    if modes is not None:  # OUT and TABLE arguments have names but are not inputs
        names = [n for n, m in zip(names, modes, strict=False) if m in ("i", "b", "v")]
    names = names[: row["nargs"]]
    return Function(
        schema=schema,
        name=row["name"],
        retset=row["retset"],
        returns=row["returns"],
        rettype_kind=row["rettype_kind"],
        args=dict(zip(names, row["argtypes"], strict=False)),
    )


class Statement(msgspec.Struct, frozen=True):
    sql: str
    args: list[Any]
    single: bool = False  # the JSON is one value, not an array of rows


class _Builder:
    def __init__(self, table: Table, first_param: int = 1) -> None:
        self.table, self.args = table, list[Any]()
        self.first = first_param

    def bind(self, value: Any) -> str:
        self.args.append(value)
        return f"${self.first + len(self.args) - 1}"

    def cast(self, column: str, value: str) -> str:
        kind = self.table.columns[column]
        return f"CAST({self.bind(value)}::text AS {kind})"

    def condition(self, cond: Condition) -> str:
        if isinstance(cond, Logic):
            joiner = " AND " if cond.op == "and" else " OR "
            text = "(" + joiner.join(self.condition(c) for c in cond.items) + ")"
            return f"NOT {text}" if cond.negate else text
        return self.filter(cond)

    def filter(self, f: Filter) -> str:
        ref = self.table.column(f.column)
        if f.op == "is":
            assert isinstance(f.value, str)
            text = f"{ref} IS {f.value.upper()}"
        elif f.op == "in":
            values = f.value if isinstance(f.value, list) else [f.value]
            kind = self.table.columns[f.column]
            text = f"{ref} = ANY(CAST({self.bind(values)}::text[] AS {kind}[]))"
        elif f.op in ("like", "ilike"):
            text = f"{ref}::text {OPS[f.op]} {self.bind(f.value)}::text"
        else:
            assert isinstance(f.value, str)
            text = f"{ref} {OPS[f.op]} {self.cast(f.column, f.value)}"
        return f"NOT ({text})" if f.negate else text

    def where(self, p: Plan) -> str:
        if not p.where:
            return ""
        return " WHERE " + " AND ".join(self.condition(c) for c in p.where)

    def select_list(self, p: Plan) -> str:
        if p.select is None:
            return ", ".join(
                f"{_T}.{quote_ident(c)} AS {quote_ident(c)}" for c in self.table.columns
            )
        return ", ".join(
            f"{self.table.column(col)} AS {quote_ident(alias)}" for alias, col in p.select
        )

    def order(self, p: Plan) -> str:
        if not p.order:
            return ""
        parts = []
        for o in p.order:
            text = f"{self.table.column(o.column)} {'DESC' if o.desc else 'ASC'}"
            if o.nulls:
                text += f" NULLS {o.nulls.upper()}"
            parts.append(text)
        return " ORDER BY " + ", ".join(parts)


def _rows(select: str, source: str) -> str:
    """One row: the selected rows of `source` as a JSON array, and how many there are."""
    return (
        f"SELECT coalesce(json_agg(_rj_r), '[]')::text AS rows, count(*) AS n "
        f"FROM (SELECT {select} FROM {source}) AS _rj_r"
    )


def select_statement(table: Table, request: DataRequest) -> tuple[Statement, bool]:
    """GET: the rows (and, with Prefer: count=exact, the total before limit/offset)."""
    p = plan(request)
    b = _Builder(table)
    where = b.where(p)
    page = b.order(p)
    if p.limit is not None:
        page += f" LIMIT {p.limit}"
    if p.offset:
        page += f" OFFSET {p.offset}"
    inner = f"{table.ref} AS {_T}{where}{page}"
    sql = _rows(b.select_list(p), inner)
    counted = request.prefers("count=exact")
    if counted:
        total = f"(SELECT count(*) FROM {table.ref} AS {_T}{where})"
        sql = f"SELECT q.rows, {total} AS n FROM ({sql}) AS q"
    return Statement(sql, b.args), counted


def _body_rows(request: DataRequest) -> list[dict[str, Any]]:
    body = request.body
    rows = body if isinstance(body, list) else [body]
    if not rows or not all(isinstance(r, dict) for r in rows):
        raise DataBadRequest("the body must be a JSON object or a non-empty array of objects")
    return rows


def _columns(table: Table, rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            if key not in table.columns:
                raise DataBadRequest(f"column {key!r} does not exist in table {table.name!r}")
            seen[key] = None
    if not seen:
        raise DataBadRequest("the body names no columns")
    return list(seen)


def _returning(b: _Builder, p: Plan, request: DataRequest, write: str) -> str:
    if request.prefers("return=representation"):
        return f"WITH _rj_w AS ({write} RETURNING {_T}.*) " + _rows(
            b.select_list(p), f"_rj_w AS {_T}"
        )
    return (
        f"WITH _rj_w AS ({write} RETURNING 1) SELECT NULL::text AS rows, count(*) AS n FROM _rj_w"
    )


def insert_statement(table: Table, request: DataRequest) -> Statement:
    """POST: insert (an object or an array); upsert with Prefer: resolution=…"""
    p = plan(request)
    rows = _body_rows(request)
    cols = _columns(table, rows)
    b = _Builder(table)
    body = b.bind(msgspec.json.encode(rows).decode())
    names = ", ".join(quote_ident(c) for c in cols)
    write = (
        f"INSERT INTO {table.ref} AS {_T} ({names}) SELECT {names} "
        f"FROM jsonb_populate_recordset(NULL::{table.ref}, {body}::jsonb)"
    )
    for c in p.on_conflict or []:  # named columns must exist, used or not (as PostgREST)
        table.column(c)
    merge = request.prefers("resolution=merge-duplicates")
    if merge or request.prefers("resolution=ignore-duplicates"):
        target = p.on_conflict or table.primary_key
        if not target:
            raise DataBadRequest(
                f"table {table.name!r} has no primary key; name the conflict columns "
                "with on_conflict=col1,col2"
            )
        for c in target:
            table.column(c)
        updates = [c for c in cols if c not in target]
        conflict = ", ".join(quote_ident(c) for c in target)
        if merge and updates:
            sets = ", ".join(f"{quote_ident(c)} = EXCLUDED.{quote_ident(c)}" for c in updates)
            write += f" ON CONFLICT ({conflict}) DO UPDATE SET {sets}"
        else:
            write += f" ON CONFLICT ({conflict}) DO NOTHING"
    return Statement(_returning(b, p, request, write), b.args)


def update_statement(table: Table, request: DataRequest) -> Statement:
    """PATCH with filters: the body's columns set on every matching row."""
    p = plan(request)
    if not p.where:
        raise DataBadRequest(
            "an update needs at least one filter (a PATCH of every row is refused)"
        )
    if not isinstance(request.body, dict):
        raise DataBadRequest("an update's body must be a JSON object")
    cols = _columns(table, [request.body])
    b = _Builder(table)
    body = b.bind(msgspec.json.encode(request.body).decode())
    sets = ", ".join(f"{quote_ident(c)} = _rj_n.{quote_ident(c)}" for c in cols)
    write = (
        f"UPDATE {table.ref} AS {_T} SET {sets} "
        f"FROM jsonb_populate_record(NULL::{table.ref}, {body}::jsonb) AS _rj_n{b.where(p)}"
    )
    return Statement(_returning(b, p, request, write), b.args)


def delete_statement(table: Table, request: DataRequest) -> Statement:
    p = plan(request)
    if not p.where:
        raise DataBadRequest(
            "a delete needs at least one filter (a DELETE of every row is refused)"
        )
    b = _Builder(table)
    write = f"DELETE FROM {table.ref} AS {_T}{b.where(p)}"
    return Statement(_returning(b, p, request, write), b.args)


def rpc_statement(fn: Function, request: DataRequest) -> Statement:
    """POST /rpc/<function> with named arguments as a JSON object."""
    args = request.body if request.body is not None else {}
    if not isinstance(args, dict):
        raise DataBadRequest("an rpc's body must be a JSON object of named arguments")
    for name in args:
        if name not in fn.args:
            raise DataBadRequest(f"function {fn.name!r} has no argument {name!r}")
    named = []
    for name in args:
        kind = fn.args[name]
        key = "'" + name.replace("'", "''") + "'"
        if kind in _JSON_TYPES:
            named.append(f"{quote_ident(name)} => ($1::jsonb -> {key})::{kind}")
        else:
            named.append(f"{quote_ident(name)} => CAST($1::jsonb ->> {key} AS {kind})")
    call = f"{quote_ident(fn.schema)}.{quote_ident(fn.name)}({', '.join(named)})"
    bound = [msgspec.json.encode(args).decode()] if named else []
    if fn.returns == "void":
        return Statement(
            f"SELECT 'null'::text AS rows, 1 AS n FROM (SELECT {call}) AS _rj_v", bound, True
        )
    if fn.retset:
        return Statement(
            f"SELECT coalesce(json_agg(_rj_r), '[]')::text AS rows, count(*) AS n "
            f"FROM {call} AS _rj_r",
            bound,
        )
    return Statement(
        f"SELECT to_json(_rj_r)::text AS rows, 1 AS n FROM {call} AS _rj_r", bound, True
    )


def not_found_table(name: str, org: str) -> DataNotFound:
    return DataNotFound(f"table {name!r} does not exist in org {org}'s data")


def not_found_function(name: str, org: str) -> DataNotFound:
    return DataNotFound(f"function {name!r} does not exist in org {org}'s data")
