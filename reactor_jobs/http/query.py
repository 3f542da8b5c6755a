"""Query strings: only known parameters, checked values (422 naming the parameter), and
keyset cursors. A cursor is base64url JSON of the last item's sort key; callers treat it as
opaque."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Collection
from datetime import datetime
from typing import Annotated

import msgspec
from aiohttp import web

from reactor_jobs.functions.errors import InvalidField
from reactor_jobs.http.inputs import check_time

DEFAULT_LIMIT = 50
MAX_LIMIT = 200
PAGE_PARAMS = ("limit", "cursor")
_LIMIT = re.compile(r"[0-9]{1,4}")


class Cursor(msgspec.Struct, frozen=True, array_like=True):
    """The sort key of the last item a page returned: (time, id), newest first."""

    at: Annotated[datetime, msgspec.Meta(tz=True)]
    id: str


def check_params(request: web.Request, allowed: Collection[str]) -> None:
    for name in request.query:
        if name not in allowed:
            raise InvalidField(name, "unknown query parameter")
    for name in set(request.query):
        if len(request.query.getall(name)) > 1:
            raise InvalidField(name, "given more than once")


def limit(request: web.Request) -> int:
    raw = request.query.get("limit")
    if raw is None:
        return DEFAULT_LIMIT
    if not _LIMIT.fullmatch(raw) or not 1 <= int(raw) <= MAX_LIMIT:
        raise InvalidField("limit", f"must be an integer from 1 to {MAX_LIMIT}, got {raw!r}")
    return int(raw)


def cursor(request: web.Request) -> Cursor | None:
    raw = request.query.get("cursor")
    if raw is None:
        return None
    try:
        data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        found = msgspec.json.decode(data, type=Cursor)
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise InvalidField("cursor", "not a cursor this API returned") from None
    check_time("cursor", found.at)
    return found


def next_cursor(at: datetime, id: str) -> str:
    encoded = base64.urlsafe_b64encode(msgspec.json.encode(Cursor(at=at, id=id)))
    return encoded.rstrip(b"=").decode()


def timestamp(request: web.Request, name: str) -> datetime | None:
    """An RFC 3339 timestamp with a time zone (`Z` or an offset)."""
    raw = request.query.get(name)
    if raw is None:
        return None
    try:
        value = datetime.fromisoformat(raw)
    except ValueError:
        raise InvalidField(name, f"not an RFC 3339 timestamp: {raw!r}") from None
    if value.tzinfo is None:
        raise InvalidField(name, f"needs a time zone (e.g. Z): {raw!r}")
    return check_time(name, value)


def choice(request: web.Request, name: str, allowed: Collection[str]) -> list[str] | None:
    """One value or several, comma-separated, each one of `allowed`."""
    raw = request.query.get(name)
    if raw is None:
        return None
    values = [v.strip() for v in raw.split(",")]
    for value in values:
        if value not in allowed:
            raise InvalidField(name, f"must be one of {', '.join(allowed)}; got {value!r}")
    return values


def boolean(request: web.Request, name: str) -> bool | None:
    raw = request.query.get(name)
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise InvalidField(name, f"must be true or false, got {raw!r}")
    return raw == "true"


def one_of(request: web.Request, name: str, allowed: Collection[str]) -> str | None:
    raw = request.query.get(name)
    if raw is not None and raw not in allowed:
        raise InvalidField(name, f"must be one of {', '.join(allowed)}; got {raw!r}")
    return raw
