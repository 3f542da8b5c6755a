"""An external Data service (`[jobs.data] url, api_key`): the worker forwards each ctx.data
call as the PostgREST request it is, over HTTP, with that key and the run's org. The write
and the journal entry cannot share a transaction there, so writes are at least once."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import aiohttp
import msgspec

from reactor_jobs.data.errors import (
    DataBadRequest,
    DataConflict,
    DataError,
    DataForbidden,
    DataNotFound,
    DataTooLarge,
    DataUnavailable,
)
from reactor_jobs.data.request import DataRequest, checked
from reactor_jobs.data.service import Result

TIMEOUT_S = 30.0
_BY_STATUS: dict[int, type[DataError]] = {
    400: DataBadRequest, 403: DataForbidden, 404: DataNotFound, 409: DataConflict,
    413: DataTooLarge,
}  # fmt: skip


class RemoteData:
    builtin = False

    def __init__(self, url: str, api_key: str | None) -> None:
        self.url, self._key = url.rstrip("/"), api_key
        self._session: aiohttp.ClientSession | None = None

    async def execute(self, org: str, request: DataRequest) -> Result:
        request = checked(request)
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S))
        headers = {"X-Reactor-Org": org, "Accept": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        if request.prefer:
            headers["Prefer"] = ",".join(request.prefer)
        data = None
        if request.body is not None:
            data = msgspec.json.encode(request.body)
            headers["Content-Type"] = "application/json"
        target = request.table if request.table is not None else f"rpc/{request.rpc}"
        url = f"{self.url}/data/v1/{quote(target, safe='/')}"
        try:
            async with self._session.request(
                request.method, url, params=request.query, data=data, headers=headers
            ) as reply:
                text = await reply.read()
                status, content_range = reply.status, reply.headers.get("Content-Range")
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise DataUnavailable(f"the Data service at {self.url} is unreachable: {exc}") from None
        if status >= 400:
            raise _error(status, text)
        rows: Any = msgspec.json.decode(text) if text.strip() else None
        total = None
        if content_range and "/" in content_range:
            tail = content_range.rsplit("/", 1)[1]
            total = int(tail) if tail.isdigit() else None
        count = len(rows) if isinstance(rows, list) else total
        return Result(rows=rows, count=count, total=total if request.method == "GET" else None)

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()


def _error(status: int, text: bytes) -> DataError:
    try:
        body = msgspec.json.decode(text)
        message = str(body["error"]["message"] if "error" in body else body.get("message"))
    except (msgspec.DecodeError, TypeError, KeyError, AttributeError):
        message = text[:500].decode(errors="replace")
    kind = _BY_STATUS.get(status)
    if kind is None:  # 5xx, 429, anything else: the call may succeed later
        return DataUnavailable(f"the Data service answered {status}: {message}")
    return kind(message)
