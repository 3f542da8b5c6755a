"""The aiohttp application: middlewares (request id, errors, auth), the route table of the
/jobs/v1 and /functions/v1 APIs, the auth routes, and the OpenAPI document built from the
same table. Serve it with AccessLogger as the runner's access_log_class."""

from __future__ import annotations

import asyncio

from aiohttp import web

from reactor_jobs.auth.middleware import auth_middleware
from reactor_jobs.auth.service import AuthService
from reactor_jobs.config import Config
from reactor_jobs.http import (
    audit_routes,
    dlq_routes,
    events_routes,
    functions_routes,
    jobs_routes,
    logs_sse,
    runs_routes,
    triggers_routes,
    webhooks,
)
from reactor_jobs.http.auth_docs import AUTH_DOCS
from reactor_jobs.http.auth_routes import add_auth_routes
from reactor_jobs.http.bodies import json_response
from reactor_jobs.http.errors import error_middleware
from reactor_jobs.http.keys import (
    CONFIG,
    NODE,
    OPENAPI,
    SHUTDOWN,
    TRIGGERS,
    WEBHOOK_GUARDS,
    WEBHOOK_LIMITER,
    WebhookGuard,
)
from reactor_jobs.http.objects import Health
from reactor_jobs.http.openapi import build_document, openapi_json
from reactor_jobs.http.ratelimit import TokenBuckets
from reactor_jobs.http.requestlog import AccessLogger, add_request_id, request_id_middleware
from reactor_jobs.http.routes import Route, public
from reactor_jobs.node import Node
from reactor_jobs.triggers.store import TriggerStore

__all__ = ["AccessLogger", "create_app", "routes"]


async def healthz(request: web.Request) -> web.Response:
    """Liveness: 200 while the process runs. `degraded` while its database is unreachable;
    the process rides that out by itself, so a supervisor should not restart it."""
    detail = request.app[NODE].health.detail()
    return json_response(Health(status="degraded" if detail else "ok", detail=detail))


def routes() -> list[Route]:
    """Every route this module registers, in registration order."""
    return [
        public("GET", "/healthz", healthz, summary="Liveness", tag="meta", response=Health),
        public(
            "GET", "/jobs/v1/openapi.json", openapi_json,
            summary="This document", tag="meta", response=dict,
        ),
        *functions_routes.ROUTES,
        *jobs_routes.ROUTES,
        *triggers_routes.ROUTES,
        *runs_routes.ROUTES,
        *audit_routes.ROUTES,
        *dlq_routes.ROUTES,
        *events_routes.ROUTES,
        *logs_sse.ROUTES,
        *webhooks.ROUTES,
    ]  # fmt: skip


def create_app(node: Node, config: Config) -> web.Application:
    auth = AuthService(node.pool, config)
    app = web.Application(
        middlewares=[request_id_middleware, error_middleware, auth_middleware(auth)],
        client_max_size=config.jobs.http.max_body_bytes,
    )
    app[NODE], app[CONFIG] = node, config
    app[TRIGGERS] = TriggerStore(node.pool)
    app[SHUTDOWN] = asyncio.Event()
    guards: list[WebhookGuard] = [webhooks.check_signature]
    app[WEBHOOK_GUARDS] = guards
    http = config.jobs.http
    app[WEBHOOK_LIMITER] = TokenBuckets(http.webhook_rate_per_second, http.webhook_burst)
    table = routes()
    for route in table:
        assert route.handle is not None
        app.router.add_route(route.method, route.path, route.handle)
    add_auth_routes(app, auth)
    app[OPENAPI] = build_document([*table, *AUTH_DOCS])
    app.on_response_prepare.append(add_request_id)
    app.on_shutdown.append(_end_streams)
    return app


async def _end_streams(app: web.Application) -> None:
    """Live streams (the SSE log) watch this and finish, so shutdown does not wait on them."""
    app[SHUTDOWN].set()
