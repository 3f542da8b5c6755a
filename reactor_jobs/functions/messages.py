"""The Request a function's `fetch(request, env, ctx)` receives and the Response it returns,
shaped after the Web API the spec shows: `await request.json()`, `Response.json(data)`.

Header names are lower-case. `json()` and `text()` are coroutines, as in the Web API, so
bundle code reads `payload = await request.json()`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

# A run's request does not come from a network peer; the URL only names the job.
DEFAULT_URL = "reactor://jobs/"
JSON_TYPE = "application/json"


class Request(msgspec.Struct, frozen=True, kw_only=True):
    method: str = "POST"
    url: str = DEFAULT_URL
    headers: dict[str, str] = {}
    body: bytes = b""

    @classmethod
    def from_payload(
        cls,
        payload: Any,
        headers: Mapping[str, str] | None = None,
        content_type: str = JSON_TYPE,
        *,
        method: str = "POST",
        url: str = DEFAULT_URL,
    ) -> Request:
        """A request carrying a run's payload: JSON-encoded for a JSON content type, else
        bytes as given or text as UTF-8."""
        merged = _lower(headers)
        merged.setdefault("content-type", content_type)
        return cls(method=method, url=url, headers=merged, body=_encode(payload, content_type))

    async def json(self) -> Any:
        """The body decoded as JSON (None for an empty body)."""
        return msgspec.json.decode(self.body) if self.body else None

    async def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class Response(msgspec.Struct, frozen=True, kw_only=True):
    status: int = 200
    headers: dict[str, str] = {}
    body: bytes = b""

    @classmethod
    def json(
        cls, data: Any, status: int = 200, headers: Mapping[str, str] | None = None
    ) -> Response:
        merged = {"content-type": JSON_TYPE, **_lower(headers)}
        return cls(status=status, headers=merged, body=msgspec.json.encode(data))

    def json_body(self) -> Any:
        """The body decoded as JSON (None for an empty body)."""
        return msgspec.json.decode(self.body) if self.body else None

    def text_body(self) -> str:
        return self.body.decode("utf-8", errors="replace")


def to_output(result: Any) -> Any:
    """A function's return value as the run's recorded output: a Response's body (decoded
    JSON when it is JSON, else text; None when empty), or the value itself as plain JSON
    types. Raises TypeError for a value JSON cannot represent. The status is not part of it.
    """
    if isinstance(result, Response):
        if not result.body:
            return None
        if _is_json(result.headers.get("content-type", "")):
            try:
                return result.json_body()
            except msgspec.DecodeError:
                pass  # mislabelled body: keep it as text
        return result.text_body()
    try:
        # A round trip yields exactly what the journal will hold (tuples become lists).
        return msgspec.json.decode(msgspec.json.encode(result))
    except TypeError as exc:
        raise TypeError(f"the function returned a value JSON cannot hold: {exc}") from None


def _encode(payload: Any, content_type: str) -> bytes:
    if isinstance(payload, bytes | bytearray | memoryview):
        return bytes(payload)
    if isinstance(payload, str) and not _is_json(content_type):
        return payload.encode()
    return msgspec.json.encode(payload)


def _is_json(content_type: str) -> bool:
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type == JSON_TYPE or media_type.endswith("+json")


def _lower(headers: Mapping[str, str] | None) -> dict[str, str]:
    return {name.lower(): value for name, value in (headers or {}).items()}
