"""The aiohttp application factory; routes are added here as the API grows."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from reactor_jobs.config import Config

POOL = web.AppKey("pool", asyncpg.Pool)
CONFIG = web.AppKey("config", Config)


def create_app(pool: asyncpg.Pool, config: Config) -> web.Application:
    app = web.Application()
    app[POOL] = pool
    app[CONFIG] = config
    app.router.add_get("/healthz", healthz)
    return app


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})
