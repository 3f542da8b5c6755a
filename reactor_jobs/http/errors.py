"""The HTTP face of the error tree: one table from error code to status, the middleware that
turns every failure into `{"error": {"code", "message"}}`, and the HTTP layer's own errors.

Unknown exceptions become a 500 with the request id; the traceback goes to the server log
only. A ReactorError whose code is not in the table is a bug, so it is a 500 as well.
"""

from __future__ import annotations

import logging

import msgspec
from aiohttp import web
from aiohttp.typedefs import Handler

from reactor_jobs.auth.throttle import ServerBusy, TooManyRequests
from reactor_jobs.domain.errors import ConcurrencyExceeded, ReactorError
from reactor_jobs.http.ratelimit import RateLimited
from reactor_jobs.http.requestlog import request_id
from reactor_jobs.wire.errors import ErrorBody, ErrorResponse

log = logging.getLogger("reactor_jobs.http")

# Every client-facing error code and its status. tests/integration/test_http_errors.py
# checks that each ReactorError subclass's code is here or is deliberately internal.
STATUS: dict[str, int] = {
    "bad_request": 400,
    "unauthorized": 401,
    "invalid_signature": 401,
    "forbidden": 403,
    "not_found": 404,
    "method_not_allowed": 405,
    "conflict": 409,
    "invalid_state": 409,
    "fenced": 409,
    "idempotency_conflict": 409,
    "payload_too_large": 413,
    "invalid_field": 422,
    "invalid_manifest": 422,
    "bundle_error": 422,
    "invalid_event": 422,
    "concurrency_exceeded": 429,
    "rate_limited": 429,
    "too_many_requests": 429,
    "database_unavailable": 503,
    "host_unavailable": 503,
    "server_busy": 503,
}
# Codes that mean the server failed, or that only job code sees (inside a run): a plain 500.
INTERNAL_CODES = frozenset(
    {"internal", "journal_tampered", "config_error", "not_built", "step_output", "nondeterministic"}
)
# aiohttp's own HTTP errors (unknown path, wrong method, its body limit) by status.
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}


class MalformedJson(ReactorError):
    """The request body is not valid JSON."""

    code = "bad_request"


class PayloadTooLarge(ReactorError):
    """The request body is too large."""

    code = "payload_too_large"

    def __init__(self, limit: int) -> None:
        super().__init__(f"the request body is larger than the limit of {limit} bytes")
        self.limit = limit


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    body = msgspec.json.encode(ErrorResponse(error=ErrorBody(code=code, message=message)))
    return web.Response(status=status, body=body, content_type="application/json", headers=headers)


def from_reactor_error(request: web.Request, exc: ReactorError) -> web.Response:
    status = STATUS.get(exc.code)
    if status is None:
        log.error("request %s failed: %s", request_id(request), exc, exc_info=exc)
        return _internal(request)
    headers = None
    if isinstance(exc, ConcurrencyExceeded | RateLimited | TooManyRequests | ServerBusy):
        headers = {"Retry-After": str(max(1, exc.retry_after))}
    return error_response(status, exc.code, exc.message, headers)


def from_http_exception(exc: web.HTTPException) -> web.Response:
    code = _HTTP_CODES.get(exc.status, "bad_request" if exc.status < 500 else "internal")
    headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
    return error_response(exc.status, code, exc.reason, headers)


def _internal(request: web.Request) -> web.Response:
    message = f"internal error; the server log has the details (request id {request_id(request)})"
    return error_response(500, "internal", message)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except ReactorError as exc:
        return from_reactor_error(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return from_http_exception(exc)
    except Exception as exc:
        log.error("request %s failed", request_id(request), exc_info=exc)
        return _internal(request)
