"""`ctx.data`: the Data client of job code, a fluent builder that mirrors postgrest-py.

    rows = await ctx.data.from_("orders").select("id,total").eq("status", "paid").limit(10)
    rows.data, rows.count

Each call is a PostgREST request that the host proposes to the worker (docs/host-protocol.md,
`"t": "data"`); the worker executes it for the run's org, so job code holds no credentials.
Outside any step a call is a durable decision (its result is journaled and a retry returns
it); inside a step it is a plain call.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Generator, Sequence
from typing import Any

import msgspec


class DataRequestError(Exception):
    """The Data API refused the call: `code` is the API's error code (bad_request,
    not_found, conflict, payload_too_large, database_unavailable, …)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code, self.message = code, message


class DataResult(msgspec.Struct, frozen=True):
    """What a data call returns, as postgrest-py's APIResponse: `data` (a list of rows, or
    an rpc's value; None for a write without returning) and `count`."""

    data: Any = None
    count: int | None = None


Send = Callable[[dict[str, Any]], Awaitable[DataResult]]


def _value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def _listed(value: Any) -> str:
    text = _value(value)
    if any(c in text for c in ',()"\\ ') or text == "":
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


class RequestBuilder:
    """A request being built; `await` it (or `await .execute()`) to make the call."""

    def __init__(self, send: Send, method: str, table: str | None, rpc: str | None = None) -> None:
        self._send = send
        self._method, self._table, self._rpc = method, table, rpc
        self._query: list[tuple[str, str]] = []
        self._prefer: list[str] = []
        self._body: Any = None
        self._negate = False

    def request(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self._method, "query": [list(q) for q in self._query]}
        if self._table is not None:
            out["table"] = self._table
        else:
            out["rpc"] = self._rpc
        if self._prefer:
            out["prefer"] = list(self._prefer)
        if self._body is not None:
            out["body"] = self._body
        return out

    async def execute(self) -> DataResult:
        return await self._send(self.request())

    def __await__(self) -> Generator[Any, None, DataResult]:
        return self.execute().__await__()

    # --- filters ---------------------------------------------------------------------------

    @property
    def not_(self) -> RequestBuilder:
        """Negates the next filter: `.not_.eq("status", "paid")`."""
        self._negate = True
        return self

    def filter(self, column: str, operator: str, value: Any) -> RequestBuilder:
        prefix = "not." if self._negate else ""
        self._negate = False
        self._query.append((column, f"{prefix}{operator}.{value}"))
        return self

    def eq(self, column: str, value: Any) -> RequestBuilder:
        return self.filter(column, "eq", _value(value))

    def neq(self, column: str, value: Any) -> RequestBuilder:
        return self.filter(column, "neq", _value(value))

    def gt(self, column: str, value: Any) -> RequestBuilder:
        return self.filter(column, "gt", _value(value))

    def gte(self, column: str, value: Any) -> RequestBuilder:
        return self.filter(column, "gte", _value(value))

    def lt(self, column: str, value: Any) -> RequestBuilder:
        return self.filter(column, "lt", _value(value))

    def lte(self, column: str, value: Any) -> RequestBuilder:
        return self.filter(column, "lte", _value(value))

    def like(self, column: str, pattern: str) -> RequestBuilder:
        return self.filter(column, "like", pattern)

    def ilike(self, column: str, pattern: str) -> RequestBuilder:
        return self.filter(column, "ilike", pattern)

    def in_(self, column: str, values: Sequence[Any]) -> RequestBuilder:
        return self.filter(column, "in", "(" + ",".join(_listed(v) for v in values) + ")")

    def is_(self, column: str, value: bool | None) -> RequestBuilder:
        return self.filter(column, "is", _value(value))

    def or_(self, filters: str) -> RequestBuilder:
        """PostgREST's or: `.or_("status.eq.paid,total.gt.100")`."""
        self._query.append(("or", f"({filters})"))
        return self

    def match(self, values: dict[str, Any]) -> RequestBuilder:
        for column, value in values.items():
            self.eq(column, value)
        return self

    # --- shape -----------------------------------------------------------------------------

    def order(
        self, column: str, *, desc: bool = False, nullsfirst: bool | None = None
    ) -> RequestBuilder:
        text = f"{column}.{'desc' if desc else 'asc'}"
        if nullsfirst is not None:
            text += ".nullsfirst" if nullsfirst else ".nullslast"
        self._query.append(("order", text))
        return self

    def limit(self, n: int) -> RequestBuilder:
        self._query.append(("limit", str(int(n))))
        return self

    def offset(self, n: int) -> RequestBuilder:
        self._query.append(("offset", str(int(n))))
        return self

    def range(self, start: int, end: int) -> RequestBuilder:
        """Rows start..end, both included (postgrest-py's range)."""
        return self.offset(start).limit(end - start + 1)

    def select(self, columns: str = "*") -> RequestBuilder:
        """After a write: return the written rows with these columns."""
        self._query.append(("select", columns))
        if "return=representation" not in self._prefer:
            self._prefer = [p for p in self._prefer if not p.startswith("return=")]
            self._prefer.append("return=representation")
        return self


class TableBuilder:
    """`ctx.data.from_(table)`: choose the operation."""

    def __init__(self, send: Send, table: str) -> None:
        self._send, self._table = send, table

    def _builder(self, method: str) -> RequestBuilder:
        return RequestBuilder(self._send, method, self._table)

    def select(self, columns: str = "*", *, count: str | None = None) -> RequestBuilder:
        b = self._builder("GET")
        b._query.append(("select", columns))
        if count is not None:
            b._prefer.append(f"count={count}")
        return b

    def _write(self, method: str, body: Any, returning: str, count: str | None) -> RequestBuilder:
        b = self._builder(method)
        b._body = body
        b._prefer.append(f"return={returning}")
        if count is not None:
            b._prefer.append(f"count={count}")
        return b

    def insert(
        self, rows: Any, *, returning: str = "representation", count: str | None = None,
        upsert: bool = False,
    ) -> RequestBuilder:  # fmt: skip
        b = self._write("POST", rows, returning, count)
        if upsert:
            b._prefer.append("resolution=merge-duplicates")
        return b

    def upsert(
        self, rows: Any, *, on_conflict: str | None = None, ignore_duplicates: bool = False,
        returning: str = "representation", count: str | None = None,
    ) -> RequestBuilder:  # fmt: skip
        b = self._write("POST", rows, returning, count)
        b._prefer.append(
            "resolution=ignore-duplicates" if ignore_duplicates else "resolution=merge-duplicates"
        )
        if on_conflict:
            b._query.append(("on_conflict", on_conflict))
        return b

    def update(
        self, values: dict[str, Any], *, returning: str = "representation",
        count: str | None = None,
    ) -> RequestBuilder:  # fmt: skip
        return self._write("PATCH", values, returning, count)

    def delete(
        self, *, returning: str = "representation", count: str | None = None
    ) -> RequestBuilder:
        b = self._builder("DELETE")
        b._prefer.append(f"return={returning}")
        if count is not None:
            b._prefer.append(f"count={count}")
        return b


class DataClient:
    """`ctx.data`: `from_(table)` (or `table(table)`) and `rpc(function, params)`."""

    def __init__(self, send: Send) -> None:
        self._send = send

    def from_(self, table: str) -> TableBuilder:
        return TableBuilder(self._send, table)

    def table(self, table: str) -> TableBuilder:
        return self.from_(table)

    def rpc(self, function: str, params: dict[str, Any] | None = None) -> RequestBuilder:
        b = RequestBuilder(self._send, "POST", None, function)
        b._body = dict(params or {})
        return b
