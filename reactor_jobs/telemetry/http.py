"""`GET /metrics`: on `reactor serve`'s HTTP port, and on a listener of its own when
[jobs.metrics] port (or --metrics-port) is set, the only way for `reactor worker`.

Open to whoever reaches it unless [jobs.metrics] bearer_token is set; it holds counts by org,
job and status, never payloads, outputs, errors, headers or secrets. Bind it to a private
address or set a token where org and job names are sensitive."""

from __future__ import annotations

import hmac
import logging
from typing import Protocol

import asyncpg
from aiohttp import web

from reactor_jobs.config import MetricsConfig
from reactor_jobs.domain.errors import ReactorError
from reactor_jobs.telemetry.metrics import CONTENT_TYPE, render

log = logging.getLogger("reactor_jobs.telemetry")


class _Hosts(Protocol):
    def counts(self) -> dict[str, int]: ...


class Node(Protocol):
    """What /metrics reads of a node (reactor_jobs.node.Node): its pool and its function
    hosts. A protocol, so telemetry stays below the node that uses it."""

    @property
    def pool(self) -> asyncpg.Pool: ...

    @property
    def hosts(self) -> _Hosts: ...


_NODE = web.AppKey("metrics_node", Node)
_SETTINGS = web.AppKey("metrics_settings", MetricsConfig)
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="metrics"'}


def authorized(request: web.Request, settings: MetricsConfig) -> bool:
    expected = settings.bearer_token
    if expected is None:
        return True
    given = request.headers.get("Authorization", "")
    scheme, _, token = given.strip().partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(token.strip().encode(), expected.encode())


async def metrics_response(
    request: web.Request, node: Node, settings: MetricsConfig
) -> web.Response:
    if not settings.enabled:
        return web.Response(status=404, text="metrics are turned off ([jobs.metrics] enabled)\n")
    if not authorized(request, settings):
        return web.Response(
            status=401, text="send Authorization: Bearer <token>\n", headers=_CHALLENGE
        )
    body = await render(node.pool, node.hosts.counts(), max_series=settings.max_series)
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE
    response.headers["Cache-Control"] = "no-store"
    return response


async def _handle(request: web.Request) -> web.Response:
    return await metrics_response(request, request.app[_NODE], request.app[_SETTINGS])


def metrics_app(node: Node, settings: MetricsConfig) -> web.Application:
    app = web.Application()
    app[_NODE], app[_SETTINGS] = node, settings
    app.router.add_get("/metrics", _handle)
    return app


async def start_metrics_listener(node: Node, settings: MetricsConfig) -> web.AppRunner | None:
    """The separate /metrics listener when [jobs.metrics] port is set; None otherwise."""
    if settings.port is None or not settings.enabled:
        return None
    runner = web.AppRunner(metrics_app(node, settings), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, settings.host, settings.port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise ReactorError(
            f"cannot listen for /metrics on {settings.host}:{settings.port}: {exc.strerror}"
        ) from None
    port = runner.addresses[0][1] if runner.addresses else settings.port
    log.info("metrics on http://%s:%s/metrics", settings.host, port)
    return runner
