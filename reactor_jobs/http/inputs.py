"""Input checked once at the edge, before a handler, the decoder or Postgres sees it: path
parameters and query values (no control characters, bounded lengths) in one middleware;
JSON bodies (nesting depth, NUL characters) in one function every JSON decode goes through.

Postgres text cannot hold NUL, and a decoder recursing through 100,000 brackets exhausts the
stack: both would otherwise surface as 500s far from where the input came in."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler

from reactor_jobs.functions.errors import InvalidField
from reactor_jobs.http.errors import MalformedJson

MAX_JSON_DEPTH = 64
MAX_PATH_PARAM_CHARS = 255
MAX_QUERY_VALUE_CHARS = 1024
# The largest value of a Postgres integer (int32) column: versions, positions, counts.
INT32_MAX = 2**31 - 1
# What a path segment may hold (the OpenAPI document says the same).
PATH_PARAM_PATTERN = r"^[^\x00-\x1f\x7f/]+$"

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"')
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_INNERMOST = re.compile(rb"[\[{][\]}]")
# \u0000 as an escape, not an escaped backslash followed by "u0000".
_NUL_ESCAPE = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")


def check_json_text(body: bytes, root: str = "body") -> None:
    """Refuse JSON nested deeper than MAX_JSON_DEPTH (400) or holding a NUL character in a
    string (422 naming the field), before the decoder recurses through it."""
    brackets = _STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    if len(brackets) > 2 * MAX_JSON_DEPTH:
        for _ in range(MAX_JSON_DEPTH):  # each pass removes one level of innermost pairs
            brackets = _INNERMOST.sub(b"", brackets)
            if not brackets:
                break
        if brackets.count(b"[") + brackets.count(b"{") > MAX_JSON_DEPTH:
            raise MalformedJson(f"the request body is nested deeper than {MAX_JSON_DEPTH} levels")
    if _NUL_ESCAPE.search(body):
        try:
            value = msgspec.json.decode(body)
        except msgspec.DecodeError:
            return  # malformed anyway; the decoder says so
        path = nul_path(value)
        if path is not None:
            raise InvalidField(path or root, "must not contain the NUL character (\\u0000)")


def nul_path(value: Any, path: str = "") -> str | None:
    """The path (`a.b[2]`) of the first string or key holding NUL, or None."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if "\x00" in key:
                return path
            found = nul_path(item, inner)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = nul_path(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None


def check_text(name: str, value: str, limit: int) -> None:
    if _CONTROL.search(value):
        raise InvalidField(name, "must not contain control characters")
    if len(value) > limit:
        raise InvalidField(name, f"must be at most {limit} characters")


def check_time(name: str, value: datetime) -> datetime:
    """The time, if Postgres can store it: its UTC instant must fall in years 1 to 9999."""
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise InvalidField(name, "out of range (years 1 to 9999, in UTC)") from None


@web.middleware
async def input_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every route's path parameters and query values; after routing, before auth."""
    for name, value in request.match_info.items():
        check_text(name, value, MAX_PATH_PARAM_CHARS)
    for name, value in request.query.items():
        check_text(name, value, MAX_QUERY_VALUE_CHARS)
    return await handler(request)
