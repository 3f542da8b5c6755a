"""The aiohttp middleware that turns `Authorization: Bearer …` and `X-Reactor-Org` into the
request's Principal, before any non-public handler runs.

Paths under /auth/v1/ pass through untouched: some need a user but no org (GET /auth/v1/user,
POST /auth/v1/orgs), others take the org from the path, so the auth routes check credentials
themselves through the same AuthService. Tokens are never logged or echoed.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from reactor_jobs.auth.principal import REQUEST_KEY, Unauthorized
from reactor_jobs.auth.service import AuthService

ORG_HEADER = "X-Reactor-Org"
AUTH_PREFIX = "/auth/v1/"
# Tokens are base64url, dots (JWTs) and the rk_/rt_ prefixes: nothing else belongs in one.
_BEARER = re.compile(r"^Bearer +([A-Za-z0-9._~+/=-]{1,4096})$", re.IGNORECASE)
_NO_BEARER = "send Authorization: Bearer <token> (sign in at POST /auth/v1/token)"


def bearer_token(request: web.Request) -> str:
    """The token of `Authorization: Bearer <token>`; missing or malformed → Unauthorized."""
    header = request.headers.get("Authorization")
    if header is None:
        raise Unauthorized(_NO_BEARER)
    match = _BEARER.match(header.strip())
    if match is None:
        raise Unauthorized(f"malformed Authorization header; {_NO_BEARER}")
    return match.group(1)


def is_public(request: web.Request) -> bool:
    """The paths the HTTP contract opens to anyone (the webhook token is its own auth)."""
    path, method = request.path, request.method
    if method == "POST" and (path == "/auth/v1/token" or path.startswith("/jobs/v1/webhooks/")):
        return True
    # /metrics checks its own bearer token, when one is configured (telemetry/http.py).
    return method in ("GET", "HEAD") and path in ("/healthz", "/jobs/v1/openapi.json", "/metrics")


def auth_middleware(
    service: AuthService, *, public: Callable[[web.Request], bool] = is_public
) -> Middleware:
    """Put it after the error middleware, which maps the raised errors to 400/401/403."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        if public(request) or request.path.startswith(AUTH_PREFIX):
            return await handler(request)
        token = bearer_token(request)
        org = request.headers.get(ORG_HEADER)
        request[REQUEST_KEY] = await service.principal_for(token, org)
        return await handler(request)

    return authenticate
