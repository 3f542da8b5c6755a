"""Request ids and the access log. The log line holds method, path, status, size, duration
and request id: never headers (tokens live there) and never a webhook token (its path
segment is redacted, since the token is that URL's only secret)."""

from __future__ import annotations

import re

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler

from reactor_jobs.engine.ids import ulid

REQUEST_ID_HEADER = "X-Request-Id"
_REQUEST_ID = web.RequestKey("request_id", str)
# A caller's id is echoed only when it is short and plain, so it cannot forge log lines.
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_WEBHOOK_PATH = re.compile(r"^(/jobs/v1/webhooks/)[^/]+")
_REDACTED = r"\1[redacted]"


def request_id(request: web.BaseRequest) -> str:
    found: str = request.get(_REQUEST_ID, "-")
    return found


def redact_path(path: str) -> str:
    return _WEBHOOK_PATH.sub(_REDACTED, path)


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    request[_REQUEST_ID] = given if _SANE_ID.fullmatch(given) else f"req_{ulid()}"
    return await handler(request)


async def add_request_id(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, streamed ones included, carries the id."""
    if _REQUEST_ID not in request:
        request[_REQUEST_ID] = f"req_{ulid()}"
    response.headers[REQUEST_ID_HEADER] = request_id(request)


class AccessLogger(AbstractAccessLogger):
    """Pass as `access_log_class` to the AppRunner; aiohttp's default would log the raw
    request line, webhook tokens included."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        self.logger.info(
            '%s "%s %s" %s %s %.1fms rid=%s',
            request.remote or "-",
            request.method,
            redact_path(request.rel_url.path),
            response.status,
            response.body_length,
            time * 1000,
            request_id(request),
        )
