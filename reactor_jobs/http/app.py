"""The aiohttp application: middlewares (request id, errors, auth), the route table of the
/jobs/v1 and /functions/v1 APIs, the auth routes, and the OpenAPI document built from the
same table. Serve it through app_runner (the access log, the header-read timeout)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from reactor_jobs.auth.middleware import auth_middleware, is_public
from reactor_jobs.auth.service import AuthService
from reactor_jobs.config import Config
from reactor_jobs.http import (
    audit_routes,
    data_routes,
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
from reactor_jobs.http.console import add_console, is_console
from reactor_jobs.http.errors import error_middleware
from reactor_jobs.http.inputs import input_middleware
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
from reactor_jobs.http.objects import Health, HostsHealth
from reactor_jobs.http.openapi import build_document, openapi_json
from reactor_jobs.http.ratelimit import TokenBuckets
from reactor_jobs.http.requestlog import (
    AccessLogger,
    add_response_headers,
    install_log_filters,
    request_id_middleware,
)
from reactor_jobs.http.routes import Route, public
from reactor_jobs.node import Node
from reactor_jobs.telemetry.http import metrics_response
from reactor_jobs.triggers.store import TriggerStore

__all__ = ["AccessLogger", "app_runner", "create_app", "routes"]


async def healthz(request: web.Request) -> web.Response:
    """Liveness: 200 while the process runs. `degraded` while its database is unreachable;
    the process rides that out by itself, so a supervisor should not restart it. Also says
    how job code is isolated here (none, without root or bubblewrap)."""
    node = request.app[NODE]
    detail = node.health.detail()
    hosts = HostsHealth(**node.hosts.status())
    return json_response(
        Health(status="degraded" if detail else "ok", detail=detail, function_hosts=hosts)
    )


async def metrics(request: web.Request) -> web.Response:
    """Prometheus text exposition (docs/metrics.md). Open unless [jobs.metrics] bearer_token
    is set; never payloads, outputs, errors, headers or secrets."""
    return await metrics_response(request, request.app[NODE], request.app[CONFIG].jobs.metrics)


def routes() -> list[Route]:
    """Every route this module registers, in registration order."""
    return [
        public("GET", "/healthz", healthz, summary="Liveness", tag="meta", response=Health),
        public(
            "GET", "/jobs/v1/openapi.json", openapi_json,
            summary="This document", tag="meta", response=dict,
        ),
        public(
            "GET", "/metrics", metrics, summary="Prometheus metrics", tag="meta",
            response="text", errors=(401, 404),
            note="Prometheus text format. Needs `Authorization: Bearer <token>` only when "
            "[jobs.metrics] bearer_token is set; 404 when [jobs.metrics] enabled = false.",
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
        middlewares=[
            request_id_middleware,
            error_middleware,
            input_middleware,
            # The console's static files are public; the API calls they make are not.
            auth_middleware(auth, public=lambda r: is_public(r) or is_console(r)),
        ],
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
    for route in data_routes.ROUTES:  # beside the jobs API: the org's own tables
        assert route.handle is not None
        app.router.add_route(route.method, route.path, route.handle)
    add_console(app)  # the web console at /console/, outside the OpenAPI document
    app[OPENAPI] = build_document([*table, *AUTH_DOCS, *data_routes.ROUTES])
    app.on_response_prepare.append(add_response_headers)
    app.on_shutdown.append(_end_streams)
    app.on_cleanup.append(_close_auth(auth))
    return app


def _close_auth(auth: AuthService) -> Callable[[web.Application], Awaitable[None]]:
    async def close(_app: web.Application) -> None:
        auth.close()

    return close


async def _end_streams(app: web.Application) -> None:
    """Live streams (the SSE log) watch this and finish, so shutdown does not wait on them."""
    app[SHUTDOWN].set()


def app_runner(app: web.Application, config: Config, **kwargs: Any) -> web.AppRunner:
    """The runner `reactor serve` uses. aiohttp's keep-alive timer also runs from the moment
    a connection opens until its request's headers are complete, so it is the header-read
    timeout too: a connection that sends no complete request within header_timeout_s (or
    sits idle that long between requests) is closed."""
    install_log_filters()
    return web.AppRunner(
        app,
        access_log_class=AccessLogger,
        keepalive_timeout=config.jobs.http.header_timeout_s,
        **kwargs,
    )
