"""Request bodies in, JSON out: a size-capped read, strict msgspec decoding (malformed JSON,
or JSON nested past the limit, is 400; a wrong type, a NUL character, a missing or unknown
field is 422 naming the field) and responses encoded from the same Structs the OpenAPI
document describes."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, TypeVar

import msgspec
from aiohttp import web

from reactor_jobs.functions.errors import InvalidField
from reactor_jobs.http.errors import MalformedJson, PayloadTooLarge
from reactor_jobs.http.inputs import check_json_text
from reactor_jobs.http.keys import CONFIG

T = TypeVar("T")

_AT_PATH = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$")
_NAMED = re.compile(r"^Object (?P<what>contains unknown|missing required) field `(?P<key>[^`]*)`$")
_CHUNK = 64 * 1024


async def read_body(request: web.Request, limit: int | None = None) -> bytes:
    """The whole body, refused with 413 past `limit` (default: the configured maximum)
    before more than the limit is read."""
    limit = request.app[CONFIG].jobs.http.max_body_bytes if limit is None else limit
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(limit)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


async def decode_json(request: web.Request, kind: type[T], *, empty: bytes | None = None) -> T:
    """The body decoded as `kind`; an empty body decodes as `empty` when that is given."""
    body = await read_body(request)
    if not body.strip():
        if empty is None:
            raise MalformedJson("the request body is empty; send a JSON object")
        body = empty
    return decode_bytes(body, kind)


def decode_bytes(body: bytes, kind: type[T]) -> T:
    check_json_text(body)
    try:
        return msgspec.json.decode(body, type=kind)
    except msgspec.ValidationError as exc:
        raise field_error(str(exc)) from None
    except msgspec.DecodeError as exc:
        raise MalformedJson(f"the request body is not valid JSON: {exc}") from None


def field_error(error: str, root: str = "body") -> InvalidField:
    """msgspec's "Expected `int`, got `str` - at `$.max_attempts`" as an InvalidField."""
    match = _AT_PATH.match(error)
    message, path = (match["message"], match["path"] or "") if match else (error, "")
    path = path.lstrip(".")
    named = _NAMED.match(message)
    if named:
        path = f"{path}.{named['key']}" if path else named["key"]
        message = "unknown field" if named["what"] == "contains unknown" else "required"
    return InvalidField(path or root, message.replace("`", ""))


def json_response(
    value: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=msgspec.json.encode(value),
        content_type="application/json",
        headers=headers,
    )


def from_row(type_: type[T], row: Mapping[str, Any], *, json: tuple[str, ...] = ()) -> T:
    """A response object from a database row; the `json` columns hold JSON text (jsonb)."""
    fields = dict(row)
    for column in json:
        if fields[column] is not None:
            fields[column] = msgspec.json.decode(fields[column])
    return msgspec.convert(fields, type_)
