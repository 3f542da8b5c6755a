"""Request ids, the access log and the headers every response carries.

The access log is one logfmt line per request (`aiohttp.access`): method, path, status,
bytes, duration, client address and request id; the same fields ride on the record as
`record.access` for structured handlers. Never headers (tokens live there), never the query
string, never a webhook token (its path segment is redacted: the token is that URL's only
secret). aiohttp's own protocol errors (a request line or header past its 8 KiB limit)
would quote the raw line in `aiohttp.server`; ProtocolErrorFilter reduces them to a
summary, so nothing sent before the request parsed reaches the log."""

from __future__ import annotations

import logging
import re
from typing import Any

from aiohttp import web, web_response
from aiohttp.abc import AbstractAccessLogger
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler

from reactor_jobs.domain.ids import ulid

REQUEST_ID_HEADER = "X-Request-Id"
SERVER_NAME = "reactor"
# What every response says about itself: no versions, no content sniffing.
SECURITY_HEADERS = {"Server": SERVER_NAME, "X-Content-Type-Options": "nosniff"}
_REQUEST_ID = web.RequestKey("request_id", str)
# A caller's id is echoed only when it is short and plain, so it cannot forge log lines.
_SANE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_WEBHOOK_PATH = re.compile(r"(/jobs/v1/webhooks/)[^/\s\"']+")
_REDACTED = r"\1[redacted]"
_UNPRINTABLE = re.compile(r"[^\x21-\x7e]")
_MAX_LOGGED_PATH = 512


def request_id(request: web.BaseRequest) -> str:
    found: str = request.get(_REQUEST_ID, "-")
    return found


def redact_path(path: str) -> str:
    return _WEBHOOK_PATH.sub(_REDACTED, path)


def loggable_path(path: str) -> str:
    """The path redacted, with no spaces or control characters (one field, one line) and
    cut to a bounded length."""
    safe = _UNPRINTABLE.sub(_percent, redact_path(path))
    return safe if len(safe) <= _MAX_LOGGED_PATH else safe[:_MAX_LOGGED_PATH] + "…"


def _percent(match: re.Match[str]) -> str:
    return "".join(f"%{byte:02X}" for byte in match.group().encode())


@web.middleware
async def request_id_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    given = request.headers.get(REQUEST_ID_HEADER, "")
    request[_REQUEST_ID] = given if _SANE_ID.fullmatch(given) else f"req_{ulid()}"
    return await handler(request)


async def add_response_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: every response, streamed ones included, carries the request id
    and the security headers."""
    if _REQUEST_ID not in request:
        request[_REQUEST_ID] = f"req_{ulid()}"
    response.headers[REQUEST_ID_HEADER] = request_id(request)
    response.headers.update(SECURITY_HEADERS)


class AccessLogger(AbstractAccessLogger):
    """Pass as `access_log_class` to the AppRunner (http.app.app_runner does); aiohttp's
    default would log the raw request line, webhook tokens included."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        fields: dict[str, Any] = {
            "method": _UNPRINTABLE.sub("?", request.method)[:16],
            "path": loggable_path(request.rel_url.path),
            "status": response.status,
            "bytes": response.body_length,
            "duration_ms": round(time * 1000, 1),
            "client": request.remote or "-",
            "request_id": request_id(request),
        }
        line = " ".join(f"{key}={value}" for key, value in fields.items())
        self.logger.info("%s", line, extra={"access": fields})


class ProtocolErrorFilter(logging.Filter):
    """On `aiohttp.server`: a request that did not parse is logged as one line naming the
    error's class, never its message or traceback (both quote the raw bytes received)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], HttpProcessingError):
            error = type(record.exc_info[1]).__name__
            record.msg, record.args = "unparseable request refused (%s)", (error,)
            record.exc_info, record.exc_text = None, None
        elif isinstance(record.msg, str):
            record.msg = redact_path(record.msg)
        return True


def install_log_filters() -> None:
    """Idempotent: the filter is added to aiohttp's server logger once per process, and
    aiohttp's default Server header (its and Python's exact versions, sent on the protocol
    errors that no on_response_prepare sees) becomes ours."""
    web_response.SERVER_SOFTWARE = SERVER_NAME  # type: ignore[attr-defined]
    server_log = logging.getLogger("aiohttp.server")
    if not any(isinstance(f, ProtocolErrorFilter) for f in server_log.filters):
        server_log.addFilter(ProtocolErrorFilter())
