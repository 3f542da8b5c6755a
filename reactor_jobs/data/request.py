"""A Data API request in PostgREST's wire form, and its parse. Pure; no database.

One request shape serves HTTP (`/data/v1/…`), `ctx.data` in job code (the host proposes it,
the worker executes it) and the forwarding to an external Data service: method, table (or
rpc function), the query parameters in order, the Prefer tokens and the JSON body.

The grammar is PostgREST's: `select=id,alias:col`, `col=op.value` with op in eq neq gt gte
lt lte like ilike in is (and `not.` before any), `or=(a.eq.1,and(b.gt.2,c.is.null))`,
`order=col.desc.nullslast`, `limit`, `offset`, `on_conflict=cols`.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from reactor_jobs.data.errors import DataBadRequest

Method = Literal["GET", "POST", "PATCH", "DELETE"]
OPS = {"eq": "=", "neq": "<>", "gt": ">", "gte": ">=", "lt": "<", "lte": "<=",
       "like": "LIKE", "ilike": "ILIKE", "in": "IN", "is": "IS"}  # fmt: skip
RESERVED = frozenset({"select", "order", "limit", "offset", "or", "and", "on_conflict", "columns"})
MAX_PARAMS = 100


class DataRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One call of the Data API, as PostgREST receives it."""

    method: Method
    table: str | None = None  # GET/POST/PATCH/DELETE on a table
    rpc: str | None = None  # POST /rpc/<function>
    query: list[tuple[str, str]] = []
    prefer: list[str] = []
    body: Any = None

    @property
    def target(self) -> str:
        return self.table if self.table is not None else f"rpc/{self.rpc}"

    @property
    def writes(self) -> bool:
        """Whether it may change data: every method but GET (an rpc may write too)."""
        return self.method != "GET"

    def prefers(self, token: str) -> bool:
        return token in self.prefer

    def audit(self) -> dict[str, Any]:
        """What the journal keeps of it: table, method, filters; never a body or a key."""
        out: dict[str, Any] = {"method": self.method}
        if self.table is not None:
            out["table"] = self.table
        else:
            out["rpc"] = self.rpc
        if self.query:
            out["query"] = [list(pair) for pair in self.query]
        if self.prefer:
            out["prefer"] = list(self.prefer)
        if isinstance(self.body, list):
            out["body_rows"] = len(self.body)
        elif isinstance(self.body, dict):
            out["body_keys"] = sorted(self.body)
        return out


def checked(request: DataRequest) -> DataRequest:
    if (request.table is None) == (request.rpc is None):
        raise DataBadRequest("a data request names a table or an rpc function")
    name = request.target
    if not name or len(name) > 200 or "\x00" in name:
        raise DataBadRequest("a table or function name must be 1 to 200 characters")
    if request.rpc is not None and request.method != "POST":
        raise DataBadRequest("call an rpc function with POST")
    if len(request.query) > MAX_PARAMS:
        raise DataBadRequest(f"at most {MAX_PARAMS} query parameters")
    return request


def parse_prefer(values: list[str]) -> list[str]:
    tokens: list[str] = []
    for value in values:
        tokens += [t.strip() for t in value.split(",") if t.strip()]
    return tokens


# --- the parsed form -----------------------------------------------------------------------


class Filter(msgspec.Struct, frozen=True):
    column: str
    op: str  # a key of OPS
    value: str | list[str]
    negate: bool = False


class Logic(msgspec.Struct, frozen=True):
    op: Literal["and", "or"]
    items: list[Filter | Logic]
    negate: bool = False


Condition = Filter | Logic


class Order(msgspec.Struct, frozen=True):
    column: str
    desc: bool = False
    nulls: str | None = None  # "first" | "last"


class Plan(msgspec.Struct, kw_only=True):
    """The request's query parameters, parsed."""

    select: list[tuple[str, str]] | None = None  # (output name, column); None: every column
    where: list[Condition] = msgspec.field(default_factory=list)
    order: list[Order] = msgspec.field(default_factory=list)
    limit: int | None = None
    offset: int = 0
    on_conflict: list[str] | None = None


def plan(request: DataRequest) -> Plan:
    p = Plan()
    for key, value in request.query:
        if key == "select":
            p.select = _select(value)
        elif key == "order":
            p.order = [_order(item) for item in _split(value) if item]
        elif key in ("limit", "offset"):
            n = _int(key, value)
            if key == "limit":
                p.limit = n
            else:
                p.offset = n
        elif key in ("or", "and", "not.or", "not.and"):
            negate = key.startswith("not.")
            op = key.removeprefix("not.")
            p.where.append(_logic(op, value, negate))
        elif key == "on_conflict":
            p.on_conflict = [c.strip() for c in value.split(",") if c.strip()]
        elif key == "columns":
            continue  # PostgREST's insert column list: the body's keys decide here
        else:
            p.where.append(_filter(key, value))
    return p


def _int(key: str, value: str) -> int:
    try:
        n = int(value)
    except ValueError:
        raise DataBadRequest(f"{key} must be a whole number, not {value!r}") from None
    if not 0 <= n <= 2**31 - 1:
        raise DataBadRequest(f"{key} must be between 0 and 2147483647")
    return n


def _select(value: str) -> list[tuple[str, str]] | None:
    items = [item.strip() for item in _split(value)]
    if not items or items == [""] or "*" in items:
        if any(i not in ("*", "") for i in items):
            raise DataBadRequest("select: `*` cannot be combined with columns here")
        return None
    out = []
    for item in items:
        if "(" in item or "->" in item or "::" in item:
            raise DataBadRequest(
                f"select: {item!r} is not supported (columns and alias:column only)"
            )
        alias, _, column = item.rpartition(":")
        out.append((alias or column, column))
    return out


def _order(item: str) -> Order:
    parts = item.strip().split(".")
    column, desc, nulls = parts[0], False, None
    for modifier in parts[1:]:
        if modifier in ("asc", "desc"):
            desc = modifier == "desc"
        elif modifier in ("nullsfirst", "nullslast"):
            nulls = modifier.removeprefix("nulls")
        else:
            raise DataBadRequest(f"order: unknown modifier {modifier!r} in {item!r}")
    return Order(column, desc, nulls)


def _operator(column: str, text: str) -> Filter:
    negate = text.startswith("not.")
    if negate:
        text = text[4:]
    op, dot, value = text.partition(".")
    if not dot or op not in OPS:
        raise DataBadRequest(
            f"filter on {column}: {text!r} is not op.value (ops: {', '.join(OPS)})"
        )
    if op == "in":
        if not (value.startswith("(") and value.endswith(")")):
            raise DataBadRequest(f"filter on {column}: in takes a list, in.(a,b)")
        return Filter(column, op, [_unquote(v) for v in _split(value[1:-1])], negate)
    if op == "is" and value.lower() not in ("null", "true", "false", "unknown"):
        raise DataBadRequest(f"filter on {column}: is takes null, true, false or unknown")
    if op in ("like", "ilike"):
        value = value.replace("*", "%")
    return Filter(column, op, _unquote(value), negate)


def _filter(key: str, value: str) -> Filter:
    return _operator(key, value)


def _logic(op: str, value: str, negate: bool) -> Logic:
    if op not in ("and", "or"):
        raise DataBadRequest(f"unknown logic operator {op!r}")
    if not (value.startswith("(") and value.endswith(")")):
        raise DataBadRequest(f"{op} takes a list in parentheses: {op}=(a.eq.1,b.gt.2)")
    items: list[Condition] = []
    for item in _split(value[1:-1]):
        item = item.strip()
        head = item.removeprefix("not.")
        nested = head.split("(", 1)[0]
        if nested in ("and", "or") and head.startswith(f"{nested}("):
            items.append(_logic(nested, head[len(nested) :], item.startswith("not.")))
            continue
        column, dot, rest = item.partition(".")
        if not dot:
            raise DataBadRequest(f"{op}: {item!r} is not column.op.value")
        items.append(_operator(column, rest))
    if not items:
        raise DataBadRequest(f"{op}: the list is empty")
    return Logic(op, items, negate)  # type: ignore[arg-type]


def _split(text: str) -> list[str]:
    """Split at top-level commas (outside parentheses and double quotes)."""
    parts, depth, quoted, current = [], 0, False, []
    i = 0
    while i < len(text):
        ch = text[i]
        if quoted:
            if ch == "\\" and i + 1 < len(text):
                current.append(text[i : i + 2])
                i += 2
                continue
            if ch == '"':
                quoted = False
        elif ch == '"':
            quoted = True
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth < 0:
                raise DataBadRequest(f"unbalanced parentheses in {text!r}")
        elif ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            i += 1
            continue
        current.append(ch)
        i += 1
    if depth != 0 or quoted:
        raise DataBadRequest(f"unbalanced parentheses or quotes in {text!r}")
    parts.append("".join(current))
    return parts


def _unquote(value: str) -> str:
    value = value.strip() if value.strip().startswith('"') else value
    if len(value) >= 2 and value.startswith('"') and value.endswith('"'):
        return value[1:-1].replace('\\"', '"').replace("\\\\", "\\")
    return value
